//! `vessel wit [DIR]`: the WIT package guests build against, from inside
//! the binary, so building a guest needs no checkout of vessel.

use std::path::PathBuf;

use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
pub struct WitCmd {
    /// Write the package here as a WIT directory (its files, and
    /// `deps/keyvalue/`), for wit-bindgen's `path`, componentize-py's
    /// `-d` or jco's `--wit`. Without it, print every file on stdout,
    /// each after a `// FILE` line, for reading.
    dir: Option<PathBuf>,
    /// Replace files in DIR that differ from this vessel's.
    #[arg(long, requires = "dir")]
    force: bool,
}

pub fn run(cmd: &WitCmd) -> Result<u8, Failure> {
    let Some(dir) = &cmd.dir else {
        for (i, (name, text)) in crate::wit::FILES.iter().enumerate() {
            if i > 0 {
                println!();
            }
            println!("// {name}");
            print!("{text}");
        }
        return Ok(0);
    };
    let written = crate::wit::write_to(dir, cmd.force).map_err(|e| match e {
        crate::wit::WitError::Differs(_) => Failure::usage(e),
        e => Failure::runtime(e),
    })?;
    println!(
        "Wrote the vessel:storage WIT package to {} ({} file(s) written, {} already current).",
        dir.display(),
        written.len(),
        crate::wit::FILES.len() - written.len()
    );
    Ok(0)
}
