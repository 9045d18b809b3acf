//! vessel's integration tests: one binary, one module per area. Components
//! come from tests/programs, built by tests/build.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod apps;
mod architecture;
mod backup;
mod blob_cache;
mod build_cli;
mod call_cli;
mod call_types;
mod compile_cache;
mod conformance;
mod crash;
mod dependencies;
mod dict;
mod dict_crash;
mod escapes;
mod examples;
mod faults;
mod guest_faults;
mod harness;
mod hostile;
mod install;
mod io_faults;
mod javascript;
mod keyvalue;
mod load;
mod local_users;
mod operations_doc;
mod pg_tls;
mod power_loss;
mod python;
mod python_client;
mod run_cli;
mod rust_docs;
mod secrets;
mod serve;
mod shared_backend;
mod shared_tokens;
mod shared_uploads;
mod volume_cli;
mod volume_conflicts;
mod volume_fork;
mod volume_history;
mod volume_mount;
mod volume_quota;
mod walkthrough;
