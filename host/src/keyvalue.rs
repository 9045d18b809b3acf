//! The standard `wasi:keyvalue` interfaces (0.2.0-draft2: `store`,
//! `atomics`, `batch`) served over vessel's dicts, so existing wasi:keyvalue
//! components run unchanged and share their data with `vessel:storage/dict`
//! guests and the `vessel dict` CLI.
//!
//! This module owns the per-container keyvalue state ([`KeyValueCtx`]) and
//! the host side of the `bucket` and `cas` resources. The mapping:
//!
//! - A bucket opened with identifier `NAME` is the dict `NAME`; the empty
//!   identifier names the dict `default` (the usual "default store" of
//!   Spin and wasmCloud components). `open` creates the dict when it is
//!   missing, as Spin's stores exist as soon as a component may use them.
//!   An identifier that cannot be a dict name is `no-such-store`; a dict the
//!   function is not granted is `access-denied`, whether it exists or not.
//! - Values are the dict entries' bytes as they are. `set` writes without
//!   conditions; `delete` of a missing key does nothing.
//! - `list-keys` returns keys in key order, at most `max-scan-limit` (1,000)
//!   per page. The cursor is the last key of the page, so paging never skips
//!   or repeats a key that exists throughout, whatever is written meanwhile.
//! - `atomics.increment` is the dict's `increment`: counters are the decimal
//!   ASCII text of an i64 (`b"-42"`), so both views agree; a value that is
//!   not such text is an error, never a panic.
//! - `cas` is compare-and-swap on the entry's version (never its value, so
//!   no ABA): `cas.new` reads the entry and remembers its version (or that
//!   the key was absent), `swap` writes only if that is still so, and on a
//!   loss returns a new `cas` holding the entry as it is now.
//! - `batch.set-many` is atomic (stronger than the interface asks: all pairs
//!   land or none), and so is `delete-many`; `get-many` reads each key. Each
//!   takes at most `max-update-entries` (10,000) keys.
//! - Every write returns once it is durable, as dict writes do.
//!
//! The keyvalue `error` has no cases for limits or bad arguments, so those
//! are `other("KIND: detail")`, with KIND the `vessel:storage` error case
//! (`invalid-argument`, `too-large`, `unavailable`, `io`).

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::dict::{on_blocking_thread, read};
use crate::grant::Grant;
use crate::storage::dict::{
    self as dicts, DictEntry, DictError, DictStore, PutOptions, PutOutcome,
};

/// The dict a bucket opened with the empty identifier uses.
pub const DEFAULT_BUCKET: &str = "default";

/// The host state behind one guest `bucket` handle: the dict it names.
#[derive(Debug)]
pub struct Bucket {
    pub dict: String,
}

/// The host state behind one guest `cas` handle: the entry as `cas.new`
/// read it (`None`: the key was absent).
#[derive(Debug)]
pub struct Cas {
    pub dict: String,
    pub key: String,
    pub seen: Option<DictEntry>,
}

/// What a host function of the `wasi:keyvalue` interfaces returns on
/// failure: an error for the guest, or a trap (host bugs, bad handles).
#[derive(Debug)]
pub enum KeyValueError {
    Guest(store::Error),
    Trap(wasmtime::Error),
}

impl From<DictError> for KeyValueError {
    fn from(e: DictError) -> Self {
        KeyValueError::Guest(guest_error(e))
    }
}

/// The keyvalue error for a dict store failure.
fn guest_error(e: DictError) -> store::Error {
    keyvalue_error(e.kind(), &e.to_string())
}

/// The `wasi:keyvalue` table over [`ErrorKind`](crate::error_kind::ErrorKind):
/// a missing dict is `no-such-store` (it went away under an open bucket);
/// every other kind is `other`, its text starting with the kind's WIT name.
pub(crate) fn keyvalue_error(kind: crate::error_kind::ErrorKind, msg: &str) -> store::Error {
    match kind {
        crate::error_kind::ErrorKind::NotFound => store::Error::NoSuchStore,
        kind => store::Error::Other(format!("{}: {msg}", kind.label())),
    }
}

impl From<wasmtime::Error> for KeyValueError {
    fn from(e: wasmtime::Error) -> Self {
        KeyValueError::Trap(e)
    }
}

impl From<wasmtime::component::ResourceTableError> for KeyValueError {
    fn from(e: wasmtime::component::ResourceTableError) -> Self {
        KeyValueError::Trap(wasmtime::Error::new(e))
    }
}

/// Per-container keyvalue state: the dict store (none when the host has no
/// storage) and which dicts the function may open.
#[derive(Debug)]
pub struct KeyValueCtx {
    pub store: Option<Arc<dyn DictStore>>,
    pub grant: Grant,
}

impl KeyValueCtx {
    pub fn new(store: Option<Arc<dyn DictStore>>, grant: Grant) -> Self {
        KeyValueCtx { store, grant }
    }

    fn store(&self) -> Result<Arc<dyn DictStore>, KeyValueError> {
        self.store.clone().ok_or_else(|| {
            KeyValueError::Guest(store::Error::Other(
                "unavailable: no dict store configured".into(),
            ))
        })
    }

    /// The most keys one batch call takes.
    fn max_batch(&self) -> usize {
        let max = match &self.store {
            Some(s) => s.limits().max_update_entries,
            None => dicts::MAX_UPDATE_ENTRIES,
        };
        usize::try_from(max).unwrap_or(usize::MAX)
    }

    fn check_batch(&self, n: usize, what: &str) -> Result<(), KeyValueError> {
        let max = self.max_batch();
        if n > max {
            return Err(KeyValueError::Guest(store::Error::Other(format!(
                "too-large: {what} of {n} keys is over the limit of {max} \
                 (max-update-entries); nothing was done"
            ))));
        }
        Ok(())
    }
}

/// Runs a store call on a blocking thread (writes wait for an fsync).
async fn blocking<R, F>(store: Arc<dyn DictStore>, f: F) -> Result<R, KeyValueError>
where
    R: Send + 'static,
    F: FnOnce(&dyn DictStore) -> Result<R, DictError> + Send + 'static,
{
    Ok(on_blocking_thread(store, f).await??)
}

/// Runs a read, inline when the store's reads are cheap.
async fn reading<R, F>(store: Arc<dyn DictStore>, f: F) -> Result<R, KeyValueError>
where
    R: Send + 'static,
    F: FnOnce(&dyn DictStore) -> Result<R, DictError> + Send + 'static,
{
    Ok(read(store, f).await??)
}

/// A [`KeyValueCtx`] with the resource table: the `self` of the host traits.
pub struct KeyValueCtxView<'a> {
    pub ctx: &'a mut KeyValueCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`KeyValueCtxView`]; the store's data
/// implements it.
pub trait KeyValueView: Send {
    fn keyvalue(&mut self) -> KeyValueCtxView<'_>;
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = KeyValueCtxView<'a>;
}

/// Adds `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2` to `linker`.
pub fn add_to_linker<T: KeyValueView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, |t| t.keyvalue())?;
    atomics::add_to_linker::<T, HasKeyValue>(linker, |t| t.keyvalue())?;
    batch::add_to_linker::<T, HasKeyValue>(linker, |t| t.keyvalue())
}

impl KeyValueCtxView<'_> {
    /// The dict behind a bucket handle, and the store.
    fn target(
        &self,
        bucket: &Resource<Bucket>,
    ) -> Result<(String, Arc<dyn DictStore>), KeyValueError> {
        let dict = self.table.get(bucket)?.dict.clone();
        Ok((dict, self.ctx.store()?))
    }
}

impl store::Host for KeyValueCtxView<'_> {
    async fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, KeyValueError> {
        let name = if identifier.is_empty() {
            DEFAULT_BUCKET.to_owned()
        } else {
            identifier
        };
        if dicts::validate_name(&name).is_err() {
            return Err(KeyValueError::Guest(store::Error::NoSuchStore));
        }
        if !self.ctx.grant.allows(&name) {
            return Err(KeyValueError::Guest(store::Error::AccessDenied));
        }
        let s = self.ctx.store()?;
        let n = name.clone();
        blocking(s, move |s| {
            if s.exists(&n)? {
                Ok(())
            } else {
                s.create(&n).map(drop)
            }
        })
        .await?;
        Ok(self.table.push(Bucket { dict: name })?)
    }

    fn convert_error(&mut self, err: KeyValueError) -> wasmtime::Result<store::Error> {
        match err {
            KeyValueError::Guest(e) => Ok(e),
            KeyValueError::Trap(e) => Err(e),
        }
    }
}

impl store::HostBucket for KeyValueCtxView<'_> {
    async fn get(
        &mut self,
        self_: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, KeyValueError> {
        let (d, s) = self.target(&self_)?;
        Ok(reading(s, move |s| s.get(&d, &key)).await?.map(|e| e.value))
    }

    async fn set(
        &mut self,
        self_: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), KeyValueError> {
        let (d, s) = self.target(&self_)?;
        blocking(s, move |s| {
            s.put(&d, &key, &value, &PutOptions::default()).map(drop)
        })
        .await
    }

    async fn delete(&mut self, self_: Resource<Bucket>, key: String) -> Result<(), KeyValueError> {
        let (d, s) = self.target(&self_)?;
        blocking(s, move |s| s.pop(&d, &key).map(drop)).await
    }

    async fn exists(
        &mut self,
        self_: Resource<Bucket>,
        key: String,
    ) -> Result<bool, KeyValueError> {
        let (d, s) = self.target(&self_)?;
        reading(s, move |s| s.contains(&d, &key)).await
    }

    async fn list_keys(
        &mut self,
        self_: Resource<Bucket>,
        cursor: Option<String>,
    ) -> Result<store::KeyResponse, KeyValueError> {
        let (d, s) = self.target(&self_)?;
        let page = reading(s, move |s| {
            let limit = s.limits().max_scan_limit;
            s.scan(&d, "", cursor.as_deref(), limit, false)
        })
        .await?;
        Ok(store::KeyResponse {
            keys: page.items.into_iter().map(|i| i.key).collect(),
            cursor: page.cursor,
        })
    }

    async fn drop(&mut self, rep: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl KeyValueCtxView<'_> {
    /// A new `cas` handle on the entry as it is now.
    async fn new_cas(&mut self, dict: String, key: String) -> Result<Resource<Cas>, KeyValueError> {
        let s = self.ctx.store()?;
        let (d, k) = (dict.clone(), key.clone());
        let seen = reading(s, move |s| s.get(&d, &k)).await?;
        Ok(self.table.push(Cas { dict, key, seen })?)
    }
}

impl atomics::Host for KeyValueCtxView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: i64,
    ) -> Result<i64, KeyValueError> {
        let (d, s) = self.target(&bucket)?;
        blocking(s, move |s| s.increment(&d, &key, delta)).await
    }

    async fn swap(
        &mut self,
        cas: Resource<Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let Cas { dict, key, seen } = self.table.delete(cas)?;
        let s = match self.ctx.store() {
            Ok(s) => s,
            Err(e) => return store_error(e),
        };
        let opts = match &seen {
            Some(e) => PutOptions {
                if_version: Some(e.version),
                ..PutOptions::default()
            },
            None => PutOptions {
                if_absent: true,
                ..PutOptions::default()
            },
        };
        let (d, k) = (dict.clone(), key.clone());
        let lost = match on_blocking_thread(s, move |s| s.put(&d, &k, &value, &opts)).await? {
            Ok(PutOutcome::Written { .. }) => false,
            // Present although it was absent, or another version: lost.
            Ok(PutOutcome::Skipped) | Err(DictError::VersionMismatch { .. }) => true,
            Err(e) => return Ok(Err(atomics::CasError::StoreError(guest_error(e)))),
        };
        if !lost {
            return Ok(Ok(()));
        }
        match self.new_cas(dict, key).await {
            Ok(fresh) => Ok(Err(atomics::CasError::CasFailed(fresh))),
            Err(e) => store_error(e),
        }
    }
}

/// A `swap` result for a failure outside the swap itself: a guest error, or
/// the trap.
fn store_error(e: KeyValueError) -> wasmtime::Result<Result<(), atomics::CasError>> {
    match e {
        KeyValueError::Guest(e) => Ok(Err(atomics::CasError::StoreError(e))),
        KeyValueError::Trap(e) => Err(e),
    }
}

impl atomics::HostCas for KeyValueCtxView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Resource<Cas>, KeyValueError> {
        let dict = self.table.get(&bucket)?.dict.clone();
        self.new_cas(dict, key).await
    }

    async fn current(&mut self, self_: Resource<Cas>) -> Result<Option<Vec<u8>>, KeyValueError> {
        Ok(self
            .table
            .get(&self_)?
            .seen
            .as_ref()
            .map(|e| e.value.clone()))
    }

    async fn drop(&mut self, rep: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl batch::Host for KeyValueCtxView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, KeyValueError> {
        self.ctx.check_batch(keys.len(), "a get-many")?;
        let (d, s) = self.target(&bucket)?;
        reading(s, move |s| {
            let got = s.get_many(&d, &keys)?;
            Ok(keys
                .into_iter()
                .zip(got)
                .map(|(k, e)| (k, e.map(|e| e.value)))
                .collect())
        })
        .await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), KeyValueError> {
        self.ctx.check_batch(key_values.len(), "a set-many")?;
        let (d, s) = self.target(&bucket)?;
        blocking(s, move |s| s.update(&d, &key_values)).await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), KeyValueError> {
        self.ctx.check_batch(keys.len(), "a delete-many")?;
        let (d, s) = self.target(&bucket)?;
        blocking(s, move |s| s.remove_many(&d, &keys).map(drop)).await
    }
}

#[cfg(test)]
mod tests;
