//! The disk budget of one container: how many bytes its guest may hold in
//! its scratch `/` and in the working trees of its read-write volume
//! mounts, counted together.
//!
//! What counts:
//! - every byte of every file, at its apparent size (a sparse write far
//!   past the end costs the whole extent: conservative, never cheaper than
//!   the blocks the file really takes);
//! - [`ENTRY_COST`] for every file, directory and symlink in scratch (but
//!   the `/tmp` the host makes there, [`SCRATCH_TMP`]), so a
//!   guest cannot run the host's file system out of inodes with empty
//!   files (entries under a mount are bounded by the volume's inode limit
//!   instead, and cost nothing here, so a mount of a large snapshot is not
//!   charged for what the guest merely reads);
//! - files removed but still open (their bytes stay on disk until the last
//!   handle goes).
//!
//! What does not: files of a mount that still hold the snapshot's bytes
//! (hard links of stored blobs, or the private copies placed where a link
//! is impossible); they are the volume's, shared, and a guest that only
//! reads them adds nothing. Writing one makes a private copy first, and
//! that copy costs the file's size. Host directories mounted with `vessel
//! run --mount` are the operator's own and are not counted.
//!
//! How: the WASI layer charges each operation's growth *before* it happens
//! (a write's bytes past the end of the file, a create's entry, a copy-up's
//! copy), so the running total is an upper bound of what the guest holds,
//! and refuses what would pass the limit with `insufficient-space`
//! (ENOSPC): a write is cut at the limit, the rest is refused. Removing,
//! truncating or overwriting does not lower the total at once (an open
//! handle may still hold the bytes, another name may still link them);
//! it marks the total stale, and the next charge that does not fit
//! measures the trees (and the removed files still open) and starts again
//! from what they really hold. Only a charge that does not fit after
//! something may have been freed pays for a measure, so a guest pressing
//! against its limit cannot make the host walk its trees on every write.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, MetadataExt as _};

use super::Mount;
use crate::blocking::off_worker;

/// What each directory entry in scratch costs, in bytes: a file system
/// block, which is also what a small file really takes (its apparent size
/// alone would count one byte for a block).
pub const ENTRY_COST: u64 = 4096;

/// The directory the host makes in every scratch (the guest's `/tmp`).
pub const SCRATCH_TMP: &str = "tmp";

/// A file's identity: device and inode number.
pub(crate) type Inode = (u64, u64);

/// The inodes of a mount's working tree that hold the snapshot's bytes as
/// placed (blob links and placed copies), shared by the mount, which keeps
/// it current, and the budget, which does not charge them.
pub(crate) type Unwritten = Arc<Mutex<HashSet<Inode>>>;

/// Locks `m`, whatever a panicking holder left (the data are counters and
/// sets that stay consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The budget of one container, shared by its WASI layer and the output
/// streams it hands out.
#[derive(Clone)]
pub struct DiskBudget {
    ledger: Arc<Mutex<Ledger>>,
}

impl Default for DiskBudget {
    /// No limit.
    fn default() -> Self {
        DiskBudget::new(u64::MAX)
    }
}

impl std::fmt::Debug for DiskBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = lock(&self.ledger);
        f.debug_struct("DiskBudget")
            .field("limit", &l.limit)
            .field("used", &l.used)
            .finish_non_exhaustive()
    }
}

struct Ledger {
    limit: u64,
    /// An upper bound of the bytes the guest holds.
    used: u64,
    /// Something may have been freed since `used` was last measured.
    stale: bool,
    scratch: Option<Dir>,
    /// The working trees of read-write mounts and what in them is not the
    /// guest's.
    mounts: Vec<(Dir, Unwritten)>,
    /// Files the guest opened (scratch and mounts); one that was removed
    /// while open still holds its bytes.
    handles: Vec<Weak<std::fs::File>>,
    /// The removed files that were still open at the last measure: when
    /// one closes, its bytes are freed.
    held: Vec<Weak<std::fs::File>>,
}

impl DiskBudget {
    /// A budget of `limit` bytes that measures nothing yet (see
    /// [`set_scratch`](Self::set_scratch) and [`add_mount`](Self::add_mount)).
    pub fn new(limit: u64) -> DiskBudget {
        DiskBudget {
            ledger: Arc::new(Mutex::new(Ledger {
                limit,
                used: 0,
                stale: false,
                scratch: None,
                mounts: Vec::new(),
                handles: Vec::new(),
                held: Vec::new(),
            })),
        }
    }

    /// The budget of a container whose scratch directory is `scratch`:
    /// counts it and the working trees of its read-write `mounts`.
    pub fn for_container(limit: u64, scratch: &Path, mounts: &[Mount]) -> io::Result<DiskBudget> {
        let disk = DiskBudget::new(limit);
        disk.set_scratch(Dir::open_ambient_dir(scratch, ambient_authority())?);
        for m in mounts.iter().filter(|m| !m.read_only) {
            disk.add_mount(m.root.try_clone()?, m.unwritten());
        }
        Ok(disk)
    }

    /// Counts the scratch directory `dir`.
    pub(crate) fn set_scratch(&self, dir: Dir) {
        lock(&self.ledger).scratch = Some(dir);
    }

    /// Counts the working tree `root` of a read-write mount, except the
    /// inodes in `unwritten`.
    pub(crate) fn add_mount(&self, root: Dir, unwritten: Unwritten) {
        lock(&self.ledger).mounts.push((root, unwritten));
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> u64 {
        lock(&self.ledger).limit
    }

    /// What the guest holds, as far as the budget knows (an upper bound).
    pub fn used(&self) -> u64 {
        lock(&self.ledger).used
    }

    /// Takes `bytes`, all or none: `Err` when they do not fit.
    pub(crate) fn charge(&self, bytes: u64) -> Result<(), NoSpace> {
        let mut l = lock(&self.ledger);
        if l.grant(bytes, false) == bytes {
            Ok(())
        } else {
            Err(NoSpace { limit: l.limit })
        }
    }

    /// Takes as much of `bytes` as fits; returns how much.
    pub(crate) fn charge_up_to(&self, bytes: u64) -> u64 {
        lock(&self.ledger).grant(bytes, true)
    }

    /// How many bytes a charge could take now (measuring first when the
    /// budget is used up and something may have been freed).
    pub(crate) fn room(&self) -> u64 {
        let mut l = lock(&self.ledger);
        if l.used >= l.limit {
            l.remeasure_if_freed();
        }
        l.limit.saturating_sub(l.used)
    }

    /// Gives back `bytes` taken for an operation that did not happen (or
    /// grew the file less than charged).
    pub(crate) fn refund(&self, bytes: u64) {
        let mut l = lock(&self.ledger);
        l.used = l.used.saturating_sub(bytes);
    }

    /// Notes that an operation may have freed bytes (a remove, a
    /// truncation, a rename over a file, a reload).
    pub(crate) fn freed(&self) {
        lock(&self.ledger).stale = true;
    }

    /// Remembers a file the guest opened, for the measure of removed files
    /// still open.
    pub(crate) fn track(&self, file: &Arc<std::fs::File>) {
        let mut l = lock(&self.ledger);
        // Pruned as it grows, so a guest opening and closing files for
        // ever keeps it at the size of what it holds open.
        if l.handles.len() >= 64 && l.handles.len().is_power_of_two() {
            l.handles.retain(|w| w.strong_count() > 0);
        }
        l.handles.push(Arc::downgrade(file));
    }

    /// Measures what the guest holds now and makes that the total (for
    /// tests).
    pub fn measure_now(&self) -> io::Result<u64> {
        let mut l = lock(&self.ledger);
        let n = l.measure()?;
        l.used = n;
        l.stale = false;
        Ok(n)
    }
}

/// A charge that does not fit the budget.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the container's disk budget of {} MiB is used up", limit >> 20)]
pub struct NoSpace {
    pub limit: u64,
}

impl Ledger {
    /// Takes `want` bytes, or as much as fits when `partial`; measures
    /// first when they do not fit and something may have been freed.
    fn grant(&mut self, want: u64, partial: bool) -> u64 {
        if want == 0 {
            return 0;
        }
        if self.used.saturating_add(want) > self.limit {
            self.remeasure_if_freed();
        }
        let room = self.limit.saturating_sub(self.used);
        let got = if want <= room {
            want
        } else if partial {
            room
        } else {
            0
        };
        self.used = self.used.saturating_add(got);
        got
    }

    /// Measures, when something may have been freed since the last time.
    fn remeasure_if_freed(&mut self) {
        if !self.may_have_freed() {
            return;
        }
        // Off the async worker: a measure walks the trees.
        match off_worker(|| self.measure()) {
            Ok(n) => self.used = n,
            Err(e) => tracing::warn!(error = %e, "measuring a container's disk use failed"),
        }
        // Cleared even when the measure failed: a guest must not make every
        // write walk its trees.
        self.stale = false;
    }

    fn may_have_freed(&self) -> bool {
        self.stale || self.held.iter().any(|w| w.strong_count() == 0)
    }

    /// What the guest holds: its scratch tree, the written files of its
    /// mounts, and the removed files it still holds open.
    fn measure(&mut self) -> io::Result<u64> {
        let none = HashSet::new();
        let mut seen = HashSet::new();
        let mut total = 0u64;
        if let Some(scratch) = &self.scratch {
            total = total.saturating_add(tree_size(scratch, ENTRY_COST, &none, &mut seen)?);
            // The host makes `/tmp` in every scratch: its own entry is not
            // the guest's (what the guest puts in it is).
            if scratch
                .symlink_metadata(SCRATCH_TMP)
                .is_ok_and(|m| m.is_dir())
            {
                total = total.saturating_sub(ENTRY_COST);
            }
        }
        for (root, unwritten) in &self.mounts {
            let free = lock(unwritten);
            total = total.saturating_add(tree_size(root, 0, &free, &mut seen)?);
        }
        self.handles.retain(|w| w.strong_count() > 0);
        self.held.clear();
        for w in &self.handles {
            let Some(f) = w.upgrade() else { continue };
            let m = f.metadata()?;
            if m.is_file() && m.nlink() == 0 {
                total = total.saturating_add(m.len().saturating_add(ENTRY_COST));
                self.held.push(w.clone());
            }
        }
        Ok(total)
    }
}

/// The bytes under `root`: `entry_cost` per entry plus the apparent size
/// of every file not in `free`, each inode once (`seen` holds the
/// hard-linked ones counted). Walks with a directory handle per level, not
/// paths, so a tree deeper than `PATH_MAX` is measured too; a handle is
/// closed as soon as its last child is opened.
fn tree_size(
    root: &Dir,
    entry_cost: u64,
    free: &HashSet<Inode>,
    seen: &mut HashSet<Inode>,
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut todo: Vec<(Arc<Dir>, OsString)> = Vec::new();
    let mut dir = Arc::new(root.try_clone()?);
    loop {
        for entry in dir.entries()? {
            let entry = entry?;
            let meta = entry.metadata()?;
            total = total.saturating_add(entry_cost);
            if meta.is_dir() {
                todo.push((dir.clone(), entry.file_name()));
            } else if meta.is_file() {
                let ino = (meta.dev(), meta.ino());
                if free.contains(&ino) || (meta.nlink() > 1 && !seen.insert(ino)) {
                    continue;
                }
                total = total.saturating_add(meta.len());
            }
        }
        let Some((parent, name)) = todo.pop() else {
            return Ok(total);
        };
        dir = Arc::new(parent.open_dir(&name)?);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn budget(limit: u64) -> (tempfile::TempDir, Dir, DiskBudget) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let b = DiskBudget::new(limit);
        b.set_scratch(dir.try_clone().unwrap());
        (tmp, dir, b)
    }

    #[test]
    fn charges_fit_or_are_cut_at_the_limit() {
        let (_t, _d, b) = budget(100);
        b.charge(60).unwrap();
        assert!(b.charge(41).is_err(), "all or nothing");
        assert_eq!(b.used(), 60);
        assert_eq!(b.charge_up_to(50), 40, "cut at the limit");
        assert_eq!(b.charge_up_to(1), 0);
        b.refund(30);
        assert_eq!(b.used(), 70);
        assert_eq!(b.charge(0).map(drop).ok(), Some(()));
    }

    #[test]
    fn frees_count_only_after_a_measure_that_something_may_have_freed() {
        let (_t, d, b) = budget(3 * ENTRY_COST + 1000);
        d.write("a", vec![1u8; 1000]).unwrap();
        b.charge(ENTRY_COST + 1000).unwrap();
        // Nothing was marked freed: a charge that does not fit does not
        // measure, even though the tree holds less than charged.
        b.charge(2 * ENTRY_COST).unwrap();
        assert!(b.charge(1).is_err());
        assert_eq!(b.used(), 3 * ENTRY_COST + 1000);
        d.remove_file("a").unwrap();
        b.freed();
        b.charge(ENTRY_COST).unwrap();
        assert_eq!(b.used(), ENTRY_COST, "measured an empty tree, then charged");
    }

    #[test]
    fn a_measure_counts_entries_sizes_links_once_and_removed_open_files() {
        let (_t, d, b) = budget(u64::MAX);
        d.create_dir_all("x/y").unwrap();
        d.write("x/y/f", vec![0u8; 5000]).unwrap();
        d.hard_link("x/y/f", &d, "g").unwrap();
        d.symlink_contents("x", "s").unwrap();
        // x, x/y, x/y/f, g, s: five entries; f's bytes once.
        assert_eq!(b.measure_now().unwrap(), 5 * ENTRY_COST + 5000);
        let held = Arc::new(d.open("g").unwrap().into_std());
        b.track(&held);
        d.remove_file("g").unwrap();
        d.remove_file("x/y/f").unwrap();
        // Gone from the tree, but still open: its bytes and its inode.
        assert_eq!(b.measure_now().unwrap(), 3 * ENTRY_COST + 5000 + ENTRY_COST);
        drop(held);
        assert_eq!(b.measure_now().unwrap(), 3 * ENTRY_COST);
    }

    #[test]
    fn a_closed_removed_file_lets_the_next_charge_measure() {
        let (_t, d, b) = budget(2 * ENTRY_COST + 1000);
        d.write("f", vec![0u8; 1000]).unwrap();
        let held = Arc::new(d.open("f").unwrap().into_std());
        b.track(&held);
        d.remove_file("f").unwrap();
        b.freed();
        b.measure_now().unwrap();
        b.charge(ENTRY_COST).unwrap();
        assert!(b.charge(ENTRY_COST).is_err(), "the open file still counts");
        drop(held);
        b.charge(ENTRY_COST).unwrap();
        // Measured: the tree is empty (the first charge made nothing).
        assert_eq!(b.used(), ENTRY_COST);
    }

    #[test]
    fn mount_trees_skip_unwritten_inodes_and_entry_costs() {
        let tmp = tempfile::tempdir().unwrap();
        let d = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        d.create_dir("sub").unwrap();
        d.write("sub/blob", vec![0u8; 7000]).unwrap();
        d.write("mine", vec![0u8; 300]).unwrap();
        let m = d.symlink_metadata("sub/blob").unwrap();
        let unwritten: Unwritten = Arc::new(Mutex::new(HashSet::from([(m.dev(), m.ino())])));
        let b = DiskBudget::new(u64::MAX);
        b.add_mount(d.try_clone().unwrap(), unwritten.clone());
        assert_eq!(b.measure_now().unwrap(), 300);
        lock(&unwritten).clear();
        assert_eq!(b.measure_now().unwrap(), 7300);
    }

    #[test]
    fn trees_deeper_than_path_max_are_measured() {
        let (_t, d, b) = budget(u64::MAX);
        let name = "d".repeat(200);
        let mut at = d.try_clone().unwrap();
        for _ in 0..40 {
            at.create_dir(&name).unwrap();
            at = at.open_dir(&name).unwrap();
        }
        at.write("leaf", b"xyz").unwrap();
        assert_eq!(b.measure_now().unwrap(), 41 * ENTRY_COST + 3);
    }
}
