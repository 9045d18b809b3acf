//! Power-loss simulation, LazyFS-style: a model of what a disk keeps of
//! the storage layer's files when power fails.
//!
//! The live files are written as usual (so the running store reads what it
//! wrote), and beside them the model records, per file, the bytes that were
//! fsynced and the writes since, and per directory, the entries that were
//! fsynced (by an fsync of that directory) and the creates, renames and
//! removals since. At a power cut ([`Sim::cut`], or after
//! [`PowerOptions::cut_after`] calls) every later call fails, and
//! [`Sim::materialise`] writes one state a disk could be left in:
//! - each directory keeps its synced entries plus a random prefix of the
//!   entry changes made since its last fsync (a rename counts as a removal
//!   in the source and an entry in the target directory, so an unsynced
//!   rename can leave the file in both places or in neither);
//! - each reachable file keeps its synced bytes plus either a random prefix
//!   of the later writes, the last one possibly torn (cut at a random byte),
//!   or a random subset of them (reordered writes).
//!
//! sled does its own file I/O, which this layer cannot see. Its directory
//! is declared external, and at each of the store's sled fsync points (the
//! durability barrier fsyncs every file and directory under it, see
//! `embedded::durable`) the model snapshots the bytes of every file there.
//! Those are exactly the bytes a disk must keep, since the fsyncs covered
//! them; after a cut sled's directory reverts to that snapshot, and
//! [`SledTear`] chooses how much of what sled wrote since survives. The
//! snapshot is read after the fsyncs return, so it may include bytes sled
//! wrote meanwhile; in the single-threaded workloads the tests run, sled
//! writes only inside a store call, so nothing does.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// How a power simulation runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerOptions {
    /// Cut the power at this call (counted over every call, from 1,
    /// including the store's own start-up); that call and every later one
    /// fail. `None`: only [`StorageIo::cut_power`](super::StorageIo::cut_power)
    /// cuts it.
    pub cut_after: Option<u64>,
    /// A deliberately broken durability step, to show the checks catch it.
    pub sabotage: Option<Sabotage>,
    /// What survives of sled's unsynced writes.
    pub tear: SledTear,
}

/// Durability steps a test can break on purpose: the fsyncs still return
/// success, but the model treats them as never issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// fsyncs of the files the store writes (blobs) do nothing.
    IgnoreFileSyncs,
    /// fsyncs of directories (new blobs, fan-out and data directories) do
    /// nothing.
    IgnoreDirSyncs,
    /// The fsyncs of sled's files do nothing.
    IgnoreSledSyncs,
}

/// What survives of what sled wrote after its last fsync point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SledTear {
    /// Nothing: the files are as they were at the last fsync point.
    Exact,
    /// A random prefix of what a file grew by (a torn tail).
    #[default]
    TornTail,
    /// Each 4 KiB page of a file, independently, old or new, and the
    /// length old or new.
    Pages,
}

/// What one materialised power cut kept and dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PowerReport {
    /// Files and directories written (outside sled's directory).
    pub files: u64,
    pub dirs: u64,
    /// Writes not yet fsynced at the cut, in any file (a file whose entry
    /// does not survive loses them all).
    pub unsynced_writes: u64,
    /// Unsynced writes to surviving files dropped, and torn (a prefix
    /// kept).
    pub dropped_writes: u64,
    pub torn_writes: u64,
    /// Unsynced directory entry changes dropped.
    pub dropped_entries: u64,
    /// sled's files written, and how many bytes past their last synced
    /// state survived.
    pub sled_files: u64,
    pub sled_unsynced_bytes: u64,
    /// Calls the model could not follow (it must be empty for a sound
    /// result): a path under an unknown directory, a directory rename.
    pub gaps: Vec<String>,
}

type Ino = usize;

enum Inode {
    File {
        durable: Vec<u8>,
        pending: Vec<(u64, Vec<u8>)>,
    },
    Dir {
        durable: BTreeMap<OsString, Ino>,
        pending: Vec<DirOp>,
    },
}

#[derive(Clone)]
enum DirOp {
    Link(OsString, Ino),
    Unlink(OsString),
}

/// The model of one store's disk.
pub(crate) struct Sim {
    root: PathBuf,
    options: PowerOptions,
    /// Calls seen, for `cut_after`.
    calls: u64,
    dead: bool,
    /// What each live path is.
    live: HashMap<PathBuf, Ino>,
    inodes: Vec<Inode>,
    /// sled's directory.
    external: Option<PathBuf>,
    /// sled's files (relative paths; `None` for a directory) at its last
    /// fsync point.
    snapshot: BTreeMap<PathBuf, Option<Vec<u8>>>,
    gaps: Vec<String>,
}

const ROOT: Ino = 0;

impl Sim {
    pub(crate) fn new(root: &Path, options: PowerOptions) -> Self {
        let mut live = HashMap::new();
        live.insert(root.to_owned(), ROOT);
        Sim {
            root: root.to_owned(),
            options,
            calls: 0,
            dead: false,
            live,
            inodes: vec![Inode::Dir {
                durable: BTreeMap::new(),
                pending: Vec::new(),
            }],
            external: None,
            snapshot: BTreeMap::new(),
            gaps: Vec::new(),
        }
    }

    /// Counts a call; fails it once the power is off.
    pub(crate) fn tick(&mut self) -> io::Result<()> {
        self.calls += 1;
        if let Some(n) = self.options.cut_after
            && self.calls >= n
        {
            self.dead = true;
        }
        if self.dead {
            return Err(io::Error::other("the power is off (simulated power cut)"));
        }
        Ok(())
    }

    pub(crate) fn cut(&mut self) {
        self.dead = true;
    }

    pub(crate) fn set_external(&mut self, dir: &Path) {
        self.external = Some(dir.to_owned());
    }

    /// Whether the model follows `path`: under the root and not in sled's
    /// directory.
    fn tracked(&self, path: &Path) -> bool {
        path.starts_with(&self.root)
            && !self
                .external
                .as_ref()
                .is_some_and(|e| path.starts_with(e) && path != e)
    }

    fn gap(&mut self, what: String) {
        if self.gaps.len() < 16 {
            self.gaps.push(what);
        }
    }

    /// The directory holding `path` and the entry's name.
    fn parent_of(&mut self, path: &Path, what: &str) -> Option<(Ino, OsString)> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            self.gap(format!("{what} {}: no parent", path.display()));
            return None;
        };
        match self.live.get(parent) {
            Some(&ino) if matches!(self.inodes.get(ino), Some(Inode::Dir { .. })) => {
                Some((ino, name.to_owned()))
            }
            _ => {
                self.gap(format!(
                    "{what} {}: the model does not know its directory",
                    path.display()
                ));
                None
            }
        }
    }

    fn dir_op(&mut self, dir: Ino, op: DirOp) {
        if let Some(Inode::Dir { pending, .. }) = self.inodes.get_mut(dir) {
            pending.push(op);
        }
    }

    fn add(&mut self, path: &Path, inode: Inode, what: &str) -> Option<Ino> {
        if !self.tracked(path) {
            return None;
        }
        let (parent, name) = self.parent_of(path, what)?;
        let ino = self.inodes.len();
        self.inodes.push(inode);
        self.dir_op(parent, DirOp::Link(name, ino));
        self.live.insert(path.to_owned(), ino);
        Some(ino)
    }

    pub(crate) fn mkdir(&mut self, path: &Path) {
        self.add(
            path,
            Inode::Dir {
                durable: BTreeMap::new(),
                pending: Vec::new(),
            },
            "mkdir",
        );
    }

    pub(crate) fn create_file(&mut self, path: &Path) -> Option<Ino> {
        self.add(
            path,
            Inode::File {
                durable: Vec::new(),
                pending: Vec::new(),
            },
            "create",
        )
    }

    pub(crate) fn write(&mut self, ino: Option<Ino>, offset: u64, buf: &[u8]) {
        if let Some(Inode::File { pending, .. }) = ino.and_then(|i| self.inodes.get_mut(i)) {
            pending.push((offset, buf.to_vec()));
        }
    }

    pub(crate) fn sync_file(&mut self, ino: Option<Ino>) {
        if self.options.sabotage == Some(Sabotage::IgnoreFileSyncs) {
            return;
        }
        if let Some(Inode::File { durable, pending }) = ino.and_then(|i| self.inodes.get_mut(i)) {
            for (off, data) in pending.drain(..) {
                apply_write(durable, off, &data);
            }
        }
    }

    pub(crate) fn sync_dir(&mut self, path: &Path) {
        if !self.tracked(path) || self.external.as_deref() == Some(path) {
            return;
        }
        if self.options.sabotage == Some(Sabotage::IgnoreDirSyncs) {
            return;
        }
        let Some(&ino) = self.live.get(path) else {
            self.gap(format!("fsync {}: unknown directory", path.display()));
            return;
        };
        if let Some(Inode::Dir { durable, pending }) = self.inodes.get_mut(ino) {
            for op in pending.drain(..) {
                apply_dir_op(durable, op);
            }
        }
    }

    pub(crate) fn rename(&mut self, from: &Path, to: &Path) {
        if !self.tracked(from) && !self.tracked(to) {
            return;
        }
        let Some(ino) = self.live.get(from).copied() else {
            self.gap(format!("rename {}: unknown file", from.display()));
            return;
        };
        if matches!(self.inodes.get(ino), Some(Inode::Dir { .. })) {
            self.gap(format!(
                "rename {}: directories are not modelled",
                from.display()
            ));
            return;
        }
        let (Some((src, from_name)), Some((dst, to_name))) =
            (self.parent_of(from, "rename"), self.parent_of(to, "rename"))
        else {
            return;
        };
        self.live.remove(from);
        self.dir_op(src, DirOp::Unlink(from_name));
        self.dir_op(dst, DirOp::Link(to_name, ino));
        self.live.insert(to.to_owned(), ino);
    }

    pub(crate) fn unlink(&mut self, path: &Path) {
        if !self.tracked(path) {
            return;
        }
        let Some((parent, name)) = self.parent_of(path, "remove") else {
            return;
        };
        self.live.remove(path);
        self.dir_op(parent, DirOp::Unlink(name));
    }

    /// sled's files were all fsynced: they are what a disk keeps now.
    pub(crate) fn external_synced(&mut self, dir: &Path) {
        if self.dead
            || self.external.as_deref() != Some(dir)
            || self.options.sabotage == Some(Sabotage::IgnoreSledSyncs)
        {
            return;
        }
        let mut snap = BTreeMap::new();
        if let Err(e) = read_tree(dir, Path::new(""), &mut snap) {
            self.gap(format!("snapshot of {}: {e}", dir.display()));
            return;
        }
        self.snapshot = snap;
    }

    /// Writes one state a disk could hold after the cut into `into`.
    pub(crate) fn materialise(&self, into: &Path, seed: u64) -> io::Result<PowerReport> {
        let mut m = Materialiser {
            sim: self,
            rng: Rng(seed ^ 0x9e37_79b9_7f4a_7c15),
            report: PowerReport {
                gaps: self.gaps.clone(),
                unsynced_writes: self
                    .inodes
                    .iter()
                    .map(|i| match i {
                        Inode::File { pending, .. } => pending.len() as u64,
                        Inode::Dir { .. } => 0,
                    })
                    .sum(),
                ..PowerReport::default()
            },
        };
        std::fs::create_dir_all(into)?;
        m.dir(ROOT, into, &self.root, 0)?;
        Ok(m.report)
    }
}

fn apply_write(bytes: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = usize::try_from(offset).unwrap_or(usize::MAX);
    let end = start.saturating_add(data.len());
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    if let Some(dst) = bytes.get_mut(start..end) {
        dst.copy_from_slice(data);
    }
}

fn apply_dir_op(entries: &mut BTreeMap<OsString, Ino>, op: DirOp) {
    match op {
        DirOp::Link(name, ino) => {
            entries.insert(name, ino);
        }
        DirOp::Unlink(name) => {
            entries.remove(&name);
        }
    }
}

fn read_tree(
    dir: &Path,
    rel: &Path,
    out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            out.insert(rel.clone(), None);
            read_tree(&entry.path(), &rel, out)?;
        } else if ty.is_file() {
            match std::fs::read(entry.path()) {
                Ok(bytes) => {
                    out.insert(rel, Some(bytes));
                }
                // Removed since it was fsynced: not kept by the fsync.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// splitmix64: reproducible choices from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n`.
    fn upto(&mut self, n: usize) -> usize {
        let n = n as u64;
        if n == u64::MAX {
            return self.next() as usize;
        }
        (self.next() % (n + 1)) as usize
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

struct Materialiser<'a> {
    sim: &'a Sim,
    rng: Rng,
    report: PowerReport,
}

const PAGE: usize = 4096;

impl Materialiser<'_> {
    fn dir(&mut self, ino: Ino, at: &Path, live: &Path, depth: usize) -> io::Result<()> {
        let Some(Inode::Dir { durable, pending }) = self.sim.inodes.get(ino) else {
            return Ok(());
        };
        if depth > 64 {
            return Err(io::Error::other("directory model too deep (a cycle?)"));
        }
        let mut entries = durable.clone();
        let keep = self.rng.upto(pending.len());
        for op in pending.iter().take(keep) {
            apply_dir_op(&mut entries, op.clone());
        }
        self.report.dropped_entries += (pending.len() - keep) as u64;
        for (name, child) in entries {
            let path = at.join(&name);
            let live = live.join(&name);
            match self.sim.inodes.get(child) {
                Some(Inode::Dir { .. }) => {
                    std::fs::create_dir(&path)?;
                    self.report.dirs += 1;
                    if self.sim.external.as_deref() == Some(live.as_path()) {
                        self.sled(&path, &live)?;
                    } else {
                        self.dir(child, &path, &live, depth + 1)?;
                    }
                }
                Some(Inode::File { durable, pending }) => {
                    let bytes = self.file(durable, pending);
                    std::fs::write(&path, bytes)?;
                    self.report.files += 1;
                }
                None => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, durable: &[u8], pending: &[(u64, Vec<u8>)]) -> Vec<u8> {
        let mut bytes = durable.to_vec();
        if self.rng.coin() {
            // A prefix of the writes, the next one maybe torn.
            let keep = self.rng.upto(pending.len());
            for (off, data) in pending.iter().take(keep) {
                apply_write(&mut bytes, *off, data);
            }
            let mut dropped = pending.len() - keep;
            if let Some((off, data)) = pending.get(keep)
                && self.rng.coin()
            {
                let n = self.rng.upto(data.len());
                apply_write(&mut bytes, *off, data.get(..n).unwrap_or_default());
                self.report.torn_writes += 1;
                dropped -= 1;
            }
            self.report.dropped_writes += dropped as u64;
        } else {
            // Any subset, in any order the disk chose.
            for (off, data) in pending {
                if self.rng.coin() {
                    apply_write(&mut bytes, *off, data);
                } else {
                    self.report.dropped_writes += 1;
                }
            }
        }
        bytes
    }

    /// sled's directory: its files at the last fsync point, plus what
    /// [`SledTear`] lets survive of later writes.
    fn sled(&mut self, at: &Path, live: &Path) -> io::Result<()> {
        for (rel, content) in &self.sim.snapshot {
            let path = at.join(rel);
            let Some(synced) = content else {
                std::fs::create_dir_all(&path)?;
                continue;
            };
            let now = std::fs::read(live.join(rel)).unwrap_or_else(|_| synced.clone());
            let bytes = match self.sim.options.tear {
                SledTear::Exact => synced.clone(),
                SledTear::TornTail => {
                    let mut b = synced.clone();
                    if let Some(extra) = now.get(synced.len()..) {
                        let n = self.rng.upto(extra.len());
                        b.extend_from_slice(extra.get(..n).unwrap_or_default());
                    }
                    b
                }
                SledTear::Pages => {
                    let len = if self.rng.coin() {
                        synced.len()
                    } else {
                        now.len()
                    };
                    let mut b = vec![0u8; len];
                    for start in (0..len).step_by(PAGE) {
                        let end = (start + PAGE).min(len);
                        let (first, second) = if self.rng.coin() {
                            (now.as_slice(), synced.as_slice())
                        } else {
                            (synced.as_slice(), now.as_slice())
                        };
                        if let Some(page) = b.get_mut(start..end) {
                            fill_page(page, start, first, second);
                        }
                    }
                    b
                }
            };
            // Bytes in pages that differ from the synced state.
            let unsynced: usize = (0..bytes.len().max(synced.len()))
                .step_by(PAGE)
                .filter(|&start| page_of(&bytes, start) != page_of(synced, start))
                .map(|start| {
                    page_of(&bytes, start)
                        .len()
                        .max(page_of(synced, start).len())
                })
                .sum();
            self.report.sled_unsynced_bytes += unsynced as u64;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)?;
            self.report.sled_files += 1;
        }
        Ok(())
    }
}

/// The page at `start` of `bytes` (shorter at the end, empty past it).
fn page_of(bytes: &[u8], start: usize) -> &[u8] {
    let end = (start + PAGE).min(bytes.len());
    bytes.get(start..end).unwrap_or_default()
}

/// Fills `page` (at offset `start` of a file) from `first` where it has
/// bytes there, else from `second`, else zeros.
fn fill_page(page: &mut [u8], start: usize, first: &[u8], second: &[u8]) {
    let mut done = 0;
    for src in [first, second] {
        let have = page_of(src, start + done);
        let n = have.len().min(page.len() - done);
        if let (Some(dst), Some(from)) = (page.get_mut(done..done + n), have.get(..n)) {
            dst.copy_from_slice(from);
        }
        done += n;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::StorageIo;
    use super::*;

    fn read(p: &Path) -> Option<Vec<u8>> {
        std::fs::read(p).ok()
    }

    #[test]
    fn synced_data_survives_and_unsynced_data_may_not() {
        let live = tempfile::tempdir().unwrap();
        let root = live.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let io = StorageIo::power_sim(&root, PowerOptions::default());
        io.opened();
        // A durable file: created, written, fsynced, its directory fsynced.
        let mut f = io.create_new(&root.join("durable")).unwrap();
        f.write_all(b"kept").unwrap();
        f.sync_all().unwrap();
        io.sync_dir(&root).unwrap();
        // A file whose entry is durable but whose bytes are not.
        let mut g = io.create_new(&root.join("unsynced")).unwrap();
        io.sync_dir(&root).unwrap();
        g.write_all(b"maybe").unwrap();
        // A synced file renamed without a directory fsync.
        let mut h = io.create_new(&root.join("tmp")).unwrap();
        h.write_all(b"moved").unwrap();
        h.sync_all().unwrap();
        io.sync_dir(&root).unwrap();
        io.rename(&root.join("tmp"), &root.join("final")).unwrap();
        io.cut_power();
        assert!(
            io.sync_dir(&root).is_err(),
            "calls fail once the power is off"
        );

        let mut saw_unsynced = [false; 2];
        let mut saw_rename = [false; 2];
        for seed in 0..64 {
            let out = tempfile::tempdir().unwrap();
            let report = io.materialise(out.path(), seed).unwrap();
            assert!(report.gaps.is_empty(), "{:?}", report.gaps);
            assert_eq!(read(&out.path().join("durable")).unwrap(), b"kept");
            let u = read(&out.path().join("unsynced")).unwrap();
            assert!(
                b"maybe".starts_with(&u),
                "a prefix (torn) or nothing: {u:?}"
            );
            saw_unsynced[usize::from(u.len() == 5)] = true;
            // Either name, both or neither, but always the synced bytes.
            let (t, f) = (
                read(&out.path().join("tmp")),
                read(&out.path().join("final")),
            );
            for b in [&t, &f].into_iter().flatten() {
                assert_eq!(b, b"moved");
            }
            saw_rename[usize::from(f.is_some())] = true;
        }
        assert_eq!(
            saw_unsynced,
            [true, true],
            "unsynced bytes both lost and kept"
        );
        assert_eq!(
            saw_rename,
            [true, true],
            "the unsynced rename both lost and kept"
        );
    }

    #[test]
    fn sabotaged_fsyncs_keep_nothing() {
        let live = tempfile::tempdir().unwrap();
        let root = live.path().join("data");
        std::fs::create_dir(&root).unwrap();
        let io = StorageIo::power_sim(
            &root,
            PowerOptions {
                sabotage: Some(Sabotage::IgnoreDirSyncs),
                ..PowerOptions::default()
            },
        );
        let mut f = io.create_new(&root.join("f")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_all().unwrap();
        io.sync_dir(&root).unwrap();
        io.cut_power();
        let lost = (0..64).any(|seed| {
            let out = tempfile::tempdir().unwrap();
            io.materialise(out.path(), seed).unwrap();
            !out.path().join("f").exists()
        });
        assert!(lost, "without the directory fsync the entry can vanish");
    }
}
