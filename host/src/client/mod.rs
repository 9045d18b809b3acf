//! The Rust client of a running vessel (`vessel serve`, or the owner of a
//! data dir): volumes, dicts and functions from outside any guest, with the
//! shapes the guest SDK and Modal's client use.
//!
//! ```no_run
//! use vessel_host::client::Client;
//!
//! # fn main() -> Result<(), vessel_host::server::client::ClientError> {
//! let vessel = Client::connect("127.0.0.1:8470", "vsl_...");
//! let kv = vessel.dict("kv");
//! kv.put("cloud", &"dictionary")?;
//! let v: Option<String> = kv.get("cloud")?;
//! vessel.volume("models").write_file("w.bin", b"...", true)?;
//! let sum = vessel.function("demo", "add").call(serde_json::json!([1, 2]))?;
//! let old = vessel.volume("models").at(12).read_file("w.bin")?; // as version 12 left it
//! # Ok(()) }
//! ```
//!
//! Calls block; run them on a blocking thread from async code. Errors are
//! the server's, with its status and message.

use std::io::Read;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub mod ops;

use crate::server::api::urls;
use crate::server::client::{Body, ClientError, OwnerClient, enc};
use crate::service::dict::{DictItem, DictItems, DictSummary, PutIf, PutResult};
use crate::service::volume::{DiffEntry, EntryInfo, VolumeSummary};
use crate::storage::volume::{CommitInfo, History};
use ops::http;

/// A connection to a vessel server.
#[derive(Debug, Clone)]
pub struct Client {
    http: OwnerClient,
}

impl Client {
    /// The HTTP API of `vessel serve` at `addr`, with a bearer token.
    pub fn connect(addr: &str, token: &str) -> Client {
        Client {
            http: OwnerClient::tcp(addr, token),
        }
    }

    /// The process that owns `data_dir`, through its socket (no token: the
    /// socket is the owner's), if one runs.
    pub fn local(data_dir: &std::path::Path) -> Option<Client> {
        OwnerClient::find(data_dir).map(|http| Client { http })
    }

    /// The volume `name`, at its head (see [`Volume::at`] for an older
    /// version).
    pub fn volume(&self, name: &str) -> Volume {
        Volume {
            http: self.http.clone(),
            name: name.to_owned(),
            version: None,
        }
    }

    pub fn dict(&self, name: &str) -> Dict {
        Dict {
            http: self.http.clone(),
            name: name.to_owned(),
        }
    }

    /// Function `function` of the app `app` the server loaded.
    pub fn function(&self, app: &str, function: &str) -> Function {
        Function {
            http: self.http.clone(),
            app: app.to_owned(),
            function: function.to_owned(),
        }
    }

    /// The volumes the token may read.
    pub fn volumes(&self) -> Result<Vec<VolumeSummary>, ClientError> {
        http::volume_list(&self.http)
    }

    /// The dicts the token may read.
    pub fn dicts(&self) -> Result<Vec<DictSummary>, ClientError> {
        http::dict_list(&self.http)
    }
}

fn json_body<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(v).map_err(|e| ClientError::Api {
        status: 400,
        kind: "invalid_argument".into(),
        message: format!("cannot encode as JSON: {e}"),
    })
}

/// A volume on the server: its head, or one kept version of it
/// ([`Volume::at`]), which only reads.
#[derive(Debug, Clone)]
pub struct Volume {
    http: OwnerClient,
    name: String,
    /// The version this handle reads; `None`: the head.
    version: Option<u64>,
}

impl Volume {
    /// The name reads go to: `NAME@VERSION` on a handle at a version.
    fn read_name(&self) -> String {
        match self.version {
            Some(v) => format!("{}@{v}", self.name),
            None => self.name.clone(),
        }
    }

    fn file(&self, path: &str) -> String {
        urls::volume_file(&self.read_name(), path)
    }

    /// Refuses a write through a handle at a version, before any request
    /// (the server would refuse it too: 400).
    fn writable(&self) -> Result<(), ClientError> {
        match self.version {
            None => Ok(()),
            Some(v) => Err(ClientError::Api {
                status: 400,
                kind: "invalid_argument".into(),
                message: format!(
                    "{name}@{v} is version {v} of volume `{name}`, which only reads: \
                     write to the volume itself (restore brings a version back)",
                    name = self.name
                ),
            }),
        }
    }

    /// The volume's name (without any `@VERSION`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version this handle reads: `None` for the head.
    pub fn version(&self) -> Option<u64> {
        self.version
    }

    /// A handle that reads version `version` (one [`history`](Self::history)
    /// lists) instead of the head: its reads see the volume as that commit
    /// left it, and its writes are refused. Reading a version that was never
    /// committed, or is past the retention, is a 404 naming the head or the
    /// oldest version kept.
    pub fn at(&self, version: u64) -> Volume {
        Volume {
            http: self.http.clone(),
            name: self.name.clone(),
            version: Some(version),
        }
    }

    /// Creates the volume.
    pub fn create(&self) -> Result<(), ClientError> {
        self.writable()?;
        http::volume_create(&self.http, &self.name, None, None)
    }

    /// The entries of directory `path` (all descendants when `recursive`).
    pub fn listdir(&self, path: &str, recursive: bool) -> Result<Vec<EntryInfo>, ClientError> {
        http::volume_ls(&self.http, &self.read_name(), path, recursive)
    }

    /// The file at `path`, streamed.
    pub fn reader(&self, path: &str) -> Result<Box<dyn Read + Send>, ClientError> {
        http::volume_reader(&self.http, &self.read_name(), path)
    }

    /// The whole file at `path`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.reader(path)?
            .read_to_end(&mut out)
            .map_err(|e| ClientError::Io {
                socket: path.into(),
                reason: e.to_string(),
            })?;
        Ok(out)
    }

    /// Up to `length` bytes of the file at `path` from `offset`.
    pub fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Vec<u8>, ClientError> {
        if length == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={offset}-{}", offset.saturating_add(length - 1));
        self.http
            .request("GET", &self.file(path), &[("Range", &range)], Body::Empty)?
            .bytes()
            .map_err(|e| ClientError::Io {
                socket: path.into(),
                reason: e.to_string(),
            })
    }

    /// Writes `data` as the file at `path` (refused if it exists, unless
    /// `overwrite`); returns the volume's new version.
    pub fn write_file(&self, path: &str, data: &[u8], overwrite: bool) -> Result<u64, ClientError> {
        self.writable()?;
        http::volume_put(
            &self.http,
            &self.name,
            path,
            Body::Bytes(data),
            overwrite,
            None,
        )
    }

    /// Writes `data` as the file at `path` only if no commit after
    /// `version` (the volume version the caller read the path at) changed
    /// the path or anything under it; an existing file is then replaced
    /// without `overwrite`. Otherwise a 412 error naming the path, and
    /// nothing changes. Returns the volume's new version.
    pub fn write_file_if(&self, path: &str, data: &[u8], version: u64) -> Result<u64, ClientError> {
        self.writable()?;
        http::volume_put(
            &self.http,
            &self.name,
            path,
            Body::Bytes(data),
            false,
            Some(version),
        )
    }

    /// Streams `reader` into the file at `path`; returns the new version.
    pub fn upload(
        &self,
        path: &str,
        reader: &mut dyn Read,
        overwrite: bool,
    ) -> Result<u64, ClientError> {
        self.writable()?;
        http::volume_put(
            &self.http,
            &self.name,
            path,
            Body::Stream(reader),
            overwrite,
            None,
        )
    }

    /// Removes a file, or a directory when `recursive`.
    pub fn remove(&self, path: &str, recursive: bool) -> Result<CommitInfo, ClientError> {
        self.writable()?;
        http::volume_rm(&self.http, &self.name, path, recursive)
    }

    /// The volume's kept versions, newest first, at most `limit` (1 to
    /// 10,000), with its head, the oldest version still readable and its
    /// retention. On a handle at a version, still the whole volume's.
    pub fn history(&self, limit: usize) -> Result<History, ClientError> {
        http::volume_history(&self.http, &self.name, limit)
    }

    /// The paths added, modified and removed from version `from` to `to`
    /// (`None`: the version this handle reads, the head unless it is at
    /// one), in path order.
    pub fn diff(&self, from: u64, to: Option<u64>) -> Result<Vec<DiffEntry>, ClientError> {
        http::volume_diff(&self.http, &self.name, from, to.or(self.version))
    }

    /// Makes version `version`'s tree the head again, as a new commit (the
    /// versions in between stay in the history).
    pub fn restore(&self, version: u64) -> Result<CommitInfo, ClientError> {
        self.writable()?;
        http::volume_restore(&self.http, &self.name, version)
    }

    /// Makes `dst` a new volume whose version 1 is this handle's tree (the
    /// head, or the version it is at), copying nothing. Later commits to
    /// either do not show in the other. Returns the new volume.
    pub fn fork(&self, dst: &str) -> Result<VolumeSummary, ClientError> {
        http::volume_fork(&self.http, &self.name, self.version, dst)
    }

    /// How long a replaced version stays readable (zero keeps only the
    /// head; whole milliseconds). Versions already pruned do not come back
    /// under a longer retention. Returns the volume as it is now.
    pub fn set_retention(&self, retention: Duration) -> Result<VolumeSummary, ClientError> {
        self.writable()?;
        let ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        http::volume_set_retention(&self.http, &self.name, ms)
    }
}

/// A dict on the server. Values are JSON, as the guest SDKs and the CLI
/// store them.
#[derive(Debug, Clone)]
pub struct Dict {
    http: OwnerClient,
    name: String,
}

impl Dict {
    /// Creates the dict; false if it existed.
    pub fn create(&self) -> Result<bool, ClientError> {
        http::dict_create(&self.http, &self.name)
    }

    /// The value at `key`, decoded from JSON; `None` when absent.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        match http::dict_get(&self.http, &self.name, key) {
            Ok(item) => decode_item(key, item).map(Some),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `value` as JSON at `key`; returns the entry's version.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<u64, ClientError> {
        self.put_raw(key, &json_body(value)?)
    }

    /// Stores bytes as they are at `key`.
    pub fn put_raw(&self, key: &str, value: &[u8]) -> Result<u64, ClientError> {
        http::dict_put(&self.http, &self.name, key, value)
    }

    /// Up to `limit` entries in key order.
    pub fn items(&self, limit: usize) -> Result<DictItems, ClientError> {
        http::dict_items(&self.http, &self.name, Some(limit))
    }

    /// The page of up to `limit` entries whose keys start with `prefix`,
    /// after a previous page's `next` cursor.
    pub fn items_after(
        &self,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DictItems, ClientError> {
        let mut q = format!("limit={limit}&prefix={}", enc(prefix));
        if let Some(c) = cursor {
            q.push_str(&format!("&cursor={}", enc(c)));
        }
        self.http.json(
            "GET",
            &format!("{}?{q}", urls::dict_items(&self.name)),
            Body::Empty,
        )
    }

    /// Stores `value` as JSON at `key` if `cond` holds (absent, or the
    /// entry's version): `Refused` (with the version read just after)
    /// when it does not, and nothing is written.
    pub fn put_if<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        cond: PutIf,
    ) -> Result<PutResult, ClientError> {
        let body = json_body(value)?;
        let tag;
        let headers: &[(&str, &str)] = match cond {
            PutIf::Always => &[],
            PutIf::Absent => &[("If-None-Match", "*")],
            PutIf::Version(v) => {
                tag = format!("\"{v}\"");
                &[("If-Match", tag.as_str())]
            }
        };
        let url = urls::dict_key(&self.name, key);
        match self.http.request("PUT", &url, headers, Body::Bytes(&body)) {
            Ok(resp) => {
                let bytes = resp.bytes().map_err(|e| ClientError::Io {
                    socket: url.clone().into(),
                    reason: e.to_string(),
                })?;
                let v: Json = serde_json::from_slice(&bytes).unwrap_or(Json::Null);
                Ok(PutResult::Written {
                    version: v.get("version").and_then(Json::as_u64).unwrap_or(0),
                })
            }
            Err(e) if e.status() == Some(412) => Ok(PutResult::Refused {
                current: self.version_of(key)?,
            }),
            Err(e) => Err(e),
        }
    }

    /// Stores `value` as JSON at `key`, expiring `ttl` after the write.
    pub fn put_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<u64, ClientError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let v: Json = self.http.json(
            "PUT",
            &format!("{}?ttl_ms={ms}", urls::dict_key(&self.name, key)),
            Body::Bytes(&json_body(value)?),
        )?;
        Ok(v.get("version").and_then(Json::as_u64).unwrap_or(0))
    }

    /// The version of the entry at `key`; `None` when absent.
    pub fn version_of(&self, key: &str) -> Result<Option<u64>, ClientError> {
        match http::dict_get(&self.http, &self.name, key) {
            Ok(item) => Ok(Some(item.version)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether `key` is present (a `HEAD`).
    pub fn contains(&self, key: &str) -> Result<bool, ClientError> {
        match self
            .http
            .request("HEAD", &urls::dict_key(&self.name, key), &[], Body::Empty)
        {
            Ok(_) => Ok(true),
            Err(e) if e.status() == Some(404) => {
                // HEAD has no body to say which is missing: the dict or the key.
                self.len()?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The exact number of entries.
    pub fn len(&self) -> Result<u64, ClientError> {
        let d: DictSummary = self
            .http
            .json("GET", &urls::dict(&self.name), Body::Empty)?;
        Ok(d.len)
    }

    /// Whether the dict has no entries.
    pub fn is_empty(&self) -> Result<bool, ClientError> {
        Ok(self.len()? == 0)
    }

    /// Removes `key`; false when it was absent.
    pub fn remove(&self, key: &str) -> Result<bool, ClientError> {
        match self
            .http
            .request("DELETE", &urls::dict_key(&self.name, key), &[], Body::Empty)
        {
            Ok(_) => Ok(true),
            Err(e) if is_missing_key(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `key` and returns its value decoded from JSON; `None` when
    /// absent.
    pub fn pop<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        match self
            .http
            .json::<DictItem>("POST", &urls::dict_pop(&self.name, key), Body::Empty)
        {
            Ok(item) => decode_item(key, item).map(Some),
            Err(e) if is_missing_key(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Adds `by` to the counter at `key` (absent counts as 0); the new
    /// value.
    pub fn increment(&self, key: &str, by: i64) -> Result<i64, ClientError> {
        let v: Json = self.http.json(
            "POST",
            &format!("{}?by={by}", urls::dict_increment(&self.name, key)),
            Body::Empty,
        )?;
        Ok(v.get("value").and_then(Json::as_i64).unwrap_or(0))
    }

    /// Writes every entry as JSON in one atomic step (at most 10,000).
    pub fn update(&self, entries: &serde_json::Map<String, Json>) -> Result<(), ClientError> {
        let body = serde_json::json!({ "entries": entries });
        self.http
            .request(
                "POST",
                &urls::dict_update(&self.name),
                &[],
                Body::Bytes(body.to_string().as_bytes()),
            )
            .map(drop)
    }

    /// The values at `keys`, in order, decoded from JSON (`None`: absent).
    pub fn get_many<T: DeserializeOwned>(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Option<T>>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Many {
            items: Vec<Option<DictItem>>,
        }
        let got: Many = self.http.post_json(
            &urls::dict_get_many(&self.name),
            &serde_json::json!({ "keys": keys }),
        )?;
        keys.iter()
            .zip(got.items)
            .map(|(k, item)| item.map(|i| decode_item(k, i)).transpose())
            .collect()
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<(), ClientError> {
        self.http
            .request("POST", &urls::dict_clear(&self.name), &[], Body::Empty)
            .map(drop)
    }

    /// Takes the lock on `key` for `ttl`; `None` while another live lease
    /// holds it.
    pub fn lock(&self, key: &str, ttl: Duration) -> Result<Option<Lease>, ClientError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        match self.http.json::<Json>(
            "POST",
            &format!("{}?ttl_ms={ms}", urls::dict_lock(&self.name, key)),
            Body::Empty,
        ) {
            Ok(v) => Ok(Some(Lease {
                dict: self.clone(),
                key: key.to_owned(),
                token: v.get("token").and_then(Json::as_u64).unwrap_or(0),
            })),
            Err(e) if e.status() == Some(409) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Whether a 404 is for the key (the server says "key `k` is not in dict
/// `d`"), not for the dict.
fn is_missing_key(e: &ClientError) -> bool {
    e.status() == Some(404) && e.to_string().contains("is not in dict")
}

/// A JSON value of a listed or popped entry, decoded.
fn decode_item<T: DeserializeOwned>(key: &str, item: DictItem) -> Result<T, ClientError> {
    let value = item.value.ok_or_else(|| ClientError::Api {
        status: 422,
        kind: "not_json".into(),
        message: format!("the value at `{key}` is not JSON (it is raw bytes)"),
    })?;
    serde_json::from_value(value).map_err(|e| ClientError::Api {
        status: 422,
        kind: "wrong_type".into(),
        message: format!("the value at `{key}` does not decode: {e}"),
    })
}

/// A held lock on one key, with its fencing token.
#[derive(Debug, Clone)]
pub struct Lease {
    dict: Dict,
    key: String,
    token: u64,
}

impl Lease {
    /// The fencing token: larger for every later lease on the key.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Extends the lease to `ttl` from now; a 412 error when it expired
    /// and another holder took the key.
    pub fn renew(&self, ttl: Duration) -> Result<(), ClientError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let url = format!(
            "{}?token={}&ttl_ms={ms}",
            urls::dict_renew(&self.dict.name, &self.key),
            self.token
        );
        self.dict
            .http
            .request("POST", &url, &[], Body::Empty)
            .map(drop)
    }

    /// Gives the lock up (a lease no longer held is not an error).
    pub fn release(self) -> Result<(), ClientError> {
        let url = format!(
            "{}?token={}",
            urls::dict_release(&self.dict.name, &self.key),
            self.token
        );
        self.dict
            .http
            .request("POST", &url, &[], Body::Empty)
            .map(drop)
    }
}

/// A function of an app the server loaded.
#[derive(Debug, Clone)]
pub struct Function {
    http: OwnerClient,
    app: String,
    function: String,
}

impl Function {
    /// Calls it with `args` (an array of positional arguments or an object
    /// by name) and returns its JSON result.
    pub fn call(&self, args: Json) -> Result<Json, ClientError> {
        let v: Json = self
            .http
            .post_json(&urls::function_call(&self.app, &self.function), &args)?;
        Ok(v.get("result").cloned().unwrap_or(Json::Null))
    }

    /// Starts a call on the server and returns a handle to it.
    pub fn spawn(&self, args: Json) -> Result<FunctionCall, ClientError> {
        let v: Json = self
            .http
            .post_json(&urls::function_spawn(&self.app, &self.function), &args)?;
        let id = v
            .get("call_id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(FunctionCall {
            http: self.http.clone(),
            id,
        })
    }
}

/// A call started by [`Function::spawn`].
#[derive(Debug, Clone)]
pub struct FunctionCall {
    http: OwnerClient,
    id: String,
}

impl FunctionCall {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits up to `wait` for the result: `Some(result)` when the call is
    /// done, `None` while it runs; a failed call is an error.
    pub fn poll(&self, wait: Duration) -> Result<Option<Json>, ClientError> {
        let v: Json = self.http.json(
            "GET",
            &format!("{}?wait={}", urls::call(&self.id), wait.as_secs_f64()),
            Body::Empty,
        )?;
        match v.get("status").and_then(Json::as_str) {
            Some("done") => Ok(Some(v.get("result").cloned().unwrap_or(Json::Null))),
            Some("failed") => Err(ClientError::Api {
                status: 422,
                kind: "call_failed".into(),
                message: v
                    .get("error")
                    .and_then(Json::as_str)
                    .unwrap_or("the call failed")
                    .to_owned(),
            }),
            _ => Ok(None),
        }
    }

    /// Waits for the result.
    pub fn get(&self) -> Result<Json, ClientError> {
        loop {
            if let Some(v) = self.poll(Duration::from_secs(60))? {
                return Ok(v);
            }
        }
    }
}
