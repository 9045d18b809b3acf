//! [`DictStore`] over PostgreSQL: the shared backend's dicts.
//!
//! # Layout
//!
//! - `vessel_dicts`: one row per dict name: creation time, the dict's
//!   version counter, its stored-entry count, and a `deleted` flag. A
//!   deleted dict keeps its row (a tombstone) so its counter, and with it
//!   every version and fencing token, keeps growing if the name comes back.
//! - `vessel_dict_entries`: `(dict, key)` → value, version, last access and
//!   own deadline (0: on the idle clock), with partial indexes on the access
//!   time and the deadline so finding what is due is an index range read.
//! - `vessel_dict_leases`: `(dict, key)` → token and expiry. Leases survive
//!   `clear` (a lock is not an entry) and go with `delete`.
//!
//! Keys are `bytea`, so the order of a scan is the byte order of the keys,
//! as in the embedded store.
//!
//! # Atomicity across hosts
//!
//! Every write runs in one transaction that first locks the dict's row
//! (`SELECT ... FOR UPDATE`): writers of one dict, on any host, take turns,
//! and each sees every write committed before it (read committed takes a
//! new snapshot per statement, after the lock is held). So `if-absent`,
//! CAS, `increment` and `lock` are single atomic steps, versions and tokens
//! (the dict's counter, bumped in the same transaction) grow strictly, and
//! the entry count moves with the entries. A write is acknowledged once
//! PostgreSQL committed it, which (with the default `synchronous_commit`)
//! means its WAL is flushed.
//!
//! # Expiry
//!
//! As in the embedded store (see its docs): an entry lives the idle period
//! after its last recorded access plus a slack of idle/32, or until its own
//! TTL; reads refresh the access time only once it is older than the slack
//! (one guarded `UPDATE`, outside any transaction); expired entries are
//! invisible at once and removed by `len` (which must be exact), by
//! [`DictStore::sweep_expired`] and by overwrites. Times come from the
//! store's clock (see [`super`]).

mod rows;

use rows::*;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::{DbError, Inner, RemoteStore, Stalled, from_db, to_db};
use crate::storage::dict::{
    DictBackend, DictEntry, DictError, DictInfo, DictLimits, LeaseInfo, MAX_KEY_BYTES,
    MAX_SCAN_LIMIT, MAX_UPDATE_ENTRIES, MAX_VALUE_BYTES, PutOptions, PutOutcome, ScanItem,
    ScanPage, parse_counter,
};

impl From<Stalled> for DictError {
    fn from(s: Stalled) -> Self {
        DbError::from(s).into()
    }
}

impl From<tokio_postgres::Error> for DictError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for DictError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        DbError::from(e).into()
    }
}

impl DictBackend for RemoteStore {
    fn create(&self, name: &str) -> Result<bool, DictError> {
        let name = name.to_owned();
        let now = self.now_ms();
        self.dict_op(move |inner| async move {
            let client = inner.pool.get().await?;
            // A tombstone comes back to life with its counter.
            let st = client
                .prepare_cached(
                    "INSERT INTO vessel_dicts (name, created_ms) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET deleted = false, live = 0, \
                     created_ms = EXCLUDED.created_ms WHERE vessel_dicts.deleted \
                     RETURNING name",
                )
                .await?;
            Ok(client
                .query_opt(&st, &[&name, &to_db(now)])
                .await?
                .is_some())
        })
    }

    fn delete(&self, name: &str) -> Result<(), DictError> {
        let n = name.to_owned();
        self.dict_tx(name, move |tx, locked| {
            Box::pin(async move {
                for sql in [
                    "DELETE FROM vessel_dict_entries WHERE dict = $1",
                    "DELETE FROM vessel_dict_leases WHERE dict = $1",
                    "UPDATE vessel_dicts SET deleted = true, live = 0 WHERE name = $1",
                ] {
                    let st = tx.prepare_cached(sql).await?;
                    tx.execute(&st, &[&n]).await?;
                }
                // Already stored: keep the final save from undoing it.
                locked.live = 0;
                Ok(())
            })
        })
    }

    fn exists(&self, name: &str) -> Result<bool, DictError> {
        self.dict_exists_now(name)
    }

    fn list(&self) -> Result<Vec<DictInfo>, DictError> {
        let rows: Vec<(String, i64)> = self.dict_op(|inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "SELECT name, created_ms FROM vessel_dicts WHERE NOT deleted ORDER BY name",
                )
                .await?;
            let mut out = Vec::new();
            for row in client.query(&st, &[]).await? {
                out.push((col(&row, 0)?, col(&row, 1)?));
            }
            Ok(out)
        })?;
        let mut out = Vec::new();
        for (name, created) in rows {
            let len = match self.len(&name) {
                Ok(n) => n,
                Err(DictError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            out.push(DictInfo {
                name,
                len,
                created_ms: from_db(created, "a creation time").map_err(DictError::Corrupt)?,
            });
        }
        Ok(out)
    }

    fn get(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError> {
        let (d, k) = (dict.to_owned(), key.as_bytes().to_vec());
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "SELECT e.value, e.version, e.access_ms, e.deadline_ms FROM vessel_dicts d \
                     LEFT JOIN vessel_dict_entries e ON e.dict = d.name AND e.key = $2 \
                     WHERE d.name = $1 AND NOT d.deleted",
                )
                .await?;
            let row = client
                .query_opt(&st, &[&d, &k])
                .await?
                .ok_or_else(|| DictError::NotFound(d.clone()))?;
            let Some(value) = col::<Option<Vec<u8>>>(&row, 0)? else {
                return Ok(None);
            };
            let e = Ent::from_row(&row, 1)?;
            if e.expired(now, idle) {
                return Ok(None);
            }
            if e.needs_touch(now, idle) {
                // Guarded by the version, so it never revives or moves an
                // entry a writer replaced meanwhile.
                let st = client
                    .prepare_cached(
                        "UPDATE vessel_dict_entries SET access_ms = $4 WHERE dict = $1 \
                         AND key = $2 AND version = $3 AND deadline_ms = 0 AND access_ms < $4",
                    )
                    .await?;
                client
                    .execute(&st, &[&d, &k, &to_db(e.version), &to_db(now)])
                    .await?;
            }
            Ok(Some(DictEntry {
                value,
                version: e.version,
            }))
        })
    }

    fn put(
        &self,
        dict: &str,
        key: &str,
        value: &[u8],
        opts: &PutOptions,
    ) -> Result<PutOutcome, DictError> {
        let (d, k, v, opts) = (dict.to_owned(), key.to_owned(), value.to_vec(), *opts);
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let old = read_entry(tx, &d, k.as_bytes()).await?;
                let live = old.as_ref().filter(|(e, _)| !e.expired(now, idle));
                if opts.if_absent && live.is_some() {
                    return Ok(PutOutcome::Skipped);
                }
                if let Some(want) = opts.if_version
                    && live.map(|(e, _)| e.version) != Some(want)
                {
                    return Err(DictError::VersionMismatch { key: k });
                }
                let version = locked.next(&d)?;
                let e = Ent {
                    version,
                    access: now,
                    deadline: opts
                        .ttl_ms
                        .map(|t| now.saturating_add(t).clamp(1, i64::MAX as u64))
                        .unwrap_or(0),
                };
                if old.is_none() {
                    locked.live += 1;
                }
                write_entry(tx, &d, k.as_bytes(), &v, &e).await?;
                Ok(PutOutcome::Written { version })
            })
        })
    }

    fn pop(&self, dict: &str, key: &str) -> Result<Option<DictEntry>, DictError> {
        let (d, k) = (dict.to_owned(), key.as_bytes().to_vec());
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let st = tx
                    .prepare_cached(
                        "DELETE FROM vessel_dict_entries WHERE dict = $1 AND key = $2 \
                         RETURNING value, version, access_ms, deadline_ms",
                    )
                    .await?;
                let Some(row) = tx.query_opt(&st, &[&d, &k]).await? else {
                    return Ok(None);
                };
                locked.live = locked.live.saturating_sub(1);
                let e = Ent::from_row(&row, 1)?;
                if e.expired(now, idle) {
                    return Ok(None);
                }
                Ok(Some(DictEntry {
                    value: col(&row, 0)?,
                    version: e.version,
                }))
            })
        })
    }

    fn len(&self, dict: &str) -> Result<u64, DictError> {
        let d = dict.to_owned();
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let n = purge_due(tx, &d, now, idle, i64::MAX).await?;
                locked.live = locked.live.saturating_sub(n);
                Ok(locked.live)
            })
        })
    }

    fn update(&self, dict: &str, entries: &[(String, Vec<u8>)]) -> Result<(), DictError> {
        // The last value of a key wins, with the version of its position
        // (versions advance once per pair, as in the embedded store).
        let mut last: BTreeMap<&str, (usize, &[u8])> = BTreeMap::new();
        for (i, (k, v)) in entries.iter().enumerate() {
            last.insert(k.as_str(), (i, v.as_slice()));
        }
        let keys: Vec<Vec<u8>> = last.keys().map(|k| k.as_bytes().to_vec()).collect();
        let values: Vec<Vec<u8>> = last.values().map(|(_, v)| v.to_vec()).collect();
        let positions: Vec<i64> = last.values().map(|(i, _)| to_db(*i as u64)).collect();
        let total = entries.len() as u64;
        let d = dict.to_owned();
        let now = self.now_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let base = locked.counter;
                for _ in 0..total {
                    locked.next(&d)?;
                }
                let st = tx
                    .prepare_cached(
                        "INSERT INTO vessel_dict_entries \
                         (dict, key, value, version, access_ms, deadline_ms) \
                         SELECT $1, k, v, $4 + p + 1, $5, 0 \
                         FROM unnest($2::bytea[], $3::bytea[], $6::bigint[]) AS t(k, v, p) \
                         ON CONFLICT (dict, key) DO UPDATE SET value = EXCLUDED.value, \
                         version = EXCLUDED.version, access_ms = EXCLUDED.access_ms, \
                         deadline_ms = 0 RETURNING (xmax = 0)",
                    )
                    .await?;
                let rows = tx
                    .query(
                        &st,
                        &[&d, &keys, &values, &to_db(base), &to_db(now), &positions],
                    )
                    .await?;
                let mut inserted = 0u64;
                for r in &rows {
                    if col::<bool>(r, 0)? {
                        inserted += 1;
                    }
                }
                locked.live += inserted;
                Ok(())
            })
        })
    }

    fn remove_many(&self, dict: &str, keys: &[String]) -> Result<u64, DictError> {
        let mut unique: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        unique.sort();
        unique.dedup();
        let d = dict.to_owned();
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let st = tx
                    .prepare_cached(
                        "DELETE FROM vessel_dict_entries WHERE dict = $1 AND key = ANY($2) \
                         RETURNING version, access_ms, deadline_ms",
                    )
                    .await?;
                let rows = tx.query(&st, &[&d, &unique]).await?;
                let mut removed = 0u64;
                for r in &rows {
                    locked.live = locked.live.saturating_sub(1);
                    if !Ent::from_row(r, 0)?.expired(now, idle) {
                        removed += 1;
                    }
                }
                Ok(removed)
            })
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
        // The cursor is the last key returned: continue strictly after it.
        let (start, exclusive) = match cursor {
            Some(c) if c.as_bytes() >= prefix.as_bytes() => (c.as_bytes().to_vec(), true),
            _ => (prefix.as_bytes().to_vec(), false),
        };
        let end = prefix_end(prefix.as_bytes());
        let d = dict.to_owned();
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT 1 FROM vessel_dicts WHERE name = $1 AND NOT deleted")
                .await?;
            if client.query_opt(&st, &[&d]).await?.is_none() {
                return Err(DictError::NotFound(d));
            }
            let sql = format!(
                "SELECT key, CASE WHEN $6 THEN value END, version, octet_length(value) FROM vessel_dict_entries \
                 WHERE dict = $1 AND key {} $2 AND ($3::bytea IS NULL OR key < $3) AND {} \
                 ORDER BY key LIMIT $7",
                if exclusive { ">" } else { ">=" },
                live_sql(4, 5)
            );
            let st = client.prepare_cached(&sql).await?;
            let rows = client
                .query(
                    &st,
                    &[
                        &d,
                        &start,
                        &end,
                        &to_db(now),
                        &cutoff(now, idle),
                        &with_values,
                        &(i64::from(limit) + 1),
                    ],
                )
                .await?;
            let more = rows.len() > limit as usize;
            let mut items = Vec::with_capacity(rows.len().min(limit as usize));
            for r in rows.iter().take(limit as usize) {
                let key = String::from_utf8(col::<Vec<u8>>(r, 0)?)
                    .map_err(|_| DictError::Corrupt("a stored key is not UTF-8".into()))?;
                items.push(ScanItem {
                    key,
                    value: col(r, 1)?,
                    version: u64_col(r, 2, "a version")?,
                    size: col::<i32>(r, 3)?.max(0) as u64,
                });
            }
            let cursor = if more {
                items.last().map(|i| i.key.clone())
            } else {
                None
            };
            Ok(ScanPage { items, cursor })
        })
    }

    fn clear(&self, dict: &str) -> Result<(), DictError> {
        let d = dict.to_owned();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let st = tx
                    .prepare_cached("DELETE FROM vessel_dict_entries WHERE dict = $1")
                    .await?;
                tx.execute(&st, &[&d]).await?;
                locked.live = 0;
                Ok(())
            })
        })
    }

    fn increment(&self, dict: &str, key: &str, delta: i64) -> Result<i64, DictError> {
        let (d, k) = (dict.to_owned(), key.to_owned());
        let now = self.now_ms();
        let idle = self.idle_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let old = read_entry(tx, &d, k.as_bytes()).await?;
                let live = old.as_ref().filter(|(e, _)| !e.expired(now, idle));
                let base = match live {
                    Some((_, v)) => parse_counter(&k, v)?,
                    None => 0,
                };
                let n = base
                    .checked_add(delta)
                    .ok_or_else(|| DictError::Overflow { key: k.clone() })?;
                let version = locked.next(&d)?;
                let e = Ent {
                    version,
                    access: now,
                    // An increment keeps the entry's own TTL.
                    deadline: live.map(|(e, _)| e.deadline).unwrap_or(0),
                };
                if old.is_none() {
                    locked.live += 1;
                }
                write_entry(tx, &d, k.as_bytes(), n.to_string().as_bytes(), &e).await?;
                Ok(n)
            })
        })
    }

    fn lock(&self, dict: &str, key: &str, ttl_ms: u64) -> Result<Option<LeaseInfo>, DictError> {
        let (d, k) = (dict.to_owned(), key.as_bytes().to_vec());
        let now = self.now_ms();
        self.dict_tx(dict, move |tx, locked| {
            Box::pin(async move {
                let st = tx
                    .prepare_cached(
                        "SELECT expires_ms FROM vessel_dict_leases WHERE dict = $1 AND key = $2",
                    )
                    .await?;
                if let Some(row) = tx.query_opt(&st, &[&d, &k]).await?
                    && u64_col(&row, 0, "a lease expiry")? > now
                {
                    return Ok(None);
                }
                // Tokens come from the dict's counter, which only grows.
                let token = locked.next(&d)?;
                let expires_at_ms = now.saturating_add(ttl_ms).min(i64::MAX as u64);
                let st = tx
                    .prepare_cached(
                        "INSERT INTO vessel_dict_leases (dict, key, token, expires_ms) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (dict, key) DO UPDATE SET \
                         token = EXCLUDED.token, expires_ms = EXCLUDED.expires_ms",
                    )
                    .await?;
                tx.execute(&st, &[&d, &k, &to_db(token), &to_db(expires_at_ms)])
                    .await?;
                Ok(Some(LeaseInfo {
                    token,
                    expires_at_ms,
                }))
            })
        })
    }

    fn renew(
        &self,
        dict: &str,
        key: &str,
        token: u64,
        ttl_ms: u64,
    ) -> Result<LeaseInfo, DictError> {
        let (d, k, name) = (dict.to_owned(), key.as_bytes().to_vec(), key.to_owned());
        let now = self.now_ms();
        self.dict_tx(dict, move |tx, _| {
            Box::pin(async move {
                let expires_at_ms = now.saturating_add(ttl_ms).min(i64::MAX as u64);
                // An expired lease nobody took since is still ours.
                let st = tx
                    .prepare_cached(
                        "UPDATE vessel_dict_leases SET expires_ms = $4 \
                         WHERE dict = $1 AND key = $2 AND token = $3",
                    )
                    .await?;
                let n = tx
                    .execute(&st, &[&d, &k, &to_db(token), &to_db(expires_at_ms)])
                    .await?;
                if n == 0 {
                    return Err(DictError::LeaseLost { key: name });
                }
                Ok(LeaseInfo {
                    token,
                    expires_at_ms,
                })
            })
        })
    }

    fn release(&self, dict: &str, key: &str, token: u64) -> Result<(), DictError> {
        let (d, k) = (dict.to_owned(), key.as_bytes().to_vec());
        self.dict_tx(dict, move |tx, _| {
            Box::pin(async move {
                let st = tx
                    .prepare_cached(
                        "DELETE FROM vessel_dict_leases WHERE dict = $1 AND key = $2 AND token = $3",
                    )
                    .await?;
                tx.execute(&st, &[&d, &k, &to_db(token)]).await?;
                Ok(())
            })
        })
    }

    fn sweep_expired(&self, max: usize) -> Result<usize, DictError> {
        let names: Vec<String> = self.dict_op(|inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT name FROM vessel_dicts WHERE NOT deleted ORDER BY name")
                .await?;
            let mut out = Vec::new();
            for row in client.query(&st, &[]).await? {
                out.push(col(&row, 0)?);
            }
            Ok(out)
        })?;
        let mut total = 0usize;
        for name in names {
            if total >= max {
                break;
            }
            let d = name.clone();
            let now = self.now_ms();
            let idle = self.idle_ms();
            let want = to_db((max - total) as u64);
            match self.dict_tx(&name, move |tx, locked| {
                Box::pin(async move {
                    let n = purge_due(tx, &d, now, idle, want).await?;
                    locked.live = locked.live.saturating_sub(n);
                    Ok(n)
                })
            }) {
                Ok(n) => total += usize::try_from(n).unwrap_or(usize::MAX),
                Err(DictError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    fn limits(&self) -> DictLimits {
        DictLimits {
            max_key_bytes: MAX_KEY_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            max_update_entries: MAX_UPDATE_ENTRIES,
            max_scan_limit: MAX_SCAN_LIMIT,
            idle_expiry_ms: self.idle_ms(),
        }
    }
}

#[cfg(test)]
mod tests;
