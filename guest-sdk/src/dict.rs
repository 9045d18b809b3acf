use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::vessel::storage::dict as wit;

/// A dict: a persistent map from string keys to values.
///
/// Values are JSON by default ([`get`](Dict::get), [`put`](Dict::put)), so
/// they read well in `vessel dict get`; the `_raw` methods store bytes as
/// they are.
#[derive(Debug)]
pub struct Dict {
    inner: wit::Dict,
}

/// A raw value with its version, for compare-and-swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    pub version: u64,
}

/// One key of a [`Dict::scan`] page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanItem {
    pub key: String,
    /// Present when the scan asked for values.
    pub value: Option<Vec<u8>>,
    pub version: u64,
}

/// The limits the host enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: u32,
    pub max_value_bytes: u64,
    pub max_update_entries: u32,
    pub max_scan_limit: u32,
    pub idle_expiry_seconds: u64,
}

/// A lock on one key; see [`Dict::lock`].
#[derive(Debug)]
pub struct Lease {
    inner: wit::Lease,
}

impl Lease {
    /// The fencing token: strictly larger for every later lease on the key.
    pub fn token(&self) -> u64 {
        self.inner.token()
    }
    pub fn key(&self) -> String {
        self.inner.key()
    }
    /// Extends the lease to `ttl_ms` from now.
    pub fn renew(&self, ttl_ms: u64) -> Result<(), Error> {
        Ok(self.inner.renew(ttl_ms)?)
    }
    /// Gives the lock up.
    pub fn release(self) -> Result<(), Error> {
        Ok(self.inner.release()?)
    }
}

fn no_options() -> wit::PutOptions {
    wit::PutOptions {
        if_absent: false,
        if_version: None,
        ttl_seconds: None,
    }
}

impl Dict {
    /// Opens the dict called `name`, creating it if `create_if_missing`.
    pub fn open(name: &str, create_if_missing: bool) -> Result<Dict, Error> {
        Ok(Dict {
            inner: wit::Dict::open(name, create_if_missing)?,
        })
    }

    /// Alias of [`open`](Dict::open), as Modal spells it.
    pub fn from_name(name: &str, create_if_missing: bool) -> Result<Dict, Error> {
        Dict::open(name, create_if_missing)
    }

    pub fn name(&self) -> String {
        self.inner.name()
    }

    /// The JSON value at `key`, decoded.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.inner.get(key)? {
            Some(e) => Ok(Some(serde_json::from_slice(&e.value)?)),
            None => Ok(None),
        }
    }

    /// The raw bytes and version at `key`.
    pub fn get_raw(&self, key: &str) -> Result<Option<Versioned>, Error> {
        Ok(self.inner.get(key)?.map(|e| Versioned {
            value: e.value,
            version: e.version,
        }))
    }

    /// Stores `value` as JSON; returns the new version.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<u64, Error> {
        let bytes = serde_json::to_vec(value)?;
        self.put_raw(key, &bytes)
    }

    /// Stores raw bytes; returns the new version.
    pub fn put_raw(&self, key: &str, value: &[u8]) -> Result<u64, Error> {
        self.inner
            .put(key, value, no_options())?
            .ok_or_else(|| Error::Io("put without conditions wrote nothing".into()))
    }

    /// Stores `value` only if `key` is absent; true if it wrote. Modal's
    /// `put(..., skip_if_exists=True)`.
    pub fn put_if_absent<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<bool, Error> {
        let bytes = serde_json::to_vec(value)?;
        let opts = wit::PutOptions {
            if_absent: true,
            ..no_options()
        };
        Ok(self.inner.put(key, &bytes, opts)?.is_some())
    }

    /// Compare-and-swap: writes only if the key's version is `version`.
    /// Fails with [`Error::PreconditionFailed`] otherwise.
    pub fn put_if_version(&self, key: &str, value: &[u8], version: u64) -> Result<u64, Error> {
        let opts = wit::PutOptions {
            if_version: Some(version),
            ..no_options()
        };
        self.inner
            .put(key, value, opts)?
            .ok_or(Error::PreconditionFailed)
    }

    /// Stores raw bytes that expire `ttl_seconds` after the write.
    pub fn put_with_ttl(&self, key: &str, value: &[u8], ttl_seconds: u64) -> Result<u64, Error> {
        let opts = wit::PutOptions {
            ttl_seconds: Some(ttl_seconds),
            ..no_options()
        };
        self.inner
            .put(key, value, opts)?
            .ok_or_else(|| Error::Io("put without conditions wrote nothing".into()))
    }

    /// Removes `key`, returning its decoded JSON value.
    pub fn pop<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        match self.inner.pop(key)? {
            Some(e) => Ok(Some(serde_json::from_slice(&e.value)?)),
            None => Ok(None),
        }
    }

    pub fn contains(&self, key: &str) -> Result<bool, Error> {
        Ok(self.inner.contains(key)?)
    }

    /// The exact number of entries.
    pub fn len(&self) -> Result<u64, Error> {
        Ok(self.inner.len()?)
    }

    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Writes all pairs as JSON, atomically.
    pub fn update<'a, T: Serialize + 'a>(
        &self,
        pairs: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<(), Error> {
        let mut entries = Vec::new();
        for (k, v) in pairs {
            entries.push((k.to_owned(), serde_json::to_vec(v)?));
        }
        Ok(self.inner.update(&entries)?)
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), Error> {
        Ok(self.inner.clear()?)
    }

    /// Adds `delta` to the counter at `key`; returns the new value.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        Ok(self.inner.increment(key, delta)?)
    }

    /// Takes the lock on `key` for `ttl_ms`, or `None` if someone holds it.
    pub fn lock(&self, key: &str, ttl_ms: u64) -> Result<Option<Lease>, Error> {
        Ok(self.inner.lock(key, ttl_ms)?.map(|inner| Lease { inner }))
    }

    /// Keys starting with `prefix`, all pages.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.inner.scan(prefix, cursor.as_deref(), 1000, false)?;
            out.extend(page.items.into_iter().map(|i| i.key));
            match page.cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// One page of keys starting with `prefix`, after `cursor` (the last
    /// key of the previous page), at most `limit` (clamped by the host).
    /// Returns the items and the cursor of the next page (`None`: done).
    /// Pages never skip or repeat a key that exists throughout the scan.
    pub fn scan(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
        with_values: bool,
    ) -> Result<(Vec<ScanItem>, Option<String>), Error> {
        let page = self.inner.scan(prefix, cursor, limit, with_values)?;
        let items = page
            .items
            .into_iter()
            .map(|i| ScanItem {
                key: i.key,
                value: i.value,
                version: i.version,
            })
            .collect();
        Ok((items, page.cursor))
    }

    /// `get_raw` for many keys at once, in order.
    pub fn get_many_raw(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, Error> {
        Ok(self
            .inner
            .get_many(keys)?
            .into_iter()
            .map(|e| {
                e.map(|e| Versioned {
                    value: e.value,
                    version: e.version,
                })
            })
            .collect())
    }

    /// Writes raw pairs atomically (at most `max_update_entries`).
    pub fn update_raw(&self, entries: &[(String, Vec<u8>)]) -> Result<(), Error> {
        Ok(self.inner.update(entries)?)
    }

    /// Removes `key`, returning its raw bytes and version.
    pub fn pop_raw(&self, key: &str) -> Result<Option<Versioned>, Error> {
        Ok(self.inner.pop(key)?.map(|e| Versioned {
            value: e.value,
            version: e.version,
        }))
    }

    /// The host's limits.
    pub fn limits(&self) -> Limits {
        let l = self.inner.limits();
        Limits {
            max_key_bytes: l.max_key_bytes,
            max_value_bytes: l.max_value_bytes,
            max_update_entries: l.max_update_entries,
            max_scan_limit: l.max_scan_limit,
            idle_expiry_seconds: l.idle_expiry_seconds,
        }
    }
}
