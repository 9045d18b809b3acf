//! `vessel cache ...`: the compile cache of this data dir (or
//! `--cache-dir`): what it holds, and removing what is not needed. The
//! cache trims itself to `--cache-size` whenever it compiles; `prune` does
//! it now, or empties it.

use std::time::SystemTime;

use clap::{Args, Subcommand};
use indicatif::HumanBytes;
use serde::Serialize;

use super::{Failure, Home, print_json};
use crate::engine::{CacheEntry, CompileCache};

#[derive(Debug, Args)]
pub struct CacheCmd {
    #[command(subcommand)]
    pub command: CacheSub,
}

#[derive(Debug, Subcommand)]
pub enum CacheSub {
    /// List the compiled components, least recently used first, with the
    /// total against the cache's bound (--cache-size).
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove least recently used compiled components until the rest fit
    /// in --max-size (default: the cache's bound, --cache-size), or all
    /// of them with --all. A removed component is compiled again when next
    /// loaded; a process that has it loaded keeps running.
    Prune {
        /// The size to trim to (such as 1GiB).
        #[arg(long, value_name = "SIZE", value_parser = super::size::parse_size, conflicts_with = "all")]
        max_size: Option<u64>,
        /// Remove every compiled component.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

/// One entry as `ls --json` prints it.
#[derive(Serialize)]
struct Listed {
    name: String,
    bytes: u64,
    /// Seconds since the Unix epoch.
    last_used: u64,
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long ago `t` was, as people say it.
fn ago(t: SystemTime) -> String {
    let s = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h ago", s / 3600),
        _ => format!("{} days ago", s / 86400),
    }
}

pub fn run(home: &Home, cmd: CacheCmd) -> Result<u8, Failure> {
    let cache = CompileCache::new(&home.cache_dir);
    let io = |e: std::io::Error| {
        Failure::runtime(format!("compile cache {}: {e}", cache.dir().display()))
    };
    match cmd.command {
        CacheSub::Ls { json } => {
            let entries = cache.list().map_err(io)?;
            if json {
                let listed: Vec<Listed> = entries
                    .iter()
                    .map(|e| Listed {
                        name: e.name.clone(),
                        bytes: e.bytes,
                        last_used: seconds(e.last_used),
                    })
                    .collect();
                return print_json(&listed).map(|()| 0);
            }
            print_table(&entries, home.cache_max_bytes, &cache);
            Ok(0)
        }
        CacheSub::Prune {
            max_size,
            all,
            json,
        } => {
            let max = if all {
                0
            } else {
                max_size.unwrap_or(home.cache_max_bytes)
            };
            let pruned = cache.prune(max).map_err(io)?;
            if json {
                return print_json(&pruned).map(|()| 0);
            }
            println!(
                "Removed {} compiled component(s) ({}); kept {} ({}).",
                pruned.removed,
                HumanBytes(pruned.removed_bytes),
                pruned.kept,
                HumanBytes(pruned.kept_bytes)
            );
            Ok(0)
        }
    }
}

fn print_table(entries: &[CacheEntry], max: u64, cache: &CompileCache) {
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    if !entries.is_empty() {
        println!("{:<16}  {:>10}  LAST USED", "COMPONENT", "SIZE");
    }
    for e in entries {
        let short = e.name.get(..16).unwrap_or(&e.name);
        println!(
            "{short:<16}  {:>10}  {}",
            HumanBytes(e.bytes).to_string(),
            ago(e.last_used)
        );
    }
    println!(
        "{} compiled component(s), {} of {} in {}",
        entries.len(),
        HumanBytes(total),
        HumanBytes(max),
        cache.dir().display()
    );
}
