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

use crate::error_kind::ErrorKind;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::auth::{AuthError, Caller, Kind, Mode, TokenStore};
use super::calls::CallStore;
use super::limits::{LimitError, Limits, RETRY_AFTER_SECS, Tenants};
use super::openapi::ErrorBody;
use crate::app::{App, AppError};
use crate::server::body::{BodyError, Upload};
use crate::server::exec::LocalExec;
use crate::service::Service;
use crate::service::dict::{
    DictItem, DictItems, DictServiceError, DictSummary, PutIf, PutResult, bytes_of_hex,
    cursor_after, hex, key_of_cursor,
};
use crate::service::volume::{
    DiffEntry, EntryInfo, GetReport, PutReport, VolumeOpError, VolumeRef, VolumeSummary,
};
use crate::storage::tokens::TokenTableError;
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
    /// What a called function raised and did not catch (boxed: most
    /// errors have none, and every handler returns this type).
    raised: Option<Box<crate::functions::Raised>>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
            raised: None,
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
        if self.status.is_server_error() {
            // Every 5xx with its cause, for the operator.
            tracing::warn!(
                target: "vessel::errors",
                status = self.status.as_u16(),
                kind = self.kind,
                "{}",
                self.message
            );
        }
        let mut body = json!({"error": {"kind": self.kind, "message": self.message}});
        if let (Some(r), Some(error)) = (&self.raised, body.get_mut("error")) {
            // The shape a failed spawned call's status has too.
            error["raised"] = json!(crate::server::openapi::RaisedBody::from(&**r));
        }
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

/// The HTTP table over [`ErrorKind`]: the status, and the kind's name in
/// the error body.
pub(crate) fn http_status(kind: ErrorKind) -> (StatusCode, &'static str) {
    match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::AlreadyExists => (StatusCode::CONFLICT, "already_exists"),
        ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
        ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ErrorKind::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        ErrorKind::Busy => (StatusCode::CONFLICT, "busy"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::NoSpace => (StatusCode::INSUFFICIENT_STORAGE, "no_space"),
        ErrorKind::Io => (StatusCode::INTERNAL_SERVER_ERROR, "io"),
        // The request was fine and the function ran; what it did failed.
        ErrorKind::CallFailed => (StatusCode::UNPROCESSABLE_ENTITY, "call_failed"),
    }
}

impl From<DictServiceError> for ApiError {
    fn from(e: DictServiceError) -> Self {
        let (status, kind) = http_status(e.kind());
        ApiError::new(status, kind, e.to_string())
    }
}

impl From<VolumeOpError> for ApiError {
    fn from(e: VolumeOpError) -> Self {
        let (status, kind) = http_status(e.kind());
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
        let (status, kind) = http_status(e.kind());
        ApiError {
            raised: e.raised().cloned().map(Box::new),
            ..ApiError::new(status, kind, e.to_string())
        }
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

/// `GET /v1/health`: liveness.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// The server answers (whether its stores do is `/v1/ready`'s).
    ok: bool,
    /// The server's version.
    version: String,
}

/// `GET /v1/ready`: readiness.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Ready {
    /// Whether every part of the stores can serve.
    ready: bool,
    /// Each part and whether it can (the causes go to the server's log).
    checks: Vec<ReadyCheck>,
}

/// One part of the stores in [`Ready`].
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ReadyCheck {
    /// `metadata` (PostgreSQL) and `blobs` (S3) for the shared backend,
    /// `embedded store` for a data dir's own.
    part: String,
    ok: bool,
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
async fn caller(state: &Arc<ServerState>, headers: &HeaderMap, trusted: bool) -> ApiResult<Caller> {
    if trusted {
        return Ok(Caller::Owner);
    }
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing `Authorization: Bearer TOKEN` header"))?;
    // RFC 9110: the scheme is case-insensitive (`bearer`, `BEARER`).
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or_else(|| unauthorized("the Authorization header must be `Bearer TOKEN`"))?;
    // The lookup reads a file or asks the database: off the async workers.
    let tokens = state.tokens.clone();
    let found = tokio::task::spawn_blocking(move || tokens.check(&token))
        .await
        .map_err(|e| ApiError::internal(format!("a token check failed: {e}")))?;
    match found {
        Ok(Some(record))
            if record.expired(crate::storage::clock::Clock::now_ms(
                &crate::storage::clock::SystemClock,
            )) =>
        {
            Err(unauthorized(&format!(
                "token {} expired (create another with `vessel token create`)",
                record.id
            )))
        }
        Ok(Some(record)) => Ok(Caller::Token(record)),
        Ok(None) => Err(unauthorized("invalid or revoked token")),
        // A shared token table that cannot be reached is the service
        // being unavailable, not the caller's fault.
        Err(AuthError::Table(TokenTableError::Unavailable(m))) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("cannot check the token: {m}"),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}

pub(crate) fn require(c: &Caller, kind: Kind, name: &str, mode: Mode) -> ApiResult<()> {
    // `NAME@VERSION` reads a version of volume NAME: the scope that
    // counts is NAME's (a write to a version is refused further on).
    let name = match kind {
        Kind::Volume => crate::service::volume::VolumeRef::parse(name)
            .map(|r| r.name)
            .unwrap_or(name),
        _ => name,
    };
    if c.allows(kind, name, mode) {
        return Ok(());
    }
    let m = match mode {
        Mode::Read => "read",
        Mode::Write => "write",
    };
    // The scope named is one `vessel token create` accepts: an app scope
    // has no mode.
    let scope = match kind {
        Kind::App => format!("app:{name}"),
        Kind::Metrics => "metrics:r".to_owned(),
        _ => format!("{}:{name}:{}", kind.as_str(), &m[..1]),
    };
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "access_denied",
        format!(
            "this token may not {m} {} `{name}` (needs scope {scope})",
            kind.as_str(),
        ),
    ))
}

/// Marks requests from a trusted (owner-only socket) connection.
#[derive(Debug, Clone, Copy)]
pub struct Trusted(pub bool);

/// Who is calling, extracted per request.
pub(crate) struct Who(pub(crate) Caller);

/// Who a request turned out to be (`owner`, or the token's id, never its
/// secret), for its access-log line: the access log puts an empty one in
/// the request, and [`Who`] fills it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessNote(pub(crate) Arc<std::sync::Mutex<Option<String>>>);

impl axum::extract::FromRequestParts<Arc<ServerState>> for Who {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        let trusted = parts.extensions.get::<Trusted>().is_some_and(|t| t.0);
        let who = caller(state, &parts.headers, trusted).await?;
        if let Some(note) = parts.extensions.get::<AccessNote>() {
            let id = match &who {
                Caller::Owner => "owner".to_owned(),
                Caller::Token(t) => t.id.clone(),
            };
            *note
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id);
        }
        Ok(Who(who))
    }
}

/// The answer for a path no route takes (logged here: the access log sits
/// on the routes).
pub(crate) async fn not_found(req: Request) -> ApiError {
    tracing::info!(
        target: "vessel::access",
        method = %req.method(),
        route = "-",
        status = 404u16,
        "request"
    );
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "The process's metrics in the OpenMetrics text format, for Prometheus (needs scope `metrics:r`; README lists every metric)",
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
pub(crate) async fn metrics(Who(c): Who) -> ApiResult<Response> {
    require(&c, Kind::Metrics, "*", Mode::Read)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        crate::metrics::encode(),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/health", tag = "meta",
    responses((status = 200, description = "The server is up (liveness: whether its stores answer is /v1/ready)", body = Health)))]
pub(crate) async fn health() -> Response {
    axum::Json(Health {
        ok: true,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
    .into_response()
}

#[utoipa::path(get, path = "/v1/ready", tag = "meta",
    responses((status = 200, description = "Every part of the stores can serve: a PostgreSQL round trip and a listing of the S3 bucket for the shared backend; an embedded store whose writes no failed fsync stopped", body = Ready),
        (status = 503, description = "A part cannot serve; `checks` names it (the cause goes to the server's log). Storage routes answer 503 too", body = Ready)))]
pub(crate) async fn ready(State(s): State<Arc<ServerState>>) -> Response {
    let svc = s.service.clone();
    let checks = tokio::task::spawn_blocking(move || svc.readiness())
        .await
        .unwrap_or_else(|e| vec![("server", Err(format!("the check did not finish: {e}")))]);
    let mut ready = true;
    let checks = checks
        .into_iter()
        .map(|(part, state)| {
            if let Err(e) = &state {
                // The endpoint is public: the cause (hosts, messages) is
                // for the operator's log only.
                tracing::warn!(part, error = %e, "readiness: storage cannot serve");
                ready = false;
            }
            ReadyCheck {
                part: part.to_owned(),
                ok: state.is_ok(),
            }
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(Ready { ready, checks })).into_response()
}

/// The items of a listing the caller may read.
fn visible<T>(c: &Caller, kind: Kind, all: Vec<T>, name: impl Fn(&T) -> &String) -> Vec<T> {
    all.into_iter()
        .filter(|x| c.allows(kind, name(x), Mode::Read))
        .collect()
}

mod calls;
mod dicts;
#[cfg(test)]
mod error_tables;
mod functions;
mod history;
pub(crate) mod params;
mod volumes;
pub(crate) use calls::*;
pub(crate) use dicts::*;
pub(crate) use functions::*;
pub(crate) use history::*;
pub(crate) use volumes::*;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::volumes::parse_range;
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
