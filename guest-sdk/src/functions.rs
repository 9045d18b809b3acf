use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::vessel::storage::functions as wit;

/// Calls `function` of this app in its own container with JSON arguments
/// (an array of positional arguments or an object by parameter name) and
/// returns its JSON result text.
pub fn remote_json(function: &str, args_json: &str) -> Result<String, Error> {
    Ok(wit::remote(function, args_json)?)
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
    /// Waits for the result and decodes it.
    pub fn get<R: DeserializeOwned>(&self) -> Result<R, Error> {
        Ok(serde_json::from_str(&self.inner.get()?)?)
    }
}

/// Starts `function` in the background.
pub fn spawn<A: Serialize + ?Sized>(function: &str, args: &A) -> Result<Call, Error> {
    Ok(Call {
        inner: wit::spawn(function, &serde_json::to_string(args)?)?,
    })
}
