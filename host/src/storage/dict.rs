//! The dict storage trait: what every backend (embedded sled, PostgreSQL)
//! offers, with domain errors. The guest-facing semantics are in
//! `wit/dict.wit`; this trait carries them out.
//!
//! Semantics every backend must keep:
//! - Versions grow strictly per dict with every write of any key (never
//!   reused, even after a delete), and CAS compares versions, never values.
//! - `put` with `if_absent` is one atomic step, never exists-then-set.
//! - An entry expires `idle_expiry_ms` after its last read or write, or at
//!   its own TTL when one was given; expired entries are invisible (lazy) and
//!   removed by `sweep_expired`. `len` is exact: expired entries never count.
//! - Counters are stored as the decimal ASCII text of an i64.
//! - Lease tokens grow strictly per key across the dict's life.
//! - Every method that writes returns only once the write is durable.

mod backend;
pub mod expiry;
mod sweeper;

pub use backend::DictBackend;
pub use sweeper::{Sweeper, spawn_sweeper};

use crate::error_kind::ErrorKind;

/// Longest dict name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Checks a dict name: 1 to 64 bytes of ASCII letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), DictError> {
    let bad = |reason: &str| DictError::InvalidName {
        name: name.into(),
        reason: reason.into(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad(&format!(
            "it is {} bytes long; the limit is {MAX_NAME_BYTES}",
            name.len()
        )));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(bad("it must start with an ASCII letter or digit"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(bad(&format!(
            "{c:?} is not allowed (use ASCII letters, digits, `.`, `_`, `-`)"
        )));
    }
    Ok(())
}

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: u32 = 4096;
/// Largest value, in bytes (100 MiB, as Modal).
pub const MAX_VALUE_BYTES: u64 = 100 * 1024 * 1024;
/// Most pairs in one `update` (as Modal).
pub const MAX_UPDATE_ENTRIES: u32 = 10_000;
/// Most items in one scan page; a larger (or zero) limit is clamped to it.
pub const MAX_SCAN_LIMIT: u32 = 1_000;
/// Default idle period after which an entry expires: 7 days.
pub const DEFAULT_IDLE_EXPIRY_MS: u64 = 7 * 24 * 3600 * 1000;

/// Checks a key against [`MAX_KEY_BYTES`].
pub fn check_key(key: &str) -> Result<(), DictError> {
    if key.len() > MAX_KEY_BYTES as usize {
        return Err(DictError::InvalidKey(format!(
            "a key of {} bytes is over the limit of {MAX_KEY_BYTES} bytes (max-key-bytes)",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a value size against [`MAX_VALUE_BYTES`].
pub fn check_value(len: usize) -> Result<(), DictError> {
    if len as u64 > MAX_VALUE_BYTES {
        return Err(DictError::TooLarge(format!(
            "a value of {len} bytes is over the limit of {MAX_VALUE_BYTES} bytes \
             (100 MiB, max-value-bytes)"
        )));
    }
    Ok(())
}

/// Checks the size of an `update` against [`MAX_UPDATE_ENTRIES`].
pub fn check_update_len(n: usize) -> Result<(), DictError> {
    check_batch_len(n, "an update")
}

/// Parses a counter as every backend stores it: the decimal ASCII text of
/// an i64 (shared with `wasi:keyvalue`'s `increment`).
pub fn parse_counter(key: &str, value: &[u8]) -> Result<i64, DictError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| DictError::NotACounter { key: key.into() })
}

/// Checks a scan's arguments as every backend must and returns its page
/// size: `limit`, or [`MAX_SCAN_LIMIT`] when it is 0 or larger.
pub fn check_scan(
    dict: &str,
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<u32, DictError> {
    validate_name(dict)?;
    check_key(prefix)?;
    if let Some(c) = cursor {
        check_key(c)?;
    }
    Ok(if limit == 0 || limit > MAX_SCAN_LIMIT {
        MAX_SCAN_LIMIT
    } else {
        limit
    })
}

/// Checks the size of a batch (`what`: "an update", ...) against
/// [`MAX_UPDATE_ENTRIES`].
pub fn check_batch_len(n: usize, what: &str) -> Result<(), DictError> {
    if n > MAX_UPDATE_ENTRIES as usize {
        return Err(DictError::TooLarge(format!(
            "{what} of {n} entries is over the limit of {MAX_UPDATE_ENTRIES} entries \
             (max-update-entries); nothing was written"
        )));
    }
    Ok(())
}

/// Checks a put's TTL: when given, at least 1 ms.
pub fn check_put_ttl(opts: &PutOptions) -> Result<(), DictError> {
    if opts.ttl_ms == Some(0) {
        return Err(DictError::InvalidArgument(
            "ttl must be at least 1 ms (omit it for the idle expiry)".into(),
        ));
    }
    Ok(())
}

/// Checks a lease's TTL: at least 1 ms.
pub fn check_lease_ttl(ttl_ms: u64) -> Result<(), DictError> {
    if ttl_ms == 0 {
        return Err(DictError::InvalidArgument(
            "a lease ttl must be at least 1 ms".into(),
        ));
    }
    Ok(())
}

/// A value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictEntry {
    pub value: Vec<u8>,
    pub version: u64,
}

/// Conditions and lifetime of a put.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub if_absent: bool,
    pub if_version: Option<u64>,
    /// Expire this long after the write instead of after the idle period.
    pub ttl_ms: Option<u64>,
}

/// What a put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Written {
        version: u64,
    },
    /// `if_absent` and the key was present: nothing written.
    Skipped,
}

/// One item of a scan page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub version: u64,
    /// The value's length in bytes, given with or without the value (so a
    /// lister can leave large values out without reading them).
    pub size: u64,
}

/// A page of a scan; `cursor` continues it (`None`: done).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanPage {
    pub items: Vec<ScanItem>,
    pub cursor: Option<String>,
}

/// A held lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo {
    pub token: u64,
    pub expires_at_ms: u64,
}

/// A dict in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DictInfo {
    pub name: String,
    pub len: u64,
    pub created_ms: u64,
}

/// The limits a store enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DictLimits {
    pub max_key_bytes: u32,
    pub max_value_bytes: u64,
    pub max_update_entries: u32,
    pub max_scan_limit: u32,
    pub idle_expiry_ms: u64,
}

/// Domain failures of a dict store.
#[derive(Debug, thiserror::Error)]
pub enum DictError {
    #[error("dict `{0}` does not exist")]
    NotFound(String),
    #[error("dict `{0}` already exists")]
    AlreadyExists(String),
    #[error("invalid dict name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Another argument is out of range (a zero TTL, say).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("version mismatch on key `{key}`")]
    VersionMismatch { key: String },
    #[error("the value of key `{key}` is not a counter (decimal i64 text)")]
    NotACounter { key: String },
    #[error("incrementing key `{key}` overflows i64")]
    Overflow { key: String },
    #[error("the lease on key `{key}` is no longer held")]
    LeaseLost { key: String },
    /// The disk holding the store is full (ENOSPC).
    #[error("out of disk space: {0}")]
    DiskFull(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("storage i/o: {0}")]
    Io(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl DictError {
    /// The kind of failure, which every surface maps with one table.
    /// `NotACounter` and `Overflow` are argument errors: the increment does
    /// not fit the stored value.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DictError::NotFound(_) => ErrorKind::NotFound,
            DictError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            DictError::InvalidName { .. }
            | DictError::InvalidKey(_)
            | DictError::InvalidArgument(_)
            | DictError::NotACounter { .. }
            | DictError::Overflow { .. } => ErrorKind::InvalidArgument,
            DictError::TooLarge(_) => ErrorKind::TooLarge,
            DictError::VersionMismatch { .. } | DictError::LeaseLost { .. } => {
                ErrorKind::PreconditionFailed
            }
            DictError::Unavailable(_) => ErrorKind::Unavailable,
            DictError::DiskFull(_) => ErrorKind::NoSpace,
            DictError::Corrupt(_) | DictError::Io(_) => ErrorKind::Io,
        }
    }
}

/// A dict backend. Methods block (they may wait for an fsync); async callers
/// run them on a blocking thread.
pub trait DictStore: Send + Sync + std::fmt::Debug {
    /// Creates `name`; false if it existed already.
    fn create(&self, name: &str) -> Result<bool, DictError>;
    fn delete(&self, name: &str) -> Result<(), DictError>;
    fn exists(&self, name: &str) -> Result<bool, DictError>;
    fn list(&self) -> Result<Vec<DictInfo>, DictError>;

    fn get(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError>;
    fn get_many(&self, dict: &str, keys: &[String]) -> Result<Vec<Option<DictEntry>>, DictError>;
    fn put(
        &self,
        dict: &str,
        key: &str,
        value: &[u8],
        opts: &PutOptions,
    ) -> Result<PutOutcome, DictError>;
    fn pop(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError>;
    fn contains(&self, dict: &str, key: &str) -> Result<bool, DictError>;
    fn len(&self, dict: &str) -> Result<u64, DictError>;
    /// All or nothing; at most `max_update_entries` pairs.
    fn update(&self, dict: &str, entries: &[(String, Vec<u8>)]) -> Result<(), DictError>;
    /// Removes every key of `keys` that is present, all in one atomic step;
    /// absent keys are skipped. Returns how many entries were removed. At
    /// most `max_update_entries` keys.
    fn remove_many(&self, dict: &str, keys: &[String]) -> Result<u64, DictError>;
    /// Keys with `prefix` after `cursor` (exclusive), in key order.
    fn scan(
        &self,
        dict: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
        with_values: bool,
    ) -> Result<ScanPage, DictError>;
    fn clear(&self, dict: &str) -> Result<(), DictError>;
    fn increment(&self, dict: &str, key: &str, delta: i64) -> Result<i64, DictError>;

    /// Takes the lease on `key`, or `None` while another live lease holds it.
    fn lock(&self, dict: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseInfo>, DictError>;
    /// Extends a held lease; `LeaseLost` if it expired and was taken.
    fn renew(&self, dict: &str, key: &str, token: u64, ttl_ms: u64)
    -> Result<LeaseInfo, DictError>;
    /// Gives a lease up; releasing a lease no longer held is not an error.
    fn release(&self, dict: &str, key: &str, token: u64) -> Result<(), DictError>;

    /// Removes up to `max` expired entries; returns how many.
    fn sweep_expired(&self, max: usize) -> Result<usize, DictError>;
    fn limits(&self) -> DictLimits;

    /// Whether the store is local: its reads (`get`, `get_many`,
    /// `contains`, `scan`) are cheap enough to run on an async worker,
    /// served from memory or a local page read, never waiting for the
    /// network or an fsync; and its writes wait only for the local disk.
    /// Async callers then skip the hop to a blocking thread, which costs
    /// far more than such a read: reads run in place, writes in place with
    /// the worker's other tasks handed off. False unless a backend says so.
    fn inline_reads(&self) -> bool {
        false
    }

    /// Runs `f` (calls to this store) with the waits of its writes for
    /// durability taken out: a write returns once its outcome is settled
    /// (no later write can change it), and the returned wait, when there
    /// is one, resolves once every such write (and every write a call in
    /// `f` read) is durable. Nothing from `f` may be answered before it
    /// resolves. An async caller awaits it instead of holding its thread
    /// while another writer's fsync runs. Stores whose writes are durable
    /// when they return keep this default: `f` runs as is, no wait.
    fn deferring(&self, f: &mut dyn FnMut()) -> Option<DurableWait> {
        f();
        None
    }
}

/// See [`DictStore::deferring`].
pub type DurableWait =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), DictError>> + Send>>;
