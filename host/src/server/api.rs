//! The HTTP API's one route table. Each route is written once, with the
//! name of its URL builder and the handler of each method; the table makes
//! the axum [`router`], the OpenAPI description ([`ApiDoc`], from the
//! handlers' own `#[utoipa::path]` annotations) and the URL builders
//! clients use ([`urls`]), so a route added here is served, documented and
//! reachable from the clients at once.

use std::sync::Arc;

use std::collections::HashSet;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::ParameterIn;

use super::client::{enc, enc_path};
use super::openapi::{ErrorBody, ErrorDetail, Shared};
use super::routes::*;

/// Expands the route table (see the module docs). Each entry is
/// `builder(params) "template" { method => handler, ... }`.
macro_rules! route_table {
    ($( $url:ident ( $($param:ident),* ) $path:literal { $( $method:ident => $handler:ident ),+ $(,)? } )*) => {
        /// The HTTP API's router.
        pub fn router(state: Arc<ServerState>) -> Router {
            Router::new()
                $( .route($path, axum::routing::MethodRouter::new() $( .$method($handler) )+ ) )*
                .route_layer(axum::middleware::from_fn(refuse_undocumented))
                .route_layer(axum::middleware::from_fn(access_log))
                .fallback(not_found)
                .with_state(state)
        }

        /// The API description.
        #[derive(OpenApi)]
        #[openapi(
            info(
                title = "vessel",
                description = "The HTTP API of `vessel serve`: volumes, dicts and function calls. \
                    Over TCP every route but /v1/health, /v1/ready and /v1/openapi.json needs \
                    `Authorization: Bearer TOKEN` (see `vessel token create`); over the data \
                    dir's socket the owner's user is trusted.",
            ),
            paths( $( $( $handler ),+ ),* ),
            components(schemas(ErrorBody, ErrorDetail, AnyEntity)),
            modifiers(&Shared),
            tags(
                (name = "volumes", description = "Versioned file trees"),
                (name = "dicts", description = "Durable key-value maps"),
                (name = "functions", description = "Calls into loaded apps"),
                (name = "meta", description = "Health and this description"),
            )
        )]
        pub struct ApiDoc;

        /// The routes' URLs, with their parameters percent-encoded (a
        /// `{*path}` keeps its slashes); queries are the caller's to add.
        pub mod urls {
            $(
                #[doc = concat!("`", $path, "`")]
                pub fn $url( $($param: &str),* ) -> String {
                    super::fill($path, &[ $( (stringify!($param), $param) ),* ])
                }
            )*
        }
    };
}

route_table! {
    health() "/v1/health" { get => health }
    ready() "/v1/ready" { get => ready }
    metrics() "/metrics" { get => metrics }
    openapi() "/v1/openapi.json" { get => openapi_json }
    volumes() "/v1/volumes" { get => volume_list }
    volume(name) "/v1/volumes/{name}" {
        get => volume_info, post => volume_create, delete => volume_delete
    }
    volume_quota(name) "/v1/volumes/{name}/quota" {
        put => volume_set_quota, delete => volume_drop_quota
    }
    volume_retention(name) "/v1/volumes/{name}/retention" { put => volume_set_retention }
    volume_history(name) "/v1/volumes/{name}/history" { get => volume_history }
    volume_diff(name) "/v1/volumes/{name}/diff" { get => volume_diff }
    volume_restore(name) "/v1/volumes/{name}/restore" { post => volume_restore }
    volume_fork(name) "/v1/volumes/{name}/fork" { post => volume_fork }
    volume_ls(name) "/v1/volumes/{name}/ls" { get => volume_ls }
    volume_cp(name) "/v1/volumes/{name}/cp" { post => volume_cp }
    volume_rename(name) "/v1/volumes/{name}/rename" { post => volume_rename }
    volume_put_local(name) "/v1/volumes/{name}/put-local" { post => volume_put_local }
    volume_get_local(name) "/v1/volumes/{name}/get-local" { post => volume_get_local }
    gc() "/v1/gc" { post => gc }
    admin_backup() "/v1/admin/backup" { post => admin_backup }
    volume_file(name, path) "/v1/volumes/{name}/files/{*path}" {
        get => volume_get, put => volume_put, delete => volume_rm
    }
    dicts() "/v1/dicts" { get => dict_list }
    dict(name) "/v1/dicts/{name}" {
        get => dict_info, post => dict_create, delete => dict_delete
    }
    dict_clear(name) "/v1/dicts/{name}/clear" { post => dict_clear }
    dict_items(name) "/v1/dicts/{name}/items" { get => dict_items }
    dict_key(name, key) "/v1/dicts/{name}/keys/{key}" {
        get => dict_get, put => dict_put, delete => dict_remove
    }
    dict_increment(name, key) "/v1/dicts/{name}/keys/{key}/increment" { post => dict_increment }
    dict_pop(name, key) "/v1/dicts/{name}/keys/{key}/pop" { post => dict_pop }
    dict_lock(name, key) "/v1/dicts/{name}/keys/{key}/lock" { post => dict_lock }
    dict_renew(name, key) "/v1/dicts/{name}/keys/{key}/renew" { post => dict_renew }
    dict_release(name, key) "/v1/dicts/{name}/keys/{key}/release" { post => dict_release }
    dict_update(name) "/v1/dicts/{name}/update" { post => dict_update }
    dict_get_many(name) "/v1/dicts/{name}/get-many" { post => dict_get_many }
    apps() "/v1/apps" { get => app_list }
    function_call(app, function) "/v1/apps/{app}/functions/{function}/call" { post => fn_call }
    function_spawn(app, function) "/v1/apps/{app}/functions/{function}/spawn" { post => fn_spawn }
    call(id) "/v1/calls/{id}" { get => call_get }
    local_exec() "/v1/local/exec" { post => local_exec }
}

/// Logs one line per request (target `vessel::access`): its id (also in
/// the `x-request-id` response header), method, route template, status,
/// body bytes when known, latency and who called (`owner` or a token's
/// id, never its secret).
async fn access_log(mut req: Request, next: Next) -> Response {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = format!("{:x}-{n}", std::process::id());
    let note = AccessNote::default();
    req.extensions_mut().insert(note.clone());
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let start = std::time::Instant::now();
    let mut resp = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let who = note
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
        .unwrap_or_else(|| "-".to_owned());
    let route_label = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    // Methods are the client's to choose: only the standard ones become
    // label values, so no request can grow the metric's label set.
    let method_label = match method.as_str() {
        m @ ("GET" | "HEAD" | "PUT" | "POST" | "DELETE" | "OPTIONS" | "PATCH") => m,
        _ => "other",
    };
    let m = crate::metrics::global();
    m.http_requests
        .get_or_create(&crate::metrics::HttpLabels {
            route: route_label.to_owned(),
            method: method_label.to_owned(),
            status: resp.status().as_u16(),
        })
        .inc();
    m.http_duration
        .get_or_create(&crate::metrics::RouteLabels {
            route: route_label.to_owned(),
        })
        .observe(start.elapsed().as_secs_f64());
    tracing::info!(
        target: "vessel::access",
        request_id = %id,
        method = %method,
        route = route.as_ref().map_or("-", MatchedPath::as_str),
        status = resp.status().as_u16(),
        bytes = %bytes,
        latency_ms = start.elapsed().as_secs_f64() * 1000.0,
        caller = %who,
        "request"
    );
    resp
}

/// What each operation documents: its query parameters and headers, by
/// path template (as axum writes it: `{*path}` for a rest), then method.
/// Keyed by template so a request's lookup borrows its `MatchedPath`.
type Documented =
    std::collections::HashMap<String, Vec<(Method, (HashSet<String>, HashSet<String>))>>;

fn documented() -> &'static Documented {
    static DOCUMENTED: OnceLock<Documented> = OnceLock::new();
    DOCUMENTED.get_or_init(|| {
        let api = ApiDoc::openapi();
        let mut out = Documented::new();
        for (path, item) in &api.paths.paths {
            let template = path.replace("{path}", "{*path}");
            let ops = [
                (Method::GET, &item.get),
                (Method::PUT, &item.put),
                (Method::POST, &item.post),
                (Method::DELETE, &item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                let (mut query, mut headers) = (HashSet::new(), HashSet::new());
                for p in op.parameters.iter().flatten() {
                    match p.parameter_in {
                        ParameterIn::Query => {
                            query.insert(p.name.clone());
                        }
                        ParameterIn::Header => {
                            headers.insert(p.name.to_ascii_lowercase());
                        }
                        _ => {}
                    }
                }
                out.entry(template.clone())
                    .or_default()
                    .push((method, (query, headers)));
            }
        }
        out
    })
}

/// Headers that change what a request means: a route that does not
/// document one must refuse it rather than act unconditionally.
const CONDITIONAL: [&str; 4] = [
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// Refuses what a route would otherwise silently ignore: a query parameter
/// it does not document, and a conditional header where it documents
/// none. What the OpenAPI description says a route takes is what it takes.
async fn refuse_undocumented(req: Request, next: Next) -> Response {
    let Some(template) = req.extensions().get::<MatchedPath>() else {
        return next.run(req).await;
    };
    let Some((_, (query, headers))) = documented()
        .get(template.as_str())
        .and_then(|ops| ops.iter().find(|(m, _)| m == req.method()))
    else {
        return next.run(req).await;
    };
    if let Some(q) = req.uri().query() {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or("");
            if !query.contains(name) {
                let mut known: Vec<&str> = query.iter().map(String::as_str).collect();
                known.sort_unstable();
                let takes = if known.is_empty() {
                    "no query parameters".to_owned()
                } else {
                    known.join(", ")
                };
                return ApiError::bad(format!(
                    "unknown query parameter `{name}` for {} {}: it takes {takes}",
                    req.method(),
                    template.as_str()
                ))
                .into_response();
            }
        }
    }
    for h in CONDITIONAL {
        if req.headers().contains_key(h) && !headers.contains(h) {
            return ApiError::bad(format!(
                "{h} is not supported by {} {}: the request was not carried out (a condition this route cannot check would be ignored)",
                req.method(),
                template.as_str()
            ))
            .into_response();
        }
    }
    next.run(req).await
}

/// `template` with each `{name}` replaced by its value, percent-encoded,
/// and a `{*name}` by its value as a path (slashes kept, a leading one
/// dropped).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(rest.get(..open).unwrap_or(""));
        let after = rest.get(open + 1..).unwrap_or("");
        let Some(close) = after.find('}') else {
            break;
        };
        let name = after.get(..close).unwrap_or("");
        let (wild, key) = match name.strip_prefix('*') {
            Some(k) => (true, k),
            None => (false, name),
        };
        let value = values
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| *v);
        if wild {
            out.push_str(&enc_path(value.trim_start_matches('/')));
        } else {
            out.push_str(&enc(value));
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The description as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the API description: {e}\"}}"))
}

#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This API's OpenAPI 3.1 description", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
