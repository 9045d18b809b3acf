//! The shared backend: PostgreSQL holds the metadata (volume heads,
//! manifests, the commit log, dict entries, leases and counters) and any S3
//! store holds the file contents, so several `vessel` hosts share the same
//! volumes and dicts (JuiceFS's design: a metadata engine plus object
//! storage).
//!
//! [`RemoteStore`] implements both [`DictStore`](super::dict::DictStore)
//! ([`pg_dict`]) and [`VolumeStore`](super::volume::VolumeStore)
//! ([`pg_volume`], with blobs in [`s3`]).
//!
//! # Blocking callers, async clients
//!
//! The store traits block and are called from tokio blocking threads, from
//! async workers (rarely) and from plain threads. The clients
//! (tokio-postgres with a deadpool pool, object_store) are async. The store
//! owns a small tokio runtime of its own; a blocking method spawns its
//! future there and waits on a std channel, which works from any thread and
//! never starts a runtime inside another. Every database operation runs
//! under [`RemoteOptions::op_timeout`] and every S3 request under the
//! client's own timeouts, so a dead or hung service fails a call within
//! seconds with `Unavailable` instead of hanging it.
//!
//! # Time
//!
//! Dict expiry and lease deadlines use the store's [`Clock`] (the host's
//! clock), as the embedded store does: hosts sharing a database must keep
//! their clocks in sync (NTP); a skew of S shifts expiry and lease ends by
//! S, never versions or fencing tokens, which come from the database.
//! Blob ages for the garbage collector use the database's clock (`now()`),
//! the one clock every host sees.

pub mod cache;
pub mod pg_dict;
mod pg_tls;
pub mod pg_volume;
pub mod s3;
mod tokens;

use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};

use super::blobs::BlobStore;
use super::clock::{Clock, SystemClock};
use super::dict::{DEFAULT_IDLE_EXPIRY_MS, DictError};
use super::volume::cache::SnapshotCache;
use super::volume::pins::Mounts;
use super::volume::{DEFAULT_INODE_LIMIT, VolumeError};

/// Failures opening the shared backend.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("invalid --metadata URL: {0}")]
    MetadataUrl(String),
    #[error("invalid --blobs URL: {0}")]
    BlobsUrl(String),
    #[error("cannot reach the metadata database ({url}): {reason}")]
    Metadata { url: String, reason: String },
    #[error("cannot reach the blob store ({url}): {reason}")]
    Blobs { url: String, reason: String },
    #[error("cannot open the local blob cache {dir}: {reason}")]
    Cache { dir: PathBuf, reason: String },
}

/// How the shared backend is reached and how it behaves.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// `postgres://user:password@host:port/database` (any libpq-style
    /// parameter tokio-postgres understands, `options=-csearch_path=x`
    /// included).
    pub metadata_url: String,
    /// `s3://bucket[/prefix]?endpoint=URL&region=R&access_key_id=..&
    /// secret_access_key=..` (credentials also from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY`).
    pub blobs_url: String,
    /// The local folder where blobs are cached for mounts (hard links) and
    /// reads.
    pub cache_dir: PathBuf,
    /// Most bytes the cache folder holds: past it, the least recently used
    /// blobs are dropped (fetched again when next read).
    pub blob_cache_bytes: u64,
    /// Longest a database operation may take before it fails with
    /// `Unavailable`.
    pub op_timeout: Duration,
    /// Longest one S3 request may take (a part of a multipart upload is one
    /// request).
    pub request_timeout: Duration,
    pub dict_idle_expiry_ms: u64,
    pub volume_inode_limit: u64,
    /// How old an unreferenced blob must be before gc removes it.
    pub blob_gc_grace: Duration,
    /// Blobs larger than this are uploaded in parts (multipart upload).
    pub multipart_threshold: usize,
    /// Most pooled database connections.
    pub max_connections: usize,
    /// How long a host's record of a live mount lasts without renewal: the
    /// host renews its records three times per lease, so a host that died
    /// stops pinning blobs this long after.
    pub mount_lease: Duration,
}

impl RemoteOptions {
    /// Options with the defaults for everything but the two URLs and the
    /// cache folder.
    pub fn new(metadata_url: &str, blobs_url: &str, cache_dir: PathBuf) -> Self {
        RemoteOptions {
            metadata_url: metadata_url.to_owned(),
            blobs_url: blobs_url.to_owned(),
            cache_dir,
            blob_cache_bytes: cache::DEFAULT_BLOB_CACHE_BYTES,
            op_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            dict_idle_expiry_ms: DEFAULT_IDLE_EXPIRY_MS,
            volume_inode_limit: DEFAULT_INODE_LIMIT,
            blob_gc_grace: Duration::from_secs(3600),
            multipart_threshold: s3::DEFAULT_MULTIPART_THRESHOLD,
            max_connections: 16,
            mount_lease: Duration::from_secs(60),
        }
    }
}

/// Decodes the `%XX` escapes of a URL's query value; `+` is a space when
/// `plus_is_space` (form encoding, as in the `--blobs` URL), else itself
/// (libpq's URLs).
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(if plus_is_space && b == b'+' { b' ' } else { b });
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8 once decoded"))
}

/// The open shared backend. Cheap to clone; implements both store traits.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pub(crate) pool: Pool,
    pub(crate) blobs: s3::S3Blobs,
    pub(crate) cache: BlobStore,
    /// What the cache holds, to keep it under its bound.
    pub(crate) cache_index: cache::CacheIndex,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) idle_ms: AtomicU64,
    pub(crate) inode_limit: u64,
    pub(crate) gc_grace: Duration,
    pub(crate) op_timeout: Duration,
    location: String,
    pub(crate) cache_dir: PathBuf,
    /// Blobs whose cached copy this process has hash-checked.
    pub(crate) verified: std::sync::Mutex<std::collections::HashSet<super::blobs::BlobId>>,
    pub(crate) volume_cache: std::sync::Mutex<SnapshotCache<i64>>,
    /// This process's live mounts (the database records every host's).
    pub(crate) mounts: Mounts,
    /// This process's name in the database's mount records.
    pub(crate) host: String,
    pub(crate) mount_lease: Duration,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async worker; the
        // last handle may well be dropped on one.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// The tables, created when missing. Names are unqualified: the
/// connection's `search_path` picks the schema, so one database can hold
/// several independent stores (the tests use one schema each).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS vessel_dicts (
    name text COLLATE "C" PRIMARY KEY,
    created_ms bigint NOT NULL,
    counter bigint NOT NULL DEFAULT 0,
    live bigint NOT NULL DEFAULT 0,
    deleted boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS vessel_dict_entries (
    dict text COLLATE "C" NOT NULL,
    key bytea NOT NULL,
    value bytea NOT NULL,
    version bigint NOT NULL,
    access_ms bigint NOT NULL,
    deadline_ms bigint NOT NULL,
    PRIMARY KEY (dict, key)
);
CREATE INDEX IF NOT EXISTS vessel_dict_entries_idle
    ON vessel_dict_entries (dict, access_ms) WHERE deadline_ms = 0;
CREATE INDEX IF NOT EXISTS vessel_dict_entries_ttl
    ON vessel_dict_entries (dict, deadline_ms) WHERE deadline_ms <> 0;
CREATE TABLE IF NOT EXISTS vessel_dict_leases (
    dict text COLLATE "C" NOT NULL,
    key bytea NOT NULL,
    token bigint NOT NULL,
    expires_ms bigint NOT NULL,
    PRIMARY KEY (dict, key)
);
CREATE SEQUENCE IF NOT EXISTS vessel_volume_ids;
CREATE TABLE IF NOT EXISTS vessel_volumes (
    name text COLLATE "C" PRIMARY KEY,
    id bigint NOT NULL UNIQUE,
    head bigint NOT NULL,
    created_ms bigint NOT NULL,
    inodes bigint NOT NULL,
    bytes bigint NOT NULL
);
ALTER TABLE vessel_volumes ADD COLUMN IF NOT EXISTS max_bytes bigint;
ALTER TABLE vessel_volumes ADD COLUMN IF NOT EXISTS retention_ms bigint;
ALTER TABLE vessel_volumes ADD COLUMN IF NOT EXISTS history_from bigint;
ALTER TABLE vessel_volumes ADD COLUMN IF NOT EXISTS base_ids bigint[];
ALTER TABLE vessel_volumes ADD COLUMN IF NOT EXISTS base_versions bigint[];
CREATE INDEX IF NOT EXISTS vessel_volumes_base_ids
    ON vessel_volumes USING gin (base_ids) WHERE base_ids IS NOT NULL;
CREATE TABLE IF NOT EXISTS vessel_volume_nodes (
    volume bigint NOT NULL,
    path text COLLATE "C" NOT NULL,
    kind smallint NOT NULL,
    blob bytea,
    size bigint NOT NULL,
    mtime_ms bigint NOT NULL,
    mode bigint NOT NULL,
    target text,
    PRIMARY KEY (volume, path)
);
CREATE INDEX IF NOT EXISTS vessel_volume_nodes_blob
    ON vessel_volume_nodes (blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS vessel_volume_log (
    volume bigint NOT NULL,
    version bigint NOT NULL,
    time_ms bigint NOT NULL,
    changed text[] NOT NULL,
    removed text[] NOT NULL,
    PRIMARY KEY (volume, version)
);
ALTER TABLE vessel_volume_log ADD COLUMN IF NOT EXISTS dropped bytea[];
ALTER TABLE vessel_volume_log ADD COLUMN IF NOT EXISTS bytes_added bigint;
ALTER TABLE vessel_volume_log ADD COLUMN IF NOT EXISTS inodes bigint;
ALTER TABLE vessel_volume_log ADD COLUMN IF NOT EXISTS bytes bigint;
CREATE TABLE IF NOT EXISTS vessel_volume_history (
    volume bigint NOT NULL,
    path text COLLATE "C" NOT NULL,
    until bigint NOT NULL,
    kind smallint,
    blob bytea,
    size bigint,
    mtime_ms bigint,
    mode bigint,
    target text,
    PRIMARY KEY (volume, path, until)
);
CREATE INDEX IF NOT EXISTS vessel_volume_history_until
    ON vessel_volume_history (volume, until);
CREATE INDEX IF NOT EXISTS vessel_volume_history_blob
    ON vessel_volume_history (blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS vessel_volume_hidden (
    volume bigint NOT NULL,
    path text COLLATE "C" NOT NULL,
    PRIMARY KEY (volume, path)
);
CREATE TABLE IF NOT EXISTS vessel_volume_mounts (
    id bigserial PRIMARY KEY,
    host text NOT NULL,
    volume bigint NOT NULL,
    version bigint NOT NULL,
    expires timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS vessel_volume_mounts_volume ON vessel_volume_mounts (volume);
CREATE TABLE IF NOT EXISTS vessel_blobs (
    id bytea PRIMARY KEY,
    object text NOT NULL,
    size bigint NOT NULL,
    touched timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS vessel_uploads (
    object text PRIMARY KEY,
    upload_id text NOT NULL,
    host text NOT NULL,
    bytes bigint NOT NULL DEFAULT 0,
    touched timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS vessel_tokens (
    id text PRIMARY KEY,
    hash text NOT NULL UNIQUE,
    body text NOT NULL,
    seq bigserial NOT NULL
);
"#;

/// One advisory lock key for schema creation, so hosts starting together
/// do not race on `CREATE ... IF NOT EXISTS` (which is not atomic).
const SCHEMA_LOCK: i64 = 0x7665_7373_656c_0001;

impl RemoteStore {
    /// Connects to both services, creates the tables if missing, and
    /// checks the bucket can be reached.
    pub fn open(options: RemoteOptions) -> Result<Self, RemoteError> {
        Self::open_with_clock(options, Arc::new(SystemClock))
    }

    /// Like [`open`](Self::open) with a given clock (tests).
    pub fn open_with_clock(
        options: RemoteOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RemoteError> {
        let bad_url = |e: &dyn std::fmt::Display| {
            RemoteError::MetadataUrl(format!("{}: {e}", redact(&options.metadata_url)))
        };
        let (url, tls) = pg_tls::split_url(&options.metadata_url).map_err(|e| bad_url(&e))?;
        let mut pg = tokio_postgres::Config::from_str(&url).map_err(|e| bad_url(&e))?;
        pg.ssl_mode(tls.ssl_mode());
        let connector = pg_tls::connector(&tls).map_err(|e| bad_url(&e))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(options.op_timeout.min(Duration::from_secs(5)));
        }
        pg.application_name("vessel");
        // A write is acknowledged (and a commit visible to other sessions)
        // only once PostgreSQL has flushed it: a server configured with
        // `synchronous_commit = off` would otherwise show and acknowledge
        // commits a crash can take back. An explicit setting in the URL's
        // `options` wins.
        let startup = pg.get_options().unwrap_or_default().to_owned();
        if !startup.contains("synchronous_commit") {
            pg.options(format!("{startup} -csynchronous_commit=on").trim_start());
        }
        let blobs_cfg = s3::BlobsUrl::parse(&options.blobs_url).map_err(RemoteError::BlobsUrl)?;
        let location = format!("remote:{}|{}", pg_location(&pg), blobs_cfg.location());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vessel-remote")
            .enable_all()
            .build()
            .map_err(|e| RemoteError::Metadata {
                url: redact(&options.metadata_url),
                reason: format!("cannot start the client runtime: {e}"),
            })?;
        let manager = Manager::from_config(
            pg,
            connector,
            ManagerConfig {
                // A connection the server closed is noticed by its task and
                // replaced; a check query per checkout would cost a round
                // trip on every operation.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.op_timeout))
            .create_timeout(Some(options.op_timeout.min(Duration::from_secs(5))))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| RemoteError::Metadata {
                url: redact(&options.metadata_url),
                reason: e.to_string(),
            })?;
        let blobs = {
            let _enter = rt.enter();
            s3::S3Blobs::new(&blobs_cfg, &options).map_err(|reason| RemoteError::Blobs {
                url: blobs_cfg.location(),
                reason,
            })?
        };
        let cache = BlobStore::open(&options.cache_dir).map_err(|e| RemoteError::Cache {
            dir: options.cache_dir.clone(),
            reason: e.to_string(),
        })?;
        let cache_index =
            cache::CacheIndex::load(&cache, options.blob_cache_bytes).map_err(|e| {
                RemoteError::Cache {
                    dir: options.cache_dir.clone(),
                    reason: e.to_string(),
                }
            })?;
        // A cache over a lowered bound shrinks at the next fetch.
        crate::metrics::global()
            .blob_cache_bytes
            .set(i64::try_from(cache_index.bytes()).unwrap_or(i64::MAX));
        let store = RemoteStore {
            inner: Arc::new(Inner {
                rt: Some(rt),
                pool,
                blobs,
                cache,
                cache_index,
                clock,
                idle_ms: AtomicU64::new(options.dict_idle_expiry_ms.max(1)),
                inode_limit: options.volume_inode_limit,
                gc_grace: options.blob_gc_grace,
                op_timeout: options.op_timeout,
                location,
                cache_dir: options.cache_dir.clone(),
                verified: std::sync::Mutex::new(std::collections::HashSet::new()),
                volume_cache: std::sync::Mutex::new(SnapshotCache::default()),
                mounts: Mounts::default(),
                host: pg_volume::host_id(),
                mount_lease: options.mount_lease,
            }),
        };
        let url = redact(&options.metadata_url);
        store
            .block_db(|inner| async move {
                let mut client = inner.pool.get().await?;
                let tx = client.transaction().await?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                    .await?;
                // `IF NOT EXISTS` on what exists is a NOTICE per object,
                // which `-v` would print at every start.
                tx.batch_execute("SET LOCAL client_min_messages = warning")
                    .await?;
                tx.batch_execute(SCHEMA).await?;
                tx.commit().await?;
                Ok(())
            })
            .map_err(|e: DbError| RemoteError::Metadata {
                url,
                reason: e.to_string(),
            })?;
        let check = store.inner.blobs.clone();
        store
            .block(None, async move { check.check().await })
            .map_err(|reason| RemoteError::Blobs {
                url: blobs_cfg.location(),
                reason,
            })?;
        pg_volume::spawn_renewal(&store.inner);
        Ok(store)
    }

    /// Runs `fut` on the store's runtime and waits for it, at most
    /// `timeout` when given.
    pub(crate) fn block<T, E, Fut>(&self, timeout: Option<Duration>, fut: Fut) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static + From<Stalled>,
    {
        let Some(rt) = self.inner.rt.as_ref() else {
            return Err(Stalled("the store is shutting down".into()).into());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let out = match timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r,
                    Err(_) => {
                        Err(Stalled(format!("no answer within {:.1} s", t.as_secs_f64())).into())
                    }
                },
                None => fut.await,
            };
            let _ = tx.send(out);
        });
        match rx.recv() {
            Ok(r) => r,
            Err(_) => {
                Err(Stalled("the operation was dropped (the store is shutting down)".into()).into())
            }
        }
    }

    /// Runs a database operation under the store's operation timeout.
    pub(crate) fn block_db<T, F, Fut>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, DbError>> + Send + 'static,
        T: Send + 'static,
    {
        let fut = f(self.inner.clone());
        self.block(Some(self.inner.op_timeout), fut)
    }

    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// The value of setting `name` in the store's database sessions
    /// (tests: what the pool's connections run with).
    #[doc(hidden)]
    pub fn session_setting(&self, name: &str) -> Result<String, String> {
        let name = name.to_owned();
        self.block_db(|inner| async move {
            let client = inner.pool.get().await?;
            let row = client
                .query_one("SELECT current_setting($1)", &[&name])
                .await?;
            Ok(row.try_get::<_, String>(0)?)
        })
        .map_err(|e: DbError| e.to_string())
    }

    /// What the S3 client did so far (tests, benchmarks).
    pub fn s3_stats(&self) -> S3Counts {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.inner.blobs.stats;
        S3Counts {
            single_puts: s.single_puts.load(Relaxed),
            multipart_uploads: s.multipart_uploads.load(Relaxed),
            parts: s.parts.load(Relaxed),
            downloads: s.downloads.load(Relaxed),
        }
    }
}

/// Counts of S3 requests by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S3Counts {
    pub single_puts: u64,
    pub multipart_uploads: u64,
    pub parts: u64,
    pub downloads: u64,
}

/// An operation that got no answer in time, or could not run.
#[derive(Debug)]
pub(crate) struct Stalled(pub String);

impl From<Stalled> for String {
    fn from(s: Stalled) -> String {
        s.0
    }
}

/// A database failure, classified.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    /// The database cannot be reached, went away, or timed out.
    #[error("the metadata database is unavailable: {0}")]
    Unavailable(String),
    /// The database answered with an error.
    #[error("metadata database: {0}")]
    Failed(String),
}

impl From<Stalled> for DbError {
    fn from(s: Stalled) -> Self {
        DbError::Unavailable(s.0)
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = error_text(&e);
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                // 08: connection exceptions; 57: operator intervention
                // (shutdown, cancel); 53: out of resources; 40001/40P01:
                // serialization failure and deadlock (a retry may pass).
                if code.starts_with("08")
                    || code.starts_with("57")
                    || code.starts_with("53")
                    || code == "40001"
                    || code == "40P01"
                {
                    DbError::Unavailable(text)
                } else {
                    DbError::Failed(text)
                }
            }
            None if e.is_closed() || source_is_io(&e) => DbError::Unavailable(text),
            None => DbError::Failed(text),
        }
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => {
                // A failed connect is the service being unreachable,
                // whatever the error's kind.
                match DbError::from(e) {
                    DbError::Failed(t) | DbError::Unavailable(t) => DbError::Unavailable(t),
                }
            }
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

impl From<DbError> for DictError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) => DictError::Unavailable(e.to_string()),
            DbError::Failed(_) => DictError::Io(e.to_string()),
        }
    }
}

impl From<DbError> for VolumeError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) => VolumeError::Unavailable(e.to_string()),
            DbError::Failed(_) => VolumeError::Io(e.to_string()),
        }
    }
}

fn source_is_io(e: &tokio_postgres::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.is::<std::io::Error>() {
            return true;
        }
        src = s.source();
    }
    false
}

/// The error with its causes (tokio-postgres puts the server's message in
/// the source).
fn error_text(e: &tokio_postgres::Error) -> String {
    let mut out = e.to_string();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // libpq's `host=db password=...` form, or anything else.
        return url
            .split(' ')
            .map(|word| match word.split_once('=') {
                Some((k, _)) if names_secret(k) => format!("{k}=***"),
                _ => redact_query(word),
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    let (auth, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (auth, tail) = match (auth.find('?'), tail.is_empty()) {
        // `postgres://host?password=..`: the query starts in the authority.
        (Some(i), true) => auth.split_at(i),
        _ => (auth, tail),
    };
    let auth = match auth.rsplit_once('@') {
        Some((cred, host)) => {
            let user = cred.split(':').next().unwrap_or_default();
            format!("{user}:***@{host}")
        }
        None => auth.to_owned(),
    };
    format!("{scheme}://{auth}{}", redact_query(tail))
}

/// `text` with the value of every query parameter that names a secret
/// (a password, a secret key, a token) replaced by `***`.
fn redact_query(text: &str) -> String {
    let Some((base, query)) = text.split_once('?') else {
        return text.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if names_secret(k) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

/// Whether a parameter's name says it holds a secret (a password, a
/// secret key, a token).
fn names_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("token")
}

/// Where a PostgreSQL config points: hosts, ports, database and options
/// (the schema), without credentials.
fn pg_location(pg: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = pg.get_ports().iter().map(u16::to_string).collect();
    format!(
        "postgres://{}:{}/{}?{}",
        hosts.join(","),
        ports.join(","),
        pg.get_dbname().unwrap_or_default(),
        pg.get_options().unwrap_or_default()
    )
}

/// A u64 as the i64 the database stores (values beyond i64 are clamped;
/// none of ours get there: versions count writes, times are ms).
pub(crate) fn to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored i64 as u64; a negative value is corruption.
pub(crate) fn from_db(v: i64, what: &str) -> Result<u64, String> {
    u64::try_from(v).map_err(|_| format!("{what} is negative ({v})"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_passwords_and_secret_keys_wherever_they_are() {
        assert_eq!(
            redact("postgres://u:hunter2@db:5432/x"),
            "postgres://u:***@db:5432/x"
        );
        assert_eq!(
            redact("postgres://db/x?user=u&password=hunter2&sslmode=require"),
            "postgres://db/x?user=u&password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgresql://db?password=hunter2"),
            "postgresql://db?password=***"
        );
        let s3 = redact("s3://b/p?endpoint=http://h:1&access_key_id=AK&secret_access_key=SK");
        assert!(
            !s3.contains("SK") && s3.contains("access_key_id=AK"),
            "{s3}"
        );
        let bad = super::s3::BlobsUrl::parse("s4://b?secret_access_key=SK").unwrap_err();
        assert!(!bad.contains("SK"), "{bad}");
        // libpq's key/value form, and a password holding `@` and `:`.
        assert_eq!(
            redact("host=db user=u password=hunter2 dbname=x"),
            "host=db user=u password=*** dbname=x"
        );
        assert_eq!(redact("postgres://u:p@s:s@db/x"), "postgres://u:***@db/x");
        assert_eq!(
            redact("s3://b?Secret_Access_Key=SK"),
            "s3://b?Secret_Access_Key=***"
        );
    }
}
