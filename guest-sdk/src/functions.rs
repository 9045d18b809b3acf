use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::vessel::storage::functions as wit;
use crate::bindings::vessel::storage::types::Error as WitError;
use crate::{Error, Raised};

/// A call binding's error, as [`Error::Raised`] when the callee reported
/// what it raised.
fn call_error(e: WitError) -> Error {
    match (e, wit::last_failure()) {
        (WitError::CallFailed(detail), Some(f)) => Error::Raised(Raised {
            detail,
            type_name: f.type_name,
            message: f.message,
            traceback: f.traceback,
        }),
        (e, _) => e.into(),
    }
}

/// Ends the current call with an error of `type_name` and `message`, as an
/// uncaught exception ends a Python or JavaScript function: the caller's
/// [`remote`] returns [`Error::Raised`] with them, and the CLI prints
/// `raised TYPE: MESSAGE`. Unlike a panic, the caller learns what failed.
pub fn fail(type_name: &str, message: &str) -> ! {
    wit::fail(&wit::Failure {
        type_name: type_name.to_owned(),
        message: message.to_owned(),
        traceback: String::new(),
    });
    // `fail` traps; it returns only to a host that does not implement it.
    unreachable!("{type_name}: {message}")
}

/// Calls `function` of this app in its own container with JSON arguments
/// (an array of positional arguments or an object by parameter name) and
/// returns its JSON result text. [`Error::Raised`] says what the callee
/// raised, when it reported that.
pub fn remote_json(function: &str, args_json: &str) -> Result<String, Error> {
    wit::remote(function, args_json).map_err(call_error)
}

/// Calls `function` with `args` (serialized to JSON) and decodes the result.
pub fn remote<A: Serialize + ?Sized, R: DeserializeOwned>(
    function: &str,
    args: &A,
) -> Result<R, Error> {
    let text = remote_json(function, &serde_json::to_string(args)?)?;
    Ok(serde_json::from_str(&text)?)
}

/// A call started with [`spawn`].
#[derive(Debug)]
pub struct Call {
    inner: wit::Call,
}

impl Call {
    /// Waits for the result and decodes it. Getting it again returns the
    /// same outcome.
    pub fn get<R: DeserializeOwned>(&self) -> Result<R, Error> {
        Ok(serde_json::from_str(&self.get_json()?)?)
    }

    /// Waits for the result as JSON text.
    pub fn get_json(&self) -> Result<String, Error> {
        self.inner.get().map_err(call_error)
    }
}

/// Starts `function` in the background with `args` (serialized to JSON: an
/// array of positional arguments or an object by parameter name).
pub fn spawn<A: Serialize + ?Sized>(function: &str, args: &A) -> Result<Call, Error> {
    spawn_json(function, &serde_json::to_string(args)?)
}

/// Starts `function` with JSON argument text.
pub fn spawn_json(function: &str, args_json: &str) -> Result<Call, Error> {
    Ok(Call {
        inner: wit::spawn(function, args_json)?,
    })
}

/// Calls `function` once per input, all at once, each in its own container
/// (as many run together as its `max_containers` allows), and returns the
/// results in input order. Each input is the function's single argument,
/// as in Modal's `f.map(inputs)`; use [`starmap`] for several arguments.
pub fn map<A: Serialize, R: DeserializeOwned>(
    function: &str,
    inputs: impl IntoIterator<Item = A>,
) -> Result<Vec<R>, Error> {
    starmap(function, inputs.into_iter().map(|a| [a]))
}

/// Like [`map`], but each input is a whole argument list (a tuple or array
/// of positional arguments, or a struct by parameter name).
pub fn starmap<A: Serialize, R: DeserializeOwned>(
    function: &str,
    inputs: impl IntoIterator<Item = A>,
) -> Result<Vec<R>, Error> {
    // Start every call before waiting for any, so they run in parallel.
    let calls = inputs
        .into_iter()
        .map(|args| spawn(function, &args))
        .collect::<Result<Vec<Call>, Error>>()?;
    calls.iter().map(Call::get).collect()
}
