//! The dict routes: `/v1/dicts/...`.

use super::params::*;
use super::*;

#[utoipa::path(get, path = "/v1/dicts", tag = "dicts",
    responses((status = 200, description = "The dicts the token may read", body = [DictSummary])))]
pub(crate) async fn dict_list(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
) -> ApiResult<Response> {
    let svc = s.service.clone();
    let all = blocking(move || Ok(svc.dict_list()?)).await?;
    Ok(axum::Json(visible(&c, Kind::Dict, all, |d| &d.name)).into_response())
}

#[utoipa::path(get, path = "/v1/dicts/{name}", tag = "dicts",
    params(DictName),
    responses((status = 200, description = "The dict", body = DictSummary)))]
pub(crate) async fn dict_info(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let svc = s.service.clone();
    let n = name.clone();
    let found = blocking(move || Ok(svc.dict_list()?.into_iter().find(|d| d.name == n))).await?;
    match found {
        Some(d) => Ok(axum::Json(d).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("dict `{name}` does not exist"),
        )),
    }
}

#[utoipa::path(post, path = "/v1/dicts/{name}", tag = "dicts",
    params(DictName),
    responses((status = 201, description = "Created", body = Named),
        (status = 409, description = "It exists", body = ErrorBody)))]
pub(crate) async fn dict_create(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    let n = name.clone();
    let created = blocking(move || Ok(svc.dict_create(&n)?)).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!("dict `{name}` already exists"),
        ));
    }
    Ok((StatusCode::CREATED, axum::Json(Named { name })).into_response())
}

#[utoipa::path(delete, path = "/v1/dicts/{name}", tag = "dicts",
    params(DictName),
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn dict_delete(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.dict_delete(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/v1/dicts/{name}/clear", tag = "dicts",
    params(DictName),
    responses((status = 204, description = "Every entry removed")))]
pub(crate) async fn dict_clear(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.dict_clear(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ItemsQuery {
    /// How many entries (default 20, at most 10,000; the NDJSON stream
    /// has no default: every entry).
    #[param(minimum = 1)]
    limit: Option<usize>,
    /// Every entry (owner socket only: an unbounded answer).
    #[serde(default)]
    all: bool,
    /// Only keys that start with this.
    prefix: Option<String>,
    /// Continue after the previous page: its `next`.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/dicts/{name}/items", tag = "dicts",
    params(DictName, ItemsQuery,
        ("Accept" = Option<String>, Header, description = "`application/x-ndjson` streams the entries, one JSON object per line, \
            every value included however large (the server holds one batch of values at a time); \
            after `limit` entries, a last line `{\"next\": CURSOR}` when more remain; a failure midway \
            ends the stream with a line `{\"error\": {...}}`. Otherwise a JSON page.")),
    responses((status = 200, description = "A page of entries in key order; `next` continues it. \
            A page holds at most 16 MiB of values: it ends early (with `next`) past that. \
            A value over 1 MiB is left out (`omitted: true`, with its `size`): get it by key",
            content((DictItems = "application/json"), (String = "application/x-ndjson")))))]
pub(crate) async fn dict_items(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ItemsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    if q.limit == Some(0) {
        return Err(ApiError::bad("limit=0: a page holds at least one entry"));
    }
    let after = match &q.cursor {
        Some(c) => Some(key_of_cursor(c).ok_or_else(|| {
            ApiError::bad(format!("cursor {c:?} is not one a page returned as `next`"))
        })?),
        None => None,
    };
    let prefix = q.prefix.unwrap_or_default();
    let svc = s.service.clone();
    if accepts(&headers, NDJSON) {
        if q.all {
            return Err(ApiError::bad(
                "`all` is for JSON pages; the NDJSON stream lists every entry without it",
            ));
        }
        let n = name.clone();
        blocking(move || Ok(svc.dict_must_exist(&n)?)).await?;
        return Ok(stream_items(
            s.service.clone(),
            name,
            prefix,
            after,
            q.limit,
        ));
    }
    let limit = match (q.all, &c) {
        (true, Caller::Owner) => None,
        (true, Caller::Token(_)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "`all` is for the data dir's socket; page with `limit` (at most 10000), or stream with `Accept: application/x-ndjson`",
            ));
        }
        (false, _) => Some(q.limit.unwrap_or(20).min(10_000)),
    };
    let items =
        blocking(move || Ok(svc.dict_items_page(&name, &prefix, after.as_deref(), limit)?)).await?;
    Ok(axum::Json(items).into_response())
}

const NDJSON: &str = "application/x-ndjson";

/// Bytes per chunk of the NDJSON stream.
const LINE_CHUNK: usize = 64 << 10;

/// The entries as NDJSON, produced on a blocking thread into a small
/// channel: the stream holds a few chunks and one batch of values.
fn stream_items(
    svc: Service,
    name: String,
    prefix: String,
    after: Option<String>,
    limit: Option<usize>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut out = LineSink {
            tx,
            buf: Vec::with_capacity(LINE_CHUNK),
            open: true,
        };
        let mut listed = 0usize;
        let mut last: Option<String> = None;
        let mut cut = false;
        let walked = svc.dict_walk(&name, &prefix, after, |key, version, value| {
            if limit.is_some_and(|l| listed >= l) {
                cut = true;
                return false;
            }
            write_item(&mut out, key, version, value);
            listed += 1;
            last = Some(key.to_owned());
            out.open
        });
        match walked {
            Ok(()) if cut => {
                if let Some(k) = last {
                    let line = json!({ "next": cursor_after(&k) });
                    out.put(line.to_string().as_bytes());
                    out.put(b"\n");
                }
            }
            Ok(()) => {}
            Err(e) => {
                let e = ApiError::from(e);
                let line = json!({ "error": { "kind": e.kind, "message": e.message } });
                out.put(line.to_string().as_bytes());
                out.put(b"\n");
            }
        }
        out.flush();
    });
    let mut resp = Response::new(Body::new(crate::server::body::ChannelBody::new(rx)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
    resp
}

/// Chunks of the NDJSON stream, sent as they fill.
struct LineSink {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    /// False once the client went away.
    open: bool,
}

impl LineSink {
    fn put(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(LINE_CHUNK) {
            if self.buf.len() + piece.len() > LINE_CHUNK {
                self.flush();
            }
            self.buf.extend_from_slice(piece);
        }
    }

    fn flush(&mut self) {
        if self.open && !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::replace(
                &mut self.buf,
                Vec::with_capacity(LINE_CHUNK),
            ));
            self.open = self.tx.blocking_send(Ok(chunk)).is_ok();
        }
        self.buf.clear();
    }
}

/// One entry as a line: `{"key":…,"version":…,"size":…,"value":…}` with
/// the value's own JSON text when it is JSON (line breaks, which JSON
/// allows only between tokens, become spaces), else `"value_hex"`.
fn write_item(out: &mut LineSink, key: &str, version: u64, value: &[u8]) {
    let head = json!({ "key": key, "version": version, "size": value.len() });
    let head = head.to_string();
    // `{...}` without its closing brace, to append the value.
    out.put(
        head.as_bytes()
            .strip_suffix(b"}")
            .unwrap_or(head.as_bytes()),
    );
    if serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok() {
        out.put(b",\"value\":");
        for piece in value.chunks(LINE_CHUNK) {
            let flat: Vec<u8> = piece
                .iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
                .collect();
            out.put(&flat);
        }
    } else {
        out.put(b",\"value_hex\":\"");
        for piece in value.chunks(LINE_CHUNK / 2) {
            out.put(hex(piece).as_bytes());
        }
        out.put(b"\"");
    }
    out.put(b"}\n");
}

/// A `u64` query parameter as the OpenAPI description has it: an int64,
/// so at most `i64::MAX` (the description is what a route takes).
fn int64(name: &str, v: u64) -> ApiResult<u64> {
    if v > i64::MAX as u64 {
        return Err(ApiError::bad(format!(
            "{name}={v} is over the largest allowed, {}",
            i64::MAX
        )));
    }
    Ok(v)
}

/// An entry's version as an HTTP entity tag.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// An entry's bytes as the body, its version in `ETag`.
fn raw_value(value: Vec<u8>, version: u64) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::ETAG, etag(version)),
        ],
        value,
    )
        .into_response()
}

/// Whether the client asked for the raw bytes rather than JSON.
fn wants_raw(headers: &HeaderMap) -> bool {
    accepts(headers, "application/octet-stream")
}

/// Whether an `Accept` header names `media`.
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(media))
}

#[utoipa::path(get, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(DictName, DictKey,
        ("Accept" = Option<String>, Header, description = "`application/octet-stream` for the value's raw bytes; JSON otherwise")),
    responses((status = 200, description = "The entry, its version in `ETag`", body = DictItem,
            headers(("ETag" = String, description = "The entry's version, quoted"))),
        (status = 404, description = "No such dict or key", body = ErrorBody)))]
pub(crate) async fn dict_get(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let svc = s.service.clone();
    if wants_raw(&headers) {
        let (value, version) = blocking(move || Ok(svc.dict_get_raw(&name, &key)?)).await?;
        return Ok(raw_value(value, version));
    }
    let item = blocking(move || Ok(svc.dict_get(&name, &key)?)).await?;
    let tag = etag(item.version);
    Ok(([(header::ETAG, tag)], axum::Json(item)).into_response())
}

/// `If-None-Match`'s one accepted value on a put: `*` (any entity).
#[derive(Debug, utoipa::ToSchema)]
pub(crate) enum AnyEntity {
    #[schema(rename = "*")]
    Any,
}

impl AnyEntity {
    fn parse(v: &str) -> Option<AnyEntity> {
        (v == "*").then_some(AnyEntity::Any)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PutKeyQuery {
    /// Expire the entry this many milliseconds after the write (at least
    /// 1) instead of after the dict's idle period.
    #[param(minimum = 1)]
    ttl_ms: Option<u64>,
}

/// The condition of a put from its headers: `If-Match: "V"` (the entry's
/// version must be V) or `If-None-Match: *` (the key must be absent).
fn put_condition(headers: &HeaderMap) -> ApiResult<PutIf> {
    let one = |name: header::HeaderName| -> ApiResult<Option<String>> {
        let mut values = headers.get_all(&name).iter();
        let Some(v) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(ApiError::bad(format!("{name} is given twice")));
        }
        let text = v
            .to_str()
            .map_err(|_| ApiError::bad(format!("{name} is not text")))?;
        Ok(Some(text.trim().to_owned()))
    };
    match (one(header::IF_MATCH)?, one(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(ApiError::bad(
            "If-Match and If-None-Match together: give one condition",
        )),
        (None, None) => Ok(PutIf::Always),
        (None, Some(v)) => match AnyEntity::parse(&v) {
            Some(AnyEntity::Any) => Ok(PutIf::Absent),
            None => Err(ApiError::bad(format!(
                "If-None-Match: {v}: only `*` (write if absent) is supported"
            ))),
        },
        (Some(v), None) => {
            let digits = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(&v);
            digits.parse::<u64>().map(PutIf::Version).map_err(|_| {
                ApiError::bad(format!(
                    "If-Match: {v}: expected one entry version as an ETag, such as \"12\""
                ))
            })
        }
    }
}

#[utoipa::path(put, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(DictName, DictKey, PutKeyQuery,
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^"[0-9]{1,19}"$"#, description = "Write only if the entry's version is this one (compare-and-swap), as its ETag: `\"12\"`"),
        ("If-None-Match" = Option<AnyEntity>, Header, nullable = false, description = "`*`: write only if the key is absent")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The value's bytes (JSON text reads back as JSON)"),
    responses((status = 200, description = "Written; the new version, also in `ETag`", body = Versioned,
            headers(("ETag" = String, description = "The new version, quoted"))),
        (status = 412, description = "The condition did not hold; nothing was written. `ETag` holds the current version when the key exists", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The value is over the limit", body = ErrorBody),
        (status = 429, description = "The token's requests hold their limit of body bytes (see Retry-After)", body = ErrorBody)))]
pub(crate) async fn dict_put(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PutKeyQuery>,
    headers: HeaderMap,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let cond = put_condition(&headers)?;
    let ttl = q.ttl_ms.map(|t| int64("ttl_ms", t)).transpose()?;
    // The value stays counted against the token until it is written.
    let mut hold = s.tenants.body(&c);
    let value = body
        .read(MAX_VALUE_BODY, s.tenants.limits().body_timeout, |n| {
            hold.grow(n)
        })
        .await?;
    let svc = s.service.clone();
    let k = key.clone();
    let outcome = blocking(move || Ok(svc.dict_put_if(&name, &k, &value, cond, ttl)?)).await?;
    drop(hold);
    match outcome {
        PutResult::Written { version } => Ok((
            [(header::ETAG, etag(version))],
            axum::Json(Versioned { version }),
        )
            .into_response()),
        PutResult::Refused { current } => {
            let message = match (cond, current) {
                (_, None) => format!("key `{key}` is absent: nothing was written"),
                (PutIf::Absent, Some(v)) => {
                    format!("key `{key}` exists (version {v}): nothing was written")
                }
                (_, Some(v)) => format!(
                    "key `{key}` is at version {v}, not the one in If-Match: nothing was written"
                ),
            };
            let mut resp = ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                message,
            )
            .into_response();
            if let Some(v) = current {
                resp.headers_mut().insert(header::ETAG, etag(v));
            }
            Ok(resp)
        }
    }
}

#[utoipa::path(delete, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(DictName, DictKey),
    responses((status = 204, description = "Removed; `ETag` holds the version it had",
            headers(("ETag" = String, description = "The removed entry's version, quoted"))),
        (status = 404, description = "No such dict or key", body = ErrorBody)))]
pub(crate) async fn dict_remove(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    let version = blocking(move || Ok(svc.dict_remove(&name, &key)?)).await?;
    Ok((StatusCode::NO_CONTENT, [(header::ETAG, etag(version))]).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IncrementQuery {
    /// What to add (negative to subtract); default 1.
    by: Option<i64>,
}

/// A counter's value after an increment.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Counter {
    value: i64,
}

#[utoipa::path(post, path = "/v1/dicts/{name}/keys/{key}/increment", tag = "dicts",
    params(DictName, DictKey, IncrementQuery),
    responses((status = 200, description = "The counter's new value (a missing key counts from 0), in one atomic step", body = Counter),
        (status = 400, description = "The value is not a counter (decimal i64 text), or the sum overflows", body = ErrorBody)))]
pub(crate) async fn dict_increment(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<IncrementQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    let by = q.by.unwrap_or(1);
    let value = blocking(move || Ok(svc.dict_increment(&name, &key, by)?)).await?;
    Ok(axum::Json(Counter { value }).into_response())
}

/// Entries to write at once: key → value as JSON (stored as its text, as
/// `PUT` stores a JSON body).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct UpdateBody {
    /// Key → value as JSON, stored as its compact text.
    #[serde(default)]
    #[schema(value_type = Object)]
    entries: serde_json::Map<String, serde_json::Value>,
    /// Key → value's bytes in hex, stored as they are (for values that are
    /// not JSON). A key may not be in both maps.
    #[serde(default)]
    entries_hex: BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/v1/dicts/{name}/update", tag = "dicts",
    params(DictName),
    request_body = UpdateBody,
    responses((status = 204, description = "Every entry written, in one atomic step"),
        (status = 413, description = "More than 10,000 entries, or a value over the limit: nothing written", body = ErrorBody)))]
pub(crate) async fn dict_update(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let b: UpdateBody = read_json(&s, &c, body).await?;
    let mut entries = Vec::with_capacity(b.entries.len().saturating_add(b.entries_hex.len()));
    for (k, h) in b.entries_hex {
        if b.entries.contains_key(&k) {
            return Err(ApiError::bad(format!(
                "key {k:?} is in both `entries` and `entries_hex`"
            )));
        }
        let bytes = bytes_of_hex(&h).ok_or_else(|| {
            ApiError::bad(format!(
                "entries_hex[{k:?}] is not hex (two digits per byte)"
            ))
        })?;
        entries.push((k, bytes));
    }
    for (k, v) in b.entries {
        let text = serde_json::to_vec(&v).map_err(|e| ApiError::bad(e.to_string()))?;
        entries.push((k, text));
    }
    let svc = s.service.clone();
    blocking(move || Ok(svc.dict_update(&name, &entries)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Keys to read at once.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct GetManyBody {
    keys: Vec<String>,
}

/// The entries of a get-many, in the order asked (`null`: absent).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ManyItems {
    items: Vec<Option<DictItem>>,
}

#[utoipa::path(post, path = "/v1/dicts/{name}/get-many", tag = "dicts",
    params(DictName),
    request_body = GetManyBody,
    responses((status = 200, description = "The entries, in the order of the keys", body = ManyItems),
        (status = 413, description = "More than 10,000 keys", body = ErrorBody)))]
pub(crate) async fn dict_get_many(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let b: GetManyBody = read_json(&s, &c, body).await?;
    let svc = s.service.clone();
    let items = blocking(move || Ok(svc.dict_get_many(&name, &b.keys)?)).await?;
    Ok(axum::Json(ManyItems { items }).into_response())
}

#[utoipa::path(post, path = "/v1/dicts/{name}/keys/{key}/pop", tag = "dicts",
    params(DictName, DictKey,
        ("Accept" = Option<String>, Header, description = "`application/octet-stream` for the value's raw bytes (version in `ETag`); JSON otherwise")),
    responses((status = 200, description = "The entry, removed in the same step", body = DictItem),
        (status = 404, description = "No such dict or key", body = ErrorBody)))]
pub(crate) async fn dict_pop(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let svc = s.service.clone();
    if wants_raw(&headers) {
        let (value, version) = blocking(move || Ok(svc.dict_pop_raw(&name, &key)?)).await?;
        return Ok(raw_value(value, version));
    }
    let item = blocking(move || Ok(svc.dict_pop(&name, &key)?)).await?;
    Ok(([(header::ETAG, etag(item.version))], axum::Json(item)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LeaseQuery {
    /// How long the lease lasts, in milliseconds (at least 1).
    #[param(minimum = 1)]
    ttl_ms: u64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HeldLeaseQuery {
    /// The fencing token `lock` returned.
    token: u64,
    /// For `renew`: the new lease's length, in milliseconds (at least 1).
    #[param(minimum = 1)]
    ttl_ms: Option<u64>,
}

/// A held lease: its fencing token (which grows with every lease of the
/// key) and when it ends unless renewed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Lease {
    token: u64,
    expires_at_ms: u64,
}

impl From<crate::storage::dict::LeaseInfo> for Lease {
    fn from(l: crate::storage::dict::LeaseInfo) -> Self {
        Lease {
            token: l.token,
            expires_at_ms: l.expires_at_ms,
        }
    }
}

#[utoipa::path(post, path = "/v1/dicts/{name}/keys/{key}/lock", tag = "dicts",
    params(DictName, DictKey, LeaseQuery),
    responses((status = 200, description = "The lease, with its fencing token", body = Lease),
        (status = 409, description = "Another live lease holds the key", body = ErrorBody)))]
pub(crate) async fn dict_lock(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<LeaseQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let ttl = int64("ttl_ms", q.ttl_ms)?;
    let svc = s.service.clone();
    let k = key.clone();
    match blocking(move || Ok(svc.dict_lock(&name, &k, ttl)?)).await? {
        Some(lease) => Ok(axum::Json(Lease::from(lease)).into_response()),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "busy",
            format!("another live lease holds key `{key}`"),
        )),
    }
}

#[utoipa::path(post, path = "/v1/dicts/{name}/keys/{key}/renew", tag = "dicts",
    params(DictName, DictKey, HeldLeaseQuery),
    responses((status = 200, description = "The lease, extended", body = Lease),
        (status = 412, description = "The token no longer holds the lease (it expired and was taken, or was released): a stale fencing token", body = ErrorBody)))]
pub(crate) async fn dict_renew(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<HeldLeaseQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let ttl = q
        .ttl_ms
        .ok_or_else(|| ApiError::bad("renew needs ttl_ms (the new lease's length)"))?;
    let (ttl, token) = (int64("ttl_ms", ttl)?, int64("token", q.token)?);
    let svc = s.service.clone();
    let lease = blocking(move || Ok(svc.dict_renew(&name, &key, token, ttl)?)).await?;
    Ok(axum::Json(Lease::from(lease)).into_response())
}

#[utoipa::path(post, path = "/v1/dicts/{name}/keys/{key}/release", tag = "dicts",
    params(DictName, DictKey, HeldLeaseQuery),
    responses((status = 204, description = "Released (releasing a lease no longer held is not an error)")))]
pub(crate) async fn dict_release(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<HeldLeaseQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    let token = int64("token", q.token)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.dict_release(&name, &key, token)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
