//! Who holds a data dir's store, and running calls there. One process at
//! a time owns an embedded store (the data dir's lock); it serves the
//! store on the data dir's socket so the others reach it. This module is
//! that ownership ([`Home`], [`Owner`]), the typed requests a process
//! forwards to the owner ([`CallRequest`], [`RunRequest`]) and their
//! execution, here or there ([`call`], [`run`]): a call or run works the
//! same whichever process carries it out, and writes through a
//! [`Console`] that is this process's stdio or the frames back to the
//! process that forwarded it.
//!
//! The `vessel` CLI turns its command lines into these requests; an
//! embedder can send the same ones.

mod failure;
mod forward;
mod home;
mod invoke;
mod request;
mod warm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use wasmtime::component::Component;

use crate::app::manifest::{DEFAULT_DISK_MIB, MAX_DISK_MIB};
use crate::app::{App, Manifest, Runtime};
use crate::call::{self, CallArgs, CallError};
use crate::client::ops::Operations;
use crate::container::{ContainerConfig, DirMount};
use crate::engine::{EngineConfig, VesselEngine};
use crate::server::OwnerServer;
use crate::server::client::OwnerClient;
use crate::service::Service;
use crate::storage::embedded::EmbeddedOptions;
use crate::storage::remote::RemoteOptions;
use crate::volume::VolumeMount;

pub use failure::Failure;
pub use forward::{Console, Forwarded, Invocation, NotForwarded, OwnerExec};
pub use home::{CONFIG_FILE, Home, Owner, data_dir, remote_options};
pub use invoke::{call, is_app, parse_mount, parse_mount_in, parse_volume_mount, run};
pub use request::{CallRequest, Limits, Request, RunRequest};
pub use warm::{KEEP_IDLE, MAX_KEPT, WarmCalls};

/// An engine with `home`'s compile cache.
pub fn engine_for(home: &Home, fuel: bool) -> Result<VesselEngine, Failure> {
    VesselEngine::new(EngineConfig {
        cache_dir: Some(home.cache_dir.clone()),
        fuel,
        cache_max_bytes: Some(home.cache_max_bytes),
    })
    .map_err(Failure::runtime)
}
