//! `vessel volume ...`: the volume commands, mirroring `modal volume`. Each
//! one is a call on the service API ([`crate::service::volume`]), so a
//! command forwarded to a running owner will run the same code.
//!
//! Status lines go to stdout, except for `get ... -`, whose stdout is the
//! file; progress bars go to stderr, and only when it is a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::size::parse_size;
use super::{Failure, Home, print_json, utc};
use crate::client::ops::Operations;
use crate::service::volume::{
    EntryKind, Progress, VolumeOpError, VolumeRef, check_name, local_tree_size, writable,
};
use crate::storage::volume::MAX_QUOTA;
use crate::storage::volume::history::parse_retention;
use crate::storage::volume::normalize_path;

/// Transfers smaller than this get no progress bar (they are over before
/// one would be readable).
const PROGRESS_MIN_BYTES: u64 = 4 << 20;

#[derive(Debug, Args)]
pub struct VolumeCmd {
    #[command(subcommand)]
    pub command: VolumeSub,
}

#[derive(Debug, Subcommand)]
pub enum VolumeSub {
    /// Create a named, persistent volume.
    Create {
        /// The volume.
        name: String,
        /// A byte quota: the most the volume's files may hold, counting
        /// each file whole (files sharing contents count each). Bytes, or
        /// a size such as 512MiB or 10GiB. Default: none.
        #[arg(long, value_name = "SIZE", value_parser = quota_size)]
        max_bytes: Option<u64>,
        /// How long a replaced version stays readable (`volume history`):
        /// a duration such as 12h, 7d or 2w, or 0 to keep only the head.
        /// Default: 7d.
        #[arg(long, value_name = "DURATION", value_parser = parse_retention)]
        retention: Option<u64>,
    },
    /// List a volume's kept versions, newest first.
    #[command(after_help = super::history::HISTORY_HELP)]
    History {
        /// The volume.
        name: String,
        /// At most this many versions.
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the paths added, modified and removed between two versions.
    Diff {
        /// The volume.
        name: String,
        /// The older version.
        from: u64,
        /// The newer version (default: the head).
        to: Option<u64>,
        /// Print JSON instead of one line per path.
        #[arg(long)]
        json: bool,
    },
    /// Make an older version the head again (as a new version).
    Restore {
        /// NAME@VERSION: the volume and the kept version to bring back.
        target: String,
    },
    /// Make a new volume from a volume's head or a kept version, copying
    /// nothing (each then changes on its own).
    #[command(after_help = super::history::FORK_HELP)]
    Fork {
        /// SRC or SRC@VERSION: the volume, and the kept version to fork
        /// (default: the head).
        src: String,
        /// The new volume's name.
        dst: String,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Show how long a volume keeps replaced versions, or change it.
    Retention {
        /// The volume.
        name: String,
        /// The new retention: a duration such as 12h, 7d or 2w, or 0 to
        /// keep only the head. Versions already pruned do not come back.
        #[arg(value_parser = parse_retention)]
        retention: Option<u64>,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Show a volume's size and byte quota, or change the quota.
    #[command(after_help = QUOTA_HELP)]
    Quota {
        /// The volume.
        name: String,
        /// Set the quota (bytes, or a size such as 10GiB). A quota below
        /// what the volume holds is allowed: then only changes that shrink
        /// it land until it is under.
        #[arg(long, value_name = "SIZE", value_parser = quota_size, conflicts_with = "unlimited")]
        max_bytes: Option<u64>,
        /// Remove the quota.
        #[arg(long)]
        unlimited: bool,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// List the volumes.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List files and directories in a volume (NAME@VERSION: in a kept
    /// version).
    Ls {
        /// The volume, or NAME@VERSION for a kept version.
        name: String,
        /// A directory (its entries are listed) or a file.
        #[arg(default_value = "/")]
        path: String,
        /// List every descendant, not just the entries of PATH.
        #[arg(short, long)]
        recursive: bool,
        /// Print JSON instead of one path per line.
        #[arg(long)]
        json: bool,
    },
    /// Upload a file or a directory (`-`: stdin) to a volume.
    #[command(after_help = PUT_HELP)]
    Put {
        /// The volume.
        name: String,
        /// A local file or directory, or `-` for stdin.
        local: String,
        /// Where in the volume (default `/`). A file put onto a path ending
        /// in `/` or onto an existing directory goes into it.
        remote: Option<String>,
        /// Overwrite existing files.
        #[arg(short, long)]
        force: bool,
        /// Land only if no commit after version V changed the paths
        /// written (the version you read them at; see `volume history`).
        /// Implies overwriting; fails with the paths and changes nothing
        /// otherwise.
        #[arg(long, value_name = "V")]
        if_version: Option<u64>,
    },
    /// Download a file or a directory from a volume (`-`: stdout);
    /// NAME@VERSION reads a kept version.
    #[command(after_help = GET_HELP)]
    Get {
        /// The volume, or NAME@VERSION for a kept version.
        name: String,
        /// A file or directory of the volume.
        remote: String,
        /// Where to write it (default `.`), or `-` for stdout.
        local: Option<String>,
        /// Overwrite existing local files.
        #[arg(short, long)]
        force: bool,
    },
    /// Copy within a volume: SRC to DST, or several SRCs into directory DST.
    Cp {
        /// The volume.
        name: String,
        /// Sources, then the destination.
        #[arg(required = true, num_args = 2.., value_name = "SRC... DST")]
        paths: Vec<String>,
        /// Copy directories and everything in them.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Delete a file or directory from a volume.
    Rm {
        /// The volume.
        name: String,
        /// The file or directory to delete.
        path: String,
        /// Delete a directory and everything in it.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Rename a volume.
    Rename {
        /// The volume to rename.
        old: String,
        /// Its new name.
        new: String,
    },
    /// Delete a volume and everything in it.
    Delete {
        /// The volume.
        name: String,
        /// Confirm the deletion (required).
        #[arg(short, long)]
        yes: bool,
        /// Delete it even while running containers have it mounted: they
        /// keep reading the snapshot they mounted, but cannot commit or
        /// reload it any more.
        #[arg(long)]
        force: bool,
    },
    /// Remove file contents (blobs) that no volume references any more.
    #[command(after_help = GC_HELP)]
    Gc {
        /// Only remove blobs at least this many seconds old (default: the
        /// store's grace period, one hour). The grace period protects
        /// uploads and commits in flight; lower it only while nothing else
        /// writes to the data dir.
        #[arg(long, value_name = "SECONDS")]
        min_age: Option<u64>,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

const GC_HELP: &str = "\
Deleting a volume, or replacing or removing its files, leaves their contents
behind until a collection removes them. Contents still referenced by any
volume, or by a running container's mount, are kept.

Examples:
  vessel volume gc                 # blobs unreferenced for over an hour
  vessel volume gc --min-age 0     # everything unreferenced, now
  vessel volume gc --json";

const QUOTA_HELP: &str = "\
A commit or upload that would take the volume's files over the quota fails
whole and changes nothing (`no-space` in a guest, HTTP 507).

Examples:
  vessel volume create my-vol --max-bytes 10GiB
  vessel volume quota my-vol                      # size and quota
  vessel volume quota my-vol --max-bytes 20GiB
  vessel volume quota my-vol --unlimited";

/// `--max-bytes`: a size (see [`parse_size`]) the stores can hold.
fn quota_size(text: &str) -> Result<u64, String> {
    let n = parse_size(text)?;
    if n > MAX_QUOTA {
        return Err(format!(
            "{n} bytes is over the largest quota, {MAX_QUOTA} bytes"
        ));
    }
    Ok(n)
}

const PUT_HELP: &str = "\
Examples:
  vessel volume put my-vol model.bin               # -> /model.bin
  vessel volume put my-vol model.bin /models/      # -> /models/model.bin
  vessel volume put my-vol ./data /data            # the directory's contents -> /data
  echo hi | vessel volume put my-vol - /hello.txt";

const GET_HELP: &str = "\
Examples:
  vessel volume get my-vol /models/model.bin       # -> ./model.bin
  vessel volume get my-vol /data ./out             # ./out (or ./out/data if ./out exists)
  vessel volume get my-vol /hello.txt -            # to stdout";

/// Runs a volume command against the store in `data_dir`.
pub async fn run(data_dir: &Home, cmd: VolumeCmd) -> Result<u8, Failure> {
    let data_dir = data_dir.clone();
    // Store calls block (sled, fsync, file copies): keep them off the async
    // workers.
    tokio::task::spawn_blocking(move || run_blocking(&data_dir, cmd.command))
        .await
        .map_err(|e| Failure::runtime(format!("the volume command did not finish: {e}")))?
}

fn open(home: &Home) -> Result<Box<dyn Operations>, Failure> {
    home.backend()
}

fn run_blocking(data_dir: &Home, cmd: VolumeSub) -> Result<u8, Failure> {
    // Names are checked before the store is opened: a bad one is a usage
    // error whatever the state of the data dir.
    match &cmd {
        VolumeSub::List { .. } | VolumeSub::Gc { .. } => {}
        VolumeSub::Rename { old, new } => {
            check_name(old)?;
            check_name(new)?;
        }
        // Reads take NAME@VERSION.
        VolumeSub::Ls { name, .. } | VolumeSub::Get { name, .. } => {
            check_name(VolumeRef::parse(name)?.name)?;
        }
        VolumeSub::Restore { target } => {
            check_name(VolumeRef::parse(target)?.name)?;
        }
        VolumeSub::Fork { src, dst, .. } => {
            check_name(VolumeRef::parse(src)?.name)?;
            writable(dst)?;
            check_name(dst)?;
        }
        VolumeSub::Create { name, .. } => check_name(name)?,
        VolumeSub::Quota { name, .. }
        | VolumeSub::History { name, .. }
        | VolumeSub::Diff { name, .. }
        | VolumeSub::Retention { name, .. }
        | VolumeSub::Put { name, .. }
        | VolumeSub::Cp { name, .. }
        | VolumeSub::Rm { name, .. }
        | VolumeSub::Delete { name, .. } => {
            writable(name)?;
            check_name(name)?;
        }
    }
    match cmd {
        VolumeSub::History { name, limit, json } => {
            super::history::history(&*open(data_dir)?, &name, limit, json)?;
        }
        VolumeSub::Diff {
            name,
            from,
            to,
            json,
        } => super::history::diff(&*open(data_dir)?, &name, from, to, json)?,
        VolumeSub::Restore { target } => super::history::restore(&*open(data_dir)?, &target)?,
        VolumeSub::Fork { src, dst, json } => {
            super::history::fork(&*open(data_dir)?, &src, &dst, json)?;
        }
        VolumeSub::Retention {
            name,
            retention,
            json,
        } => super::history::retention(&*open(data_dir)?, &name, retention, json)?,
        VolumeSub::Create {
            name,
            max_bytes,
            retention,
        } => {
            open(data_dir)?.volume_create(&name, max_bytes, retention)?;
            match max_bytes {
                Some(q) => println!(
                    "Created volume `{name}` with a quota of {} ({q} bytes).",
                    HumanBytes(q)
                ),
                None => println!("Created volume `{name}`."),
            }
        }
        VolumeSub::Quota {
            name,
            max_bytes,
            unlimited,
            json,
        } => {
            let svc = open(data_dir)?;
            let info = match (max_bytes, unlimited) {
                (Some(q), _) => svc.volume_set_quota(&name, Some(q))?,
                (None, true) => svc.volume_set_quota(&name, None)?,
                (None, false) => svc.volume_info(&name)?,
            };
            if json {
                return print_json(&info).map(|()| 0);
            }
            let quota = match info.max_bytes {
                Some(q) => format!("a quota of {} ({q} bytes)", HumanBytes(q)),
                None => "no quota".to_owned(),
            };
            println!(
                "Volume `{name}` holds {} ({} bytes) in {} inodes, with {quota}.",
                HumanBytes(info.bytes),
                info.bytes,
                info.inodes
            );
        }
        VolumeSub::List { json } => list(&*open(data_dir)?, json)?,
        VolumeSub::Ls {
            name,
            path,
            recursive,
            json,
        } => ls(&*open(data_dir)?, &name, &path, recursive, json)?,
        VolumeSub::Put {
            name,
            local,
            remote,
            force,
            if_version,
        } => put(
            data_dir,
            &name,
            &local,
            remote.as_deref(),
            force,
            if_version,
        )?,
        VolumeSub::Get {
            name,
            remote,
            local,
            force,
        } => get(
            data_dir,
            &name,
            &remote,
            local.as_deref().unwrap_or("."),
            force,
        )?,
        VolumeSub::Cp {
            name,
            paths,
            recursive,
        } => {
            let Some((dst, srcs)) = paths.split_last() else {
                return Err(Failure::usage("cp needs a source and a destination"));
            };
            let srcs: Vec<&str> = srcs.iter().map(String::as_str).collect();
            let info = open(data_dir)?.volume_cp(&name, &srcs, dst, recursive)?;
            println!(
                "Copied {} entries in `{name}` (version {}).",
                info.changed, info.version
            );
        }
        VolumeSub::Rm {
            name,
            path,
            recursive,
        } => {
            let info = open(data_dir)?.volume_rm(&name, &path, recursive)?;
            println!("Removed {path} from `{name}` (version {}).", info.version);
        }
        VolumeSub::Rename { old, new } => {
            open(data_dir)?.volume_rename(&old, &new)?;
            println!("Renamed volume `{old}` to `{new}`.");
        }
        VolumeSub::Delete { name, yes, force } => {
            if !yes {
                return Err(Failure::usage(format!(
                    "refusing to delete volume `{name}` and all its files without \
                     confirmation; run `vessel volume delete {name} --yes`"
                )));
            }
            open(data_dir)?.volume_delete(&name, force)?;
            println!("Deleted volume `{name}`.");
        }
        VolumeSub::Gc { min_age, json } => {
            let report = open(data_dir)?.volume_gc(min_age.map(Duration::from_secs))?;
            if json {
                return print_json(&report).map(|()| 0);
            }
            println!(
                "Removed {} unreferenced blob{} ({}).",
                report.removed_blobs,
                if report.removed_blobs == 1 { "" } else { "s" },
                HumanBytes(report.removed_bytes)
            );
            if report.removed_uploads > 0 {
                println!(
                    "Removed {} unfinished upload{} ({}).",
                    report.removed_uploads,
                    if report.removed_uploads == 1 { "" } else { "s" },
                    HumanBytes(report.removed_upload_bytes)
                );
            }
            if report.kept_young > 0 {
                println!(
                    "Kept {} unreferenced blob{} younger than {} s (see --min-age).",
                    report.kept_young,
                    if report.kept_young == 1 { "" } else { "s" },
                    report.min_age_secs
                );
            }
            if report.kept_pinned > 0 {
                println!(
                    "Kept {} unreferenced blob{} that running containers' mounts still use.",
                    report.kept_pinned,
                    if report.kept_pinned == 1 { "" } else { "s" }
                );
            }
        }
    }
    Ok(0)
}

fn list(svc: &dyn Operations, json: bool) -> Result<(), Failure> {
    let vols = svc.volume_list()?;
    if json {
        return print_json(&vols);
    }
    if vols.is_empty() {
        println!("No volumes. Create one with `vessel volume create NAME`.");
        return Ok(());
    }
    let width = vols.iter().map(|v| v.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:<width$}  {:>8}  {:>8}  {:>10}  {:>10}  CREATED (UTC)",
        "NAME", "VERSION", "INODES", "SIZE", "QUOTA"
    );
    for v in vols {
        println!(
            "{:<width$}  {:>8}  {:>8}  {:>10}  {:>10}  {}",
            v.name,
            v.version,
            v.inodes,
            HumanBytes(v.bytes).to_string(),
            v.max_bytes
                .map_or_else(|| "-".to_owned(), |q| HumanBytes(q).to_string()),
            utc(v.created_ms)
        );
    }
    Ok(())
}

fn ls(
    svc: &dyn Operations,
    name: &str,
    path: &str,
    recursive: bool,
    json: bool,
) -> Result<(), Failure> {
    let entries = svc.volume_ls(name, path, recursive)?;
    if json {
        return print_json(&entries);
    }
    let mut out = std::io::stdout().lock();
    for e in entries {
        let suffix = match e.kind {
            EntryKind::Dir => "/",
            _ => "",
        };
        writeln!(out, "{}{suffix}", e.path).map_err(Failure::runtime)?;
    }
    Ok(())
}

/// A progress bar on stderr for a transfer of `total` bytes, when it is
/// large enough and stderr is a terminal.
fn progress_bar(total: u64, what: &str) -> Option<(ProgressBar, Progress)> {
    if total < PROGRESS_MIN_BYTES || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    let handle = bar.clone();
    Some((bar, Arc::new(move |n| handle.inc(n))))
}

fn put(
    home: &Home,
    name: &str,
    local: &str,
    remote: Option<&str>,
    force: bool,
    if_version: Option<u64>,
) -> Result<(), Failure> {
    if let Some(r) = remote {
        normalize_path(r).map_err(VolumeOpError::from)?;
    }
    if local == "-" {
        let remote = remote.filter(|r| !r.ends_with('/')).ok_or_else(|| {
            Failure::usage("put from stdin (`-`) needs a REMOTE file path, not a directory")
        })?;
        let remote = normalize_path(remote).map_err(VolumeOpError::from)?;
        let version = home.backend()?.volume_put_reader(
            name,
            &remote,
            &mut std::io::stdin().lock(),
            force,
            if_version,
        )?;
        println!("Uploaded stdin to {name}:/{remote} (version {version}).");
        return Ok(());
    }
    let local_path = std::path::absolute(local).map_err(|e| VolumeOpError::LocalIo {
        path: PathBuf::from(local),
        source: e,
    })?;
    let ops = home.backend()?;
    let bar = if ops.reports_progress() {
        let total = match std::fs::metadata(&local_path) {
            Ok(m) if m.is_dir() => local_tree_size(&local_path),
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        progress_bar(total, "uploading")
    } else {
        None
    };
    let r = ops.volume_put_local(
        name,
        &local_path,
        remote,
        force,
        if_version,
        bar.as_ref().map(|(_, p)| p.clone()),
    );
    if let Some((b, _)) = &bar {
        b.finish_and_clear();
    }
    let report = r.map_err(|e| Failure::from(e).renamed(&local_path, local))?;
    println!(
        "Uploaded {local} to {name}:/{} ({} entries, {}, version {}).",
        report.target,
        report.entries,
        HumanBytes(report.bytes),
        report.version
    );
    Ok(())
}

fn get(home: &Home, name: &str, remote: &str, local: &str, force: bool) -> Result<(), Failure> {
    let ops = home.backend()?;
    let bar = if ops.reports_progress() {
        progress_bar(ops.volume_size(name, remote)?, "downloading")
    } else {
        None
    };
    let progress = bar.as_ref().map(|(_, p)| p);
    if local == "-" {
        let remote = normalize_path(remote).map_err(VolumeOpError::from)?;
        let mut out = std::io::stdout().lock();
        let r = ops.volume_read(name, &remote, &mut out, progress);
        if let Some((b, _)) = &bar {
            b.finish_and_clear();
        }
        r?;
        return Ok(());
    }
    let local_path = std::path::absolute(local).map_err(Failure::runtime)?;
    let r = ops.volume_get_local(name, remote, &local_path, force, progress);
    if let Some((b, _)) = &bar {
        b.finish_and_clear();
    }
    let report = r.map_err(|e| Failure::from(e).renamed(&local_path, local))?;
    for s in &report.skipped_symlinks {
        eprintln!("warning: {s}: a symlink, not recreated locally");
    }
    println!(
        "Downloaded {name}:/{} to {local} ({} files, {}).",
        normalize_path(remote).unwrap_or_default(),
        report.files,
        HumanBytes(report.bytes)
    );
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time in milliseconds, in UTC.
#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20");
    }
}
