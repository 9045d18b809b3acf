//! A command's failure as the CLI reports it: a message and an exit code,
//! from any domain error through its kind (see [`crate::error_kind`]).

use crate::app::AppError;
use crate::call::CallError;
use crate::client::ops::OpError;
use crate::server::client::ClientError;
use crate::service::dict::DictServiceError;
use crate::service::volume::VolumeOpError;
use std::path::Path;

/// A command's failure: the message and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 2,
            message: message.to_string(),
        }
    }
    pub fn runtime(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 1,
            message: message.to_string(),
        }
    }
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
        Failure {
            code: e.kind().exit_code(),
            message: e.to_string(),
        }
    }
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure {
            code: e.kind().exit_code(),
            message: e.to_string(),
        }
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
        Failure {
            code: e.kind().exit_code(),
            message: e.to_string(),
        }
    }
}
