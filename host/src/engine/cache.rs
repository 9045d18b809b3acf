//! The on-disk compile cache. Its entries are native code that vessel maps
//! and runs, so whoever can write them runs code inside vessel; it is
//! trusted as ssh trusts `~/.ssh`:
//!
//! - The folder must be owned by this user and not writable by group or
//!   others. Otherwise it is not used at all: a warning names the folder
//!   and the fix, and components are compiled in memory.
//! - Each entry carries a keyed BLAKE3 MAC of its name and payload. The key
//!   is [`KEY_FILE`] in the folder (32 random bytes, 0600), made on first
//!   use and put in place atomically (the first of two racing processes
//!   wins, the other reads its key). An entry whose MAC does not check
//!   (corrupt, forged with a plain checksum, or copied from another cache,
//!   which has another key) is deleted and rebuilt: its bytes never reach
//!   `Component::deserialize`. A key that others can read is a key others
//!   can forge with, so it is refused too.
//! - An entry file not owned by this user, or writable by group or others,
//!   is not read: it is replaced by a fresh one.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::private;

/// The first bytes of every entry (version 2: with a keyed MAC).
const ENTRY_MAGIC: &[u8; 8] = b"VSLCWC02";
/// The length of an entry's header: magic and MAC.
const HEADER_LEN: usize = ENTRY_MAGIC.len() + blake3::OUT_LEN;
/// The file in the cache folder holding the MAC key.
const KEY_FILE: &str = "key";
const KEY_LEN: usize = blake3::KEY_LEN;

/// A compile-cache folder, checked on first use.
#[derive(Debug)]
pub(super) struct DiskCache {
    dir: PathBuf,
    /// The MAC key once the folder is found trustworthy, `None` when it is
    /// not (the reason was logged then, once).
    key: OnceLock<Option<[u8; KEY_LEN]>>,
}

/// A checked entry: its MAC matched, so its payload is what this cache
/// wrote.
pub(super) struct Entry {
    bytes: Vec<u8>,
}

impl Entry {
    /// The bytes `precompile_component` produced.
    pub(super) fn payload(&self) -> &[u8] {
        self.bytes.get(HEADER_LEN..).unwrap_or_default()
    }
}

/// What [`DiskCache::read`] found.
pub(super) enum Lookup {
    Found(Entry),
    Missing,
    /// An entry was there but is not to be loaded (the warning is logged);
    /// it has been removed.
    Discarded,
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

    /// The entry named `name`, once its owner, mode and MAC check.
    pub(super) fn read(&self, name: &[u8; 32]) -> Lookup {
        let Some(key) = self.key() else {
            return Lookup::Missing;
        };
        let path = self.entry_path(name);
        let discard = |why: &str| {
            tracing::warn!(entry = %path.display(), "discarding compile-cache entry: {why}");
            let _ = std::fs::remove_file(&path);
            Lookup::Discarded
        };
        let mut file = match std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
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
        // Checked on the open file: what is read is what was checked.
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
        let mut bytes = Vec::new();
        if let Err(e) = file.read_to_end(&mut bytes) {
            return discard(&e.to_string());
        }
        let (Some(magic), Some(mac), Some(payload)) = (
            bytes.get(..ENTRY_MAGIC.len()),
            bytes.get(ENTRY_MAGIC.len()..HEADER_LEN),
            bytes.get(HEADER_LEN..),
        ) else {
            return discard("entry is truncated");
        };
        if magic != ENTRY_MAGIC {
            return discard("bad magic (another format or version)");
        }
        let Ok(mac) = <[u8; 32]>::try_from(mac) else {
            return discard("entry is truncated");
        };
        // blake3::Hash compares in constant time.
        if mac_of(key, name, payload) != blake3::Hash::from_bytes(mac) {
            return discard(
                "MAC mismatch (corrupt, forged, or made by another cache, whose key differs)",
            );
        }
        Lookup::Found(Entry { bytes })
    }

    /// Writes the entry `name` atomically: a reader sees the old state or
    /// the whole new entry, never a prefix. Nothing is written to a folder
    /// that is not trusted.
    pub(super) fn write(&self, name: &[u8; 32], payload: &[u8]) -> std::io::Result<()> {
        let Some(key) = self.key() else {
            return Ok(());
        };
        // NamedTempFile is created 0600.
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(ENTRY_MAGIC)?;
        tmp.write_all(mac_of(key, name, payload).as_bytes())?;
        tmp.write_all(payload)?;
        tmp.persist(self.entry_path(name)).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes the entry `name` (wasmtime refused it).
    pub(super) fn remove(&self, name: &[u8; 32]) {
        let _ = std::fs::remove_file(self.entry_path(name));
    }
}

/// The MAC of an entry: its name (the cache key) and payload, under `key`.
/// The name is covered so that an entry cannot stand in for another.
fn mac_of(key: &[u8; KEY_LEN], name: &[u8; 32], payload: &[u8]) -> blake3::Hash {
    let mut h = blake3::Hasher::new_keyed(key);
    h.update(name);
    h.update(payload);
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
