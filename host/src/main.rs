//! The `vessel` binary: parse the command line and hand it to the library.

fn main() -> std::process::ExitCode {
    vessel_host::cli::run(vessel_host::cli::parse())
}
