//! The table's three products agree: the checked-in description is what
//! it generates, every documented operation is routed, and the URL
//! builders fill the templates.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use tower::ServiceExt as _;

use super::*;
use crate::server::auth::TokenStore;
use crate::server::routes::Trusted;
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
        "docs/openapi.json is out of date: run `VESSEL_BLESS=1 cargo test -p vessel-host --lib the_checked_in_description`"
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

#[test]
fn url_builders_fill_and_encode_the_templates() {
    assert_eq!(urls::volumes(), "/v1/volumes");
    assert_eq!(urls::volume("a b"), "/v1/volumes/a%20b");
    assert_eq!(
        urls::volume_file("v", "/dir/a b.txt"),
        "/v1/volumes/v/files/dir/a%20b.txt"
    );
    assert_eq!(urls::dict_key("kv", "a/b"), "/v1/dicts/kv/keys/a%2Fb");
    assert_eq!(
        urls::function_call("app", "f"),
        "/v1/apps/app/functions/f/call"
    );
}
