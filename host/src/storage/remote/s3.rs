//! Blobs in any S3 store (object_store's S3 client), and their local cache.
//!
//! An object is written once under a fresh, unique key (`PREFIX/b/NONCE`)
//! and never modified; the database's `vessel_blobs` row maps a blob id
//! (the BLAKE3 hash of the contents) to that key. Writing the object and
//! then its row means a row always names a complete object; a new key per
//! upload means a garbage collector deleting an old object can never
//! delete the object a concurrent upload of the same contents just wrote
//! (see [`super::pg_volume`] for the whole argument).
//!
//! Objects over [`RemoteOptions::multipart_threshold`] go up in parts of
//! [`PART_SIZE`] (S3's multipart upload), a few parts at a time.
//!
//! Mounts hard-link blobs, so reading a blob fetches the whole object into
//! a local, content-addressed cache folder (the same layout as the embedded
//! blob folder), checking its hash on the way; reads are then served from
//! the cached file.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, PutPayload, RetryConfig};

use super::RemoteOptions;
use crate::storage::blobs::BlobId;

/// Objects larger than this go up as multipart uploads by default.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 << 20;
/// The size of one part of a multipart upload (S3 wants at least 5 MiB
/// for every part but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// A parsed `--blobs` URL.
#[derive(Clone)]
pub struct BlobsUrl {
    pub bucket: String,
    /// Key prefix inside the bucket ("" for none), without slashes at the
    /// ends.
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for BlobsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.location())
    }
}

impl BlobsUrl {
    /// Parses `s3://bucket[/prefix][?endpoint=..&region=..&access_key_id=..
    /// &secret_access_key=..]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            format!(
                "{:?} must start with s3:// (s3://bucket[/prefix]?endpoint=URL)",
                super::redact(url)
            )
        })?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(format!("{:?} names no bucket", super::redact(url)));
        }
        let mut out = BlobsUrl {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = super::percent_decode(v, true)?;
            match k {
                "endpoint" => out.endpoint = Some(v),
                "region" => out.region = Some(v),
                "access_key_id" => out.access_key_id = Some(v),
                "secret_access_key" => out.secret_access_key = Some(v),
                other => {
                    return Err(format!(
                        "unknown parameter `{other}` (known: endpoint, region, access_key_id, secret_access_key)"
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Bucket, prefix and endpoint, without credentials.
    pub fn location(&self) -> String {
        format!(
            "s3://{}/{}?endpoint={}",
            self.bucket,
            self.prefix,
            self.endpoint.as_deref().unwrap_or("aws")
        )
    }
}

/// What the blob client did, for tests and benchmarks.
#[derive(Debug, Default)]
pub struct S3Stats {
    pub single_puts: AtomicU64,
    pub multipart_uploads: AtomicU64,
    pub parts: AtomicU64,
    pub downloads: AtomicU64,
}

/// The S3 side of the blob store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    /// The same client, for the calls of a multipart upload by id.
    s3: Arc<AmazonS3>,
    prefix: String,
    pub(crate) multipart_threshold: usize,
    pub(crate) stats: Arc<S3Stats>,
}

/// An S3 failure: the object is missing, or the service failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("object {0} is missing from the blob store")]
    NotFound(String),
    #[error("the blob store is unavailable: {0}")]
    Unavailable(String),
    #[error("local i/o while moving a blob: {0}")]
    Local(String),
}

impl From<object_store::Error> for S3Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => S3Error::NotFound(path),
            other => S3Error::Unavailable(chain(&other)),
        }
    }
}

impl From<super::Stalled> for S3Error {
    fn from(s: super::Stalled) -> Self {
        S3Error::Unavailable(s.0)
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
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

/// A fresh key suffix: 128 bits from std's randomly seeded hasher, the
/// process id, the time and a counter, so no two uploads anywhere share
/// one.
fn nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut words = [0u64; 2];
    for w in &mut words {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u128(t);
        h.write_u32(std::process::id());
        *w = h.finish();
    }
    format!("{:016x}{:016x}", words[0], words[1])
}

impl S3Blobs {
    /// A client for `url`. Must run inside the store's runtime context
    /// (the HTTP client binds to it).
    pub fn new(url: &BlobsUrl, options: &RemoteOptions) -> Result<Self, String> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&url.bucket)
            .with_region(url.region.as_deref().unwrap_or("us-east-1"))
            // Path-style requests: what S3-compatible stores serve.
            .with_virtual_hosted_style_request(false);
        let mut allow_http = false;
        if let Some(ep) = &url.endpoint {
            allow_http = ep.starts_with("http://");
            b = b.with_endpoint(ep).with_allow_http(allow_http);
        }
        if let Some(k) = &url.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &url.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let has_key =
            url.access_key_id.is_some() || std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
        if !has_key {
            // No credentials: anonymous requests, rather than asking a
            // cloud metadata service for some.
            b = b.with_skip_signature(true);
        }
        let client = ClientOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(Duration::from_secs(5))
            .with_allow_http(allow_http);
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: options.request_timeout.min(Duration::from_secs(10)),
        };
        let store = b
            .with_client_options(client)
            .with_retry(retry)
            .build()
            .map_err(|e| chain(&e))?;
        let s3 = Arc::new(store);
        Ok(S3Blobs {
            store: s3.clone(),
            s3,
            prefix: url.prefix.clone(),
            multipart_threshold: options.multipart_threshold.max(1),
            stats: Arc::new(S3Stats::default()),
        })
    }

    fn key(&self, rest: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rest)
        } else {
            ObjectPath::from(format!("{}/{rest}", self.prefix))
        }
    }

    /// The folder of blob objects.
    fn blob_dir(&self) -> ObjectPath {
        self.key("b")
    }

    /// A fresh key for a new object.
    pub fn new_key(&self) -> String {
        self.key(&format!("b/{}", nonce())).to_string()
    }

    /// Checks the bucket answers (a listing of our folder).
    pub async fn check(&self) -> Result<(), String> {
        self.store
            .list_with_delimiter(Some(&self.blob_dir()))
            .await
            .map(|_| ())
            .map_err(|e| chain(&e))
    }

    /// Uploads `bytes` as the object `key` in one request.
    pub async fn put(&self, key: String, bytes: bytes::Bytes) -> Result<(), S3Error> {
        self.stats.single_puts.fetch_add(1, Ordering::Relaxed);
        self.store
            .put(&ObjectPath::from(key), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    /// Aborts the multipart upload `upload_id` of object `key` (one a
    /// dead process left); an upload already gone counts as aborted.
    pub async fn abort_upload(&self, key: String, upload_id: String) -> Result<(), S3Error> {
        match self
            .s3
            .abort_multipart(&ObjectPath::from(key), &upload_id)
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: String) -> Result<(), S3Error> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every blob object: its key, when it was written (ms since the
    /// epoch) and its size.
    pub async fn list(&self) -> Result<Vec<(String, i64, u64)>, S3Error> {
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&self.blob_dir()));
        while let Some(meta) = stream.next().await {
            let meta = meta?;
            out.push((
                meta.location.to_string(),
                meta.last_modified.timestamp_millis(),
                meta.size,
            ));
        }
        Ok(out)
    }

    /// Downloads the object `key` into the file `dest`, hashing it; returns
    /// the hash and the size. The file is fsynced.
    pub async fn download(
        &self,
        key: String,
        dest: std::path::PathBuf,
    ) -> Result<(BlobId, u64), S3Error> {
        use tokio::io::AsyncWriteExt;
        self.stats.downloads.fetch_add(1, Ordering::Relaxed);
        let local = |e: std::io::Error| S3Error::Local(format!("{}: {e}", dest.display()));
        let got = self.store.get(&ObjectPath::from(key)).await?;
        let mut file = tokio::fs::File::create(&dest).await.map_err(local)?;
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(local)?;
        }
        file.sync_all().await.map_err(local)?;
        Ok((BlobId(*hasher.finalize().as_bytes()), size))
    }
}

/// Checks, from a blocking caller, that the bucket of `url` answers a
/// signed listing within `timeout` (set-up scripts and tests wait for a
/// fresh server with it).
pub fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let parsed = BlobsUrl::parse(url)?;
    let mut options = RemoteOptions::new("", url, std::env::temp_dir());
    options.request_timeout = timeout;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let blobs = S3Blobs::new(&parsed, &options)?;
        match tokio::time::timeout(timeout, blobs.check()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        }
    })
}

/// What an upload tells its ledger: the database's record of multipart
/// uploads in flight, which lets gc abort the ones a killed process left
/// (S3 keeps an unfinished upload's parts, unlisted and billed, until it
/// is aborted; object_store cannot list them).
pub(crate) enum Ledger<'a> {
    /// A multipart upload began.
    Started { key: &'a str, upload_id: &'a str },
    /// `bytes` have gone up so far (also shows the upload is alive).
    Progress { key: &'a str, bytes: u64 },
    /// It completed or was aborted.
    Finished { key: &'a str },
}

/// An upload from a blocking reader, driven from the calling thread: reads
/// happen there, requests on the store's runtime through `run`.
pub(crate) struct Upload<'a> {
    pub blobs: &'a S3Blobs,
    /// Runs a request to completion on the store's runtime.
    pub run: &'a dyn Fn(
        futures_util::future::BoxFuture<'static, Result<(), S3Error>>,
    ) -> Result<(), S3Error>,
    /// Records a multipart upload's progress.
    pub ledger: &'a dyn Fn(Ledger<'_>) -> Result<(), S3Error>,
}

impl Upload<'_> {
    /// Runs `fut` through `run` and returns its value.
    fn value<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, S3Error>> + Send + 'static,
    ) -> Result<T, S3Error> {
        let slot = Arc::new(std::sync::Mutex::new(None));
        let fill = slot.clone();
        (self.run)(Box::pin(async move {
            let v = fut.await?;
            if let Ok(mut s) = fill.lock() {
                *s = Some(v);
            }
            Ok(())
        }))?;
        slot.lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or_else(|| S3Error::Unavailable("an answer from the blob store was lost".into()))
    }

    /// Streams `reader` into a new object; returns its key, the hash of
    /// what was read and its size. Small contents go up in one request,
    /// larger ones in parts.
    pub fn send(&self, reader: &mut dyn Read) -> Result<(String, BlobId, u64), S3Error> {
        let local = |e: std::io::Error| S3Error::Local(format!("reading the contents: {e}"));
        let key = self.blobs.new_key();
        let mut hasher = blake3::Hasher::new();
        let threshold = self.blobs.multipart_threshold;
        // Read up to the threshold (plus one byte, to know whether more
        // comes): small blobs go up in one request.
        let mut first = Vec::new();
        reader
            .take(threshold as u64 + 1)
            .read_to_end(&mut first)
            .map_err(local)?;
        if first.len() <= threshold {
            hasher.update(&first);
            let size = first.len() as u64;
            let blobs = self.blobs.clone();
            let k = key.clone();
            (self.run)(Box::pin(async move { blobs.put(k, first.into()).await }))?;
            return Ok((key, BlobId(*hasher.finalize().as_bytes()), size));
        }
        self.blobs
            .stats
            .multipart_uploads
            .fetch_add(1, Ordering::Relaxed);
        let path = ObjectPath::from(key.clone());
        let (s3, p) = (self.blobs.s3.clone(), path.clone());
        let upload_id = self.value(async move { Ok(s3.create_multipart(&p).await?) })?;
        let result = (self.ledger)(Ledger::Started {
            key: &key,
            upload_id: &upload_id,
        })
        .and_then(|()| self.parts(&key, &path, &upload_id, &mut hasher, first, reader))
        .and_then(|(size, parts)| {
            let (s3, p, id) = (self.blobs.s3.clone(), path.clone(), upload_id.clone());
            self.value(async move {
                s3.complete_multipart(&p, &id, parts).await?;
                Ok(())
            })?;
            Ok(size)
        });
        match result {
            Ok(size) => {
                // Best effort: a row left behind names a finished upload,
                // which gc's abort finds gone and forgets.
                let _ = (self.ledger)(Ledger::Finished { key: &key });
                Ok((key, BlobId(*hasher.finalize().as_bytes()), size))
            }
            Err(e) => {
                // Best effort: if this fails too, the ledger still names
                // the upload and gc aborts it later.
                let s3 = self.blobs.s3.clone();
                let aborted =
                    self.value(async move { Ok(s3.abort_multipart(&path, &upload_id).await?) });
                if aborted.is_ok() {
                    let _ = (self.ledger)(Ledger::Finished { key: &key });
                }
                Err(e)
            }
        }
    }

    /// Sends `first` and the rest of `reader` as parts of upload `id`;
    /// returns the size and the parts, in order.
    fn parts(
        &self,
        key: &str,
        path: &ObjectPath,
        id: &str,
        hasher: &mut blake3::Hasher,
        first: Vec<u8>,
        reader: &mut dyn Read,
    ) -> Result<(u64, Vec<PartId>), S3Error> {
        let local = |e: std::io::Error| S3Error::Local(format!("reading the contents: {e}"));
        let mut size = 0u64;
        let mut done = Vec::new();
        let mut pending = Vec::new();
        let mut carry = first;
        let mut index = 0usize;
        loop {
            // Fill one part from what is carried over, then the reader.
            let mut part = std::mem::take(&mut carry);
            if part.len() < PART_SIZE {
                let want = (PART_SIZE - part.len()) as u64;
                reader.take(want).read_to_end(&mut part).map_err(local)?;
            } else if part.len() > PART_SIZE {
                carry = part.split_off(PART_SIZE);
            }
            let last = part.len() < PART_SIZE && carry.is_empty();
            if !part.is_empty() {
                hasher.update(&part);
                size += part.len() as u64;
                let (s3, p, id) = (self.blobs.s3.clone(), path.clone(), id.to_owned());
                let i = index;
                index += 1;
                pending.push(async move { s3.put_part(&p, &id, i, PutPayload::from(part)).await });
                self.blobs.stats.parts.fetch_add(1, Ordering::Relaxed);
            }
            if pending.len() >= PARTS_IN_FLIGHT || (last && !pending.is_empty()) {
                let batch = std::mem::take(&mut pending);
                let ids = self
                    .value(async move { Ok(futures_util::future::try_join_all(batch).await?) })?;
                done.extend(ids);
                (self.ledger)(Ledger::Progress { key, bytes: size })?;
            }
            if last {
                return Ok((size, done));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_parse_with_clear_errors() {
        let u = BlobsUrl::parse(
            "s3://bkt/some/prefix/?endpoint=http%3A%2F%2F127.0.0.1%3A8333&region=r1&access_key_id=a&secret_access_key=s",
        )
        .unwrap();
        assert_eq!(u.bucket, "bkt");
        assert_eq!(u.prefix, "some/prefix");
        assert_eq!(u.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(u.region.as_deref(), Some("r1"));
        assert!(!u.location().contains('s') || !u.location().contains("secret"));
        assert!(!format!("{u:?}").contains("=s"), "no secret in Debug");
        let plain = BlobsUrl::parse("s3://b?endpoint=http://h:1").unwrap();
        assert_eq!(
            (plain.prefix.as_str(), plain.endpoint.as_deref()),
            ("", Some("http://h:1"))
        );
        for bad in [
            "http://b",
            "s3://",
            "s3:///x",
            "s3://b?nope=1",
            "s3://b?endpoint=%zz",
        ] {
            assert!(BlobsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonces_differ() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| nonce()).collect();
        assert_eq!(a.len(), 1000);
    }
}
