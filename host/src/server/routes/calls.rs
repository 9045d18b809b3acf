//! Function calls over HTTP: `call` (answer when done), `spawn` (answer at
//! once with an id) and `GET /v1/calls/{id}`, over the store of spawned
//! calls in `server/calls.rs`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::params::FunctionPath;
use super::{ApiError, ApiPath, ApiQuery, ApiResult, MAX_JSON_BODY, ServerState, Who, require};
use crate::app::{App, Function};
use crate::server::auth::{Caller, Kind, Mode};
use crate::server::body::Upload;
use crate::server::calls::{Lookup, Outcome};
use crate::server::limits::{CallPermit, RETRY_AFTER_SECS};
use crate::server::openapi::ErrorBody;
use crate::server::openapi::RaisedBody;

/// A finished call.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CallResult {
    /// The function's result as JSON (its WIT type converted).
    result: Json,
}

/// A spawned call.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Spawned {
    call_id: String,
}

/// The state of a spawned call.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct CallStatus {
    /// `running`, `done` or `failed`.
    status: String,
    /// The result, once `done`.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Json>,
    /// Why it failed, once `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// What the function raised and did not catch, when it failed so.
    #[serde(skip_serializing_if = "Option::is_none")]
    raised: Option<RaisedBody>,
}

impl CallStatus {
    fn response(outcome: Option<Outcome>) -> Response {
        match outcome {
            None => axum::Json(CallStatus {
                status: "running".into(),
                result: None,
                error: None,
                raised: None,
            })
            .into_response(),
            // The result is kept as JSON text: written out as it is, it is
            // the `result` member of a `done` status.
            Some(Ok(text)) => {
                let mut body = Vec::with_capacity(text.len() + 32);
                body.extend_from_slice(br#"{"status":"done","result":"#);
                body.extend_from_slice(&text);
                body.push(b'}');
                ([(header::CONTENT_TYPE, "application/json")], body).into_response()
            }
            Some(Err(failed)) => axum::Json(CallStatus {
                status: "failed".into(),
                result: None,
                raised: failed.raised.as_ref().map(RaisedBody::from),
                error: Some(failed.message),
            })
            .into_response(),
        }
    }
}

fn app_for<'a>(s: &'a ServerState, c: &Caller, app: &str) -> ApiResult<&'a App> {
    require(c, Kind::App, app, Mode::Write)?;
    s.apps.get(app).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no app `{app}` is loaded; this server has: {}",
                s.apps.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// Lets a call of `app`'s `function` in: scope (403), the function (404),
/// a place in the caller's budget (429), then, only then, its arguments.
async fn admit(
    s: &ServerState,
    c: &Caller,
    (app, function): (&str, &str),
    body: Upload,
) -> ApiResult<(Function, CallPermit, Json)> {
    let f = app_for(s, c, app)?.function(function)?;
    let permit = s.tenants.call(c)?;
    let args = read_args(s, c, body).await?;
    Ok((f, permit, args))
}

/// Reads a call's arguments.
async fn read_args(s: &ServerState, c: &Caller, body: Upload) -> ApiResult<Json> {
    let mut hold = s.tenants.body(c);
    let body = body
        .read(MAX_JSON_BODY, s.tenants.limits().body_timeout, |n| {
            hold.grow(n)
        })
        .await?;
    if body.is_empty() {
        return Ok(json!([]));
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("the body is not JSON: {e}")))
}

#[utoipa::path(post, path = "/v1/apps/{app}/functions/{function}/call", tag = "functions",
    params(FunctionPath),
    request_body(content = serde_json::Value, description = "The arguments: an array (positional) or an object (by name); empty means none"),
    responses((status = 200, description = "The function's result", body = CallResult),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 422, description = "The function failed (trap, timeout, bad arguments for its types)", body = ErrorBody),
        (status = 429, description = "The token has its limit of calls running (see Retry-After)", body = ErrorBody)))]
pub(crate) async fn fn_call(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((app, function)): ApiPath<(String, String)>,
    body: Upload,
) -> ApiResult<Response> {
    // The place is held until the answer: a caller that goes away drops
    // the call and its place with it.
    let (f, _permit, args) = admit(&s, &c, (&app, &function), body).await?;
    let result = f.call(args).await?;
    Ok(axum::Json(CallResult { result }).into_response())
}

#[utoipa::path(post, path = "/v1/apps/{app}/functions/{function}/spawn", tag = "functions",
    params(FunctionPath),
    request_body(content = serde_json::Value, description = "The arguments, as for call"),
    responses((status = 202, description = "Started; poll /v1/calls/{id}", body = Spawned),
        (status = 408, description = "The body stalled", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 429, description = "The token has its limit of calls running (see Retry-After)", body = ErrorBody),
        (status = 503, description = "The server holds its limit of spawned calls and all are running (see Retry-After)", body = ErrorBody)))]
pub(crate) async fn fn_spawn(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath((app, function)): ApiPath<(String, String)>,
    body: Upload,
) -> ApiResult<Response> {
    let (f, permit, args) = admit(&s, &c, (&app, &function), body).await?;
    let finisher = s.calls.admit(&app).map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
            .retry_after(RETRY_AFTER_SECS)
    })?;
    let id = finisher.id();
    tokio::spawn(async move {
        let result = f.call(args).await;
        // The token's place is free once the call has ended.
        drop(permit);
        finisher.finish(result);
    });
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Spawned {
            call_id: id.to_string(),
        }),
    )
        .into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallQuery {
    /// Seconds to wait for the result (0: answer at once).
    #[serde(default)]
    wait: f64,
}

#[utoipa::path(get, path = "/v1/calls/{id}", tag = "functions",
    params(("id" = String, Path, description = "The call id from spawn"), CallQuery),
    responses((status = 200, description = "The call's state, with its result once done", body = CallStatus)))]
pub(crate) async fn call_get(
    State(s): State<Arc<ServerState>>,
    Who(c): Who,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<CallQuery>,
) -> ApiResult<Response> {
    let missing = |m: String| ApiError::new(StatusCode::NOT_FOUND, "not_found", m);
    let n: u64 = id.parse().map_err(|_| missing(format!("no call `{id}`")))?;
    let (app, state) = s.calls.lookup(n).map_err(missing)?;
    require(&c, Kind::App, &app, Mode::Write)?;
    let mut done = match state {
        Lookup::Done(o) => return Ok(CallStatus::response(Some(o))),
        Lookup::Running(done) => done,
    };
    let wait = if q.wait.is_finite() && q.wait > 0.0 {
        std::time::Duration::from_secs_f64(q.wait.min(300.0))
    } else {
        return Ok(CallStatus::response(None));
    };
    // Woken when the call finishes (or its task goes); then look again.
    let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
    match s.calls.lookup(n).map_err(missing)?.1 {
        Lookup::Done(o) => Ok(CallStatus::response(Some(o))),
        Lookup::Running(_) => Ok(CallStatus::response(None)),
    }
}
