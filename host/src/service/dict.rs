//! Dict operations of the service API (`vessel dict ...`): plain methods
//! with serialisable results, shared by the direct and forwarded CLI paths.

use crate::error_kind::ErrorKind;
use serde::{Deserialize, Serialize};

use super::Service;
use crate::storage::dict::{DictEntry, DictError, DictStore, LeaseInfo, PutOptions, PutOutcome};

/// Failures of a dict operation of the service.
#[derive(Debug, thiserror::Error)]
pub enum DictServiceError {
    #[error("this host has no dict store")]
    NoStore,
    #[error("key `{key}` is not in dict `{dict}`")]
    NoKey { dict: String, key: String },
    #[error(transparent)]
    Store(#[from] DictError),
}

impl DictServiceError {
    /// The kind of failure (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            DictServiceError::NoKey { .. } => ErrorKind::NotFound,
            DictServiceError::NoStore => ErrorKind::Unavailable,
            DictServiceError::Store(e) => e.kind(),
        }
    }

    /// Whether the caller got something wrong (a bad name, key or value)
    /// rather than the operation failing: the exit-code table's usage kinds.
    pub fn is_usage(&self) -> bool {
        self.kind().is_usage()
    }
}

/// A dict in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DictSummary {
    pub name: String,
    /// Live entries (exact).
    pub len: u64,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// One entry as the CLI shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DictItem {
    pub key: String,
    pub version: u64,
    /// The value's length in bytes.
    #[serde(default)]
    pub size: u64,
    /// The value decoded as JSON, when it is JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// The bytes in hex, when they are not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_hex: Option<String>,
    /// The value was left out of this listing: it is over the listing's
    /// inline limit (1 MiB). Fetch it by key.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub omitted: bool,
}

impl DictItem {
    pub(crate) fn new(key: String, version: u64, bytes: &[u8]) -> Self {
        let size = bytes.len() as u64;
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(v) => DictItem {
                key,
                version,
                size,
                value: Some(v),
                value_hex: None,
                omitted: false,
            },
            Err(_) => DictItem {
                key,
                version,
                size,
                value: None,
                value_hex: Some(hex(bytes)),
                omitted: false,
            },
        }
    }

    /// An entry listed without its value.
    pub(crate) fn omitted(key: String, version: u64, size: u64) -> Self {
        DictItem {
            key,
            version,
            size,
            value: None,
            value_hex: None,
            omitted: true,
        }
    }

    /// The value as one line of text: JSON, or `hex:<digits>` (or a note
    /// that a listing left it out).
    pub fn shown(&self) -> String {
        match (&self.value, &self.value_hex) {
            (Some(v), _) => v.to_string(),
            (None, Some(h)) => format!("hex:{h}"),
            (None, None) if self.omitted => {
                format!("<{} bytes, not listed: get the key>", self.size)
            }
            (None, None) => String::new(),
        }
    }
}

/// Bytes as lowercase hex (how listings show values that are not JSON,
/// and what cursors are).
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The entry a store answered for `key`, or `NoKey`.
fn found(name: &str, key: &str, e: Option<DictEntry>) -> Result<DictEntry, DictServiceError> {
    e.ok_or_else(|| DictServiceError::NoKey {
        dict: name.into(),
        key: key.into(),
    })
}

/// The condition of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutIf {
    /// Write whatever is there.
    Always,
    /// Write only if the key is absent.
    Absent,
    /// Write only if the entry's version is this one (compare-and-swap).
    Version(u64),
}

/// What a conditional put did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutResult {
    Written {
        version: u64,
    },
    /// The condition did not hold; nothing was written. `current`: the
    /// entry's version as read just after (`None`: absent).
    Refused {
        current: Option<u64>,
    },
}

/// A page of `items`: what was asked for, and whether more remain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
pub struct DictItems {
    pub items: Vec<DictItem>,
    pub more: bool,
    /// When `more`: the opaque cursor that continues after the last item
    /// (pass it back as `cursor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The opaque cursor after `key`.
pub fn cursor_after(key: &str) -> String {
    hex(key.as_bytes())
}

/// The key a cursor continues after; `None` for a malformed cursor.
pub fn key_of_cursor(cursor: &str) -> Option<String> {
    String::from_utf8(bytes_of_hex(cursor)?).ok()
}

/// The bytes of a hex string (either case); `None` when it is not hex.
pub(crate) fn bytes_of_hex(h: &str) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Service {
    fn dicts(&self) -> Result<&dyn DictStore, DictServiceError> {
        self.stores
            .dicts
            .as_deref()
            .ok_or(DictServiceError::NoStore)
    }

    pub(crate) fn dict_must_exist(&self, name: &str) -> Result<(), DictServiceError> {
        if self.dicts()?.exists(name)? {
            Ok(())
        } else {
            Err(DictError::NotFound(name.into()).into())
        }
    }

    /// Removes `key` of an existing dict and returns its entry; `NoKey`
    /// when absent.
    fn pop_entry(&self, name: &str, key: &str) -> Result<DictEntry, DictServiceError> {
        self.dict_must_exist(name)?;
        found(name, key, self.dicts()?.pop(name, key)?)
    }

    pub fn dict_exists(&self, name: &str) -> Result<bool, DictServiceError> {
        Ok(self.dicts()?.exists(name)?)
    }

    /// Creates `name`; false if it existed.
    pub fn dict_create(&self, name: &str) -> Result<bool, DictServiceError> {
        Ok(self.dicts()?.create(name)?)
    }

    pub fn dict_delete(&self, name: &str) -> Result<(), DictServiceError> {
        Ok(self.dicts()?.delete(name)?)
    }

    pub fn dict_list(&self) -> Result<Vec<DictSummary>, DictServiceError> {
        Ok(self
            .dicts()?
            .list()?
            .into_iter()
            .map(|i| DictSummary {
                name: i.name,
                len: i.len,
                created_ms: i.created_ms,
            })
            .collect())
    }

    pub fn dict_clear(&self, name: &str) -> Result<(), DictServiceError> {
        Ok(self.dicts()?.clear(name)?)
    }

    /// The entry at `key`; `NoKey` when absent.
    pub fn dict_get(&self, name: &str, key: &str) -> Result<DictItem, DictServiceError> {
        let e = found(name, key, self.dicts()?.get(name, key)?)?;
        Ok(DictItem::new(key.into(), e.version, &e.value))
    }

    /// Writes `value` at `key` of an existing dict; returns the version.
    pub fn dict_put(&self, name: &str, key: &str, value: &[u8]) -> Result<u64, DictServiceError> {
        self.dict_must_exist(name)?;
        match self
            .dicts()?
            .put(name, key, value, &PutOptions::default())?
        {
            PutOutcome::Written { version } => Ok(version),
            // Unconditional puts always write.
            PutOutcome::Skipped => Err(DictError::Unavailable(format!(
                "the store skipped an unconditional put of key `{key}`"
            ))
            .into()),
        }
    }

    /// Writes `value` at `key` of an existing dict if `cond` holds, with a
    /// TTL when given: one atomic step in the store.
    pub fn dict_put_if(
        &self,
        name: &str,
        key: &str,
        value: &[u8],
        cond: PutIf,
        ttl_ms: Option<u64>,
    ) -> Result<PutResult, DictServiceError> {
        self.dict_must_exist(name)?;
        let store = self.dicts()?;
        let opts = PutOptions {
            if_absent: cond == PutIf::Absent,
            if_version: match cond {
                PutIf::Version(v) => Some(v),
                _ => None,
            },
            ttl_ms,
        };
        let refused = || -> Result<PutResult, DictServiceError> {
            let current = store.get(name, key)?.map(|e| e.version);
            Ok(PutResult::Refused { current })
        };
        match store.put(name, key, value, &opts) {
            Ok(PutOutcome::Written { version }) => Ok(PutResult::Written { version }),
            Ok(PutOutcome::Skipped) | Err(DictError::VersionMismatch { .. }) => refused(),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes and version at `key`; `NoKey` when absent.
    pub fn dict_get_raw(&self, name: &str, key: &str) -> Result<(Vec<u8>, u64), DictServiceError> {
        let e = found(name, key, self.dicts()?.get(name, key)?)?;
        Ok((e.value, e.version))
    }

    /// Removes `key` and returns the version it had; `NoKey` when absent.
    pub fn dict_remove(&self, name: &str, key: &str) -> Result<u64, DictServiceError> {
        Ok(self.pop_entry(name, key)?.version)
    }

    /// Adds `by` to the counter at `key` (a missing key counts from 0);
    /// returns the new value.
    pub fn dict_increment(&self, name: &str, key: &str, by: i64) -> Result<i64, DictServiceError> {
        Ok(self.dicts()?.increment(name, key, by)?)
    }

    /// Writes every pair at once (all or nothing; at most 10,000).
    pub fn dict_update(
        &self,
        name: &str,
        entries: &[(String, Vec<u8>)],
    ) -> Result<(), DictServiceError> {
        Ok(self.dicts()?.update(name, entries)?)
    }

    /// The entries at `keys`, in order (`None`: absent).
    pub fn dict_get_many(
        &self,
        name: &str,
        keys: &[String],
    ) -> Result<Vec<Option<DictItem>>, DictServiceError> {
        let got = self.dicts()?.get_many(name, keys)?;
        Ok(keys
            .iter()
            .zip(got)
            .map(|(k, e)| e.map(|e| DictItem::new(k.clone(), e.version, &e.value)))
            .collect())
    }

    /// Removes `key` and returns its entry; `NoKey` when absent.
    /// Removes `key` and returns its bytes and version; `NoKey` when absent.
    pub fn dict_pop_raw(&self, name: &str, key: &str) -> Result<(Vec<u8>, u64), DictServiceError> {
        let e = self.pop_entry(name, key)?;
        Ok((e.value, e.version))
    }

    pub fn dict_pop(&self, name: &str, key: &str) -> Result<DictItem, DictServiceError> {
        let (value, version) = self.dict_pop_raw(name, key)?;
        Ok(DictItem::new(key.into(), version, &value))
    }

    /// Takes the lease on `key` for `ttl_ms`; `None` while another live
    /// lease holds it.
    pub fn dict_lock(
        &self,
        name: &str,
        key: &str,
        ttl_ms: u64,
    ) -> Result<Option<LeaseInfo>, DictServiceError> {
        Ok(self.dicts()?.lock(name, key, ttl_ms)?)
    }

    /// Extends the lease `token` holds; `LeaseLost` when it is no longer
    /// held (expired and taken, or released).
    pub fn dict_renew(
        &self,
        name: &str,
        key: &str,
        token: u64,
        ttl_ms: u64,
    ) -> Result<LeaseInfo, DictServiceError> {
        Ok(self.dicts()?.renew(name, key, token, ttl_ms)?)
    }

    /// Gives the lease `token` holds up (a lease no longer held is fine).
    pub fn dict_release(&self, name: &str, key: &str, token: u64) -> Result<(), DictServiceError> {
        Ok(self.dicts()?.release(name, key, token)?)
    }

    /// Up to `limit` entries in key order (`None`: all), paging through
    /// the store with its cursor so memory stays bounded per page.
    pub fn dict_items(
        &self,
        name: &str,
        limit: Option<usize>,
    ) -> Result<DictItems, DictServiceError> {
        self.dict_items_page(name, "", None, limit)
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order,
    /// strictly after key `after` (a page's `next`, decoded); `None`: all.
    /// Paging never repeats or skips a key that exists throughout, however
    /// writers change the dict meanwhile.
    pub fn dict_items_page(
        &self,
        name: &str,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<DictItems, DictServiceError> {
        items_page(self.dicts()?, name, prefix, after, limit)
    }

    /// Walks the entries whose keys start with `prefix` after key `after`,
    /// handing `each` every entry with its value (a large value is read on
    /// its own, when its turn comes), so memory holds one batch of values.
    /// `each` returns `false` to stop.
    pub fn dict_walk(
        &self,
        name: &str,
        prefix: &str,
        after: Option<String>,
        mut each: impl FnMut(&str, u64, &[u8]) -> bool,
    ) -> Result<(), DictServiceError> {
        let store = self.dicts()?;
        let mut walk =
            super::items::ItemWalk::new(store, name, prefix, after, super::items::INLINE_VALUE_MAX);
        while let Some(w) = walk.next_item()? {
            let go_on = match w.value {
                Some(v) => each(&w.key, w.version, &v),
                // Read alone; skipped if it went away since the scan.
                None => match store.get(name, &w.key)? {
                    Some(e) => each(&w.key, e.version, &e.value),
                    None => true,
                },
            };
            if !go_on {
                break;
            }
        }
        Ok(())
    }
}

/// A JSON page of up to `limit` entries (`None`: all, with no byte budget),
/// values over [`INLINE_VALUE_MAX`] left out with their size.
fn items_page(
    store: &dyn DictStore,
    name: &str,
    prefix: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> Result<DictItems, DictServiceError> {
    let mut walk = super::items::ItemWalk::new(
        store,
        name,
        prefix,
        after.map(str::to_owned),
        super::items::INLINE_VALUE_MAX,
    );
    let mut items: Vec<DictItem> = Vec::new();
    let mut bytes = 0u64;
    while let Some(w) = walk.next_item()? {
        let full = limit.is_some_and(|l| items.len() >= l)
            || (limit.is_some() && bytes >= super::items::PAGE_VALUE_BYTES);
        if full {
            let next = items.last().map(|i| cursor_after(&i.key));
            return Ok(DictItems {
                items,
                more: true,
                next,
            });
        }
        bytes = bytes.saturating_add(w.value.as_ref().map_or(0, |v| v.len() as u64));
        items.push(match w.value {
            Some(v) => DictItem::new(w.key, w.version, &v),
            None => DictItem::omitted(w.key, w.version, w.size),
        });
    }
    Ok(DictItems {
        items,
        more: false,
        next: None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::storage::embedded::EmbeddedOptions;

    #[test]
    fn items_decode_json_and_show_hex_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let svc = Service::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
        assert!(svc.dict_create("d").unwrap());
        svc.dict_put("d", "j", br#"{"a":1}"#).unwrap();
        svc.dict_put("d", "b", b"\xff\x00").unwrap();
        let got = svc.dict_items("d", None).unwrap();
        assert!(!got.more);
        assert_eq!(got.items[0].shown(), "hex:ff00");
        assert_eq!(got.items[1].shown(), r#"{"a":1}"#);
        assert_eq!(svc.dict_items("d", Some(1)).unwrap().items.len(), 1);
        assert!(svc.dict_items("d", Some(1)).unwrap().more);
        assert!(matches!(
            svc.dict_get("d", "nope"),
            Err(DictServiceError::NoKey { .. })
        ));
        assert!(matches!(
            svc.dict_put("missing", "k", b"1"),
            Err(DictServiceError::Store(DictError::NotFound(_)))
        ));
        assert_eq!(svc.dict_list().unwrap()[0].len, 2);
    }
}
