//! The OpenAPI description of the HTTP API, generated from the handlers'
//! own annotations (`#[utoipa::path]` on each handler in [`super::routes`])
//! and the request and response types. Served at `GET /v1/openapi.json`
//! and printed by `vessel serve --print-openapi`.
//!
//! What every operation shares is added here once rather than on each
//! handler: the bearer-token security requirement and the error statuses
//! any route can answer (bad input, no token, out of scope, missing,
//! unavailable, host failure), all with the [`ErrorBody`] shape.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{calls, routes};

/// An error answer.
#[derive(Debug, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable kind: `invalid_argument`, `unauthorized`,
    /// `access_denied`, `not_found`, `already_exists`, `conflict`,
    /// `precondition_failed`, `timeout`, `too_large`, `too_many`, `busy`,
    /// `bad_range`, `no_space`, `call_failed`, `unavailable`, `io`,
    /// `internal`.
    pub kind: String,
    /// A sentence for people.
    pub message: String,
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "vessel",
        description = "The HTTP API of `vessel serve`: volumes, dicts and function calls. \
            Over TCP every route but /v1/health and /v1/openapi.json needs \
            `Authorization: Bearer TOKEN` (see `vessel token create`); over the data \
            dir's socket the owner's user is trusted.",
    ),
    paths(
        routes::health,
        routes::openapi_json,
        routes::volume_list,
        routes::volume_create,
        routes::volume_info,
        routes::volume_set_quota,
        routes::volume_drop_quota,
        routes::volume_delete,
        routes::volume_ls,
        routes::volume_get,
        routes::volume_put,
        routes::volume_rm,
        routes::volume_cp,
        routes::volume_rename,
        routes::volume_put_local,
        routes::volume_get_local,
        routes::gc,
        routes::dict_list,
        routes::dict_info,
        routes::dict_create,
        routes::dict_delete,
        routes::dict_clear,
        routes::dict_items,
        routes::dict_get,
        routes::dict_put,
        routes::app_list,
        calls::fn_call,
        calls::fn_spawn,
        routes::local_exec,
        calls::call_get,
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Shared),
    tags(
        (name = "volumes", description = "Versioned file trees"),
        (name = "dicts", description = "Durable key-value maps"),
        (name = "functions", description = "Calls into loaded apps"),
        (name = "meta", description = "Health and this description"),
    )
)]
pub struct ApiDoc;

/// Routes anyone may call without a token.
const PUBLIC: &[&str] = &["/v1/health", "/v1/openapi.json"];

/// Statuses every authenticated operation may answer, besides its own.
const SHARED_ERRORS: &[(&str, &str)] = &[
    ("400", "Bad input: a malformed name, path, query or body"),
    ("401", "No valid bearer token"),
    ("403", "The token's scopes do not allow this"),
    (
        "404",
        "No such volume, dict, path, key, app, function or call",
    ),
    ("500", "A host or storage failure"),
    ("503", "The store is unavailable"),
];

struct Shared;

impl Modify for Shared {
    fn modify(&self, api: &mut openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            // An empty body is meaningful wherever one is taken: an empty
            // file or value, a call without arguments.
            let raw = path.ends_with("/call") || path.ends_with("/spawn");
            for op in [&mut item.put, &mut item.post].into_iter().flatten() {
                if let Some(body) = op.request_body.as_mut()
                    && (raw || body.content.contains_key("application/octet-stream"))
                {
                    body.required = Some(openapi::Required::False);
                }
            }
            if PUBLIC.contains(&path.as_str()) {
                continue;
            }
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for op in ops.into_iter().flatten() {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                for (status, description) in SHARED_ERRORS {
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::T(error_response(description)));
                }
            }
        }
    }
}

fn error_response(description: &str) -> openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            openapi::ContentBuilder::new()
                .schema(Some(openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// The description as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialise the API description: {e}\"}}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt as _;

    use super::*;
    use crate::server::auth::TokenStore;
    use crate::server::routes::{ServerState, Trusted, router};
    use crate::service::Service;
    use crate::storage::embedded::EmbeddedOptions;

    /// The checked-in copy in docs/ is what the code generates; regenerate
    /// it with `vessel serve --print-openapi > docs/openapi.json`.
    #[test]
    fn the_checked_in_description_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        let generated = format!("{}\n", json());
        if std::env::var_os("VESSEL_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json is out of date: run `VESSEL_BLESS=1 cargo test -p vessel-host openapi`"
        );
    }

    /// Every documented operation has a route: a request to it never falls
    /// through to the "no route" answer.
    #[tokio::test]
    async fn every_documented_operation_is_routed() {
        let dir = tempfile::tempdir().unwrap();
        let service = Service::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
        let state = ServerState::new(service, BTreeMap::new(), TokenStore::new(dir.path()));
        let app = router(Arc::new(state));
        let api = ApiDoc::openapi();
        let mut seen = 0;
        for (path, item) in &api.paths.paths {
            let concrete = path
                .replace("{name}", "n")
                .replace("{path}", "p")
                .replace("{key}", "k")
                .replace("{app}", "a")
                .replace("{function}", "f")
                .replace("{id}", "1");
            let methods = [
                (Method::GET, item.get.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (method, documented) in methods {
                if !documented {
                    continue;
                }
                let mut req = Request::builder()
                    .method(method.clone())
                    .uri(&concrete)
                    .body(Body::empty())
                    .unwrap();
                req.extensions_mut().insert(Trusted(true));
                let resp = app.clone().oneshot(req).await.unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let text = String::from_utf8_lossy(&body);
                assert!(
                    status != 405 && !text.contains("no route"),
                    "{method} {path} is documented but not routed: {status} {text}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 26, "only {seen} operations documented");
    }
}
