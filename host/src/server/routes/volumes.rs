//! The volume routes: `/v1/volumes/...`, and the owner-only local
//! operations (`put-local`, `get-local`, forwarded commands, gc).

use super::params::*;
use super::*;

#[utoipa::path(get, path = "/v1/volumes", tag = "volumes",
    responses((status = 200, description = "The volumes the token may read", body = [VolumeSummary])))]
pub(crate) async fn volume_list(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
) -> ApiResult<Response> {
    let svc = s.service.clone();
    let all = blocking(move || Ok(svc.volume_list()?)).await?;
    Ok(axum::Json(visible(&c, Kind::Volume, all, |v| &v.name)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct QuotaQuery {
    /// The volume's byte quota: the most its files may hold, each file
    /// counted whole. Commits and uploads past it fail with 507. At most
    /// 2^63 - 1.
    max_bytes: Option<u64>,
    /// How long a replaced version stays readable, in milliseconds; 0
    /// keeps only the head. Default: seven days.
    retention_ms: Option<u64>,
}

#[utoipa::path(post, path = "/v1/volumes/{name}", tag = "volumes",
    params(VolumeName, QuotaQuery),
    responses((status = 201, description = "Created", body = Named),
        (status = 409, description = "It exists", body = ErrorBody)))]
pub(crate) async fn volume_create(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<QuotaQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    let svc = s.service.clone();
    let n = name.clone();
    blocking(move || Ok(svc.volume_create_with(&n, q.max_bytes, q.retention_ms)?)).await?;
    Ok((StatusCode::CREATED, axum::Json(Named { name })).into_response())
}

#[utoipa::path(get, path = "/v1/volumes/{name}", tag = "volumes",
    params(VolumeName),
    responses((status = 200, description = "The volume: version, size, quota", body = VolumeSummary)))]
pub(crate) async fn volume_info(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    let svc = s.service.clone();
    let info = blocking(move || Ok(svc.volume_info(&name)?)).await?;
    Ok(axum::Json(info).into_response())
}

/// `PUT .../quota`: the quota to set, required.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SetQuotaQuery {
    /// The volume's byte quota: the most its files may hold, each file
    /// counted whole. Commits and uploads past it fail with 507. At most
    /// 2^63 - 1.
    max_bytes: u64,
}

#[utoipa::path(put, path = "/v1/volumes/{name}/quota", tag = "volumes",
    params(VolumeName, SetQuotaQuery),
    responses((status = 200, description = "The volume with its new quota (below its size is allowed: then only changes that shrink it land)", body = VolumeSummary),
        (status = 400, description = "No or a bad `max_bytes`", body = ErrorBody)))]
pub(crate) async fn volume_set_quota(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<SetQuotaQuery>,
) -> ApiResult<Response> {
    quota_to(&s, &c, name, Some(q.max_bytes)).await
}

#[utoipa::path(delete, path = "/v1/volumes/{name}/quota", tag = "volumes",
    params(VolumeName),
    responses((status = 200, description = "The volume, without a quota", body = VolumeSummary)))]
pub(crate) async fn volume_drop_quota(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Response> {
    quota_to(&s, &c, name, None).await
}

/// Sets (or removes) volume `name`'s quota for a caller with write scope;
/// answers with the volume.
async fn quota_to(
    s: &ServerState,
    c: &Caller,
    name: String,
    max_bytes: Option<u64>,
) -> ApiResult<Response> {
    require(c, Kind::Volume, &name, Mode::Write)?;
    let svc = s.service.clone();
    let info = blocking(move || Ok(svc.volume_set_quota(&name, max_bytes)?)).await?;
    Ok(axum::Json(info).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ForceQuery {
    /// Delete even while a container of this host has the volume mounted.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(delete, path = "/v1/volumes/{name}", tag = "volumes",
    params(VolumeName, ForceQuery),
    responses((status = 204, description = "Deleted"),
        (status = 409, description = "Mounted by a running container (use force)", body = ErrorBody)))]
pub(crate) async fn volume_delete(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ForceQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.volume_delete(&name, q.force)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LsQuery {
    /// The directory to list (default: the root).
    #[serde(default)]
    path: String,
    /// Every descendant, not only the children.
    #[serde(default)]
    recursive: bool,
    /// At most this many entries (1 to 10,000; default: all of them).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// Continue after the previous page: its `Vessel-Next` header.
    cursor: Option<String>,
    /// List this version instead of the head (see `/history`).
    version: Option<u64>,
}

#[utoipa::path(get, path = "/v1/volumes/{name}/ls", tag = "volumes",
    params(VolumeName, LsQuery),
    responses((status = 200, description = "The entries under the path, in path order", body = [EntryInfo],
            headers(("Vessel-Next" = String, description = "When `limit` cut the listing: the cursor that continues it"))),
        (status = 409, description = "The path is not a directory", body = ErrorBody)))]
pub(crate) async fn volume_ls(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<LsQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    if let Some(l) = q.limit
        && !(1..=10_000).contains(&l)
    {
        return Err(ApiError::bad(format!(
            "limit={l}: a page lists 1 to 10000 entries"
        )));
    }
    let after = match &q.cursor {
        Some(c) => Some(key_of_cursor(c).ok_or_else(|| {
            ApiError::bad(format!(
                "cursor {c:?} is not one a listing returned in Vessel-Next"
            ))
        })?),
        None => None,
    };
    let name = at_version(name, q.version)?;
    let svc = s.service.clone();
    let (entries, next) = blocking(move || {
        Ok(svc.volume_ls_page(&name, &q.path, q.recursive, after.as_deref(), q.limit)?)
    })
    .await?;
    let mut resp = axum::Json(entries).into_response();
    if let Some(n) = next
        && let Ok(v) = HeaderValue::from_str(&n)
    {
        resp.headers_mut().insert("vessel-next", v);
    }
    Ok(resp)
}

/// The version an `If-Match` header names on a write: `"12"`, quoted like
/// an entity tag (the volume version the writer read the path at). Anything else, or
/// several, is refused rather than ignored.
fn if_match_version(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let mut values = headers.get_all(header::IF_MATCH).iter();
    let Some(v) = values.next() else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad(
            "If-Match on a volume file takes one volume version, such as \"12\" \
             (see /history): the write lands only if no later commit changed the path",
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let text = v.to_str().map_err(|_| bad())?.trim();
    let text = text.strip_prefix("W/").unwrap_or(text);
    let digits = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(bad)?;
    digits.parse().map(Some).map_err(|_| bad())
}

/// `?version=`: read a kept version instead of the head.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionQuery {
    /// Read this version instead of the head: one `/history` lists. An
    /// unknown version, or one past the volume's retention, is 404.
    version: Option<u64>,
}

/// The volume a read names: `name` at `version` when one is given (as the
/// service spells it, `NAME@VERSION`).
fn at_version(name: String, version: Option<u64>) -> ApiResult<String> {
    match version {
        None => Ok(name),
        Some(_) if VolumeRef::parse(&name)?.version.is_some() => Err(ApiError::bad(format!(
            "{name}: give the version once, in the name or as ?version="
        ))),
        Some(v) => Ok(format!("{name}@{v}")),
    }
}

/// Reads a `Range` header against a file of `size` bytes: `Ok(None)` to
/// answer with the whole file, `Ok(Some((offset, len)))` for one range.
///
/// As RFC 9110 §14.2 allows, a header this server does not understand (bad
/// syntax, another unit, several ranges) is ignored and the whole file
/// served; a well-formed range that starts past the end is 416.
pub(super) fn parse_range(value: &HeaderValue, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(spec) = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .filter(|v| !v.contains(','))
    else {
        return Ok(None);
    };
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let number = |t: &str| {
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    let last = size.saturating_sub(1);
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => match number(suffix) {
            Some(0) | None => return Ok(None),
            Some(n) => (size.saturating_sub(n), last),
        },
        (a, "") => match number(a) {
            Some(a) => (a, last),
            None => return Ok(None),
        },
        (a, b) => match (number(a), number(b)) {
            (Some(a), Some(b)) if a <= b => (a, b.min(last)),
            _ => return Ok(None),
        },
    };
    if size == 0 || start >= size {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "bad_range",
            format!("the range starts at byte {start} but the file has {size} bytes"),
        ));
    }
    Ok(Some((start, end - start + 1)))
}

#[utoipa::path(get, path = "/v1/volumes/{name}/files/{path}", tag = "volumes",
    params(VolumeName,
        ("path" = String, Path, description = "File path in the volume"),
        ("Range" = Option<String>, Header, description = "One range, e.g. `bytes=0-1023`, `bytes=100-` or `bytes=-100`; a header that is not one well-formed byte range is ignored (the whole file is served); a range starting past the end is 416"),
        ("If-None-Match" = Option<String>, Header, description = "The file's ETag (its contents' hash, quoted) from an earlier answer, or `*`: 304 with no body while the file still has those contents"),
        VersionQuery),
    responses((status = 200, description = "The file's bytes; `ETag` is its contents' BLAKE3 hash, quoted (HEAD gives the headers alone)", content_type = "application/octet-stream", body = Vec<u8>,
            headers(("ETag" = String, description = "The contents' hash, quoted"))),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 304, description = "The contents still match If-None-Match"),
        (status = 409, description = "Not a file", body = ErrorBody),
        (status = 416, description = "Range not satisfiable; `Content-Range: bytes */SIZE`", body = ErrorBody)))]
pub(crate) async fn volume_get(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, path)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<VersionQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    let name = at_version(name, q.version)?;
    let store = s
        .service
        .stores
        .volumes
        .clone()
        .ok_or_else(|| ApiError::from(VolumeOpError::NoBackend))?;
    let path = normalize_path(&path)?;
    let (n, p) = (name.clone(), path.clone());
    let st = store.clone();
    let node = blocking(move || Ok(VolumeRef::parse(&n)?.node(st.as_ref(), &p)?))
        .await?
        .ok_or_else(|| {
            ApiError::from(VolumeError::NoSuchPath {
                volume: name.clone(),
                path: path.clone(),
            })
        })?;
    let Some(blob) = node.blob.filter(|_| node.kind == NodeKind::File) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_a_file",
            format!("{path}: not a file in volume `{name}` (list it with /ls)"),
        ));
    };
    let etag =
        HeaderValue::from_str(&format!("\"{blob}\"")).unwrap_or(HeaderValue::from_static("\"\""));
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes());
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let (offset, len, status) = match headers.get(header::RANGE) {
        Some(r) => match parse_range(r, node.size) {
            Ok(Some((o, l))) => (o, l, StatusCode::PARTIAL_CONTENT),
            Ok(None) => (0, node.size, StatusCode::OK),
            // RFC 9110: a 416 says the current length.
            Err(e) => {
                let mut resp = e.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", node.size)) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(resp);
            }
        },
        None => (0, node.size, StatusCode::OK),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut at = offset;
        let end = offset + len;
        while at < end {
            let n = READ_CHUNK.min(end - at);
            let chunk = store
                .read_blob(&blob, at, n)
                .map_err(|e| std::io::Error::other(e.to_string()));
            let failed = chunk.is_err();
            let got = chunk.as_ref().map_or(0, |c| c.len() as u64);
            if tx.blocking_send(chunk.map(Bytes::from)).is_err() || failed || got == 0 {
                return;
            }
            at += got;
        }
    });
    let mut resp = Response::new(Body::new(crate::server::body::ChannelBody::new(rx)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag);
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!(
            "bytes {offset}-{}/{}",
            offset + len - 1,
            node.size
        ))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PutQuery {
    #[serde(default)]
    force: bool,
}

#[utoipa::path(put, path = "/v1/volumes/{name}/files/{path}", tag = "volumes",
    params(VolumeName,
        ("path" = String, Path, description = "File path in the volume"), PutQuery,
        ("If-Match" = Option<String>, Header, nullable = false, description = "A volume version, quoted (`\"12\"`): the version the writer read the path at. The write lands only if no later commit changed the path (or anything under it), and may then replace an existing file without `force`; otherwise 412 naming it, and nothing changes", pattern = "^(W/)?\"[0-9]{1,19}\"$")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes, streamed"),
    responses((status = 201, description = "Written and committed", body = Versioned),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 409, description = "The path exists (use force) or is a directory", body = ErrorBody),
        (status = 412, description = "If-Match named a version, and a later commit changed the path", body = ErrorBody),
        (status = 507, description = "The volume's inode limit or byte quota", body = ErrorBody)))]
pub(crate) async fn volume_put(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, path)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PutQuery>,
    headers: HeaderMap,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    normalize_path(&path)?;
    let if_version = if_match_version(&headers)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let svc = s.service.clone();
    let upload = tokio::task::spawn_blocking(move || -> ApiResult<u64> {
        let mut batch = svc.volume_batch(&name, q.force)?.if_version(if_version);
        let mut reader = crate::server::body::ChannelReader::new(rx);
        batch.put_reader(&mut reader, &path)?;
        Ok(batch.commit()?.version)
    });
    // Feed the upload; a client that stalls is cut off (408) rather than
    // holding the connection and a blocking thread forever.
    let mut body = body.into_body();
    let idle = s.tenants.limits().body_timeout;
    let mut cut = None;
    loop {
        let chunk = match crate::server::body::next_chunk(&mut body, idle).await {
            Ok(None) => break,
            Ok(Some(chunk)) => Ok(chunk),
            Err(e) => {
                let err = std::io::Error::other(e.to_string());
                cut = Some(e);
                Err(err)
            }
        };
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let version = upload
        .await
        .map_err(|e| ApiError::internal(format!("the upload task failed: {e}")));
    // A body cut off is the client's failure, whatever the store made of
    // the short file.
    if let Some(e) = cut {
        return Err(e.into());
    }
    let version = version??;
    Ok((StatusCode::CREATED, axum::Json(Versioned { version })).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RmQuery {
    #[serde(default)]
    recursive: bool,
}

#[utoipa::path(delete, path = "/v1/volumes/{name}/files/{path}", tag = "volumes",
    params(VolumeName,
        ("path" = String, Path, description = "Path in the volume"), RmQuery),
    responses((status = 200, description = "Removed and committed", body = CommitInfo),
        (status = 409, description = "A non-empty directory without recursive", body = ErrorBody)))]
pub(crate) async fn volume_rm(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, path)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RmQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    let svc = s.service.clone();
    let info = blocking(move || Ok(svc.volume_rm(&name, &path, q.recursive)?)).await?;
    Ok(axum::Json(info).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct CpBody {
    /// Paths in the volume to copy.
    #[schema(min_items = 1)]
    srcs: Vec<String>,
    dst: String,
    #[serde(default)]
    recursive: bool,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/cp", tag = "volumes",
    params(VolumeName),
    request_body = CpBody,
    responses((status = 200, description = "Copied and committed", body = CommitInfo),
        (status = 409, description = "The destination conflicts", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 429, description = "The token's requests hold their limit of body bytes (see Retry-After)", body = ErrorBody),
        (status = 507, description = "The volume's inode limit", body = ErrorBody)))]
pub(crate) async fn volume_cp(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    let b: CpBody = read_json(&s, &c, body).await?;
    let svc = s.service.clone();
    let info = blocking(move || {
        let srcs: Vec<&str> = b.srcs.iter().map(String::as_str).collect();
        Ok(svc.volume_cp(&name, &srcs, &b.dst, b.recursive)?)
    })
    .await?;
    Ok(axum::Json(info).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct RenameBody {
    /// The new volume name.
    #[schema(min_length = 1, max_length = 255, pattern = "^[^/\\x00]+$")]
    to: String,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/rename", tag = "volumes",
    params(VolumeName),
    request_body = RenameBody,
    responses((status = 204, description = "Renamed"),
        (status = 409, description = "The new name exists", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 429, description = "The token's requests hold their limit of body bytes (see Retry-After)", body = ErrorBody)))]
pub(crate) async fn volume_rename(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    // The new name is in the body: read it only for a token that may write
    // the volume at all.
    let b: RenameBody = read_json(&s, &c, body).await?;
    require(&c, Kind::Volume, &b.to, Mode::Write)?;
    let svc = s.service.clone();
    blocking(move || Ok(svc.volume_rename(&name, &b.to)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Routes that read or write files of the caller's machine by path: only
/// for the owner's socket, whose callers are this machine's same user.
fn owner_only(c: &Caller, what: &str) -> ApiResult<()> {
    match c {
        Caller::Owner => Ok(()),
        Caller::Token(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!("{what} is only served on the data dir's socket"),
        )),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct PutLocalBody {
    /// A path on the server's machine.
    #[schema(value_type = String)]
    local: std::path::PathBuf,
    remote: Option<String>,
    #[serde(default)]
    force: bool,
    /// Land only if no commit after this version changed the paths
    /// written (409 `precondition_failed` otherwise... see PUT files).
    #[serde(default)]
    if_version: Option<u64>,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/put-local", tag = "volumes",
    description = "Uploads a file or tree of the server's machine (the owner's socket only).",
    params(VolumeName),
    request_body = PutLocalBody,
    responses((status = 200, description = "Uploaded", body = PutReport),
        (status = 409, description = "The target exists", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody)))]
pub(crate) async fn volume_put_local(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    body: Upload,
) -> ApiResult<Response> {
    owner_only(&c, "put-local")?;
    let b: PutLocalBody = read_json(&s, &c, body).await?;
    let svc = s.service.clone();
    let report = blocking(move || {
        Ok(svc.volume_put_local(
            &name,
            &b.local,
            b.remote.as_deref(),
            b.force,
            b.if_version,
            None,
        )?)
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct GetLocalBody {
    remote: String,
    /// A path on the server's machine.
    #[schema(value_type = String)]
    local: std::path::PathBuf,
    #[serde(default)]
    force: bool,
}

#[utoipa::path(post, path = "/v1/volumes/{name}/get-local", tag = "volumes",
    description = "Downloads into a path of the server's machine (the owner's socket only).",
    params(VolumeName),
    request_body = GetLocalBody,
    responses((status = 200, description = "Downloaded", body = GetReport),
        (status = 409, description = "The local path exists", body = ErrorBody),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody)))]
pub(crate) async fn volume_get_local(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    body: Upload,
) -> ApiResult<Response> {
    owner_only(&c, "get-local")?;
    let b: GetLocalBody = read_json(&s, &c, body).await?;
    let svc = s.service.clone();
    let report =
        blocking(move || Ok(svc.volume_get(&name, &b.remote, &b.local, b.force, None)?)).await?;
    Ok(axum::Json(report).into_response())
}

#[utoipa::path(post, path = "/v1/local/exec", tag = "functions",
    description = "Runs a `vessel call` or `vessel run` command line forwarded by another \
        process on this machine (the owner's socket only). The body is the command as one line \
        of JSON, then the caller's stdin; the answer is a stream of frames (a tag byte: `1` \
        stdout, `2` stderr, `x` the exit as JSON; a big-endian u32 length; the payload).",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "The command's output and exit, as frames",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 408, description = "The command line stalled", body = ErrorBody),
        (status = 413, description = "The command line is too long", body = ErrorBody),
        (status = 501, description = "This server does not run forwarded commands", body = ErrorBody)))]
pub(crate) async fn local_exec(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    body: Upload,
) -> ApiResult<Response> {
    owner_only(&c, "exec")?;
    let Some(exec) = s.exec.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported",
            "this server does not run forwarded commands",
        ));
    };
    use futures_util::{StreamExt as _, TryStreamExt as _};
    let stream = body
        .into_body()
        .into_data_stream()
        .map_err(|e| e.to_string())
        .boxed();
    let (command, head, rest) =
        crate::server::exec::read_command(stream, s.tenants.limits().body_timeout)
            .await
            .map_err(|e| match e {
                crate::server::exec::ExecRequestError::TooLong => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
                }
                e @ crate::server::exec::ExecRequestError::Idle(_) => {
                    ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", e.to_string())
                }
                e => ApiError::bad(e.to_string()),
            })?;
    let frames = crate::server::exec::start(exec, command, head, rest);
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(frames))
        .map_err(ApiError::internal)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GcQuery {
    /// Keep unreferenced blobs younger than this many seconds.
    min_age: Option<u64>,
}

#[utoipa::path(post, path = "/v1/gc", tag = "volumes",
    description = "Removes blobs no volume names (the owner's socket only).",
    params(GcQuery),
    responses((status = 200, description = "What was removed", body = GcReport)))]
pub(crate) async fn gc(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiQuery(q): ApiQuery<GcQuery>,
) -> ApiResult<Response> {
    owner_only(&c, "gc")?;
    let svc = s.service.clone();
    let report =
        blocking(move || Ok(svc.volume_gc(q.min_age.map(std::time::Duration::from_secs))?)).await?;
    Ok(axum::Json(report).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct BackupBody {
    /// The new data dir to write (absolute; a new or empty folder on the
    /// owner's machine).
    #[schema(value_type = String)]
    dir: std::path::PathBuf,
}

#[utoipa::path(post, path = "/v1/admin/backup", tag = "volumes",
    description = "Copies the embedded store, as it stands at one moment, into a new data dir (the owner's socket only).",
    request_body = BackupBody,
    responses((status = 200, description = "What was copied", body = crate::storage::embedded::backup::BackupReport)))]
pub(crate) async fn admin_backup(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    body: Upload,
) -> ApiResult<Response> {
    owner_only(&c, "backup")?;
    let body: BackupBody = read_json(&s, &c, body).await?;
    if !body.dir.is_absolute() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!(
                "the backup folder {} must be an absolute path",
                body.dir.display()
            ),
        ));
    }
    let svc = s.service.clone();
    let report = blocking(move || Ok(svc.backup(&body.dir)?)).await?;
    Ok(axum::Json(report).into_response())
}
