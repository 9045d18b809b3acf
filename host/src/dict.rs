//! Dicts as guests see them: the `vessel:storage/dict` interface.
//!
//! This module owns the per-container dict state ([`DictCtx`]) and the host
//! side of the `dict` and `lease` resources. Each operation checks the
//! grant and the limits, then runs on the [`DictStore`] (writes on a blocking
//! thread, since they wait for an fsync; reads inline when the store says
//! they are cheap) and maps [`DictError`] to the WIT error.

use std::sync::Arc;

use wasmtime::component::{HasData, Resource, ResourceTable};

use crate::grant::Grant;
use crate::storage::dict::{
    self as store, DEFAULT_IDLE_EXPIRY_MS, DictError, DictStore, MAX_KEY_BYTES, MAX_SCAN_LIMIT,
    MAX_UPDATE_ENTRIES, MAX_VALUE_BYTES,
};

use crate::bindings::vessel::storage::dict::{self as wit, Entry, Limits, Page, PutOptions};
use crate::error::{StorageError, WitError};

/// The host state behind one guest `dict` handle.
#[derive(Debug)]
pub struct DictHandle {
    pub name: String,
}

/// The host state behind one guest `lease` handle.
#[derive(Debug)]
pub struct LeaseHandle {
    pub dict: String,
    pub key: String,
    pub token: u64,
    /// Released explicitly: dropping the handle has nothing left to do.
    pub released: bool,
}

/// Per-container dict state: the store (none when the host has no storage)
/// and what the function may open.
#[derive(Debug)]
pub struct DictCtx {
    pub store: Option<Arc<dyn DictStore>>,
    pub grant: Grant,
    pub limits: Limits,
}

impl DictCtx {
    pub fn new(store: Option<Arc<dyn DictStore>>, grant: Grant) -> Self {
        // The store's own limits when there is one (the idle period is
        // configurable); the defaults otherwise.
        let limits = match &store {
            Some(s) => {
                let l = s.limits();
                Limits {
                    max_key_bytes: l.max_key_bytes,
                    max_value_bytes: l.max_value_bytes,
                    max_update_entries: l.max_update_entries,
                    max_scan_limit: l.max_scan_limit,
                    idle_expiry_seconds: l.idle_expiry_ms / 1000,
                }
            }
            None => Limits {
                max_key_bytes: MAX_KEY_BYTES,
                max_value_bytes: MAX_VALUE_BYTES,
                max_update_entries: MAX_UPDATE_ENTRIES,
                max_scan_limit: MAX_SCAN_LIMIT,
                idle_expiry_seconds: DEFAULT_IDLE_EXPIRY_MS / 1000,
            },
        };
        DictCtx {
            store,
            grant,
            limits,
        }
    }

    fn store(&self) -> Result<Arc<dyn DictStore>, StorageError> {
        self.store.clone().ok_or_else(no_store)
    }

    /// The store, borrowed: for the calls that run in place (every
    /// container shares the store's `Arc`, and a count bumped per get is a
    /// cache line they would all contend on).
    fn store_ref(&self) -> Result<&dyn DictStore, StorageError> {
        self.store.as_deref().ok_or_else(no_store)
    }

    fn check_key(&self, key: &str) -> Result<(), StorageError> {
        let max = self.limits.max_key_bytes;
        if key.len() > max as usize {
            return Err(invalid(format!(
                "a key of {} bytes is over the limit of {max} bytes (max-key-bytes)",
                key.len()
            )));
        }
        Ok(())
    }

    fn check_value(&self, len: usize) -> Result<(), StorageError> {
        let max = self.limits.max_value_bytes;
        if len as u64 > max {
            return Err(too_large(format!(
                "a value of {len} bytes is over the limit of {max} bytes (max-value-bytes)"
            )));
        }
        Ok(())
    }

    fn check_batch(&self, n: usize, what: &str) -> Result<(), StorageError> {
        let max = self.limits.max_update_entries;
        if n > max as usize {
            return Err(too_large(format!(
                "{what} of {n} entries is over the limit of {max} (max-update-entries); \
                 nothing was done"
            )));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> StorageError {
    StorageError::Guest(WitError::InvalidArgument(msg))
}

fn too_large(msg: String) -> StorageError {
    StorageError::Guest(WitError::TooLarge(msg))
}

impl From<DictError> for StorageError {
    fn from(e: DictError) -> Self {
        StorageError::Guest(crate::error::wit_error(e.kind(), e.to_string()))
    }
}

/// Runs a store call that may block (a write waits for an fsync) without
/// stalling the async workers that run other guests. A local store's call
/// runs in place with its wait for durability taken out
/// ([`DictStore::deferring`]), and the wait is awaited after: leading a
/// group commit is one fdatasync in place (tens of microseconds, less than
/// a guest's own time slice), and waiting for another writer's round
/// holds no thread. This spares a durable put the two thread hops a
/// blocking-pool task costs (about 15 µs of a guest put, measured with the
/// dict bench), and 16 guests on 2 workers the thread hand-off a blocking
/// wait costs. A remote store's call goes to the blocking pool. The outer
/// error is a panic in the store, a host bug: the caller ends the guest's
/// call with a trap and the host goes on.
pub(crate) async fn on_blocking_thread<R, F>(
    store: Arc<dyn DictStore>,
    f: F,
) -> Result<Result<R, DictError>, wasmtime::Error>
where
    R: Send + 'static,
    F: FnOnce(&dyn DictStore) -> Result<R, DictError> + Send + 'static,
{
    if store.inline_reads() {
        let (mut f, mut out) = (Some(f), None);
        let wait = store.deferring(&mut || {
            if let Some(f) = f.take() {
                out = Some(std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                    || f(store.as_ref()),
                )));
            }
        });
        let out = match out {
            Some(Ok(out)) => out,
            _ => return Err(wasmtime::Error::msg("dict store call panicked")),
        };
        // An answer (a refusal too) is given only once what it rests on is
        // durable; if that fails, the failure is the answer.
        if let Some(wait) = wait
            && let Err(e) = wait.await
        {
            return Ok(Err(e));
        }
        return Ok(out);
    }
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| wasmtime::Error::msg(format!("dict store task failed: {e}")))
}

/// Runs a read: on the calling async worker when the store's reads are
/// cheap ([`DictStore::inline_reads`]), else as [`on_blocking_thread`]
/// does. Either way a panic in the store becomes the outer error.
pub(crate) async fn read<R, F>(
    store: Arc<dyn DictStore>,
    f: F,
) -> Result<Result<R, DictError>, wasmtime::Error>
where
    R: Send + 'static,
    F: FnOnce(&dyn DictStore) -> Result<R, DictError> + Send + 'static,
{
    if store.inline_reads() {
        read_now(store.as_ref(), f)
    } else {
        on_blocking_thread(store, f).await
    }
}

/// A read from a synchronous host function: on this thread when the
/// store's reads are cheap, else with the async worker handed off (tokio's
/// `block_in_place`) so other guests keep running while it waits.
pub(crate) fn read_now<R>(
    store: &dyn DictStore,
    f: impl FnOnce(&dyn DictStore) -> Result<R, DictError>,
) -> Result<Result<R, DictError>, wasmtime::Error> {
    let run = || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(store)))
            .map_err(|_| wasmtime::Error::msg("dict store read panicked"))
    };
    if store.inline_reads() {
        run()
    } else {
        crate::blocking::off_worker(run)
    }
}

/// [`read`] with the error a `vessel:storage` function returns.
async fn reading<R, F>(store: Arc<dyn DictStore>, f: F) -> Result<R, StorageError>
where
    R: Send + 'static,
    F: FnOnce(&dyn DictStore) -> Result<R, DictError> + Send + 'static,
{
    Ok(read(store, f).await??)
}

/// [`on_blocking_thread`] with the error a `vessel:storage` function returns.
async fn blocking<R, F>(store: Arc<dyn DictStore>, f: F) -> Result<R, StorageError>
where
    R: Send + 'static,
    F: FnOnce(&dyn DictStore) -> Result<R, DictError> + Send + 'static,
{
    Ok(on_blocking_thread(store, f).await??)
}

fn entry(e: store::DictEntry) -> Entry {
    Entry {
        value: e.value,
        version: e.version,
    }
}

fn no_store() -> StorageError {
    StorageError::Guest(WitError::Unavailable("no dict store configured".into()))
}

/// A [`DictCtx`] with the resource table: the `self` of the host traits.
pub struct DictCtxView<'a> {
    pub ctx: &'a mut DictCtx,
    pub table: &'a mut ResourceTable,
}

/// Anything that can lend a [`DictCtxView`]; the store's data implements it.
pub trait DictView: Send {
    fn dict(&mut self) -> DictCtxView<'_>;
}

struct HasDict;

impl HasData for HasDict {
    type Data<'a> = DictCtxView<'a>;
}

/// Adds `vessel:storage/dict` to `linker`.
pub fn add_to_linker<T: DictView + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasDict>(linker, |t| t.dict())
}

impl crate::bindings::vessel::storage::types::Host for DictCtxView<'_> {
    fn convert_error(&mut self, err: StorageError) -> wasmtime::Result<crate::error::WitError> {
        err.into_wit()
    }
}

impl wit::Host for DictCtxView<'_> {}

impl DictCtxView<'_> {
    /// The dict name behind a handle, and the store.
    fn target(
        &self,
        handle: &Resource<DictHandle>,
    ) -> Result<(String, Arc<dyn DictStore>), StorageError> {
        let name = self.table.get(handle)?.name.clone();
        Ok((name, self.ctx.store()?))
    }
}

impl wit::HostDict for DictCtxView<'_> {
    async fn open(
        &mut self,
        name: String,
        create_if_missing: bool,
    ) -> Result<Resource<DictHandle>, StorageError> {
        store::validate_name(&name)?;
        if !self.ctx.grant.allows(&name) {
            return Err(StorageError::Guest(WitError::AccessDenied(format!(
                "this function is not granted dict `{name}`"
            ))));
        }
        let s = self.ctx.store()?;
        let n = name.clone();
        blocking(s, move |s| {
            if create_if_missing {
                s.create(&n).map(drop)
            } else if s.exists(&n)? {
                Ok(())
            } else {
                Err(DictError::NotFound(n))
            }
        })
        .await?;
        Ok(self.table.push(DictHandle { name })?)
    }

    async fn name(&mut self, self_: Resource<DictHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&self_)?.name.clone())
    }

    fn get(
        &mut self,
        self_: Resource<DictHandle>,
        key: String,
    ) -> Result<Option<Entry>, StorageError> {
        self.ctx.check_key(&key)?;
        let name = &self.table.get(&self_)?.name;
        let s = self.ctx.store_ref()?;
        Ok(read_now(s, |s| s.get(name, &key))??.map(entry))
    }

    async fn put(
        &mut self,
        self_: Resource<DictHandle>,
        key: String,
        value: Vec<u8>,
        options: PutOptions,
    ) -> Result<Option<u64>, StorageError> {
        self.ctx.check_key(&key)?;
        self.ctx.check_value(value.len())?;
        let ttl_ms = match options.ttl_seconds {
            None => None,
            Some(0) => {
                return Err(invalid(
                    "ttl-seconds must be at least 1 (omit it for the idle expiry)".into(),
                ));
            }
            Some(t) => Some(
                t.checked_mul(1000)
                    .ok_or_else(|| invalid(format!("ttl-seconds {t} is too large")))?,
            ),
        };
        let opts = store::PutOptions {
            if_absent: options.if_absent,
            if_version: options.if_version,
            ttl_ms,
        };
        let (d, s) = self.target(&self_)?;
        match blocking(s, move |s| s.put(&d, &key, &value, &opts)).await? {
            store::PutOutcome::Written { version } => Ok(Some(version)),
            store::PutOutcome::Skipped => Ok(None),
        }
    }

    async fn pop(
        &mut self,
        self_: Resource<DictHandle>,
        key: String,
    ) -> Result<Option<Entry>, StorageError> {
        self.ctx.check_key(&key)?;
        let (d, s) = self.target(&self_)?;
        Ok(blocking(s, move |s| s.pop(&d, &key)).await?.map(entry))
    }

    async fn contains(
        &mut self,
        self_: Resource<DictHandle>,
        key: String,
    ) -> Result<bool, StorageError> {
        self.ctx.check_key(&key)?;
        let (d, s) = self.target(&self_)?;
        reading(s, move |s| s.contains(&d, &key)).await
    }

    async fn len(&mut self, self_: Resource<DictHandle>) -> Result<u64, StorageError> {
        let (d, s) = self.target(&self_)?;
        blocking(s, move |s| s.len(&d)).await
    }

    async fn update(
        &mut self,
        self_: Resource<DictHandle>,
        entries: Vec<(String, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        self.ctx.check_batch(entries.len(), "an update")?;
        for (k, v) in &entries {
            self.ctx.check_key(k)?;
            self.ctx.check_value(v.len())?;
        }
        let (d, s) = self.target(&self_)?;
        blocking(s, move |s| s.update(&d, &entries)).await
    }

    async fn get_many(
        &mut self,
        self_: Resource<DictHandle>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<Entry>>, StorageError> {
        // The same bound as a batch write: one call cannot pin the host
        // reading an unbounded list.
        self.ctx.check_batch(keys.len(), "a get-many")?;
        for k in &keys {
            self.ctx.check_key(k)?;
        }
        let (d, s) = self.target(&self_)?;
        let got = reading(s, move |s| s.get_many(&d, &keys)).await?;
        Ok(got.into_iter().map(|e| e.map(entry)).collect())
    }

    async fn scan(
        &mut self,
        self_: Resource<DictHandle>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
        with_values: bool,
    ) -> Result<Page, StorageError> {
        self.ctx.check_key(&prefix)?;
        if let Some(c) = &cursor {
            self.ctx.check_key(c)?;
        }
        let (d, s) = self.target(&self_)?;
        let page = reading(s, move |s| {
            s.scan(&d, &prefix, cursor.as_deref(), limit, with_values)
        })
        .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|i| wit::Item {
                    key: i.key,
                    value: i.value,
                    version: i.version,
                })
                .collect(),
            cursor: page.cursor,
        })
    }

    async fn clear(&mut self, self_: Resource<DictHandle>) -> Result<(), StorageError> {
        let (d, s) = self.target(&self_)?;
        blocking(s, move |s| s.clear(&d)).await
    }

    async fn increment(
        &mut self,
        self_: Resource<DictHandle>,
        key: String,
        delta: i64,
    ) -> Result<i64, StorageError> {
        self.ctx.check_key(&key)?;
        let (d, s) = self.target(&self_)?;
        blocking(s, move |s| s.increment(&d, &key, delta)).await
    }

    async fn lock(
        &mut self,
        self_: Resource<DictHandle>,
        key: String,
        ttl_ms: u64,
    ) -> Result<Option<Resource<LeaseHandle>>, StorageError> {
        self.ctx.check_key(&key)?;
        let (d, s) = self.target(&self_)?;
        let k = key.clone();
        let dict = d.clone();
        match blocking(s, move |s| s.lock(&d, &k, ttl_ms)).await? {
            None => Ok(None),
            Some(lease) => Ok(Some(self.table.push(LeaseHandle {
                dict,
                key,
                token: lease.token,
                released: false,
            })?)),
        }
    }

    async fn limits(&mut self, _self_: Resource<DictHandle>) -> wasmtime::Result<Limits> {
        Ok(self.ctx.limits)
    }

    async fn drop(&mut self, rep: Resource<DictHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl wit::HostLease for DictCtxView<'_> {
    async fn key(&mut self, self_: Resource<LeaseHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&self_)?.key.clone())
    }

    async fn token(&mut self, self_: Resource<LeaseHandle>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&self_)?.token)
    }

    async fn renew(
        &mut self,
        self_: Resource<LeaseHandle>,
        ttl_ms: u64,
    ) -> Result<(), StorageError> {
        let l = self.table.get(&self_)?;
        if l.released {
            return Err(StorageError::Guest(WitError::PreconditionFailed));
        }
        let (d, k, token) = (l.dict.clone(), l.key.clone(), l.token);
        let s = self.ctx.store()?;
        blocking(s, move |s| s.renew(&d, &k, token, ttl_ms).map(drop)).await
    }

    async fn release(&mut self, self_: Resource<LeaseHandle>) -> Result<(), StorageError> {
        let l = self.table.get(&self_)?;
        let (d, k, token) = (l.dict.clone(), l.key.clone(), l.token);
        let s = self.ctx.store()?;
        blocking(s, move |s| s.release(&d, &k, token)).await?;
        self.table.get_mut(&self_)?.released = true;
        Ok(())
    }

    async fn drop(&mut self, rep: Resource<LeaseHandle>) -> wasmtime::Result<()> {
        let l = self.table.delete(rep)?;
        // Dropping a held lease gives it up, so a guest that forgets to
        // release does not block others for the whole TTL. Best effort: a
        // failure leaves the lease to expire.
        if !l.released
            && let Some(s) = self.ctx.store.clone()
        {
            let _ = blocking(s, move |s| s.release(&l.dict, &l.key, l.token)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
