//! What the compile cache keeps: a bound on its size with the least
//! recently used entries going first, and the listing and pruning behind
//! `vessel cache ls|prune`.
//!
//! - An entry's last use is its seal's mtime. Every hit touches the seal;
//!   the seal vouches for the entry file's stamp, not for its own, so the
//!   touch changes nothing that is checked.
//! - After each new entry is written, the cache is trimmed to its bound,
//!   the new entry always kept. An entry bigger than the whole bound stays
//!   until the next one comes (compiling it on every call would cost more
//!   than the space).
//! - Removing an entry another process has mapped is safe: the mapping
//!   holds the inode, and that process's next load compiles afresh.
//! - Source memos (`*.src`, 128 bytes each, one per component file) are
//!   left to point at evicted entries, which then count as missing; a full
//!   prune removes them too. Temporary files a killed writer left are
//!   removed once they are an hour old.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cache::DiskCache;

/// The compile cache's default bound: room for about a hundred compiled
/// Python guests (35 MB each) or thousands of small Rust ones.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 4 << 30;

/// Temporary files older than this are a killed writer's.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// One compiled component in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The cache name (hex): the salted hash of the component's bytes.
    pub name: String,
    /// Bytes of compiled code.
    pub bytes: u64,
    /// When a load last used it (or it was written).
    pub last_used: SystemTime,
}

/// What a prune removed and kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub removed: usize,
    pub removed_bytes: u64,
    pub kept: usize,
    pub kept_bytes: u64,
}

/// A compile-cache folder seen from outside an engine: what `vessel cache`
/// lists and prunes.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        CompileCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry, least recently used first. A folder that does not exist
    /// yet holds none.
    pub fn list(&self) -> std::io::Result<Vec<CacheEntry>> {
        Ok(scan(&self.dir)?.entries)
    }

    /// Removes least recently used entries until the rest fit in
    /// `max_bytes` (0 removes them all, and every source memo).
    pub fn prune(&self, max_bytes: u64) -> std::io::Result<Pruned> {
        trim(&self.dir, max_bytes, None, max_bytes == 0)
    }
}

impl DiskCache {
    /// Notes that entry `name` was used now (see the module docs). A
    /// failure costs only its place in the eviction order.
    pub(super) fn touch(&self, name: &[u8; 32]) {
        let path = self.seal_path(name);
        let touched = std::fs::File::open(&path).and_then(|f| f.set_modified(SystemTime::now()));
        if let Err(e) = touched {
            tracing::debug!(seal = %path.display(), error = %e, "cannot note a compile-cache hit");
        }
    }

    /// Trims the cache to `max_bytes`, keeping entry `keep`.
    pub(super) fn trim(&self, max_bytes: u64, keep: &[u8; 32]) {
        let keep = blake3::Hash::from_bytes(*keep).to_hex().to_string();
        match trim(self.dir(), max_bytes, Some(&keep), false) {
            Ok(p) if p.removed > 0 => tracing::info!(
                removed = p.removed,
                removed_bytes = p.removed_bytes,
                kept_bytes = p.kept_bytes,
                max_bytes,
                "compile cache trimmed to its bound"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(dir = %self.dir().display(), error = %e, "cannot trim the compile cache")
            }
        }
    }
}

/// What one reading of a cache folder finds.
#[derive(Default)]
struct Listing {
    /// Entries, least recently used first.
    entries: Vec<CacheEntry>,
    /// Temporary files old enough to be a killed writer's.
    stale_temps: Vec<PathBuf>,
    /// Source memos.
    memos: Vec<PathBuf>,
}

/// Reads the folder once. A folder that does not exist yet holds nothing;
/// a file removed by another process meanwhile is simply gone.
fn scan(dir: &Path) -> std::io::Result<Listing> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut out = Listing::default();
    for item in read {
        let item = item?;
        let path = item.path();
        let file_name = item.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(name) = file_name.strip_suffix(".cwasm") {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let last_used = std::fs::symlink_metadata(path.with_extension("seal"))
                .and_then(|m| m.modified())
                .or_else(|_| meta.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.entries.push(CacheEntry {
                name: name.to_owned(),
                bytes: meta.len(),
                last_used,
            });
        } else if file_name.ends_with(".src") {
            out.memos.push(path);
        } else if file_name.starts_with(".tmp")
            && std::fs::symlink_metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_TEMP))
        {
            out.stale_temps.push(path);
        }
    }
    out.entries
        .sort_by(|a, b| a.last_used.cmp(&b.last_used).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// Removes least recently used entries (never `keep`) until the rest fit
/// in `max_bytes`, stale temporary files, and with `memos_too` every
/// source memo.
fn trim(
    dir: &Path,
    max_bytes: u64,
    keep: Option<&str>,
    memos_too: bool,
) -> std::io::Result<Pruned> {
    let listing = scan(dir)?;
    let extra = if memos_too { &listing.memos[..] } else { &[] };
    for path in listing.stale_temps.iter().chain(extra) {
        let _ = std::fs::remove_file(path);
    }
    let mut total: u64 = listing.entries.iter().map(|e| e.bytes).sum();
    let mut pruned = Pruned::default();
    for e in listing.entries {
        if total > max_bytes && keep != Some(e.name.as_str()) {
            let entry = dir.join(format!("{}.cwasm", e.name));
            match std::fs::remove_file(&entry) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            let _ = std::fs::remove_file(entry.with_extension("seal"));
            total -= e.bytes;
            pruned.removed += 1;
            pruned.removed_bytes += e.bytes;
        } else {
            pruned.kept += 1;
            pruned.kept_bytes += e.bytes;
        }
    }
    Ok(pruned)
}
