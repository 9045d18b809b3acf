//! Rows of the shared backend's dict tables: reading, locking and writing a
//! dict's record and its entries, purging expired ones, and the store's
//! internals over them.

use super::*;
use crate::storage::dict::expiry::{self, slack};

/// Column `i` of `row`, as `T`; a type mismatch is corruption, not a panic.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, DictError> {
    row.try_get(i)
        .map_err(|e| DictError::Corrupt(format!("a dict row: column {i}: {e}")))
}

pub(super) fn u64_col(row: &Row, i: usize, what: &str) -> Result<u64, DictError> {
    from_db(col::<i64>(row, i)?, what).map_err(DictError::Corrupt)
}

/// The stored state of an entry, value aside.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ent {
    pub(super) version: u64,
    pub(super) access: u64,
    pub(super) deadline: u64,
}

impl Ent {
    pub(super) fn from_row(row: &Row, at: usize) -> Result<Ent, DictError> {
        Ok(Ent {
            version: u64_col(row, at, "a version")?,
            access: u64_col(row, at + 1, "an access time")?,
            deadline: u64_col(row, at + 2, "a deadline")?,
        })
    }
    pub(super) fn expired(&self, now: u64, idle: u64) -> bool {
        expiry::expired(self.access, self.deadline, now, idle)
    }
    pub(super) fn needs_touch(&self, now: u64, idle: u64) -> bool {
        expiry::needs_touch(self.access, self.deadline, now, idle)
    }
}

/// The dict's row, locked for the transaction.
pub(super) struct Locked {
    pub(super) counter: u64,
    pub(super) live: u64,
}

impl Locked {
    pub(super) fn next(&mut self, name: &str) -> Result<u64, DictError> {
        self.counter = self
            .counter
            .checked_add(1)
            .filter(|c| *c <= i64::MAX as u64)
            .ok_or_else(|| {
                DictError::Corrupt(format!("the version counter of dict `{name}` is exhausted"))
            })?;
        Ok(self.counter)
    }
}

pub(super) async fn lock_dict(tx: &Transaction<'_>, name: &str) -> Result<Locked, DictError> {
    let st = tx
        .prepare_cached(
            "SELECT counter, live FROM vessel_dicts WHERE name = $1 AND NOT deleted FOR UPDATE",
        )
        .await?;
    let row = tx
        .query_opt(&st, &[&name])
        .await?
        .ok_or_else(|| DictError::NotFound(name.to_owned()))?;
    Ok(Locked {
        counter: u64_col(&row, 0, "a dict counter")?,
        live: u64_col(&row, 1, "a dict's entry count")?,
    })
}

pub(super) async fn save_dict(
    tx: &Transaction<'_>,
    name: &str,
    l: &Locked,
) -> Result<(), DictError> {
    let st = tx
        .prepare_cached("UPDATE vessel_dicts SET counter = $2, live = $3 WHERE name = $1")
        .await?;
    tx.execute(&st, &[&name, &to_db(l.counter), &to_db(l.live)])
        .await?;
    Ok(())
}

pub(super) async fn read_entry(
    tx: &Transaction<'_>,
    dict: &str,
    key: &[u8],
) -> Result<Option<(Ent, Vec<u8>)>, DictError> {
    let st = tx
        .prepare_cached(
            "SELECT value, version, access_ms, deadline_ms FROM vessel_dict_entries \
             WHERE dict = $1 AND key = $2",
        )
        .await?;
    match tx.query_opt(&st, &[&dict, &key]).await? {
        None => Ok(None),
        Some(row) => Ok(Some((Ent::from_row(&row, 1)?, col(&row, 0)?))),
    }
}

pub(super) async fn write_entry(
    tx: &Transaction<'_>,
    dict: &str,
    key: &[u8],
    value: &[u8],
    e: &Ent,
) -> Result<(), DictError> {
    let st = tx
        .prepare_cached(
            "INSERT INTO vessel_dict_entries (dict, key, value, version, access_ms, deadline_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dict, key) DO UPDATE SET \
             value = EXCLUDED.value, version = EXCLUDED.version, \
             access_ms = EXCLUDED.access_ms, deadline_ms = EXCLUDED.deadline_ms",
        )
        .await?;
    tx.execute(
        &st,
        &[
            &dict,
            &key,
            &value,
            &to_db(e.version),
            &to_db(e.access),
            &to_db(e.deadline),
        ],
    )
    .await?;
    Ok(())
}

/// The smallest byte string greater than every string starting with
/// `prefix`, or `None` when there is none (empty or all-0xff prefix).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The SQL condition "the entry has not expired" over `$now` and `$cutoff`
/// (now - idle - slack) given as parameters `now` and `cutoff`.
pub(super) fn live_sql(now: usize, cutoff: usize) -> String {
    format!("(CASE WHEN deadline_ms <> 0 THEN deadline_ms > ${now} ELSE access_ms > ${cutoff} END)")
}

/// `now - idle - slack`: idle entries last accessed at or before it are due.
pub(super) fn cutoff(now: u64, idle: u64) -> i64 {
    to_db(now) - to_db(idle.saturating_add(slack(idle)))
}

/// Removes up to `max` due entries of a locked dict; returns how many.
pub(super) async fn purge_due(
    tx: &Transaction<'_>,
    dict: &str,
    now: u64,
    idle: u64,
    max: i64,
) -> Result<u64, DictError> {
    let due = format!("NOT {}", live_sql(2, 3));
    let st = tx
        .prepare_cached(&format!(
            "DELETE FROM vessel_dict_entries WHERE dict = $1 AND {due} AND key IN \
             (SELECT key FROM vessel_dict_entries WHERE dict = $1 AND {due} LIMIT $4)"
        ))
        .await?;
    let n = tx
        .execute(&st, &[&dict, &to_db(now), &cutoff(now, idle), &max])
        .await?;
    Ok(n)
}

impl RemoteStore {
    pub(super) fn idle_ms(&self) -> u64 {
        self.inner.idle_ms.load(Ordering::Relaxed)
    }

    /// Runs a dict operation on the store's runtime under its timeout.
    pub(super) fn dict_op<T, F, Fut>(&self, f: F) -> Result<T, DictError>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, DictError>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.inner.clone());
        self.block(Some(self.inner.op_timeout), fut)
    }

    /// Runs `body` in one transaction holding the lock on `dict`'s row,
    /// then stores the row's counter and count as `body` left them.
    pub(super) fn dict_tx<T, B>(&self, dict: &str, body: B) -> Result<T, DictError>
    where
        T: Send + 'static,
        B: for<'t> FnOnce(
                &'t Transaction<'t>,
                &'t mut Locked,
            ) -> std::pin::Pin<
                Box<dyn Future<Output = Result<T, DictError>> + Send + 't>,
            > + Send
            + 'static,
    {
        let dict = dict.to_owned();
        self.dict_op(move |inner| async move {
            let mut client = inner.pool.get().await?;
            let tx = client.transaction().await?;
            let mut locked = lock_dict(&tx, &dict).await?;
            let before = (locked.counter, locked.live);
            let out = body(&tx, &mut locked).await?;
            if (locked.counter, locked.live) != before {
                save_dict(&tx, &dict, &locked).await?;
            }
            tx.commit().await?;
            Ok(out)
        })
    }

    /// Whether a dict exists (not deleted).
    pub(super) fn dict_exists_now(&self, dict: &str) -> Result<bool, DictError> {
        let dict = dict.to_owned();
        self.dict_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT 1 FROM vessel_dicts WHERE name = $1 AND NOT deleted")
                .await?;
            Ok(client.query_opt(&st, &[&dict]).await?.is_some())
        })
    }
}
