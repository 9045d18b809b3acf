//! `vessel dict ...`: the dict commands, as Modal's `modal dict`.
//!
//! Values are JSON: `put` parses VALUE as JSON (`--raw` stores the string's
//! bytes as they are), and `get`/`items` show a value as JSON when it is
//! JSON and as `hex:<digits>` otherwise. A missing dict or key exits 1; bad
//! names, keys and values exit 2.

use std::io::{BufRead, Write};

use clap::{Args, Subcommand};

use super::{Failure, Home};
use crate::service::dict::DictItem;

#[derive(Debug, Args)]
pub struct DictCmd {
    #[command(subcommand)]
    pub action: DictAction,
}

#[derive(Debug, Subcommand)]
pub enum DictAction {
    /// Create a dict.
    Create {
        /// The new dict's name.
        name: String,
    },
    /// Delete a dict and all its entries.
    Delete {
        /// The dict.
        name: String,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
    },
    /// List the dicts with their entry counts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove every entry of a dict.
    Clear {
        /// The dict.
        name: String,
    },
    /// Print the value of KEY.
    Get {
        /// The dict.
        name: String,
        /// The key.
        key: String,
        /// Write the stored bytes as they are (what `put --raw` stored),
        /// instead of JSON.
        #[arg(long)]
        raw: bool,
    },
    /// Remove KEY.
    Rm {
        /// The dict.
        name: String,
        /// The key.
        key: String,
    },
    /// Store VALUE (JSON, or the string's bytes with --raw) at KEY.
    Put {
        /// The dict.
        name: String,
        /// The key.
        key: String,
        /// The value: JSON text (`'"text"'`, `42`, `'{"a": 1}'`), or any string with --raw.
        value: String,
        /// Store VALUE's bytes as they are instead of parsing JSON.
        #[arg(long)]
        raw: bool,
    },
    /// Print entries in key order (20 unless --all or -n).
    Items {
        /// The dict.
        name: String,
        /// Print every entry.
        #[arg(long, conflicts_with = "n")]
        all: bool,
        /// Print JSON (one array).
        #[arg(long)]
        json: bool,
        /// How many entries to print.
        #[arg(short = 'n', long = "limit", default_value_t = 20)]
        n: usize,
    },
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string(v).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(())
}

/// Asks on stdin; anything but y/yes (including no terminal) is a no.
fn confirm(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(_) => matches!(line.trim(), "y" | "Y" | "yes" | "YES"),
        Err(_) => false,
    }
}

pub async fn run(home: &Home, cmd: DictCmd) -> Result<u8, Failure> {
    let home = home.clone();
    // The store fsyncs; keep that off the async workers.
    tokio::task::spawn_blocking(move || run_blocking(&home, cmd))
        .await
        .map_err(|e| Failure::runtime(format!("the dict command failed: {e}")))?
}

fn run_blocking(home: &Home, cmd: DictCmd) -> Result<u8, Failure> {
    let svc = home.backend()?;
    match cmd.action {
        DictAction::Create { name } => {
            if !svc.dict_create(&name)? {
                return Err(Failure::runtime(format!("dict `{name}` already exists")));
            }
            eprintln!("created dict `{name}`");
        }
        DictAction::Delete { name, yes } => {
            if !svc.dict_exists(&name)? {
                return Err(Failure::runtime(format!("dict `{name}` does not exist")));
            }
            if !yes && !confirm(&format!("Delete dict `{name}` and all its entries?")) {
                return Err(Failure::runtime(format!(
                    "dict `{name}` was not deleted (confirm, or pass --yes)"
                )));
            }
            svc.dict_delete(&name)?;
            eprintln!("deleted dict `{name}`");
        }
        DictAction::List { json } => {
            let list = svc.dict_list()?;
            if json {
                print_json(&list)?;
            } else {
                for d in list {
                    println!("{}\t{}", d.name, d.len);
                }
            }
        }
        DictAction::Clear { name } => {
            svc.dict_clear(&name)?;
            eprintln!("cleared dict `{name}`");
        }
        DictAction::Get {
            name,
            key,
            raw: false,
        } => {
            let item = svc.dict_get(&name, &key)?;
            println!("{}", item.shown());
        }
        DictAction::Get {
            name,
            key,
            raw: true,
        } => {
            let bytes = svc.dict_get_raw(&name, &key)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(|e| Failure::runtime(format!("writing the value: {e}")))?;
        }
        DictAction::Rm { name, key } => {
            svc.dict_remove(&name, &key)?;
            eprintln!("removed `{key}` from dict `{name}`");
        }
        DictAction::Put {
            name,
            key,
            value,
            raw,
        } => {
            let bytes = if raw {
                value.into_bytes()
            } else {
                let v: serde_json::Value = serde_json::from_str(&value).map_err(|e| {
                    Failure::usage(format!(
                        "VALUE is not valid JSON ({e}); quote strings as JSON \
                         ('\"text\"') or pass --raw to store the text as it is"
                    ))
                })?;
                serde_json::to_vec(&v).map_err(Failure::runtime)?
            };
            svc.dict_put(&name, &key, &bytes)?;
        }
        DictAction::Items { name, all, json, n } => {
            let got = svc.dict_items(&name, (!all).then_some(n))?;
            if json {
                print_json(&got.items)?;
            } else {
                print_items(&got.items);
            }
            if got.more {
                eprintln!(
                    "(showing the first {}; use -n N for more or --all for every entry)",
                    got.items.len()
                );
            }
        }
    }
    Ok(0)
}

fn print_items(items: &[DictItem]) {
    for it in items {
        println!("{}\t{}", it.key, it.shown());
    }
}
