//! Live mounts across hosts. Each mount of this process is registered in
//! its store's [`Mounts`] (exact blobs, for this host) and recorded in
//! `vessel_volume_mounts` as (host, volume id, version, lease): the version
//! is the one the mount reads (an older one, or the head when it
//! registered), at or before its snapshot. Every commit records in its log row the blobs it stopped naming
//! (`dropped`), so a collection on any host keeps each blob that a commit
//! after a live mount's version dropped: the blobs that mount's snapshot
//! may name and no head does. A deletion or rename on any host counts the
//! other hosts' live records.
//!
//! Records are leases: this process renews its own every third of
//! [`RemoteOptions::mount_lease`](crate::storage::remote::RemoteOptions),
//! and removes each when its mount ends. A host that dies leaves records
//! that expire a lease later; until then they only keep blobs (and refuse
//! deletions), never lose data.

use super::*;
use std::time::Duration;

use crate::storage::volume::pins::Registration;

/// This process's name in mount records: unique per open store, readable
/// in the table (host name and pid first).
pub(crate) fn host_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static OPENED: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{host}:{}:{nanos:x}:{}",
        std::process::id(),
        OPENED.fetch_add(1, Ordering::Relaxed)
    )
}

/// Seconds of `d`, for `make_interval`.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Renews this process's mount records every third of the lease, until the
/// store's runtime stops (its last handle dropped).
pub(crate) fn spawn_renewal(inner: &Inner) {
    let Some(rt) = inner.rt.as_ref() else {
        return;
    };
    let (pool, host, lease) = (inner.pool.clone(), inner.host.clone(), inner.mount_lease);
    rt.spawn(async move {
        let every = (lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            let renewed = async {
                let client = pool.get().await.map_err(DbError::from)?;
                client
                    .execute(
                        "UPDATE vessel_volume_mounts \
                         SET expires = now() + make_interval(secs => $2) WHERE host = $1",
                        &[&host, &secs(lease)],
                    )
                    .await
                    .map_err(DbError::from)
            };
            // Retried at the next round; a record that lapses meanwhile
            // only stops pinning, as if this host had died.
            if let Err(e) = renewed.await {
                tracing::warn!("renewing this host's mount records failed: {e}");
            }
        }
    });
}

impl RemoteStore {
    /// Registers a mount of `volume` here and in the database.
    /// Records a live mount of `volume` at `version` (`None`: the head),
    /// so the other hosts' collections keep what commits after it dropped.
    pub(super) fn register_mount_shared(
        &self,
        volume: &str,
        version: Option<u64>,
    ) -> Result<Registration, VolumeError> {
        let mut reg = self.inner.mounts.register(volume);
        let (host, lease) = (self.inner.host.clone(), self.inner.mount_lease);
        let name = volume.to_owned();
        let at: Option<i64> = version.map(to_db);
        let id: i64 = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "INSERT INTO vessel_volume_mounts (host, volume, version, expires) \
                     SELECT $1, id, LEAST(head, COALESCE($4::int8, head)), \
                     now() + make_interval(secs => $3) \
                     FROM vessel_volumes WHERE name = $2 RETURNING id",
                )
                .await?;
            match client
                .query_opt(&st, &[&host, &name, &secs(lease), &at])
                .await?
            {
                Some(row) => Ok(col(&row, 0)?),
                None => Err(VolumeError::NotFound(name)),
            }
        })?;
        // The record goes when the mount ends, without waiting for the
        // database: a record left behind (the store already closed, the
        // database away) lapses with its lease.
        let inner = Arc::downgrade(&self.inner);
        reg.on_drop(move || {
            let Some(inner) = inner.upgrade() else {
                return;
            };
            let Some(rt) = inner.rt.as_ref() else {
                return;
            };
            let pool = inner.pool.clone();
            rt.spawn(async move {
                if let Ok(client) = pool.get().await {
                    let _ = client
                        .execute("DELETE FROM vessel_volume_mounts WHERE id = $1", &[&id])
                        .await;
                }
            });
        });
        Ok(reg)
    }

    /// Live mount records of `volume` by other hosts.
    pub(super) fn mounts_elsewhere_shared(&self, volume: &str) -> Result<usize, VolumeError> {
        let (host, name) = (self.inner.host.clone(), volume.to_owned());
        let n: i64 = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "SELECT count(*) FROM vessel_volume_mounts m \
                     JOIN vessel_volumes v ON v.id = m.volume \
                     WHERE v.name = $1 AND m.host <> $2 AND m.expires > now()",
                )
                .await?;
            let row = client.query_one(&st, &[&name, &host]).await?;
            col(&row, 0)
        })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// The blobs live mounts on any host may still need: those dropped by
    /// a commit after a live mount's version. Also removes records whose
    /// lease ran out.
    pub(super) fn blobs_pinned_by_mounts(&self) -> Result<HashSet<Vec<u8>>, VolumeError> {
        self.vol_op(|inner| async move {
            let client = inner.pool.get().await?;
            client
                .execute(
                    "DELETE FROM vessel_volume_mounts WHERE expires <= now()",
                    &[],
                )
                .await?;
            let st = client
                .prepare_cached(
                    "SELECT DISTINCT d FROM vessel_volume_mounts m \
                     JOIN vessel_volume_log l ON l.volume = m.volume AND l.version > m.version \
                     CROSS JOIN LATERAL unnest(l.dropped) AS d \
                     WHERE m.expires > now()",
                )
                .await?;
            let mut out = HashSet::new();
            for row in client.query(&st, &[]).await? {
                out.insert(col(&row, 0)?);
            }
            Ok(out)
        })
    }
}
