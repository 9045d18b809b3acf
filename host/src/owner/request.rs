//! The requests a process carries out for itself or forwards to the data
//! dir's owner: a call of a function, a run of a command or an app's
//! entrypoint. They are the library's own types (what the `vessel` CLI
//! turns its command lines into), so the owner runs them with no knowledge
//! of any command line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The container a bare component runs in: volumes and limits (an app sets
/// these per function in its manifest instead). `None`: the default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Volume mounts, `VOLUME:GUEST_PATH[:ro]`.
    pub volumes: Vec<String>,
    /// Seconds between background commits; 0 turns them off.
    pub commit_every: Option<f64>,
    /// Seconds before the guest is stopped; 0 for no limit.
    pub timeout: Option<f64>,
    /// Most memory, in MiB.
    pub memory: Option<u64>,
    /// Most disk, in MiB.
    pub disk: Option<u64>,
}

impl Limits {
    /// The flag of the first limit that was given: an app takes its limits
    /// from its manifest, so they are refused there.
    pub fn first_given(&self) -> Option<&'static str> {
        if !self.volumes.is_empty() {
            Some("--volume")
        } else if self.commit_every.is_some() {
            Some("--commit-every")
        } else if self.timeout.is_some() {
            Some("--timeout")
        } else if self.memory.is_some() {
            Some("--memory")
        } else if self.disk.is_some() {
            Some("--disk")
        } else {
            None
        }
    }
}

/// A call of one function: an export of a component, or a function of an
/// app, with JSON arguments or `--NAME VALUE` parameters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallRequest {
    /// The component (.wasm), or an app (its vessel.toml or directory).
    pub component: PathBuf,
    /// The export (`name` or `interface#name`), or the app's function.
    pub function: String,
    /// All arguments as JSON text: an array or an object.
    pub args: Option<String>,
    /// A file holding the JSON arguments (`-`: stdin).
    pub args_file: Option<PathBuf>,
    pub limits: Limits,
    /// Parameters as `--NAME VALUE` tokens.
    pub params: Vec<String>,
}

/// A run of a command component (its argv), or of an app's entrypoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRequest {
    /// The command component (.wasm), or an app.
    pub component: PathBuf,
    /// For an app: the function to run instead of its entrypoint.
    pub entrypoint: Option<String>,
    /// Host directories to mount, `HOST_DIR:GUEST_PATH[:ro]`.
    pub mounts: Vec<String>,
    pub limits: Limits,
    /// A command's argv, or an app function's `--NAME VALUE` parameters.
    pub args: Vec<String>,
}

/// What a process forwards to the data dir's owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Request {
    Call(CallRequest),
    Run(RunRequest),
}
