//! The on-disk compile cache. Its entries are native code that vessel maps
//! and runs, so whoever can write them runs code inside vessel; it is
//! trusted as ssh trusts `~/.ssh`:
//!
//! - The folder must be owned by this user and not writable by group or
//!   others. Otherwise it is not used at all: a warning names the folder
//!   and the fix, and components are compiled in memory.
//! - Each entry (`NAME.cwasm`, exactly what `precompile_component` made)
//!   has a seal (`NAME.seal`): a keyed BLAKE3 MAC of its name and payload,
//!   and of the entry file's stamp (device, inode, size, mtime, ctime). The
//!   key is [`KEY_FILE`] in the folder (32 random bytes, 0600), made on
//!   first use and put in place atomically (the first of two racing
//!   processes wins, the other reads its key). An entry whose seal or MAC
//!   does not check (corrupt, forged with a plain checksum, copied from
//!   another cache, which has another key, or of an older format) is
//!   deleted and rebuilt: its bytes never reach `Component::deserialize`. A
//!   key that others can read is a key others can forge with, so it is
//!   refused too.
//! - An entry file not owned by this user, or writable by group or others,
//!   is not read: it is replaced by a fresh one.
//! - A hit reads neither the whole component nor the whole entry: a source
//!   memo (`HASH.src`, MAC'd too) maps the component file's stamp to its
//!   cache name, and a sealed entry whose stamp is unchanged is mapped, not
//!   read (see [`DiskCache::read`] for where the MAC is checked and why).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::private;

/// The file in the cache folder holding the MAC key.
const KEY_FILE: &str = "key";
const KEY_LEN: usize = blake3::KEY_LEN;
/// The first bytes of every seal (version 1).
const SEAL_MAGIC: &[u8; 8] = b"VSLSEAL1";
/// The first bytes of every source memo (version 1).
const SOURCE_MAGIC: &[u8; 8] = b"VSLSRC01";
/// A file's identity and version as `fstat` gives it: device, inode, size,
/// mtime and ctime (seconds, nanoseconds). Any write to a file moves its
/// ctime, which only root can set back, so an unchanged stamp taken well
/// after the last change means unchanged bytes.
const STAMP_LEN: usize = 7 * 8;
/// Seal: magic, content MAC, entry stamp, when it was sealed (ns), MAC.
const SEAL_LEN: usize = 8 + 32 + STAMP_LEN + 8 + 32;
/// Source memo: magic, source stamp, cache name, MAC.
const SOURCE_LEN: usize = 8 + STAMP_LEN + 32 + 32;

/// A compile-cache folder, checked on first use.
#[derive(Debug)]
pub(super) struct DiskCache {
    dir: PathBuf,
    /// The MAC key once the folder is found trustworthy, `None` when it is
    /// not (the reason was logged then, once).
    key: OnceLock<Option<[u8; KEY_LEN]>>,
}

/// A checked entry, to be handed to `Component::deserialize*`.
pub(super) enum Entry {
    /// The seal matched the open file's stamp: map it, reading only the
    /// pages wasmtime touches. `path` names the open file descriptor (under
    /// /proc/self/fd), so what is mapped is the inode that was checked.
    Sealed { path: PathBuf, _file: std::fs::File },
    /// The whole entry was read and its content MAC checked (a seal that
    /// was too fresh to vouch for the bytes, or a stamp that moved).
    Read(Vec<u8>),
}

/// What [`DiskCache::read`] found.
pub(super) enum Lookup {
    Found(Entry),
    Missing,
    /// An entry was there but is not to be loaded (the warning is logged);
    /// it has been removed.
    Discarded,
}

/// `fstat` fields that identify a file's content (see [`STAMP_LEN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    fn bytes(&self) -> [u8; STAMP_LEN] {
        let mut out = [0u8; STAMP_LEN];
        let fields = [
            self.dev,
            self.ino,
            self.size,
            self.mtime.0 as u64,
            self.mtime.1 as u64,
            self.ctime.0 as u64,
            self.ctime.1 as u64,
        ];
        for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn parse(b: &[u8]) -> Option<Self> {
        let mut it = b.chunks_exact(8).map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        });
        let mut next = || it.next();
        Some(Stamp {
            dev: next()?,
            ino: next()?,
            size: next()?,
            mtime: (next()? as i64, next()? as i64),
            ctime: (next()? as i64, next()? as i64),
        })
    }

    /// The later of mtime and ctime, in ns since the epoch.
    fn changed_ns(&self) -> i128 {
        let ns = |(s, n): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(n);
        ns(self.mtime).max(ns(self.ctime))
    }

    /// How long after the last change a stamp vouches for the content. A
    /// write within the same timestamp tick leaves mtime and ctime as they
    /// were (the "racy git" problem), so a stamp taken within a tick or
    /// two of the change proves nothing. Ticks are a few ms where the
    /// filesystem keeps nanoseconds; whole seconds where it does not.
    fn settle_ns(&self) -> i128 {
        if self.mtime.1 == 0 && self.ctime.1 == 0 {
            2_000_000_000
        } else {
            100_000_000
        }
    }

    /// Whether a stamp read at `at_ns` vouches for the content.
    fn settled_at(&self, at_ns: i128) -> bool {
        at_ns >= self.changed_ns() + self.settle_ns()
    }

    /// Whether the stamp vouches for the content now: the file's last
    /// change is old enough that a later write would move the stamp.
    pub fn settled_now(&self) -> bool {
        self.settled_at(now_ns())
    }
}

/// Whether /proc/self/fd names open files (it does wherever /proc is
/// mounted); without it a hit reads the entry instead of mapping it.
fn proc_fds() -> bool {
    static PROC: OnceLock<bool> = OnceLock::new();
    *PROC.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl DiskCache {
    pub(super) fn new(dir: PathBuf) -> Self {
        DiskCache {
            dir,
            key: OnceLock::new(),
        }
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the folder may be used: checked (and the folder and its key
    /// made, when missing) on the first call.
    pub(super) fn trusted(&self) -> bool {
        self.key().is_some()
    }

    fn key(&self) -> Option<&[u8; KEY_LEN]> {
        self.key
            .get_or_init(|| match open_folder(&self.dir) {
                Ok(key) => Some(key),
                Err(Refusal { why, fix }) => {
                    let fix = fix.map(|f| format!(". Fix: {f}")).unwrap_or_default();
                    tracing::warn!(
                        "not using the compile cache {} (its entries are native code that vessel runs): {why}; compiling in memory{fix}",
                        self.dir.display()
                    );
                    None
                }
            })
            .as_ref()
    }

    /// The path of the entry named `name` (a cache key).
    pub(super) fn entry_path(&self, name: &[u8; 32]) -> PathBuf {
        self.dir.join(format!(
            "{}.cwasm",
            blake3::Hash::from_bytes(*name).to_hex()
        ))
    }

    pub(super) fn seal_path(&self, name: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}.seal", blake3::Hash::from_bytes(*name).to_hex()))
    }

    /// The entry named `name`, once its owner, mode and seal check.
    ///
    /// Where the check costs least: the content MAC is computed once, when
    /// the entry is written, and kept in a sealed record of the entry
    /// file's stamp. A hit compares the open file's stamp with the seal
    /// (one `fstat` and a 136-byte read) and maps the entry, so the
    /// megabytes of native code are neither read nor hashed. Only when the
    /// stamp moved, or the seal was made too soon after the last change to
    /// vouch for it, is the whole entry read and its MAC checked (and the
    /// seal renewed). What this gives up: a disk that silently flips bits
    /// in place without the filesystem noticing is caught by wasmtime's own
    /// header checks only, as for every other file vessel runs.
    pub(super) fn read(&self, name: &[u8; 32]) -> Lookup {
        let Some(key) = self.key() else {
            return Lookup::Missing;
        };
        let path = self.entry_path(name);
        let discard = |why: &str| {
            tracing::warn!(entry = %path.display(), "discarding compile-cache entry: {why}");
            self.remove(name);
            Lookup::Discarded
        };
        let mut file = match open_nofollow(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Missing,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return discard("it is a symlink");
            }
            Err(e) => {
                tracing::warn!(entry = %path.display(), error = %e, "cannot read compile cache");
                return Lookup::Missing;
            }
        };
        // Checked on the open file: what is loaded is what was checked.
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return discard(&e.to_string()),
        };
        if let Some(why) = untrusted(&meta, 0o022) {
            return discard(&format!("{why}; it is replaced by a fresh entry"));
        }
        if !meta.is_file() {
            return discard("it is not a regular file");
        }
        let seal = match read_small::<SEAL_LEN>(&self.seal_path(name)) {
            Ok(Some(seal)) => seal,
            Ok(None) => return discard("it has no seal (an older format, or copied in)"),
            Err(why) => return discard(&format!("its seal: {why}")),
        };
        let Some(seal) = Seal::open(key, name, &seal) else {
            return discard(
                "seal MAC mismatch (corrupt, forged, or made by another cache, whose key differs)",
            );
        };
        let stamp = Stamp::of(&meta);
        self.touch(name);
        if seal.stamp == stamp && stamp.settled_at(seal.sealed_at) && proc_fds() {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
            return Lookup::Found(Entry::Sealed {
                path: PathBuf::from(format!("/proc/self/fd/{fd}")),
                _file: file,
            });
        }
        let mut bytes = Vec::new();
        if let Err(e) = file.read_to_end(&mut bytes) {
            return discard(&e.to_string());
        }
        // blake3::Hash compares in constant time.
        if mac_of(key, name, &bytes) != seal.content_mac {
            return discard(
                "MAC mismatch (corrupt, forged, or made by another cache, whose key differs)",
            );
        }
        // The bytes are this cache's: seal the stamp as it is now, so the
        // next hit maps the file (a seal that is still too fresh is renewed
        // again next time).
        if let Err(e) = self.seal(key, name, &seal.content_mac, &file) {
            tracing::debug!(entry = %path.display(), error = %e, "cannot renew compile-cache seal");
        }
        Lookup::Found(Entry::Read(bytes))
    }

    /// Writes the entry `name` atomically and durably, then its seal: a
    /// reader sees no entry, or the whole entry with a seal that vouches for
    /// it (a crash between the two leaves an entry without a seal, which is
    /// rebuilt). Nothing is written to a folder that is not trusted.
    pub(super) fn write(&self, name: &[u8; 32], payload: &[u8]) -> std::io::Result<()> {
        let Some(key) = self.key() else {
            return Ok(());
        };
        let path = self.entry_path(name);
        // NamedTempFile is created 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(payload)?;
        tmp.as_file().sync_data()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        let file = open_nofollow(&path)?;
        self.seal(key, name, &mac_of(key, name, payload), &file)
    }

    /// Writes the seal of entry `name` for the open entry `file`.
    fn seal(
        &self,
        key: &[u8; KEY_LEN],
        name: &[u8; 32],
        content_mac: &blake3::Hash,
        file: &std::fs::File,
    ) -> std::io::Result<()> {
        let stamp = Stamp::of(&file.metadata()?);
        let record = Seal {
            content_mac: *content_mac,
            stamp,
            sealed_at: now_ns(),
        }
        .to_bytes(key, name);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(&record)?;
        tmp.as_file().sync_data()?;
        tmp.persist(self.seal_path(name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes the entry `name` and its seal (wasmtime refused it, or it
    /// failed a check).
    pub(super) fn remove(&self, name: &[u8; 32]) {
        let _ = std::fs::remove_file(self.entry_path(name));
        let _ = std::fs::remove_file(self.seal_path(name));
    }

    /// The memo of the source file with `stamp`, under the engine `salt`.
    /// Keyed by the file's device and inode, so one source has one memo,
    /// replaced when it changes.
    fn source_path(&self, salt: &[u8; 32], stamp: &Stamp) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(salt);
        h.update(&stamp.dev.to_le_bytes());
        h.update(&stamp.ino.to_le_bytes());
        self.dir.join(format!("{}.src", h.finalize().to_hex()))
    }

    /// The cache name recorded for a source whose open file has `stamp`:
    /// its bytes are those hashed then, so they need not be read again.
    pub(super) fn source_name(&self, salt: &[u8; 32], stamp: &Stamp) -> Option<[u8; 32]> {
        let key = self.key()?;
        let record = read_small::<SOURCE_LEN>(&self.source_path(salt, stamp))
            .ok()
            .flatten()?;
        let (magic, rest) = record.split_at(SOURCE_MAGIC.len());
        let (stamp_bytes, rest) = rest.split_at(STAMP_LEN);
        let (name, mac) = rest.split_at(32);
        if magic != SOURCE_MAGIC
            || source_mac(key, salt, stamp_bytes, name)
                != blake3::Hash::from_bytes(mac.try_into().ok()?)
            || Stamp::parse(stamp_bytes)? != *stamp
        {
            return None;
        }
        name.try_into().ok()
    }

    /// Records that the source with `stamp` (read and hashed just now, its
    /// stamp unchanged across the read) has the cache name `name`; skipped
    /// while the stamp is too fresh to vouch for the bytes.
    pub(super) fn remember_source(&self, salt: &[u8; 32], stamp: &Stamp, name: &[u8; 32]) {
        let Some(key) = self.key() else { return };
        if !stamp.settled_at(now_ns()) {
            return;
        }
        let stamp_bytes = stamp.bytes();
        let mut record = Vec::with_capacity(SOURCE_LEN);
        record.extend_from_slice(SOURCE_MAGIC);
        record.extend_from_slice(&stamp_bytes);
        record.extend_from_slice(name);
        record.extend_from_slice(source_mac(key, salt, &stamp_bytes, name).as_bytes());
        let written = tempfile::NamedTempFile::new_in(&self.dir).and_then(|mut tmp| {
            tmp.write_all(&record)?;
            tmp.persist(self.source_path(salt, stamp))
                .map_err(|e| e.error)?;
            Ok(())
        });
        if let Err(e) = written {
            tracing::debug!(error = %e, "cannot write compile-cache source memo");
        }
    }
}

/// A seal: the entry's content MAC and the stamp of the entry file it
/// vouches for, under the cache key.
struct Seal {
    content_mac: blake3::Hash,
    stamp: Stamp,
    sealed_at: i128,
}

impl Seal {
    fn to_bytes(&self, key: &[u8; KEY_LEN], name: &[u8; 32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEAL_LEN);
        out.extend_from_slice(SEAL_MAGIC);
        out.extend_from_slice(self.content_mac.as_bytes());
        out.extend_from_slice(&self.stamp.bytes());
        out.extend_from_slice(&(self.sealed_at as u64).to_le_bytes());
        let mac = seal_mac(key, name, &out);
        out.extend_from_slice(mac.as_bytes());
        out
    }

    /// The seal in `bytes`, if its MAC checks under `key` for `name`.
    fn open(key: &[u8; KEY_LEN], name: &[u8; 32], bytes: &[u8; SEAL_LEN]) -> Option<Seal> {
        let (body, mac) = bytes.split_at(SEAL_LEN - 32);
        if seal_mac(key, name, body) != blake3::Hash::from_bytes(mac.try_into().ok()?) {
            return None;
        }
        let (magic, rest) = body.split_at(SEAL_MAGIC.len());
        if magic != SEAL_MAGIC {
            return None;
        }
        let (content_mac, rest) = rest.split_at(32);
        let (stamp, at) = rest.split_at(STAMP_LEN);
        Some(Seal {
            content_mac: blake3::Hash::from_bytes(content_mac.try_into().ok()?),
            stamp: Stamp::parse(stamp)?,
            sealed_at: i128::from(u64::from_le_bytes(at.try_into().ok()?)),
        })
    }
}

fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Reads a small record file of exactly `N` bytes: `None` when there is
/// none; an error when it is not this user's alone-writable regular file of
/// that length.
fn read_small<const N: usize>(path: &Path) -> Result<Option<[u8; N]>, String> {
    let mut file = match open_nofollow(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if let Some(why) = untrusted(&meta, 0o022) {
        return Err(why);
    }
    if !meta.is_file() || meta.len() != N as u64 {
        return Err(format!("it is not a {N}-byte file"));
    }
    let mut out = [0u8; N];
    file.read_exact(&mut out).map_err(|e| e.to_string())?;
    Ok(Some(out))
}

/// The MAC of an entry: its name (the cache key) and payload, under `key`.
/// The name is covered so that an entry cannot stand in for another.
fn mac_of(key: &[u8; KEY_LEN], name: &[u8; 32], payload: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(name);
    h.update(payload);
    h.finalize()
}

/// The MAC of a seal's body, for the entry `name`.
fn seal_mac(key: &[u8; KEY_LEN], name: &[u8; 32], body: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"seal");
    h.update(name);
    h.update(body);
    h.finalize()
}

/// The MAC of a source memo: the engine salt, the source's stamp and the
/// cache name it maps to.
fn source_mac(key: &[u8; KEY_LEN], salt: &[u8; 32], stamp: &[u8], name: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(b"source");
    h.update(salt);
    h.update(stamp);
    h.update(name);
    h.finalize()
}

/// Why a file or folder with `meta` is not to be trusted: not owned by
/// this user, or with any of the `forbidden` mode bits.
fn untrusted(meta: &std::fs::Metadata, forbidden: u32) -> Option<String> {
    let me = private::current_uid();
    if meta.uid() != me {
        return Some(format!(
            "it is owned by uid {}, not by you (uid {me})",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o777;
    if mode & forbidden != 0 {
        let what = if forbidden & 0o044 != 0 {
            "read or write"
        } else {
            "write"
        };
        return Some(format!("group or others can {what} it (mode {mode:03o})"));
    }
    None
}

/// Why a cache folder is not used, and what fixes that.
struct Refusal {
    why: String,
    fix: Option<String>,
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Refusal { why, fix: None }
    }
}

/// Checks the folder `dir` (making it 0700 when missing) and returns its
/// MAC key (made when missing), or why the folder is not to be used, with
/// the fix.
fn open_folder(dir: &Path) -> Result<[u8; KEY_LEN], Refusal> {
    let shown = dir.display();
    private::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_dir() {
        return Err(String::from("it is not a directory").into());
    }
    if let Some(why) = untrusted(&meta, 0o022) {
        let fix = if meta.uid() == private::current_uid() {
            format!("`chmod go-w {shown}`")
        } else {
            format!(
                "use a cache dir of your own (--cache-dir), or `chown {} {shown}` if you trust every entry in it",
                private::current_uid()
            )
        };
        return Err(Refusal {
            why,
            fix: Some(fix),
        });
    }
    let path = dir.join(KEY_FILE);
    match read_key(&path) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => make_key(dir, &path).map_err(Refusal::from),
        Err(why) => Err(Refusal {
            why: format!("its key {}: {why}", path.display()),
            fix: Some(format!(
                "`rm {}` (a new key is made, and the entries are rebuilt)",
                path.display()
            )),
        }),
    }
}

/// Reads the key at `path`: `None` when there is none yet.
fn read_key(path: &Path) -> Result<Option<[u8; KEY_LEN]>, String> {
    let mut file = match std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    // A key others can read is a key others can sign entries with.
    if let Some(why) = untrusted(&meta, 0o077) {
        return Err(why);
    }
    if !meta.is_file() {
        return Err("it is not a regular file".into());
    }
    let mut key = [0u8; KEY_LEN];
    let mut rest = Vec::new();
    file.read_exact(&mut key)
        .and_then(|()| file.read_to_end(&mut rest))
        .map_err(|e| format!("cannot read it: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("it is not {KEY_LEN} bytes long"));
    }
    Ok(Some(key))
}

/// Makes the key: written in full to a private temporary file, then linked
/// into place unless another process got there first, whose key is then
/// the one used.
fn make_key(dir: &Path, path: &Path) -> Result<[u8; KEY_LEN], String> {
    let fail = |e: std::io::Error| format!("cannot make its key {}: {e}", path.display());
    let mut key = [0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(fail)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(&key)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(fail)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(key),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => match read_key(path) {
            Ok(Some(theirs)) => Ok(theirs),
            Ok(None) => Err(format!("{} vanished as it was made", path.display())),
            Err(why) => Err(format!("its key {}: {why}", path.display())),
        },
        Err(e) => Err(fail(e.error)),
    }
}
