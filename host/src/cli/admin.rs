//! `vessel admin ...`: operator tasks on a data dir. `backup DIR` copies
//! the embedded store, at one moment, into a new data dir; when a server
//! holds the data dir the copy is made there, with its writers paused.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;

use super::{Failure, Home, print_json};

#[derive(Debug, Args)]
pub struct AdminCmd {
    #[command(subcommand)]
    pub command: AdminSub,
}

#[derive(Debug, Subcommand)]
pub enum AdminSub {
    /// Copy the data dir's store, as it stands at one moment, into DIR (a
    /// new or empty folder), which is then a data dir of its own: restore
    /// by opening it with --data-dir, or by copying it back. Writers wait
    /// while the copy is made (blobs are hard-linked when DIR is on the
    /// same filesystem, so keep it there for a short pause and move it
    /// off afterwards).
    Backup {
        /// The folder to write the copy into.
        dir: PathBuf,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(home: &Home, cmd: AdminCmd) -> Result<u8, Failure> {
    let home = home.clone();
    tokio::task::spawn_blocking(move || run_blocking(&home, cmd.command))
        .await
        .map_err(|e| Failure::runtime(format!("the admin command did not finish: {e}")))?
}

fn run_blocking(home: &Home, cmd: AdminSub) -> Result<u8, Failure> {
    match cmd {
        AdminSub::Backup { dir, json } => {
            // The owner, if one holds the data dir, reads the path: make
            // it absolute here, where it was typed.
            let dir = std::path::absolute(&dir)
                .map_err(|e| Failure::usage(format!("{}: {e}", dir.display())))?;
            let report = home.backend()?.backup(&dir)?;
            if json {
                return print_json(&report).map(|()| 0);
            }
            println!(
                "Backed up {} keys in {} trees and {} blobs ({}) into {} (writers paused {} ms).",
                report.keys,
                report.trees,
                report.blobs,
                HumanBytes(report.blob_bytes),
                report.dir.display(),
                report.paused_ms
            );
            if report.linked < report.blobs {
                println!(
                    "{} blobs were copied, not hard-linked: {} is on another filesystem.",
                    report.blobs - report.linked,
                    report.dir.display()
                );
            }
        }
    }
    Ok(0)
}
