//! Calls between functions of one app: the `vessel:storage/functions`
//! interface (`remote`, `spawn`, `call.get`), and the errors a function
//! raises across them (`fail`, `last-failure`).
//!
//! A container that runs as part of an app knows its [`Callee`] (the app,
//! through a trait it implements) and the chain of functions that led to it; `remote` and `spawn` run
//! the callee in a container of its own (warm or new) as a separate task, so
//! a trap, timeout or memory bomb in the callee is an error for the caller
//! and nothing more. A component run alone (`vessel call x.wasm`) has no app
//! and gets `unavailable`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::vessel::storage::functions as wit;
use crate::error::{StorageError, WitError};

/// A callee's run: resolves to its JSON result text.
pub type CalleeRun = Pin<Box<dyn Future<Output = Result<String, CalleeError>> + Send + 'static>>;

/// Most bytes kept of a raised error's type name and message, and of its
/// traceback: what a guest hands `fail` is already in host memory (its
/// size bounded by the guest's memory limit), but it is kept until the
/// caller reads it and printed whole, so it is cut to a readable size.
const MAX_RAISED_NAME: usize = 1 << 10;
const MAX_RAISED_MESSAGE: usize = 64 << 10;
const MAX_RAISED_TRACEBACK: usize = 256 << 10;

/// An error a guest raised and did not catch, as it reported it with
/// `fail`. It is also the trap that ends the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("raised {type_name}: {message}")]
pub struct Raised {
    pub type_name: String,
    pub message: String,
    pub traceback: String,
}

impl Raised {
    fn from_wit(f: wit::Failure) -> Raised {
        Raised {
            type_name: cut(f.type_name, MAX_RAISED_NAME),
            message: cut(f.message, MAX_RAISED_MESSAGE),
            traceback: cut(f.traceback, MAX_RAISED_TRACEBACK),
        }
    }

    fn to_wit(&self) -> wit::Failure {
        wit::Failure {
            type_name: self.type_name.clone(),
            message: self.message.clone(),
            traceback: self.traceback.clone(),
        }
    }
}

/// `text` cut to at most `max` bytes on a character boundary, saying so.
fn cut(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let dropped = text.len() - end;
    text.truncate(end);
    text.push_str(&format!("… ({dropped} more bytes)"));
    text
}

/// How a callee's run ended without a result: the error its caller's
/// `remote` or `call.get` returns, and what the callee raised, if it
/// reported that with `fail`.
#[derive(Debug, Clone)]
pub struct CalleeError {
    pub error: WitError,
    pub raised: Option<Raised>,
}

impl From<WitError> for CalleeError {
    fn from(error: WitError) -> Self {
        CalleeError {
            error,
            raised: None,
        }
    }
}

/// What runs the callees of `remote` and `spawn`: the app layer implements
/// it, so this capability module stays a leaf that never names the app.
pub trait Callee: Send + Sync {
    /// Checks a call of `function` with `args_json` from the functions on
    /// `chain` (outermost first) and returns the run, which the caller
    /// spawns as a task of its own. Errors the caller can see at once (no
    /// such function, bad JSON, arguments that do not fit, a chain too
    /// deep) come back here.
    fn prepare(
        self: Arc<Self>,
        function: &str,
        args_json: &str,
        chain: &[String],
    ) -> Result<CalleeRun, WitError>;
}

/// What a container knows about its place in an app.
#[derive(Debug, Clone)]
pub struct CallerCtx {
    /// Weak: the app owns its containers, not the other way round.
    pub app: Weak<dyn Callee>,
    /// The functions on the call stack, outermost first, ending with this
    /// container's own function.
    pub chain: Vec<String>,
}

/// The host state behind one guest `call` handle.
#[derive(Debug)]
pub struct CallHandle {
    pub function: String,
    state: CallState,
}

#[derive(Debug)]
enum CallState {
    Running(tokio::task::JoinHandle<Result<String, CalleeError>>),
    /// `get` returned this once; later `get`s return it again.
    Done(Result<String, CalleeError>),
}

/// Per-container state of the functions interface.
#[derive(Debug, Default)]
pub struct FunctionsCtx {
    pub(crate) caller: Option<CallerCtx>,
    /// What the callee behind the last `call-failed` raised.
    last_failure: Option<Raised>,
}

/// A [`FunctionsCtx`] with the resource table: the `self` of the host traits.
pub struct FunctionsCtxView<'a> {
    pub ctx: &'a mut FunctionsCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`FunctionsCtxView`].
pub trait FunctionsView: Send {
    fn functions(&mut self) -> FunctionsCtxView<'_>;
}

struct HasFunctions;

impl HasData for HasFunctions {
    type Data<'a> = FunctionsCtxView<'a>;
}

/// Adds `vessel:storage/functions` to `linker`.
pub fn add_to_linker<T: FunctionsView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasFunctions>(linker, |t| t.functions())
}

impl crate::bindings::vessel::storage::types::Host for FunctionsCtxView<'_> {
    fn convert_error(&mut self, err: StorageError) -> wasmtime::Result<crate::error::WitError> {
        err.into_wit()
    }
}

impl FunctionsCtxView<'_> {
    /// Starts `function` as `spawn` does and returns its handle's rep (the
    /// container's `remote`, which waits on it with `get`).
    pub(crate) fn start_handle(
        &mut self,
        function: &str,
        args_json: &str,
    ) -> Result<u32, StorageError> {
        let handle = self.start(function, args_json)?;
        let call = self.table.push(CallHandle {
            function: function.to_owned(),
            state: CallState::Running(handle),
        })?;
        Ok(call.rep())
    }

    /// Checks the call and starts the callee as its own task.
    fn start(
        &self,
        function: &str,
        args_json: &str,
    ) -> Result<tokio::task::JoinHandle<Result<String, CalleeError>>, StorageError> {
        let Some(caller) = &self.ctx.caller else {
            return Err(WitError::Unavailable(format!(
                "cannot call `{function}`: this component runs on its own; calls between \
                 functions need an app (a vessel.toml naming them)"
            ))
            .into());
        };
        let Some(app) = caller.app.upgrade() else {
            return Err(WitError::Unavailable("the app is shutting down".into()).into());
        };
        let run = app.prepare(function, args_json, &caller.chain)?;
        Ok(tokio::spawn(run))
    }

    /// Waits for a callee. The wait ends at the caller's own deadline too,
    /// since the container cuts the whole call there; the callee runs on to
    /// its own deadline, like a spawned call.
    async fn wait(
        handle: &mut tokio::task::JoinHandle<Result<String, CalleeError>>,
    ) -> Result<String, CalleeError> {
        (&mut *handle).await.unwrap_or_else(|e| {
            Err(WitError::CallFailed(format!("the callee's task ended abnormally: {e}")).into())
        })
    }

    /// A callee's outcome as the guest gets it, remembering what it raised
    /// for `last-failure`.
    fn outcome(&mut self, outcome: Result<String, CalleeError>) -> Result<String, StorageError> {
        match outcome {
            Ok(json) => {
                self.ctx.last_failure = None;
                Ok(json)
            }
            Err(e) => {
                self.ctx.last_failure = e.raised;
                Err(e.error.into())
            }
        }
    }
}

impl wit::Host for FunctionsCtxView<'_> {
    async fn remote(
        &mut self,
        function: String,
        args_json: String,
    ) -> Result<String, StorageError> {
        let mut handle = self.start(&function, &args_json)?;
        let outcome = Self::wait(&mut handle).await;
        self.outcome(outcome)
    }

    async fn spawn(
        &mut self,
        function: String,
        args_json: String,
    ) -> Result<Resource<CallHandle>, StorageError> {
        let handle = self.start(&function, &args_json)?;
        Ok(self.table.push(CallHandle {
            function,
            state: CallState::Running(handle),
        })?)
    }

    async fn fail(&mut self, raised: wit::Failure) -> wasmtime::Result<()> {
        Err(wasmtime::Error::new(Raised::from_wit(raised)))
    }

    async fn last_failure(&mut self) -> wasmtime::Result<Option<wit::Failure>> {
        Ok(self.ctx.last_failure.as_ref().map(Raised::to_wit))
    }
}

impl wit::HostCall for FunctionsCtxView<'_> {
    async fn get(&mut self, self_: Resource<CallHandle>) -> Result<String, StorageError> {
        let call = self.table.get_mut(&self_)?;
        let outcome = match &mut call.state {
            CallState::Done(outcome) => outcome.clone(),
            CallState::Running(handle) => {
                let outcome = FunctionsCtxView::wait(handle).await;
                call.state = CallState::Done(outcome.clone());
                outcome
            }
        };
        self.outcome(outcome)
    }

    async fn drop(&mut self, rep: Resource<CallHandle>) -> wasmtime::Result<()> {
        // Dropping the handle detaches the call; it runs to completion (its
        // volumes commit), as a Modal spawned call does.
        self.table.delete(rep)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
