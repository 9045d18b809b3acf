//! `vessel volume history | diff | restore | fork | retention`: a volume's
//! kept versions, on the service API like every volume command.

use indicatif::HumanBytes;

use super::Failure;
use super::{print_json, utc};
use crate::client::ops::Operations;
use crate::service::volume::VolumeRef;
use crate::storage::volume::DiffKind;
use crate::storage::volume::history::format_retention;

pub(super) const HISTORY_HELP: &str = "\
Every commit makes a version. A replaced version stays readable for the
volume's retention (7 days unless `vessel volume retention` or `create
--retention` says otherwise): read it with NAME@VERSION, compare it with
`diff`, bring it back with `restore`.

Examples:
  vessel volume history my-vol -n 5
  vessel volume ls my-vol@12 /models
  vessel volume get my-vol@12 /models/model.bin ./old.bin
  vessel volume diff my-vol 12            # from version 12 to the head
  vessel volume restore my-vol@12";

pub(super) fn history(
    svc: &dyn Operations,
    name: &str,
    limit: usize,
    json: bool,
) -> Result<(), Failure> {
    if limit == 0 {
        return Err(Failure::usage("-n must be at least 1"));
    }
    let h = svc.volume_history(name, limit)?;
    if json {
        return print_json(&h);
    }
    println!(
        "Volume `{name}`: head version {}, versions from {} kept (retention {}).",
        h.head,
        h.oldest,
        format_retention(h.retention_ms)
    );
    if h.versions.is_empty() {
        println!("No commits yet.");
        return Ok(());
    }
    println!(
        "{:>8}  {:<20}  {:>8}  {:>8}  {:>10}",
        "VERSION", "TIME (UTC)", "CHANGED", "REMOVED", "ADDED"
    );
    for v in &h.versions {
        println!(
            "{:>8}  {:<20}  {:>8}  {:>8}  {:>10}",
            v.version,
            utc(v.time_ms),
            v.changed,
            v.removed,
            HumanBytes(v.bytes_added).to_string()
        );
    }
    Ok(())
}

pub(super) fn diff(
    svc: &dyn Operations,
    name: &str,
    from: u64,
    to: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let entries = svc.volume_diff(name, from, to)?;
    if json {
        return print_json(&entries);
    }
    for e in entries {
        let mark = match e.change {
            DiffKind::Added => 'A',
            DiffKind::Modified => 'M',
            DiffKind::Removed => 'D',
        };
        let slash = if e.kind == crate::service::volume::EntryKind::Dir {
            "/"
        } else {
            ""
        };
        println!("{mark} {}{slash}", e.path);
    }
    Ok(())
}

pub(super) fn restore(svc: &dyn Operations, target: &str) -> Result<(), Failure> {
    let r = VolumeRef::parse(target)?;
    let Some(version) = r.version else {
        return Err(Failure::usage(format!(
            "restore takes NAME@VERSION (e.g. {target}@12); see `vessel volume history {target}`"
        )));
    };
    let info = svc.volume_restore(r.name, version)?;
    println!(
        "Restored `{}` to version {version}: now version {} ({} paths put, {} removed).",
        r.name, info.version, info.changed, info.removed
    );
    Ok(())
}

pub(super) const FORK_HELP: &str = "\
A fork is a new volume whose first version is the source's tree: its head,
or a kept version. Nothing is copied, so forking a 10 GiB volume takes
milliseconds. Later commits to either volume do not show in the other; the
source cannot be deleted while forks of it exist.

Examples:
  vessel volume fork datasets exp-42           # the head
  vessel volume fork datasets@12 exp-42-v12    # a kept version
  vessel run app.wasm --volume exp-42:/data";

pub(super) fn fork(svc: &dyn Operations, src: &str, dst: &str, json: bool) -> Result<(), Failure> {
    let info = svc.volume_fork(src, dst)?;
    if json {
        return print_json(&info);
    }
    println!(
        "Forked `{src}` into `{dst}`: {} files and directories, {}, nothing copied.",
        info.inodes,
        HumanBytes(info.bytes)
    );
    Ok(())
}

pub(super) fn retention(
    svc: &dyn Operations,
    name: &str,
    retention: Option<u64>,
    json: bool,
) -> Result<(), Failure> {
    let info = match retention {
        Some(ms) => svc.volume_set_retention(name, ms)?,
        None => svc.volume_info(name)?,
    };
    if json {
        return print_json(&info);
    }
    if info.retention_ms == 0 {
        println!("Volume `{name}` keeps only its head version.");
    } else {
        println!(
            "Volume `{name}` keeps replaced versions for {}.",
            format_retention(info.retention_ms)
        );
    }
    Ok(())
}
