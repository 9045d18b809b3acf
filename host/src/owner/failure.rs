//! A command's failure as the CLI reports it: a message and an exit code,
//! from any domain error through its kind (see [`crate::error_kind`]).

use crate::app::AppError;
use crate::call::CallError;
use crate::client::ops::OpError;
use crate::functions::Raised;
use crate::server::client::ClientError;
use crate::service::dict::DictServiceError;
use crate::service::volume::VolumeOpError;
use std::path::Path;

/// A command's failure: the message and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// Printed before the message: the traceback of an error the guest
    /// raised and did not catch.
    pub detail: Option<String>,
}

impl Failure {
    /// A failure with `code`; a message saying a volume or dict does not
    /// exist gains how to create it.
    fn new(code: u8, message: impl std::fmt::Display) -> Self {
        Failure {
            code,
            message: with_create_hint(message.to_string()),
            detail: None,
        }
    }

    /// The failure of a call whose guest raised `raised` (if it did):
    /// its traceback goes before the one-line message.
    fn of_call(code: u8, message: impl std::fmt::Display, raised: Option<&Raised>) -> Self {
        Failure {
            detail: raised
                .map(|r| r.traceback.trim_end().to_owned())
                .filter(|t| !t.is_empty()),
            ..Failure::new(code, message)
        }
    }

    /// Prints the failure on stderr as the CLI shows it.
    pub fn print(&self) {
        if let Some(detail) = &self.detail {
            eprintln!("{detail}");
        }
        eprintln!("error: {}", self.message);
    }
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure::new(2, message)
    }
    pub fn runtime(message: impl std::fmt::Display) -> Self {
        Failure::new(1, message)
    }
}

/// `message`, with ``(create it with `vessel volume create NAME`)`` after
/// it when it says volume (or dict) `NAME` does not exist: the store's own
/// wording, whether the error was raised here, in an owner the command was
/// forwarded to, or inside a call.
fn with_create_hint(mut message: String) -> String {
    if message.contains("create it with") {
        return message;
    }
    for kind in ["volume", "dict"] {
        let open = format!("{kind} `");
        let Some(name) = message
            .find(&open)
            .and_then(|at| message.get(at + open.len()..))
            .and_then(|rest| rest.split_once("` does not exist"))
            .map(|(name, _)| name.to_owned())
        else {
            continue;
        };
        if name.is_empty() || name.contains(['`', ' ']) {
            continue;
        }
        message.push_str(&format!(" (create it with `vessel {kind} create {name}`)"));
        break;
    }
    message
}

impl Failure {
    /// The message with `abs` written as the user wrote it (`local`), so an
    /// error names the path the way it was given.
    pub fn renamed(mut self, abs: &Path, local: &str) -> Self {
        self.message = self.message.replace(&abs.display().to_string(), local);
        self
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::runtime(e)
        }
    }
}

impl From<OpError> for Failure {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Volume(e) => e.into(),
            OpError::Dict(e) => e.into(),
            OpError::Http(e) => e.into(),
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        Failure::of_call(e.kind().exit_code(), &e, e.raised())
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::of_call(e.kind().exit_code(), &e, e.raised())
    }
}

impl From<DictServiceError> for Failure {
    fn from(e: DictServiceError) -> Self {
        if e.is_usage() {
            Failure::usage(e)
        } else {
            Failure::runtime(e)
        }
    }
}

impl From<VolumeOpError> for Failure {
    fn from(e: VolumeOpError) -> Self {
        Failure::new(e.kind().exit_code(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_volume_or_dict_gets_a_hint_once() {
        assert_eq!(
            with_create_hint("volume `models` does not exist".into()),
            "volume `models` does not exist (create it with `vessel volume create models`)"
        );
        assert_eq!(
            with_create_hint("function `op`: dict `kv` does not exist".into()),
            "function `op`: dict `kv` does not exist (create it with `vessel dict create kv`)"
        );
        for untouched in [
            "volume `a` already exists",
            "no such file",
            "volume `` does not exist",
            "volume `x` does not exist (create it with `vessel volume create x`)",
        ] {
            assert_eq!(with_create_hint(untouched.into()), untouched);
        }
    }
}
