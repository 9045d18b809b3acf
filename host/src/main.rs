//! The `vessel` binary: parse the command line and hand it to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    vessel_host::cli::run(vessel_host::cli::Cli::parse())
}
