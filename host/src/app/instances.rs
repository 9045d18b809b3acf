//! How a function's calls get containers: invoking it (a warm container from
//! its pool, or a new one), running a command component, and the sweep that
//! retires idle containers.

use super::*;

/// Numbers containers (and calls) in this process, for the call log.
static CONTAINERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A container running a call, on the busy gauge while this lives.
struct Busy;

impl Busy {
    fn new() -> Busy {
        crate::metrics::global().containers_busy.inc();
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        crate::metrics::global().containers_busy.dec();
    }
}

/// Logs one line per call (target `vessel::calls`): app, function, call
/// number, container number, duration and outcome; and counts it in the
/// metrics.
fn log_call(
    app: &AppInner,
    function: &str,
    call: u64,
    container: u64,
    started: Instant,
    outcome: Result<(), &AppError>,
) {
    let took = started.elapsed();
    let ms = took.as_secs_f64() * 1000.0;
    let m = crate::metrics::global();
    m.calls
        .get_or_create(&crate::metrics::CallLabels {
            app: app.name.clone(),
            function: function.to_owned(),
            outcome: outcome
                .map_or_else(|e| e.kind().label(), |()| "ok")
                .to_owned(),
        })
        .inc();
    m.call_duration
        .get_or_create(&crate::metrics::FunctionLabels {
            app: app.name.clone(),
            function: function.to_owned(),
        })
        .observe(took.as_secs_f64());
    match outcome {
        Ok(()) => tracing::info!(
            target: "vessel::calls",
            app = %app.name,
            function,
            call,
            container,
            duration_ms = ms,
            outcome = "ok",
            "call"
        ),
        Err(e) => tracing::info!(
            target: "vessel::calls",
            app = %app.name,
            function,
            call,
            container,
            duration_ms = ms,
            outcome = e.kind().label(),
            error = %e,
            "call"
        ),
    }
}

impl FunctionState {
    /// A failure in one of this function's containers.
    pub(super) fn in_container(&self, source: ContainerError) -> AppError {
        AppError::Call(CallError::Container {
            function: self.name.clone(),
            source,
        })
    }

    /// Waits for a free container slot (at most `max_containers` busy).
    pub(super) async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        self.pool
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AppError::ShuttingDown)
    }

    /// Runs one call in a warm or new container and returns its result.
    pub(super) async fn invoke(
        self: Arc<Self>,
        app: &Arc<AppInner>,
        params: Vec<Val>,
        chain: Vec<String>,
    ) -> Result<Option<Json>, AppError> {
        let Some(export) = &self.export else {
            return Err(AppError::IsCommand(self.name.clone()));
        };
        if app.closing.load(Ordering::SeqCst) {
            return Err(AppError::ShuttingDown);
        }
        let in_container = |source| self.in_container(source);
        let _permit = self.permit().await?;
        let (call, started) = (next(&CALLS), Instant::now());
        let mut warm = match self.pool.take() {
            Some(mut w) if self.spec.sync_mounts_each_call => {
                if let Err(e) = w.container.reload_mounts() {
                    let e = self.retire_failed(w, e);
                    log_call(app, &self.name, call, 0, started, Err(&e));
                    return Err(e);
                }
                w
            }
            Some(w) => w,
            None => match self.start(app).await {
                Ok(w) => w,
                Err(e) => {
                    log_call(app, &self.name, call, 0, started, Err(&e));
                    return Err(e);
                }
            },
        };
        let container = warm.id;
        let _busy = Busy::new();
        warm.container
            .set_output_label(&format!("{}.{} call={call}", app.name, self.name));
        let mut calls = chain;
        calls.push(self.name.clone());
        if app.calls {
            warm.container.set_caller(CallerCtx {
                app: Arc::downgrade(app) as Weak<dyn Callee>,
                chain: calls,
            });
        }
        let func = warm
            .func
            .ok_or_else(|| AppError::Host(format!("`{}` has no callable export", self.name)))?;
        let result = warm
            .container
            .call(func, &params, usize::from(export.result.is_some()))
            .await;
        let result = match result {
            Ok(val) if self.spec.sync_mounts_each_call => warm.container.commit_now().map(|()| val),
            r => r,
        };
        let outcome = match result {
            Ok(val) => self
                .release(app, warm)
                .map(|()| val.as_ref().map(call::to_json)),
            // The final commit keeps what the guest wrote before it failed,
            // as a container exit does in Modal; after a timeout there is
            // none (see `Container::shutdown`). A container whose writes
            // could not be stored after its call takes no more calls: its
            // final commit tries them once more.
            Err(e) if e.poisons_instance() || matches!(e, ContainerError::FinalCommit(_)) => {
                Err(self.retire_failed(warm, e))
            }
            Err(e) => self.release(app, warm).and(Err(in_container(e))),
        };
        log_call(
            app,
            &self.name,
            call,
            container,
            started,
            outcome.as_ref().map(|_| ()),
        );
        outcome
    }

    /// Retires a warm container that cannot take the next call, and the
    /// call's error for it.
    fn retire_failed(&self, warm: pool::Warm, e: ContainerError) -> AppError {
        if let Err(source) = self.pool.retire(warm.container) {
            tracing::warn!(function = %self.name, error = %source, "final commit failed");
        }
        self.in_container(e)
    }

    /// Makes a new container with the function's instance in it.
    pub(super) async fn start(&self, app: &AppInner) -> Result<pool::Warm, AppError> {
        let in_container = |source| self.in_container(source);
        let mut container = Container::new(&app.engine, &self.config).map_err(in_container)?;
        self.pool.note_started();
        let instance = container
            .instantiate(&app.linker, &self.component)
            .await
            .map_err(in_container)?;
        let func = match &self.export {
            Some(e) => Some(
                instance
                    .get_func(container.store_mut(), e.index)
                    .ok_or_else(|| {
                        AppError::Host(format!("export `{}` vanished after instantiation", e.name))
                    })?,
            ),
            None => None,
        };
        tracing::debug!(function = %self.name, "container started");
        Ok(pool::Warm {
            container,
            id: next(&CONTAINERS),
            func,
            idle_since: Instant::now(),
            committed: true,
        })
    }

    /// Puts a container back in the pool, or retires it when the app is
    /// closing or the function keeps no idle containers.
    pub(super) fn release(&self, app: &AppInner, mut warm: pool::Warm) -> Result<(), AppError> {
        if app.closing.load(Ordering::SeqCst) || self.spec.idle_timeout.is_zero() {
            return self
                .pool
                .retire(warm.container)
                .map_err(|source| AppError::Retire {
                    function: self.name.clone(),
                    source,
                });
        }
        warm.idle_since = Instant::now();
        warm.committed = false;
        self.pool.put(warm);
        Ok(())
    }

    /// Runs a command function once in a fresh container and returns its
    /// exit status.
    pub(super) async fn run_command(
        &self,
        app: &Arc<AppInner>,
        argv: Vec<String>,
        inherit_stdin: bool,
    ) -> Result<i32, AppError> {
        let in_container = |source| self.in_container(source);
        let _permit = self.permit().await?;
        let mut config = self.config.clone();
        config.args = std::iter::once(self.name.clone()).chain(argv).collect();
        config.inherit_stdin = inherit_stdin;
        let mut container = Container::new(&app.engine, &config).map_err(in_container)?;
        self.pool.note_started();
        if app.calls {
            container.set_caller(CallerCtx {
                app: Arc::downgrade(app) as Weak<dyn Callee>,
                chain: vec![self.name.clone()],
            });
        }
        let (call, id, started) = (next(&CALLS), next(&CONTAINERS), Instant::now());
        let status = container.run_command(&app.linker, &self.component).await;
        let retired = self.pool.retire(container);
        let outcome = status.map_err(in_container).and_then(|status| {
            retired
                .map_err(|source| AppError::Retire {
                    function: self.name.clone(),
                    source,
                })
                .map(|()| status)
        });
        log_call(
            app,
            &self.name,
            call,
            id,
            started,
            outcome.as_ref().map(|_| ()),
        );
        outcome
    }
}

impl crate::storage::volume::pins::IdleMounts for AppInner {
    /// Retires, with their final commits, the idle containers of the
    /// functions that mount `volume`: a container waiting for a call does
    /// not block deleting or renaming it. Containers running a call do.
    fn release(&self, volume: &str) {
        let mounting = |f: &&Arc<FunctionState>| f.spec.mounts.iter().any(|m| m.volume == volume);
        for f in self.functions.values().filter(mounting) {
            for c in f.pool.drain() {
                tracing::debug!(function = %f.name, volume, "retiring an idle container for a delete or rename");
                if let Err(e) = f.pool.retire(c) {
                    tracing::warn!(function = %f.name, error = %e, "final commit of an idle container failed");
                }
            }
        }
    }
}

/// Retires idle containers past their idle timeout and commits what idle
/// containers left, until the app goes.
pub(super) async fn sweep(app: Weak<AppInner>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        let now = Instant::now();
        for f in app.functions.values() {
            for c in f.pool.sweep(now, f.spec.idle_timeout, f.spec.commit_every) {
                tracing::debug!(function = %f.name, "retiring an idle container");
                if let Err(e) = f.pool.retire(c) {
                    tracing::warn!(function = %f.name, error = %e, "final commit of an idle container failed");
                }
            }
        }
    }
}
