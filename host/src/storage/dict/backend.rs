//! What a dict backend provides, and the one place its arguments are
//! checked. A backend implements [`DictBackend`]: the operations on
//! arguments already checked against the limits of [`super`]. Every
//! backend is a [`DictStore`] through the blanket impl here, which checks
//! names, keys, values, batch sizes, TTLs and scan arguments, then calls
//! it, so no backend repeats a check and none can skip one.

use super::{
    DictEntry, DictError, DictInfo, DictLimits, DictStore, DurableWait, LeaseInfo, PutOptions,
    PutOutcome, ScanPage, check_batch_len, check_key, check_lease_ttl, check_put_ttl, check_scan,
    check_update_len, check_value, validate_name,
};
use crate::metrics::DictOp;

/// A dict backend's operations, on checked arguments. The semantics are
/// [`DictStore`]'s; see the module docs of [`super`]. `dict` is a valid
/// name, keys are within [`super::MAX_KEY_BYTES`], values within
/// [`super::MAX_VALUE_BYTES`], batches within
/// [`super::MAX_UPDATE_ENTRIES`] and not empty for `update`, TTLs at least
/// 1 ms, and a scan's `limit` is between 1 and [`super::MAX_SCAN_LIMIT`].
pub trait DictBackend: Send + Sync + std::fmt::Debug {
    fn create(&self, name: &str) -> Result<bool, DictError>;
    fn delete(&self, name: &str) -> Result<(), DictError>;
    fn exists(&self, name: &str) -> Result<bool, DictError>;
    fn list(&self) -> Result<Vec<DictInfo>, DictError>;
    fn get(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError>;
    fn put(
        &self,
        dict: &str,
        key: &str,
        value: &[u8],
        opts: &PutOptions,
    ) -> Result<PutOutcome, DictError>;
    fn pop(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError>;
    fn len(&self, dict: &str) -> Result<u64, DictError>;
    /// `entries` is not empty.
    fn update(&self, dict: &str, entries: &[(String, Vec<u8>)]) -> Result<(), DictError>;
    fn remove_many(&self, dict: &str, keys: &[String]) -> Result<u64, DictError>;
    /// `limit` is between 1 and [`super::MAX_SCAN_LIMIT`].
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
    fn lock(&self, dict: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseInfo>, DictError>;
    fn renew(&self, dict: &str, key: &str, token: u64, ttl_ms: u64)
    -> Result<LeaseInfo, DictError>;
    fn release(&self, dict: &str, key: &str, token: u64) -> Result<(), DictError>;
    fn sweep_expired(&self, max: usize) -> Result<usize, DictError>;
    fn limits(&self) -> DictLimits;
    /// See [`DictStore::inline_reads`].
    fn inline_reads(&self) -> bool {
        false
    }
    /// See [`DictStore::deferring`].
    fn deferring(&self, f: &mut dyn FnMut()) -> Option<DurableWait> {
        f();
        None
    }
}

fn check_keys<'a>(keys: impl IntoIterator<Item = &'a String>) -> Result<(), DictError> {
    keys.into_iter().try_for_each(|k| check_key(k))
}

impl<B: DictBackend> DictStore for B {
    fn create(&self, name: &str) -> Result<bool, DictError> {
        validate_name(name)?;
        DictBackend::create(self, name)
    }

    fn delete(&self, name: &str) -> Result<(), DictError> {
        validate_name(name)?;
        DictBackend::delete(self, name)
    }

    fn exists(&self, name: &str) -> Result<bool, DictError> {
        validate_name(name)?;
        DictBackend::exists(self, name)
    }

    fn list(&self) -> Result<Vec<DictInfo>, DictError> {
        DictBackend::list(self)
    }

    fn get(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError> {
        measured(DictOp::Get, || {
            validate_name(dict)?;
            check_key(key)?;
            DictBackend::get(self, dict, key)
        })
    }

    fn get_many(&self, dict: &str, keys: &[String]) -> Result<Vec<Option<DictEntry>>, DictError> {
        measured(DictOp::GetMany, || {
            validate_name(dict)?;
            check_batch_len(keys.len(), "a get-many")?;
            check_keys(keys)?;
            keys.iter()
                .map(|k| DictBackend::get(self, dict, k))
                .collect()
        })
    }

    fn put(
        &self,
        dict: &str,
        key: &str,
        value: &[u8],
        opts: &PutOptions,
    ) -> Result<PutOutcome, DictError> {
        measured(DictOp::Put, || {
            validate_name(dict)?;
            check_key(key)?;
            check_value(value.len())?;
            check_put_ttl(opts)?;
            DictBackend::put(self, dict, key, value, opts)
        })
    }

    fn pop(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError> {
        measured(DictOp::Pop, || {
            validate_name(dict)?;
            check_key(key)?;
            DictBackend::pop(self, dict, key)
        })
    }

    fn contains(&self, dict: &str, key: &str) -> Result<bool, DictError> {
        Ok(DictStore::get(self, dict, key)?.is_some())
    }

    fn len(&self, dict: &str) -> Result<u64, DictError> {
        measured(DictOp::Len, || {
            validate_name(dict)?;
            DictBackend::len(self, dict)
        })
    }

    fn update(&self, dict: &str, entries: &[(String, Vec<u8>)]) -> Result<(), DictError> {
        measured(DictOp::Update, || {
            validate_name(dict)?;
            check_update_len(entries.len())?;
            for (k, v) in entries {
                check_key(k)?;
                check_value(v.len())?;
            }
            if entries.is_empty() {
                // Nothing to write, but a missing dict is still reported.
                return match DictBackend::exists(self, dict)? {
                    true => Ok(()),
                    false => Err(DictError::NotFound(dict.to_owned())),
                };
            }
            DictBackend::update(self, dict, entries)
        })
    }

    fn remove_many(&self, dict: &str, keys: &[String]) -> Result<u64, DictError> {
        measured(DictOp::RemoveMany, || {
            validate_name(dict)?;
            check_batch_len(keys.len(), "a removal")?;
            check_keys(keys)?;
            DictBackend::remove_many(self, dict, keys)
        })
    }

    fn scan(
        &self,
        dict: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
        with_values: bool,
    ) -> Result<ScanPage, DictError> {
        measured(DictOp::Scan, || {
            let limit = check_scan(dict, prefix, cursor, limit)?;
            DictBackend::scan(self, dict, prefix, cursor, limit, with_values)
        })
    }

    fn clear(&self, dict: &str) -> Result<(), DictError> {
        measured(DictOp::Clear, || {
            validate_name(dict)?;
            DictBackend::clear(self, dict)
        })
    }

    fn increment(&self, dict: &str, key: &str, delta: i64) -> Result<i64, DictError> {
        measured(DictOp::Increment, || {
            validate_name(dict)?;
            check_key(key)?;
            DictBackend::increment(self, dict, key, delta)
        })
    }

    fn lock(&self, dict: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseInfo>, DictError> {
        measured(DictOp::Lock, || {
            validate_name(dict)?;
            check_key(key)?;
            check_lease_ttl(ttl_ms)?;
            DictBackend::lock(self, dict, key, ttl_ms)
        })
    }

    fn renew(
        &self,
        dict: &str,
        key: &str,
        token: u64,
        ttl_ms: u64,
    ) -> Result<LeaseInfo, DictError> {
        measured(DictOp::Renew, || {
            validate_name(dict)?;
            check_key(key)?;
            check_lease_ttl(ttl_ms)?;
            DictBackend::renew(self, dict, key, token, ttl_ms)
        })
    }

    fn release(&self, dict: &str, key: &str, token: u64) -> Result<(), DictError> {
        measured(DictOp::Release, || {
            validate_name(dict)?;
            check_key(key)?;
            DictBackend::release(self, dict, key, token)
        })
    }

    fn sweep_expired(&self, max: usize) -> Result<usize, DictError> {
        DictBackend::sweep_expired(self, max)
    }

    fn limits(&self) -> DictLimits {
        DictBackend::limits(self)
    }

    fn inline_reads(&self) -> bool {
        DictBackend::inline_reads(self)
    }

    fn deferring(&self, f: &mut dyn FnMut()) -> Option<DurableWait> {
        DictBackend::deferring(self, f)
    }
}

/// Runs one operation of the checked store, counting it and its latency
/// in the process's metrics (checks that refuse it count too, as the
/// error kind).
fn measured<T>(op: DictOp, f: impl FnOnce() -> Result<T, DictError>) -> Result<T, DictError> {
    let start = std::time::Instant::now();
    let r = f();
    let outcome = match &r {
        Ok(_) => "ok",
        Err(e) => e.kind().label(),
    };
    crate::metrics::global().dict_op(op, outcome, start.elapsed());
    r
}
