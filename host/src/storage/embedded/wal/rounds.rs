//! Group commit: how a writer's record becomes durable, by leading a sync
//! round or waiting on the one that runs, and the background thread that
//! starts rounds nobody leads.

use super::*;

/// Drives record `seq` towards durable, the part threads and tasks share:
/// `None` once it is durable and applied (leading rounds itself while none
/// runs), or the sync state, locked, while another caller's round runs,
/// for the caller to wait on in its own way.
pub(super) fn until_waiting(
    inner: &Inner,
    seq: u64,
) -> io::Result<Option<MutexGuard<'_, SyncState>>> {
    let mut st = inner.lock_sync()?;
    loop {
        if let Some(p) = &st.poisoned {
            return Err(poisoned(p));
        }
        if st.synced >= seq {
            return Ok(None);
        }
        if st.syncing {
            return Ok(Some(st));
        }
        st = lead_round(inner, st)?;
    }
}

/// Runs a round (`st` shows none running) and publishes its outcome to
/// every waiter, threads and tasks; returns the sync state locked again.
pub(super) fn lead_round<'a>(
    inner: &'a Inner,
    mut st: MutexGuard<'a, SyncState>,
) -> io::Result<MutexGuard<'a, SyncState>> {
    st.syncing = true;
    drop(st);
    let result = inner.round();
    let mut st = inner.lock_sync()?;
    st.syncing = false;
    st.rounds += 1;
    match result {
        Ok(upto) => {
            let m = crate::metrics::global();
            m.fsync_rounds.inc();
            m.fsync_round_writes
                .observe(upto.saturating_sub(st.synced) as f64);
            st.synced = st.synced.max(upto);
        }
        Err(e) => st.poisoned = Some((e.kind(), e.to_string())),
    }
    inner.done.notify_all();
    for w in st.wakers.drain(..) {
        w.wake();
    }
    Ok(st)
}

pub(super) fn wait_synced(inner: &Inner, seq: u64) -> io::Result<()> {
    while let Some(st) = until_waiting(inner, seq)? {
        // Waiting for another writer's round is idle time: an async worker
        // hands its other tasks off meanwhile (leading a round is one
        // fdatasync and runs in place).
        drop(
            crate::blocking::off_worker(|| inner.done.wait(st))
                .map_err(|_| io::Error::other("dict log lock poisoned"))?,
        );
    }
    Ok(())
}

/// Applies records nobody waits for (see [`Wal::transact`]); stops when
/// the store is dropped.
pub(super) fn background(weak: &Weak<Inner>, kick: &Kick) {
    loop {
        let due = {
            let Ok(due) = kick.due.lock() else { return };
            let Ok((mut due, _)) =
                kick.cv
                    .wait_timeout_while(due, Duration::from_millis(100), |d| !*d)
            else {
                return;
            };
            std::mem::take(&mut *due)
        };
        let Some(inner) = weak.upgrade() else { return };
        if due {
            let last = inner.writer.lock().map(|w| w.last).unwrap_or(0);
            if let Err(e) = wait_synced(&inner, last) {
                tracing::warn!("dict log round failed: {e}");
                return;
            }
        }
    }
}
