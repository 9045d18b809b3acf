//! Rows of the shared backend's volume tables, and the store's internals
//! over them: reading heads and nodes, touching blobs, and the SQL they share.

use super::*;

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Column `i` of `row`, as `T`; a type mismatch is corruption, not a panic.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, VolumeError> {
    row.try_get(i)
        .map_err(|e| VolumeError::Corrupt(format!("a volume row: column {i}: {e}")))
}

pub(super) fn u64_col(row: &Row, i: usize, what: &str) -> Result<u64, VolumeError> {
    from_db(col::<i64>(row, i)?, what).map_err(VolumeError::Corrupt)
}

pub(super) fn kind_code(kind: NodeKind) -> i16 {
    match kind {
        NodeKind::File => 0,
        NodeKind::Dir => 1,
        NodeKind::Symlink => 2,
    }
}

/// The kind a `kind` column holds ([`kind_code`] back).
pub(super) fn kind_of(code: i16) -> Result<NodeKind, VolumeError> {
    match code {
        0 => Ok(NodeKind::File),
        1 => Ok(NodeKind::Dir),
        2 => Ok(NodeKind::Symlink),
        k => Err(VolumeError::Corrupt(format!(
            "node record: unknown kind {k}"
        ))),
    }
}

/// The columns a node is read with, `kind, blob, size, mtime_ms, mode,
/// target`, prefixed by `t.`.
pub(super) fn node_cols(t: &str) -> String {
    ["kind", "blob", "size", "mtime_ms", "mode", "target"]
        .iter()
        .map(|c| format!("{t}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node in the six columns from `at`; `None` when they are NULL (an
/// outer join that found nothing).
pub(super) fn node_at(row: &Row, at: usize) -> Result<Option<Node>, VolumeError> {
    let Some(kind) = col::<Option<i16>>(row, at)? else {
        return Ok(None);
    };
    let kind = kind_of(kind)?;
    let blob = match col::<Option<Vec<u8>>>(row, at + 1)? {
        None => None,
        Some(b) => Some(BlobId(b.try_into().map_err(|_| {
            VolumeError::Corrupt("node record: a blob id is not 32 bytes".into())
        })?)),
    };
    let mode = u32::try_from(col::<i64>(row, at + 4)?)
        .map_err(|_| VolumeError::Corrupt("node record: mode out of range".into()))?;
    Ok(Some(Node {
        kind,
        blob,
        size: u64_col(row, at + 2, "a size")?,
        mtime_ms: u64_col(row, at + 3, "an mtime")?,
        mode,
        target: col(row, at + 5)?,
    }))
}

/// One level of a fork's chain: volume `id` as it was at `version` (see
/// [`crate::storage::volume::fork`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Level {
    pub(super) id: i64,
    pub(super) version: u64,
}

/// A volume's row.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    pub(super) id: i64,
    pub(super) head: u64,
    pub(super) created_ms: u64,
    pub(super) inodes: u64,
    pub(super) bytes: u64,
    pub(super) max_bytes: Option<u64>,
    /// `None`: [`DEFAULT_RETENTION_MS`].
    pub(super) retention_ms: Option<u64>,
    /// The oldest version history may reach; `None`: a volume written
    /// before history existed and not committed to since (none before its
    /// head).
    pub(super) history_from: Option<u64>,
    /// The levels a fork reads through, nearest first (`base_ids`,
    /// `base_versions`); empty for a volume that is not a fork.
    pub(super) chain: Vec<Level>,
}

impl Meta {
    /// How long replaced versions stay readable.
    pub(super) fn retention(&self) -> u64 {
        self.retention_ms.unwrap_or(DEFAULT_RETENTION_MS)
    }

    /// The oldest version history may reach (gc's floor included), at most
    /// the head.
    pub(super) fn floor(&self) -> u64 {
        self.history_from.unwrap_or(self.head).min(self.head)
    }

    /// The levels a read of this volume at `version` goes through: the
    /// volume itself at `version` (its history rows after it, its own rows,
    /// its hidden rows), then its chain. For a volume that is not a fork,
    /// that one level is exactly how history reads an older version.
    pub(super) fn levels(&self, version: u64) -> Vec<Level> {
        let mut out = Vec::with_capacity(self.chain.len() + 1);
        out.push(Level {
            id: self.id,
            version,
        });
        out.extend(self.chain.iter().copied());
        out
    }
}

pub(super) const META_COLS: &str = "id, head, created_ms, inodes, bytes, max_bytes, \
     retention_ms, history_from, base_ids, base_versions";

/// How many columns [`META_COLS`] are.
pub(super) const META_LEN: usize = 10;

/// An optional non-negative column.
fn opt_u64_col(row: &Row, i: usize, what: &str) -> Result<Option<u64>, VolumeError> {
    match col::<Option<i64>>(row, i)? {
        Some(v) => Ok(Some(from_db(v, what).map_err(VolumeError::Corrupt)?)),
        None => Ok(None),
    }
}

pub(super) fn meta_at(row: &Row, at: usize) -> Result<Meta, VolumeError> {
    Ok(Meta {
        id: col(row, at)?,
        head: u64_col(row, at + 1, "a head version")?,
        created_ms: u64_col(row, at + 2, "a creation time")?,
        inodes: u64_col(row, at + 3, "an inode count")?,
        bytes: u64_col(row, at + 4, "a byte count")?,
        max_bytes: opt_u64_col(row, at + 5, "a byte quota")?,
        retention_ms: opt_u64_col(row, at + 6, "a retention")?,
        history_from: opt_u64_col(row, at + 7, "a history start")?,
        chain: chain_at(row, at + 8)?,
    })
}

/// The chain in the two array columns from `at` (both NULL: none).
fn chain_at(row: &Row, at: usize) -> Result<Vec<Level>, VolumeError> {
    let ids = col::<Option<Vec<i64>>>(row, at)?.unwrap_or_default();
    let versions = col::<Option<Vec<i64>>>(row, at + 1)?.unwrap_or_default();
    if ids.len() != versions.len() {
        return Err(VolumeError::Corrupt(format!(
            "a volume row names {} base volumes but {} base versions",
            ids.len(),
            versions.len()
        )));
    }
    ids.into_iter()
        .zip(versions)
        .map(|(id, v)| {
            Ok(Level {
                id,
                version: from_db(v, "a base version").map_err(VolumeError::Corrupt)?,
            })
        })
        .collect()
}

pub(super) fn info_of(name: String, m: &Meta) -> VolumeInfo {
    VolumeInfo {
        name,
        version: m.head,
        created_ms: m.created_ms,
        inodes: m.inodes,
        bytes: m.bytes,
        max_bytes: m.max_bytes,
        retention_ms: m.retention(),
    }
}

/// The root is implicit (never stored).
pub(super) fn root_node(created_ms: u64) -> Node {
    Node {
        kind: NodeKind::Dir,
        blob: None,
        size: 0,
        mtime_ms: created_ms,
        mode: IMPLICIT_DIR_MODE,
        target: None,
    }
}

/// The key range of everything strictly under `dir` (`""`: the root):
/// `dir/` inclusive to `dir0` exclusive (`0` follows `/`).
pub(super) fn subtree_range(dir: &str) -> (String, Option<String>) {
    if dir.is_empty() {
        (String::new(), None)
    } else {
        (format!("{dir}/"), Some(format!("{dir}0")))
    }
}

/// Locks blobs `ids` (in id order) and marks them as just used; returns the
/// size of each one found.
pub(super) async fn touch_blobs(
    tx: &Transaction<'_>,
    ids: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, u64>, VolumeError> {
    let st = tx
        .prepare_cached(
            "UPDATE vessel_blobs SET touched = now() WHERE id IN \
             (SELECT id FROM vessel_blobs WHERE id = ANY($1) ORDER BY id FOR UPDATE) \
             RETURNING id, size",
        )
        .await?;
    let mut out = HashMap::new();
    for row in tx.query(&st, &[&ids]).await? {
        out.insert(col::<Vec<u8>>(&row, 0)?, u64_col(&row, 1, "a blob size")?);
    }
    Ok(out)
}

impl RemoteStore {
    /// Runs a volume operation on the store's runtime under its timeout.
    pub(super) fn vol_op<T, F, Fut>(&self, f: F) -> Result<T, VolumeError>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, VolumeError>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.inner.clone());
        self.block(Some(self.inner.op_timeout), fut)
    }

    /// Runs an S3 transfer step on the store's runtime (S3 requests carry
    /// their own timeouts, and a large transfer may rightly take long).
    pub(super) fn s3_run(
        &self,
        fut: futures_util::future::BoxFuture<'static, Result<(), S3Error>>,
    ) -> Result<(), S3Error> {
        self.block(None, fut)
    }

    pub(super) fn meta_of(&self, name: &str) -> Result<Meta, VolumeError> {
        check_volume_name(name)?;
        let n = name.to_owned();
        self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(&format!(
                    "SELECT {META_COLS} FROM vessel_volumes WHERE name = $1"
                ))
                .await?;
            match client.query_opt(&st, &[&n]).await? {
                Some(row) => meta_at(&row, 0),
                None => Err(VolumeError::NotFound(n)),
            }
        })
    }

    /// The head of volume `id` (named `name`), which is not a fork. One
    /// statement, so one consistent view whatever commits meanwhile.
    pub(super) fn snapshot_own(&self, name: &str, id: i64) -> Result<Snapshot, VolumeError> {
        let n = name.to_owned();
        self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(&format!(
                    "SELECT v.head, n.path, {} FROM vessel_volumes v \
                     LEFT JOIN vessel_volume_nodes n ON n.volume = v.id \
                     WHERE v.id = $1 ORDER BY n.path",
                    node_cols("n")
                ))
                .await?;
            let rows = client.query(&st, &[&id]).await?;
            let Some(first) = rows.first() else {
                return Err(VolumeError::NotFound(n));
            };
            let head = u64_col(first, 0, "a head version")?;
            let mut nodes = Vec::with_capacity(rows.len());
            for row in &rows {
                let Some(path) = col::<Option<String>>(row, 1)? else {
                    continue;
                };
                if let Some(node) = node_at(row, 2)? {
                    nodes.push((path, node));
                }
            }
            Ok(Snapshot {
                version: head,
                nodes,
            })
        })
    }

    /// Records an uploaded object as blob `id` (or touches the row another
    /// upload made first, and drops our copy).
    pub(super) fn register_blob(
        &self,
        id: BlobId,
        size: u64,
        key: String,
    ) -> Result<(), VolumeError> {
        let ours = key.clone();
        let winner: String = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached(
                    "INSERT INTO vessel_blobs (id, object, size) VALUES ($1, $2, $3) \
                     ON CONFLICT (id) DO UPDATE SET touched = now() RETURNING object",
                )
                .await?;
            let row = client
                .query_one(&st, &[&id.0.as_slice(), &key, &to_db(size)])
                .await?;
            col(&row, 0)
        })?;
        if winner != ours {
            let blobs = self.inner.blobs.clone();
            // Best effort: a leftover object is collected by gc.
            let _ = self.s3_run(Box::pin(async move { blobs.delete(ours).await }));
        }
        Ok(())
    }

    /// Touches blob `id`'s row if it exists (a dedup hit: the contents are
    /// stored already).
    pub(super) fn touch_existing(&self, id: BlobId) -> Result<bool, VolumeError> {
        self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("UPDATE vessel_blobs SET touched = now() WHERE id = $1")
                .await?;
            Ok(client.execute(&st, &[&id.0.as_slice()]).await? == 1)
        })
    }

    pub(super) fn upload_reader(
        &self,
        reader: &mut dyn Read,
    ) -> Result<(BlobId, u64), VolumeError> {
        let run = |f| self.s3_run(f);
        let ledger = |event: Ledger<'_>| self.record_upload(event);
        let up = Upload {
            blobs: &self.inner.blobs,
            run: &run,
            ledger: &ledger,
        };
        let (key, id, size) = up.send(reader).map_err(|e| s3_err(None, e))?;
        self.register_blob(id, size, key)?;
        Ok((id, size))
    }

    /// Keeps `vessel_uploads` in step with a multipart upload, so gc can
    /// abort it if this process dies before it completes.
    pub(super) fn record_upload(&self, event: Ledger<'_>) -> Result<(), S3Error> {
        /// The event, owned, for the database task.
        enum Row {
            Started { upload_id: String, host: String },
            Progress(i64),
            Finished,
        }
        let (key, row) = match event {
            Ledger::Started { key, upload_id } => (
                key.to_owned(),
                Row::Started {
                    upload_id: upload_id.to_owned(),
                    host: self.inner.host.clone(),
                },
            ),
            Ledger::Progress { key, bytes } => (
                key.to_owned(),
                Row::Progress(i64::try_from(bytes).unwrap_or(i64::MAX)),
            ),
            Ledger::Finished { key } => (key.to_owned(), Row::Finished),
        };
        self.block_db(move |inner| async move {
            let client = inner.pool.get().await?;
            match row {
                Row::Started { upload_id, host } => {
                    client
                        .execute(
                            "INSERT INTO vessel_uploads (object, upload_id, host) \
                             VALUES ($1, $2, $3)",
                            &[&key, &upload_id, &host],
                        )
                        .await?
                }
                Row::Progress(bytes) => {
                    client
                        .execute(
                            "UPDATE vessel_uploads SET bytes = $2, touched = now() \
                             WHERE object = $1",
                            &[&key, &bytes],
                        )
                        .await?
                }
                Row::Finished => {
                    client
                        .execute("DELETE FROM vessel_uploads WHERE object = $1", &[&key])
                        .await?
                }
            };
            Ok(())
        })
        .map_err(|e| S3Error::Unavailable(format!("recording an upload: {e}")))
    }

    /// The local folder of the blob cache.
    pub(super) fn cache_tmp(&self) -> PathBuf {
        self.inner.cache_dir.join("tmp")
    }

    /// Fetches blob `id` into the local cache (if it is not there) and
    /// returns the cached file.
    pub(super) fn fetch(&self, id: &BlobId) -> Result<PathBuf, VolumeError> {
        let dest = self.inner.cache.path(id);
        if dest.is_file() {
            self.inner.cache_index.touch(id);
            return Ok(dest);
        }
        let idb = id.0.to_vec();
        let key: Option<String> = self.vol_op(move |inner| async move {
            let client = inner.pool.get().await?;
            let st = client
                .prepare_cached("SELECT object FROM vessel_blobs WHERE id = $1")
                .await?;
            match client.query_opt(&st, &[&idb]).await? {
                Some(row) => Ok(Some(col(&row, 0)?)),
                None => Ok(None),
            }
        })?;
        let Some(key) = key else {
            return Err(BlobError::Missing(*id).into());
        };
        let io = |e: std::io::Error| VolumeError::Blob(BlobError::Io(e));
        crate::private::create_dir_all(&self.cache_tmp()).map_err(io)?;
        let tmp = tempfile::Builder::new()
            .prefix("fetch-")
            .tempfile_in(self.cache_tmp())
            .map_err(io)?
            .into_temp_path();
        let blobs = self.inner.blobs.clone();
        let path = tmp.to_path_buf();
        let (got, _) = self
            .block(None, async move { blobs.download(key, path).await })
            .map_err(|e| s3_err(Some(*id), e))?;
        if got != *id {
            return Err(BlobError::Corrupt {
                id: *id,
                actual: got,
            }
            .into());
        }
        let mut perms = std::fs::metadata(&tmp).map_err(io)?.permissions();
        perms.set_readonly(true);
        std::fs::set_permissions(&tmp, perms).map_err(io)?;
        if let Some(parent) = dest.parent() {
            crate::private::create_dir_all(parent).map_err(io)?;
        }
        let size = std::fs::metadata(&tmp).map_err(io)?.len();
        tmp.persist(&dest).map_err(|e| io(e.error))?;
        if let Some(parent) = dest.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        lock(&self.inner.verified).insert(*id);
        self.drop_cached(&self.inner.cache_index.added(*id, size));
        Ok(dest)
    }

    /// Removes cached copies (out of the index already); each is fetched
    /// again if read later.
    pub(super) fn drop_cached(&self, ids: &[BlobId]) {
        for id in ids {
            lock(&self.inner.verified).remove(id);
            // Gone already (a racing drop) is as good.
            let _ = std::fs::remove_file(self.inner.cache.path(id));
        }
    }
}
