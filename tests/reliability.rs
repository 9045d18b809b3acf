//! Helpers shared by the crash tests (tests/it/crash.rs), the load test
//! (tests/it/load.rs) and the load benchmark (tests/benches/load.rs): the
//! contents the `crashloop` guest writes, a seeded random source, reading a
//! child's acknowledgements, the garbage-collection check, and checking and
//! summing up a load run.

// Test helpers: a panic with a message is the right failure here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use vessel_host::service::Service;
use vessel_host::storage::blobs::BlobId;
use vessel_host::storage::embedded::EmbeddedOptions;
use vessel_host::storage::volume::{GcOptions, NodeKind};

/// The bytes of kind `kind` (1 volume slot, 2 dict value, 3 load file)
/// that writer `w` writes in iteration `i`: the `crashloop` guest's own
/// function (tests/programs/written), so the checks recompute what the
/// guest wrote instead of trusting what it printed.
pub use written::content;

/// A small xorshift generator, reproducible from the seed it prints.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `VESSEL_CRASH_SEED`, else from the clock; prints the
    /// seed with `what`, so a failure can be replayed.
    pub fn for_test(what: &str) -> Self {
        let seed = std::env::var("VESSEL_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("{what}: seed {seed} (VESSEL_CRASH_SEED={seed} replays it)");
        Rng(seed)
    }

    pub fn seed(&self) -> u64 {
        self.0
    }

    /// A number in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// How many kill -9 rounds each crash scenario runs: `default`, or
/// `VESSEL_CRASH_ITERATIONS` (the long mode).
pub fn crash_iterations(default: u64) -> u64 {
    std::env::var("VESSEL_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Reads complete lines from `from` on a thread; a line cut off by a kill
/// (no newline) is dropped, as it was never acknowledged.
pub fn line_reader(
    from: impl Read + Send + 'static,
) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut line = String::new();
        loop {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });
    (rx, handle)
}

/// Opens the store in `data_dir` as the next process after a crash would,
/// retrying briefly while the killed process's lock is released.
pub fn open_store(data_dir: &Path, tag: &str) -> Service {
    Service::open_embedded(data_dir, EmbeddedOptions::default())
        .unwrap_or_else(|e| panic!("{tag}: the store does not open: {e}"))
}

/// What [`check_gc`] found.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcCheck {
    /// Blobs no volume's head names, before the collection.
    pub orphans: u64,
    /// Blobs left (every one named by a head).
    pub live: u64,
}

/// Garbage collection after a crash, while nothing writes: every blob a
/// volume head names is present before, survives and verifies after; the
/// collection (minimum age 0) removes exactly the others and the blob
/// folder's temporary files.
pub fn check_gc(service: &Service, tag: &str) -> GcCheck {
    let store = service.embedded.as_ref().unwrap();
    let volumes = service.stores.volumes.as_ref().unwrap();
    let mut referenced = BTreeSet::new();
    // Every kept version of every volume (history keeps replaced files
    // for the retention): what gc must keep. A blob only an older version
    // names sits at a path a later commit changed, and the first such
    // commit's diff shows it as that path's `before`; so the head plus
    // each commit's diff covers every kept version at the cost of the
    // commits, not versions x files. The oldest kept version is read whole.
    for info in volumes.list().unwrap() {
        for (_, node) in volumes.snapshot(&info.name).unwrap().nodes {
            referenced.extend(node.blob);
        }
        let history = volumes.history(&info.name, 1).unwrap();
        let oldest = volumes
            .snapshot_at(&info.name, history.oldest)
            .unwrap_or_else(|e| {
                panic!(
                    "{tag}: version {} of {} does not read: {e}",
                    history.oldest, info.name
                )
            });
        for (_, node) in oldest.nodes {
            referenced.extend(node.blob);
        }
        for v in history.oldest..history.head {
            let diff = volumes
                .diff(&info.name, v, Some(v + 1))
                .unwrap_or_else(|e| panic!("{tag}: {} versions {v}, {}: {e}", info.name, v + 1));
            for d in diff {
                referenced.extend(d.before.and_then(|n| n.blob));
            }
        }
    }
    let before: BTreeSet<BlobId> = store.blobs().list().unwrap().into_iter().collect();
    let missing: Vec<_> = referenced.difference(&before).collect();
    assert!(
        missing.is_empty(),
        "{tag}: blobs named by a kept version are missing: {missing:?}"
    );
    let orphans = before.difference(&referenced).count() as u64;
    let report = volumes
        .gc(&GcOptions {
            pinned: &|_| false,
            min_age: Some(Duration::ZERO),
        })
        .unwrap_or_else(|e| panic!("{tag}: gc failed: {e}"));
    let after: BTreeSet<BlobId> = store.blobs().list().unwrap().into_iter().collect();
    assert_eq!(
        after, referenced,
        "{tag}: gc must leave exactly the blobs the kept versions name"
    );
    assert_eq!(
        report.removed_blobs, orphans,
        "{tag}: gc removed {} blobs, there were {orphans} orphans",
        report.removed_blobs
    );
    for id in &after {
        store
            .blobs()
            .verify(id)
            .unwrap_or_else(|e| panic!("{tag}: a live blob does not verify: {e}"));
    }
    let tmp: Vec<PathBuf> = std::fs::read_dir(store.dir().join("blobs").join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(tmp.is_empty(), "{tag}: gc left temporary files {tmp:?}");
    GcCheck {
        orphans,
        live: after.len() as u64,
    }
}

/// The entries of `data_dir/containers`: container working directories,
/// live or left by a killed host (the next host to start a container
/// removes those).
pub fn container_dirs(data_dir: &Path) -> Vec<String> {
    match std::fs::read_dir(data_dir.join("containers")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("cannot list {}/containers: {e}", data_dir.display()),
    }
}

/// A volume's head as the checks compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTree {
    pub version: u64,
    /// Path → bytes, read hash-checked.
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
}

/// The head of `volume`; `None` if the volume does not exist.
pub fn volume_tree(service: &Service, volume: &str) -> Option<VolumeTree> {
    let volumes = service.stores.volumes.as_ref().unwrap();
    let snap = match volumes.snapshot(volume) {
        Ok(s) => s,
        Err(vessel_host::storage::volume::VolumeError::NotFound(_)) => return None,
        Err(e) => panic!("snapshot of {volume}: {e}"),
    };
    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    for (path, node) in snap.nodes {
        match node.kind {
            NodeKind::File => {
                let bytes = match &node.blob {
                    Some(id) => volumes
                        .read_blob(id, 0, node.size)
                        .unwrap_or_else(|e| panic!("{volume}:{path}: {e}")),
                    None => Vec::new(),
                };
                assert_eq!(bytes.len() as u64, node.size, "{volume}:{path}: size");
                files.insert(path, bytes);
            }
            NodeKind::Dir => {
                dirs.insert(path);
            }
            NodeKind::Symlink => panic!("{volume}:{path}: an unexpected symlink"),
        }
    }
    Some(VolumeTree {
        version: snap.version,
        files,
        dirs,
    })
}

/// Every entry of a dict (key → value), in key order; `None` if the dict
/// does not exist.
pub fn dict_entries(service: &Service, dict: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let store = service.stores.dicts.as_ref().unwrap();
    if !store.exists(dict).unwrap() {
        return None;
    }
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.scan(dict, "", cursor.as_deref(), 0, true).unwrap();
        for item in page.items {
            out.insert(item.key, item.value.unwrap_or_default());
        }
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        store.len(dict).unwrap(),
        out.len() as u64,
        "dict {dict}: len is not the number of entries"
    );
    Some(out)
}

// ---------------------------------------------------------------------------
// Load runs.

/// The load app: `load-main` spawns the workers, each in a container of
/// its own with volume `loadvol` mounted at /data and dict `load` granted.
/// Only explicit commits, so each version is an acknowledged commit.
const LOAD_APP: &str = r#"
[app]
name = "load"

[volumes.loadvol]
create_if_missing = true

[dicts.load]
create_if_missing = true

[functions.load-main]
component = "@CRASHLOOP@"
max_containers = 1
timeout = 600

[functions.load-worker]
component = "@CRASHLOOP@"
mounts = { "/data" = "loadvol" }
dicts = ["load"]
max_containers = 64
commit_every = 0
timeout = 600
memory = 64
"#;

/// Writes the load app's manifest, for the built `crashloop` guest, into
/// `dir`; returns its path.
pub fn load_manifest(dir: &Path) -> PathBuf {
    crate::write_manifest(dir, LOAD_APP, &["crashloop"])
}

/// One load worker's report (the guest's `worker-report`).
#[derive(Debug, Clone, Default)]
pub struct WorkerReport {
    pub worker: u32,
    pub iterations: u64,
    pub increments: u64,
    pub commits: u64,
    pub last_version: u64,
    pub errors: Vec<String>,
    pub dict_us: Vec<u32>,
    pub commit_us: Vec<u32>,
}

impl WorkerReport {
    /// Parses the JSON of a `worker-report` record.
    pub fn from_json(v: &serde_json::Value) -> Self {
        let u = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_u64)
                .unwrap_or_else(|| panic!("worker report without {k}: {v}"))
        };
        let list = |k: &str| -> Vec<u32> {
            v.get(k)
                .and_then(serde_json::Value::as_array)
                .unwrap_or_else(|| panic!("worker report without {k}: {v}"))
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        };
        WorkerReport {
            worker: u("worker") as u32,
            iterations: u("iterations"),
            increments: u("increments"),
            commits: u("commits"),
            last_version: u("last-version"),
            errors: v
                .get("errors")
                .and_then(serde_json::Value::as_array)
                .unwrap_or_else(|| panic!("worker report without errors: {v}"))
                .iter()
                .map(|e| e.as_str().unwrap_or_default().to_owned())
                .collect(),
            dict_us: list("dict-us"),
            commit_us: list("commit-us"),
        }
    }
}

/// Parses `load-main`'s result: one `ok:JSON` or `err:MESSAGE` per worker.
pub fn parse_load_main(result: &serde_json::Value) -> Vec<WorkerReport> {
    result
        .as_array()
        .unwrap_or_else(|| panic!("load-main returned {result}"))
        .iter()
        .map(|s| {
            let s = s.as_str().unwrap_or_default();
            let json = s
                .strip_prefix("ok:")
                .unwrap_or_else(|| panic!("a load worker failed: {s}"));
            WorkerReport::from_json(&serde_json::from_str(json).unwrap())
        })
        .collect()
}

/// What a load run lost (must be nothing) and what it did.
#[derive(Debug, Clone, Default)]
pub struct LoadCheck {
    pub workers: usize,
    pub increments: u64,
    pub commits: u64,
    pub puts: u64,
    pub head_version: u64,
}

/// Checks a finished load run against the store: the counter `hits` of
/// dict `load` is exactly the sum of acknowledged increments; each
/// worker's `w{w}` key holds its last iteration; each worker's files in
/// volume `volume` are what its last commits wrote, byte for byte; the
/// head version is the number of acknowledged commits (only the workers
/// commit, and each commit changes something). Panics with what was lost.
pub fn check_load(service: &Service, volume: &str, reports: &[WorkerReport]) -> LoadCheck {
    for r in reports {
        assert!(
            r.errors.is_empty(),
            "load worker {} had errors: {:?}",
            r.worker,
            r.errors
        );
        assert_eq!(r.commits, r.iterations, "worker {}", r.worker);
    }
    let entries = dict_entries(service, "load").expect("dict `load` exists");
    let increments: u64 = reports.iter().map(|r| r.increments).sum();
    let hits = entries.get("hits").map_or(0, |v| {
        std::str::from_utf8(v).unwrap().parse::<u64>().unwrap()
    });
    assert_eq!(
        hits, increments,
        "`hits` must count every acknowledged increment"
    );
    let VolumeTree { version, files, .. } =
        volume_tree(service, volume).expect("the load volume exists");
    let commits: u64 = reports.iter().map(|r| r.commits).sum();
    assert_eq!(
        version, commits,
        "the head version is the number of acknowledged commits"
    );
    for r in reports {
        let w = r.worker;
        let n = r.iterations;
        if n > 0 {
            assert_eq!(
                entries.get(&format!("w{w}")).map(Vec::as_slice),
                Some((n - 1).to_string().as_bytes()),
                "worker {w}'s last put"
            );
        }
        assert!(r.last_version <= version);
        for q in 0..4u64.min(n) {
            // The last iteration i < n with i % 4 == q wrote f{q}.
            let i = q + (n - 1 - q) / 4 * 4;
            let path = format!("w{w}/f{q}");
            let got = files
                .get(&path)
                .unwrap_or_else(|| panic!("{path} (acknowledged) is missing"));
            assert!(
                *got == content(3, w, i),
                "{path} is not what acknowledged commit {i} wrote"
            );
        }
        let mine = files
            .keys()
            .filter(|p| p.starts_with(&format!("w{w}/")))
            .count() as u64;
        assert_eq!(mine, 4u64.min(n), "worker {w}: unexpected files");
    }
    let workers_with_puts = reports.iter().filter(|r| r.iterations > 0).count();
    assert_eq!(
        entries.len(),
        1 + workers_with_puts,
        "dict `load` holds `hits` and one key per worker, nothing else: {:?}",
        entries.keys().collect::<Vec<_>>()
    );
    LoadCheck {
        workers: reports.len(),
        increments,
        commits,
        puts: reports.iter().map(|r| r.iterations).sum(),
        head_version: version,
    }
}

/// The `p`-th percentile (0..=100) of `values`, in the same unit.
pub fn percentile(values: &mut [u32], p: f64) -> u32 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}

/// This process's peak resident set (VmHWM), in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Resets this process's VmHWM to its current RSS (Linux `clear_refs` 5),
/// so the next [`peak_rss_kib`] is the peak of what follows. False if the
/// kernel refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
