//! The HTTP/JSON API: routes, their auth checks, and the mapping of
//! domain errors to statuses. Every handler calls the same [`Service`]
//! methods the CLI calls, or the loaded [`App`]s.
//!
//! Errors are `{"error": {"kind": "...", "message": "..."}}` with a status
//! that says what went wrong: 400 bad input, 401 no valid token, 403 out of
//! scope, 404 missing, 408 a body that stalled, 409 conflict, 412
//! precondition, 413 too large, 416 bad range, 429 a token's budget spent,
//! 503 unavailable, 500 host failure.
//!
//! Every handler checks the caller's token and scope (and budgets) from the
//! method, path and headers before it reads a body (`body::Upload`), so a
//! request that will be refused never has its body read.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::auth::{Caller, Kind, Mode, TokenStore};
use super::body::{BodyError, Upload};
use super::calls::{CallStore, call_get, fn_call, fn_spawn};
use super::exec::LocalExec;
use super::limits::{LimitError, Limits, RETRY_AFTER_SECS, Tenants};
use super::openapi::ErrorBody;
use crate::app::{App, AppError};
use crate::service::Service;
use crate::service::dict::{DictItem, DictItems, DictServiceError, DictSummary};
use crate::service::volume::{EntryInfo, GetReport, PutReport, VolumeOpError, VolumeSummary};
use crate::storage::dict::DictError;
use crate::storage::volume::{CommitInfo, GcReport, NodeKind, VolumeError, normalize_path};

/// Largest JSON body (function arguments, small requests).
pub const MAX_JSON_BODY: usize = 16 << 20;
/// Largest dict value body: the dict limit plus room.
pub const MAX_VALUE_BODY: usize = (100 << 20) + 1024;
/// Chunk of streamed file reads.
const READ_CHUNK: u64 = 4 << 20;

/// What the handlers share.
pub struct ServerState {
    pub service: Service,
    pub apps: BTreeMap<String, App>,
    pub tokens: TokenStore,
    /// What each token may hold at once, and the server's other limits.
    pub(crate) tenants: Tenants,
    /// Spawned calls.
    pub(crate) calls: Arc<CallStore>,
    /// Runs `vessel call`/`run` forwarded by another process, when this
    /// server is a data dir's owner started by the CLI.
    exec: Option<Arc<dyn LocalExec>>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("apps", &self.apps.keys())
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// A server with the default [`Limits`].
    pub fn new(service: Service, apps: BTreeMap<String, App>, tokens: TokenStore) -> Self {
        ServerState {
            service,
            apps,
            tokens,
            tenants: Tenants::new(Limits::default()),
            calls: Arc::new(CallStore::new(
                Limits::default().max_stored_calls,
                Limits::default().stored_result_bytes,
            )),
            exec: None,
        }
    }

    /// Serves under `limits` instead of the defaults.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.calls = Arc::new(CallStore::new(
            limits.max_stored_calls,
            limits.stored_result_bytes,
        ));
        self.tenants = Tenants::new(limits);
        self
    }

    /// Runs commands forwarded to this owner with `exec`.
    pub fn with_exec(mut self, exec: Arc<dyn LocalExec>) -> Self {
        self.exec = Some(exec);
        self
    }
}

/// An API error: a status and a message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }
    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }
    fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"kind": self.kind, "message": self.message}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}

impl From<LimitError> for ApiError {
    fn from(e: LimitError) -> Self {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many", e.to_string())
            .retry_after(RETRY_AFTER_SECS)
    }
}

impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Budget(e) => e.into(),
            e @ (BodyError::Declared { .. } | BodyError::TooLarge { .. }) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            e @ BodyError::Idle(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", e.to_string())
            }
            e @ BodyError::Broken(_) => ApiError::bad(e.to_string()),
        }
    }
}

impl From<DictServiceError> for ApiError {
    fn from(e: DictServiceError) -> Self {
        let (status, kind) = match &e {
            DictServiceError::NoKey { .. } => (StatusCode::NOT_FOUND, "not_found"),
            DictServiceError::NoStore => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            DictServiceError::Store(s) => match s {
                DictError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                DictError::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
                DictError::InvalidName { .. }
                | DictError::InvalidKey(_)
                | DictError::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
                DictError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
                DictError::VersionMismatch { .. } | DictError::LeaseLost { .. } => {
                    (StatusCode::PRECONDITION_FAILED, "precondition_failed")
                }
                DictError::NotACounter { .. } | DictError::Overflow { .. } => {
                    (StatusCode::CONFLICT, "conflict")
                }
                DictError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                DictError::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "no_space"),
                DictError::Corrupt(_) | DictError::Io(_) => {
                    (StatusCode::INTERNAL_SERVER_ERROR, "io")
                }
            },
        };
        ApiError::new(status, kind, e.to_string())
    }
}

impl From<VolumeOpError> for ApiError {
    fn from(e: VolumeOpError) -> Self {
        let (status, kind) = match &e {
            VolumeOpError::Store(VolumeError::NotFound(_) | VolumeError::NoSuchPath { .. }) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            VolumeOpError::Store(VolumeError::AlreadyExists(_))
            | VolumeOpError::FileExists { .. }
            | VolumeOpError::IsADirectory { .. }
            | VolumeOpError::NotADirectory { .. } => (StatusCode::CONFLICT, "already_exists"),
            VolumeOpError::Store(
                VolumeError::NoSpace { .. }
                | VolumeError::OverQuota { .. }
                | VolumeError::DiskFull(_),
            ) => (StatusCode::INSUFFICIENT_STORAGE, "no_space"),
            VolumeOpError::Store(VolumeError::Unavailable(_)) | VolumeOpError::NoBackend => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            e if e.is_usage() => (StatusCode::BAD_REQUEST, "invalid_argument"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        VolumeOpError::from(e).into()
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let (status, kind) = match &e {
            AppError::NoSuchFunction { .. } => (StatusCode::NOT_FOUND, "not_found"),
            AppError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            e if e.is_usage() => (StatusCode::BAD_REQUEST, "invalid_argument"),
            // The function ran and failed (trap, timeout, ...).
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "call_failed"),
        };
        ApiError::new(status, kind, e.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A rejected request part (path, query, body) as an [`ApiError`], so
/// every answer of the API is JSON: 413 for a body over its limit, 400 for
/// everything else.
fn rejected(status: StatusCode, what: &str, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "too_large",
            format!("the {what} is too large: {text}"),
        )
    } else {
        ApiError::bad(format!("bad {what}: {text}"))
    }
}

/// `axum::extract::Query` with JSON rejections.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(rejected(r.status(), "query", r.body_text())),
        }
    }
}

/// `axum::extract::Path` with JSON rejections.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for ApiPath<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(rejected(StatusCode::BAD_REQUEST, "path", r.body_text())),
        }
    }
}

/// Reads a JSON request body (after the caller was let in).
async fn read_json<T: serde::de::DeserializeOwned>(
    s: &ServerState,
    c: &Caller,
    body: Upload,
) -> ApiResult<T> {
    let mut hold = s.tenants.body(c);
    let bytes = body
        .read(MAX_JSON_BODY, s.tenants.limits().body_timeout, |n| {
            hold.grow(n)
        })
        .await?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
}

/// `GET /v1/health`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    ok: bool,
    /// The server's version.
    version: String,
}

/// A created volume or dict.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Named {
    name: String,
}

/// A write that made a new version.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Versioned {
    version: u64,
}

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a store task failed: {e}")))?
}

/// The request's caller: the owner (local socket), or a valid bearer token.
fn caller(state: &ServerState, headers: &HeaderMap, trusted: bool) -> ApiResult<Caller> {
    if trusted {
        return Ok(Caller::Owner);
    }
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer TOKEN` header"))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
    match state.tokens.check(token.trim()) {
        Ok(Some(record)) => Ok(Caller::Token(record)),
        Ok(None) => Err(unauthorized("invalid or revoked token")),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub(crate) fn require(c: &Caller, kind: Kind, name: &str, mode: Mode) -> ApiResult<()> {
    if c.allows(kind, name, mode) {
        return Ok(());
    }
    let m = match mode {
        Mode::Read => "read",
        Mode::Write => "write",
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "access_denied",
        format!(
            "this token may not {m} {} `{name}` (needs scope {}:{name}:{})",
            kind.as_str(),
            kind.as_str(),
            &m[..1]
        ),
    ))
}

/// Marks requests from a trusted (owner-only socket) connection.
#[derive(Debug, Clone, Copy)]
pub struct Trusted(pub bool);

/// Who is calling, extracted per request.
pub(crate) struct Who(pub(crate) Caller);

impl axum::extract::FromRequestParts<Arc<ServerState>> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        let trusted = parts.extensions.get::<Trusted>().is_some_and(|t| t.0);
        caller(state, &parts.headers, trusted).map(Who)
    }
}

/// The router of the API.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/volumes", get(volume_list))
        .route(
            "/v1/volumes/{name}",
            get(volume_info).post(volume_create).delete(volume_delete),
        )
        .route(
            "/v1/volumes/{name}/quota",
            put(volume_set_quota).delete(volume_drop_quota),
        )
        .route("/v1/volumes/{name}/ls", get(volume_ls))
        .route("/v1/volumes/{name}/cp", post(volume_cp))
        .route("/v1/volumes/{name}/rename", post(volume_rename))
        .route("/v1/volumes/{name}/put-local", post(volume_put_local))
        .route("/v1/volumes/{name}/get-local", post(volume_get_local))
        .route("/v1/gc", post(gc))
        .route(
            "/v1/volumes/{name}/files/{*path}",
            get(volume_get).put(volume_put).delete(volume_rm),
        )
        .route("/v1/dicts", get(dict_list))
        .route(
            "/v1/dicts/{name}",
            get(dict_info).post(dict_create).delete(dict_delete),
        )
        .route("/v1/dicts/{name}/clear", post(dict_clear))
        .route("/v1/dicts/{name}/items", get(dict_items))
        .route("/v1/dicts/{name}/keys/{key}", get(dict_get).put(dict_put))
        .route("/v1/apps", get(app_list))
        .route("/v1/apps/{app}/functions/{function}/call", post(fn_call))
        .route("/v1/apps/{app}/functions/{function}/spawn", post(fn_spawn))
        .route("/v1/calls/{id}", get(call_get))
        .route("/v1/local/exec", post(local_exec))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

#[utoipa::path(get, path = "/v1/health", tag = "meta",
    responses((status = 200, description = "The server is up", body = Health)))]
pub(crate) async fn health() -> axum::Json<Health> {
    axum::Json(Health {
        ok: true,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This API's OpenAPI 3.1 description", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        super::openapi::json(),
    )
        .into_response()
}

/// The items of a listing the caller may read.
fn visible<T>(c: &Caller, kind: Kind, all: Vec<T>, name: impl Fn(&T) -> &String) -> Vec<T> {
    all.into_iter()
        .filter(|x| c.allows(kind, name(x), Mode::Read))
        .collect()
}

// ---- volumes ----

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
}

#[utoipa::path(post, path = "/v1/volumes/{name}", tag = "volumes",
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"), QuotaQuery),
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
    blocking(move || Ok(svc.volume_create_with(&n, q.max_bytes)?)).await?;
    Ok((StatusCode::CREATED, axum::Json(Named { name })).into_response())
}

#[utoipa::path(get, path = "/v1/volumes/{name}", tag = "volumes",
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$")),
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

#[utoipa::path(put, path = "/v1/volumes/{name}/quota", tag = "volumes",
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"), QuotaQuery),
    responses((status = 200, description = "The volume with its new quota (below its size is allowed: then only changes that shrink it land)", body = VolumeSummary),
        (status = 400, description = "No or a bad `max_bytes`", body = ErrorBody)))]
pub(crate) async fn volume_set_quota(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<QuotaQuery>,
) -> ApiResult<Response> {
    let Some(max) = q.max_bytes else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            "`max_bytes` is required (DELETE the quota to remove it)",
        ));
    };
    quota_to(&s, &c, name, Some(max)).await
}

#[utoipa::path(delete, path = "/v1/volumes/{name}/quota", tag = "volumes",
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$")),
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"), ForceQuery),
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
    #[serde(default)]
    path: String,
    #[serde(default)]
    recursive: bool,
}

#[utoipa::path(get, path = "/v1/volumes/{name}/ls", tag = "volumes",
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"), LsQuery),
    responses((status = 200, description = "The entries under the path", body = [EntryInfo]),
        (status = 409, description = "The path is not a directory", body = ErrorBody)))]
pub(crate) async fn volume_ls(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<LsQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    let svc = s.service.clone();
    let entries = blocking(move || Ok(svc.volume_ls(&name, &q.path, q.recursive)?)).await?;
    Ok(axum::Json(entries).into_response())
}

/// Reads a `Range` header against a file of `size` bytes: `Ok(None)` to
/// answer with the whole file, `Ok(Some((offset, len)))` for one range.
///
/// As RFC 9110 §14.2 allows, a header this server does not understand (bad
/// syntax, another unit, several ranges) is ignored and the whole file
/// served; a well-formed range that starts past the end is 416.
fn parse_range(value: &HeaderValue, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"),
        ("path" = String, Path, description = "File path in the volume"),
        ("Range" = Option<String>, Header, description = "One range, e.g. `bytes=0-1023`, `bytes=100-` or `bytes=-100`; a header that is not one well-formed byte range is ignored (the whole file is served); a range starting past the end is 416")),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The requested range", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 409, description = "Not a file", body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody)))]
pub(crate) async fn volume_get(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, path)): ApiPath<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Read)?;
    let store = s
        .service
        .stores
        .volumes
        .clone()
        .ok_or_else(|| ApiError::from(VolumeOpError::NoBackend))?;
    let path = normalize_path(&path)?;
    let (n, p) = (name.clone(), path.clone());
    let st = store.clone();
    let node = blocking(move || Ok(st.node(&n, &p)?))
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
    let (offset, len, status) = match headers.get(header::RANGE) {
        Some(r) => match parse_range(r, node.size)? {
            Some((o, l)) => (o, l, StatusCode::PARTIAL_CONTENT),
            None => (0, node.size, StatusCode::OK),
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
    let mut resp = Response::new(Body::new(super::body::ChannelBody::new(rx)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"),
        ("path" = String, Path, description = "File path in the volume"), PutQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes, streamed"),
    responses((status = 201, description = "Written and committed", body = Versioned),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 409, description = "The path exists (use force) or is a directory", body = ErrorBody),
        (status = 507, description = "The volume's inode limit or byte quota", body = ErrorBody)))]
pub(crate) async fn volume_put(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, path)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<PutQuery>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Volume, &name, Mode::Write)?;
    normalize_path(&path)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let svc = s.service.clone();
    let upload = tokio::task::spawn_blocking(move || -> ApiResult<u64> {
        let mut batch = svc.volume_batch(&name, q.force)?;
        let mut reader = super::body::ChannelReader::new(rx);
        batch.put_reader(&mut reader, &path)?;
        Ok(batch.commit()?.version)
    });
    // Feed the upload; a client that stalls is cut off (408) rather than
    // holding the connection and a blocking thread forever.
    let mut body = body.into_body();
    let idle = s.tenants.limits().body_timeout;
    let mut cut = None;
    loop {
        let chunk = match super::body::next_chunk(&mut body, idle).await {
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$"),
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$")),
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$")),
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
}

#[utoipa::path(post, path = "/v1/volumes/{name}/put-local", tag = "volumes",
    description = "Uploads a file or tree of the server's machine (the owner's socket only).",
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$")),
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
        Ok(svc.volume_put_local(&name, &b.local, b.remote.as_deref(), b.force, None)?)
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
    params(("name" = String, Path, description = "Volume name: 1 to 255 bytes, no `/` or NUL, not `.` or `..`", max_length = 255, pattern = "^[^/\\x00]+$")),
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
    let (command, head, rest) = super::exec::read_command(stream, s.tenants.limits().body_timeout)
        .await
        .map_err(|e| match e {
            super::exec::ExecRequestError::TooLong => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
            }
            e @ super::exec::ExecRequestError::Idle(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", e.to_string())
            }
            e => ApiError::bad(e.to_string()),
        })?;
    let frames = super::exec::start(exec, command, head, rest);
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

// ---- dicts ----

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
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
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
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
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
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
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
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")),
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
    /// How many entries (default 20).
    limit: Option<usize>,
    /// Every entry (owner socket only: an unbounded answer).
    #[serde(default)]
    all: bool,
}

#[utoipa::path(get, path = "/v1/dicts/{name}/items", tag = "dicts",
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), ItemsQuery),
    responses((status = 200, description = "The first entries in key order", body = DictItems)))]
pub(crate) async fn dict_items(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<ItemsQuery>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let limit = match (q.all, &c) {
        (true, Caller::Owner) => None,
        (true, Caller::Token(_)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "`all` is for the data dir's socket; page with `limit` (at most 10000)",
            ));
        }
        (false, _) => Some(q.limit.unwrap_or(20).min(10_000)),
    };
    let svc = s.service.clone();
    let items = blocking(move || Ok(svc.dict_items(&name, limit)?)).await?;
    Ok(axum::Json(items).into_response())
}

#[utoipa::path(get, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), ("key" = String, Path, description = "Key")),
    responses((status = 200, description = "The entry", body = DictItem)))]
pub(crate) async fn dict_get(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Read)?;
    let svc = s.service.clone();
    let item = blocking(move || Ok(svc.dict_get(&name, &key)?)).await?;
    Ok(axum::Json(item).into_response())
}

#[utoipa::path(put, path = "/v1/dicts/{name}/keys/{key}", tag = "dicts",
    params(("name" = String, Path, description = "Dict name: ASCII letters, digits, `.`, `_`, `-`", pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"), ("key" = String, Path, description = "Key")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The value's bytes (JSON text reads back as JSON)"),
    responses((status = 200, description = "Written", body = Versioned),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The value is over the limit", body = ErrorBody),
        (status = 429, description = "The token's requests hold their limit of body bytes (see Retry-After)", body = ErrorBody)))]
pub(crate) async fn dict_put(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((name, key)): ApiPath<(String, String)>,
    body: Upload,
) -> ApiResult<Response> {
    require(&c, Kind::Dict, &name, Mode::Write)?;
    // The value stays counted against the token until it is written.
    let mut hold = s.tenants.body(&c);
    let value = body
        .read(MAX_VALUE_BODY, s.tenants.limits().body_timeout, |n| {
            hold.grow(n)
        })
        .await?;
    let svc = s.service.clone();
    let version = blocking(move || Ok(svc.dict_put(&name, &key, &value)?)).await?;
    drop(hold);
    Ok(axum::Json(Versioned { version }).into_response())
}

// ---- functions ----

#[utoipa::path(get, path = "/v1/apps", tag = "functions",
    responses((status = 200, description = "Each app the token may call, with its functions", body = BTreeMap<String, Vec<String>>)))]
pub(crate) async fn app_list(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
) -> ApiResult<Response> {
    let apps: BTreeMap<&String, Vec<String>> = s
        .apps
        .iter()
        .filter(|(name, _)| c.allows(Kind::App, name, Mode::Write))
        .map(|(name, app)| (name, app.function_names()))
        .collect();
    Ok(axum::Json(apps).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn range(v: &str, size: u64) -> Result<Option<(u64, u64)>, StatusCode> {
        parse_range(&HeaderValue::from_str(v).unwrap(), size).map_err(|e| e.status)
    }

    #[test]
    fn ranges() {
        assert_eq!(range("bytes=2-4", 10), Ok(Some((2, 3))));
        assert_eq!(range("bytes=2-400", 10), Ok(Some((2, 8))));
        assert_eq!(range("bytes=7-", 10), Ok(Some((7, 3))));
        assert_eq!(range("bytes=-3", 10), Ok(Some((7, 3))));
        assert_eq!(range("bytes=-30", 10), Ok(Some((0, 10))));
        // Well-formed but past the end: 416.
        assert_eq!(
            range("bytes=10-", 10),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        assert_eq!(
            range("bytes=0-0", 0),
            Err(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        // Not one well-formed byte range: ignored.
        for bad in [
            "null",
            "bytes=4-2",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=-0",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(range(bad, 10), Ok(None), "{bad}");
        }
    }
}
