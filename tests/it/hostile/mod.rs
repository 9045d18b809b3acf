//! Hostile guests and hostile neighbours (issue #17): every limit of the
//! sandbox, attacked as an attacker would, beside a bystander container in
//! the same host that must keep answering throughout.
//!
//! One submodule per limit. RELIABILITY.md's threat-model table names each
//! test here with the limit it pins, its default and its error.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vessel_host::app::{App, Runtime};
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::service::Service;
use vessel_host::storage::embedded::EmbeddedOptions;
use vessel_tests::guest;

mod disk;
mod http;
mod memory;
mod time;

/// A host in this test process: a data dir, its stores and a runtime.
pub(crate) struct Host {
    pub home: tempfile::TempDir,
    /// The stores; tests reach volumes and dicts through it.
    #[allow(dead_code)]
    pub service: Service,
    pub runtime: Runtime,
}

impl Host {
    pub fn new() -> Host {
        let home = tempfile::tempdir().unwrap();
        let service = Service::open_embedded(home.path(), EmbeddedOptions::default()).unwrap();
        let engine = VesselEngine::new(EngineConfig::default()).unwrap();
        let runtime = Runtime::new(engine, service.stores.clone())
            .with_work_dir(home.path().join("containers"));
        Host {
            home,
            service,
            runtime,
        }
    }

    /// Loads an app from `manifest`, in which `@ADD@` stands for the `add`
    /// test program (the bystander's) and `@NAME@` for test program `name`
    /// for each name in `programs`.
    pub fn load(&self, manifest: &str, programs: &[&str]) -> App {
        let mut text = manifest.replace("@ADD@", &path_str(&guest("add")));
        for p in programs {
            text = text.replace(&format!("@{}@", p.to_uppercase()), &path_str(&guest(p)));
        }
        let dir = self.home.path().join(format!(
            "app-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vessel.toml");
        std::fs::write(&path, text).unwrap();
        self.runtime.load_path(&path).unwrap()
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// The manifest lines of a bystander function, `bystander`, to add to a
/// test's app: the `add` program with its own container pool.
pub(crate) const BYSTANDER: &str = r#"
[functions.bystander]
component = "@ADD@"
export = "add"
max_containers = 2
"#;

/// What a bystander saw while it ran.
#[derive(Debug)]
pub(crate) struct Seen {
    pub answered: u32,
    pub slowest: Duration,
}

/// Calls the app's `bystander` function in a loop (every 20 ms) from a task
/// of its own, until [`finish`](Self::finish): each call must answer, and
/// correctly, within `BYSTANDER_PATIENCE`.
pub(crate) struct Bystander {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Seen, String>>,
}

/// The longest a bystander call may take while a hostile guest runs beside
/// it. Generous for a shared 2-core machine; a host that a hostile guest
/// stalls takes far longer.
pub(crate) const BYSTANDER_PATIENCE: Duration = Duration::from_secs(2);

impl Bystander {
    pub fn start(app: &App) -> Bystander {
        let f = app.function("bystander").unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Seen {
                answered: 0,
                slowest: Duration::ZERO,
            };
            let mut i = 0i64;
            while !flag.load(Ordering::SeqCst) {
                i += 1;
                let t = Instant::now();
                let got = tokio::time::timeout(BYSTANDER_PATIENCE, f.call(json!([i, 1]))).await;
                let took = t.elapsed();
                match got {
                    Ok(Ok(v)) if v == json!(i + 1) => {}
                    Ok(Ok(v)) => return Err(format!("call {i} answered {v}, not {}", i + 1)),
                    Ok(Err(e)) => return Err(format!("call {i} failed: {e}")),
                    Err(_) => return Err(format!("call {i} took over {BYSTANDER_PATIENCE:?}")),
                }
                seen.answered += 1;
                seen.slowest = seen.slowest.max(took);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(seen)
        });
        Bystander { stop, task }
    }

    /// Stops the loop and fails the test unless every call answered, and at
    /// least one did.
    pub async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self
            .task
            .await
            .unwrap_or_else(|e| panic!("bystander task: {e}"))
            .unwrap_or_else(|e| panic!("the bystander stopped answering: {e}"));
        assert!(seen.answered > 0, "the bystander never answered");
        seen
    }
}

/// A path inside the host's data dir, for tests that look at what a guest
/// left on disk.
#[allow(dead_code)]
pub(crate) fn data_path(host: &Host, rel: &str) -> PathBuf {
    host.home.path().join(rel)
}

/// The harness itself: a bystander alone answers every call, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bystander_alone_answers_every_call() {
    let host = Host::new();
    let app = host.load(BYSTANDER, &[]);
    let b = Bystander::start(&app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = b.finish().await;
    assert!(seen.answered >= 3, "{seen:?}");
    assert!(!data_path(&host, "containers").as_os_str().is_empty());
    app.shutdown().await.unwrap();
}
