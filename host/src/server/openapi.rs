//! What the OpenAPI description of the HTTP API adds to the handlers' own
//! annotations (the description itself is made by the route table in
//! [`super::api`], served at `GET /v1/openapi.json` and printed by `vessel
//! serve --print-openapi`).
//!
//! What every operation shares is added here once rather than on each
//! handler: the bearer-token security requirement and the error statuses
//! any route can answer (bad input, no token, out of scope, missing,
//! unavailable, host failure), all with the [`ErrorBody`] shape.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, RefOr, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, ToSchema};

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
    /// For `call_failed` when the function raised an error it did not
    /// catch: its type, message and traceback.
    pub raised: Option<RaisedBody>,
}

/// An error a function raised and did not catch, as its language named
/// it (Python's `ValueError`, JavaScript's `RangeError`, the app's own).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RaisedBody {
    /// The error's type.
    type_name: String,
    /// Its message.
    message: String,
    /// The guest's traceback or stack, as its language prints it.
    traceback: String,
}

impl From<&crate::functions::Raised> for RaisedBody {
    fn from(r: &crate::functions::Raised) -> Self {
        RaisedBody {
            type_name: r.type_name.clone(),
            message: r.message.clone(),
            traceback: r.traceback.clone(),
        }
    }
}

/// Routes anyone may call without a token.
const PUBLIC: &[&str] = &["/v1/health", "/v1/ready", "/v1/openapi.json"];

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

/// What every operation shares (see the module docs).
pub(crate) struct Shared;

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
