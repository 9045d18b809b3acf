//! Warm containers for forwarded `vessel call`s of a bare component.
//!
//! A `vessel call` that runs on its own starts a process, opens the store,
//! mounts its volumes and instantiates the component, then throws all of it
//! away. When another process owns the data dir, the call is forwarded to
//! it, and the owner keeps the container for the next forwarded call of the
//! same component with the same options, as a Modal function keeps a warm
//! container: the guest's memory (a model it loaded, a cache it built)
//! survives between calls.
//!
//! What a call sees stays what a fresh container would show it. Each call
//! starts with its mounts at their volumes' heads and commits its writes
//! before it returns (see `FunctionSpec::sync_mounts_each_call`), and its
//! guest's output goes to the process that forwarded this call, not the
//! one that started the container ([`Route`]).
//!
//! A kept container is matched on the component file's stamp (device,
//! inode, size, mtime, ctime: a rebuilt component gets a fresh one), the
//! export and every option of the call. At most [`MAX_KEPT`] are kept; one
//! unused for [`KEEP_IDLE`] is let go (its app retires its container at the
//! same moment). Like every app's idle container, a kept one is retired
//! when its volume is deleted or renamed (`pins::IdleMounts`), so a
//! container waiting for a call does not block that. Apps (a vessel.toml)
//! and runs are not kept: an app configures its own warm containers, and a
//! run is a whole program.

use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::invoke::{attach_stores, call_args, container_config};
use super::*;
use crate::container::GuestStdio;
use crate::engine::FileStamp;

/// Most containers kept for forwarded calls, over all components.
pub const MAX_KEPT: usize = 16;

/// How long a kept container waits for its next call: Modal's default
/// scale-down window.
pub const KEEP_IDLE: Duration = Duration::from_secs(60);

/// What a kept container was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    path: PathBuf,
    /// The component file's identity and version.
    stamp: FileStamp,
    function: String,
    /// The call's container options, as sent.
    limits: String,
}

impl Key {
    /// `None` when the file cannot be read (the call reports why) or was
    /// written too recently for its stamp to tell it from its next
    /// version (the compile cache's rule, [`FileStamp::settled_now`]).
    fn of(path: &Path, cmd: &CallRequest) -> Option<Key> {
        let stamp = FileStamp::of(&std::fs::metadata(path).ok()?);
        if !stamp.settled_now() {
            return None;
        }
        Some(Key {
            path: std::fs::canonicalize(path).ok()?,
            stamp,
            function: cmd.function.clone(),
            limits: serde_json::to_string(&cmd.limits).ok()?,
        })
    }
}

/// An app of one function whose container stays warm between calls.
struct Kept {
    key: Key,
    app: App,
    route: Arc<Route>,
    used: Instant,
}

/// The owner's kept containers for forwarded calls.
#[derive(Default)]
pub struct WarmCalls {
    kept: Mutex<Vec<Kept>>,
    /// One engine for every kept app: an engine per call would start its
    /// own epoch thread and cache handle.
    engine: Mutex<Option<VesselEngine>>,
}

impl WarmCalls {
    fn lock(&self) -> MutexGuard<'_, Vec<Kept>> {
        // The list is whole between statements.
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn engine(&self, home: &Home) -> Result<VesselEngine, Failure> {
        let mut slot = self.engine.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = &*slot {
            return Ok(e.clone());
        }
        let engine = engine_for(home, false)?;
        *slot = Some(engine.clone());
        Ok(engine)
    }

    /// Takes the kept app for `key`, letting go of those unused too long.
    fn take(&self, key: &Key) -> Option<Kept> {
        let mut kept = self.lock();
        let now = Instant::now();
        let (stale, fresh): (Vec<Kept>, Vec<Kept>) = std::mem::take(&mut *kept)
            .into_iter()
            .partition(|k| now.duration_since(k.used) >= KEEP_IDLE);
        *kept = fresh;
        let found = kept.iter().position(|k| &k.key == key);
        let taken = found.map(|i| kept.swap_remove(i));
        drop(kept);
        stale.into_iter().for_each(let_go);
        taken
    }

    /// Keeps `k` for the next call, letting go of the least recently used
    /// one past [`MAX_KEPT`].
    fn put(&self, mut k: Kept) {
        k.used = Instant::now();
        let mut kept = self.lock();
        kept.push(k);
        let over = kept.len().saturating_sub(MAX_KEPT);
        kept.sort_by_key(|k| std::cmp::Reverse(k.used));
        let keep = kept.len() - over;
        let gone: Vec<Kept> = kept.split_off(keep);
        drop(kept);
        gone.into_iter().for_each(let_go);
    }

    /// Carries out a forwarded call, in a kept container when one fits.
    /// Apps, and components whose file cannot be stamped, take the
    /// ordinary path.
    pub async fn call(
        &self,
        home: &Home,
        cmd: CallRequest,
        inv: &Invocation,
    ) -> Result<u8, Failure> {
        let path = inv.path(&cmd.component);
        let key = Key::of(&path, &cmd).filter(|_| !is_app(&path));
        // Only forwarded calls have a caller to route output to.
        let (Some(key), Console::Remote(io)) = (key, &inv.console) else {
            return invoke::call_held(home, cmd, inv, &mut None).await;
        };
        let args = call_args(&cmd, inv)?;
        let kept = match self.take(&key) {
            Some(k) => k,
            None => self.start(home, &cmd, &path, key)?,
        };
        let function = kept.app.function(&cmd.function).map_err(Failure::from)?;
        kept.route.set(io);
        let result = function.call_args(&args).await;
        kept.route.finish().await;
        self.put(kept);
        if let Some(json) = result.map_err(Failure::from)? {
            inv.console.out_line(&json.to_string()).await;
        }
        Ok(0)
    }

    /// A new kept app for `cmd`, with its container not started yet.
    fn start(
        &self,
        home: &Home,
        cmd: &CallRequest,
        path: &Path,
        key: Key,
    ) -> Result<Kept, Failure> {
        let mut config = container_config(&cmd.limits)?;
        let route = Arc::new(Route::default());
        config.stdio = GuestStdio::Piped {
            stdin: Arc::new(std::io::empty()),
            stdout: Arc::new(RouteStream {
                route: route.clone(),
                index: 0,
            }),
            stderr: Arc::new(RouteStream {
                route: route.clone(),
                index: 1,
            }),
        };
        let engine = self.engine(home)?;
        let (component, outcome) = engine.load(path).map_err(CallError::from)?;
        tracing::debug!(?outcome, path = %cmd.component.display(), "component loaded");
        attach_stores(home, &engine, &component, &mut config, &mut None)?;
        let app = Runtime::new(engine, config.stores.clone())
            .app_of_component_kept(
                component,
                &cmd.component,
                &cmd.function,
                &cmd.function,
                config,
                KEEP_IDLE,
            )
            .map_err(|e| Failure::from(crate::app::as_call_error(e)))?;
        Ok(Kept {
            key,
            app,
            route,
            used: Instant::now(),
        })
    }
}

/// Shuts a kept app down off the caller's path. Every call committed its
/// writes before it returned, so nothing is left to store.
fn let_go(k: Kept) {
    tokio::spawn(async move {
        if let Err(e) = k.app.shutdown().await {
            tracing::warn!(error = %e, "a kept container ended badly");
        }
    });
}

/// Where a kept container's stdout and stderr go: the frames of the call
/// it is running. Between calls (no guest code runs then) output has
/// nowhere to go and is dropped.
#[derive(Default)]
struct Route {
    target: Mutex<Option<[Writer; 2]>>,
}

/// One stream of the caller's.
type Writer = Pin<Box<dyn AsyncWrite + Send + Sync>>;

impl Route {
    fn lock(&self) -> MutexGuard<'_, Option<[Writer; 2]>> {
        self.target.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends output to the caller of the call about to run.
    fn set(&self, io: &crate::server::exec::ExecIo) {
        *self.lock() = Some([
            Box::into_pin(io.stdout.async_stream()),
            Box::into_pin(io.stderr.async_stream()),
        ]);
    }

    /// Ends the call's output: what the guest wrote is flushed to its
    /// caller, and later output goes nowhere.
    async fn finish(&self) {
        let taken = self.lock().take();
        if let Some(mut streams) = taken {
            for s in &mut streams {
                // The caller may have gone; its call is over either way.
                let _ = tokio::io::AsyncWriteExt::flush(s).await;
            }
        }
    }
}

/// stdout (0) or stderr (1) of a kept container.
#[derive(Clone)]
struct RouteStream {
    route: Arc<Route>,
    index: usize,
}

impl IsTerminal for RouteStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for RouteStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for RouteStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let mut target = self.route.lock();
        match target.as_mut().and_then(|t| t.get_mut(self.index)) {
            Some(w) => w.as_mut().poll_write(cx, buf),
            None => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut target = self.route.lock();
        match target.as_mut().and_then(|t| t.get_mut(self.index)) {
            Some(w) => w.as_mut().poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
