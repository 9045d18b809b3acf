//! Putting vessel's own `call` options back where clap missed them.

use std::path::PathBuf;

use super::{CallCmd, Failure};
use crate::app::manifest::MAX_DISK_MIB;

/// Moves vessel's own options that came after a `--NAME` parameter flag (clap
/// hands everything from the first unknown flag on to `params`) back into
/// their fields. A WIT parameter called `args`, `args-file`, `timeout`,
/// `memory`, `disk`, `volume`, `commit-every` or `no-build` must therefore
/// be passed inside `--args`.
pub(super) fn reclaim_options(cmd: &mut CallCmd) -> Result<(), Failure> {
    let tokens = std::mem::take(&mut cmd.params);
    let mut it = tokens.into_iter();
    while let Some(tok) = it.next() {
        if tok == "--no-build" {
            cmd.no_build = true;
            continue;
        }
        let (flag, inline) = match tok.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (tok.clone(), None),
        };
        if !matches!(
            flag.as_str(),
            "--args"
                | "--args-file"
                | "--timeout"
                | "--memory"
                | "--disk"
                | "--volume"
                | "--commit-every"
        ) {
            cmd.params.push(tok);
            continue;
        }
        let value = match inline.or_else(|| it.next()) {
            Some(v) => v,
            None => return Err(Failure::usage(format!("{flag} needs a value"))),
        };
        let dup = || Failure::usage(format!("{flag} is given twice"));
        match flag.as_str() {
            "--args" if cmd.args.is_none() && cmd.args_file.is_none() => cmd.args = Some(value),
            "--args-file" if cmd.args.is_none() && cmd.args_file.is_none() => {
                cmd.args_file = Some(PathBuf::from(value));
            }
            "--timeout" if cmd.limits.timeout.is_none() => {
                cmd.limits.timeout = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--timeout must be a number of seconds, got {value}"
                    ))
                })?);
            }
            "--volume" => cmd.limits.volumes.push(value),
            "--commit-every" if cmd.limits.commit_every.is_none() => {
                cmd.limits.commit_every = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--commit-every must be a number of seconds, got {value}"
                    ))
                })?);
            }
            "--memory" if cmd.limits.memory.is_none() => {
                cmd.limits.memory = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--memory must be a whole number of MiB, got {value}"
                    ))
                })?);
            }
            "--disk" if cmd.limits.disk.is_none() => {
                cmd.limits.disk = Some(value.parse().map_err(|_| {
                    Failure::usage(format!(
                        "--disk must be a whole number of MiB between 1 and {MAX_DISK_MIB}, got {value}"
                    ))
                })?);
            }
            _ => return Err(dup()),
        }
    }
    Ok(())
}
