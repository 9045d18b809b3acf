//! `vessel completions SHELL` and `vessel man`: shell completion scripts and
//! man pages generated from the clap definition, so they never drift from
//! the commands they describe.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Failure};

/// The version line of `vessel --version`: the crate version, the git
/// commit it was built from and the wasmtime it embeds (see host/build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VESSEL_GIT_COMMIT"),
    ", wasmtime ",
    env!("VESSEL_WASMTIME_VERSION"),
    ")"
);

#[derive(Debug, Clone, Args)]
pub struct CompletionsCmd {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Args)]
pub struct ManCmd {
    /// Write one page per command (vessel.1, vessel-volume.1, …) into DIR,
    /// made if missing, instead of printing vessel.1 to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// Prints the completion script for one shell on stdout. Install it with,
/// for example, `vessel completions bash > ~/.local/share/bash-completion/completions/vessel`.
pub fn completions(cmd: &CompletionsCmd) -> Result<u8, Failure> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(cmd.shell, &mut command, "vessel", &mut out);
    write_stdout(&out)
}

/// Prints `vessel.1`, or writes every command's page into `--out-dir` and
/// prints the paths written, one per line.
pub fn man(cmd: &ManCmd) -> Result<u8, Failure> {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let Some(dir) = &cmd.out_dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut out)
            .map_err(|e| Failure::runtime(format!("cannot render the man page: {e}")))?;
        return write_stdout(&out);
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::runtime(format!(
            "cannot make the man page directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut written = Vec::new();
    write_pages(command, dir, &mut written)?;
    let mut listing = String::new();
    for path in written {
        listing.push_str(&path.display().to_string());
        listing.push('\n');
    }
    write_stdout(listing.as_bytes())
}

/// One page per visible command, children first (as clap_mangen orders
/// them), recording each file written.
fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Failure> {
    for sub in command
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
    {
        write_pages(sub, dir, written)?;
    }
    let man = clap_mangen::Man::new(command);
    let path = man.generate_to(dir).map_err(|e| {
        Failure::runtime(format!(
            "cannot write a man page into {}: {e}",
            dir.display()
        ))
    })?;
    written.push(path);
    Ok(())
}

/// Writes to stdout, treating a closed pipe (`vessel man | head`) as done.
fn write_stdout(bytes: &[u8]) -> Result<u8, Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Failure::runtime(format!("cannot write to stdout: {e}"))),
    }
}
