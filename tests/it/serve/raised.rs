//! Errors a function raised and did not catch, through `vessel serve`'s
//! HTTP API: the error as data on `call` and on a spawned call's status.

use serde_json::json;
use vessel_tests::{Vessel, http, json_of, write_app};

/// A function that raised an error it did not catch answers 422 with the
/// error as data (type, message, traceback), on `call` and on a spawned
/// call's status alike.
#[test]
fn a_raised_error_comes_back_over_http_as_data() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = write_app(
        dir.path(),
        "[app]\nname = \"probe\"\n[functions.fail-with]\ncomponent = \"@PROBE@\"\n",
    );
    let server = super::start(&v, &["--app", &app.display().to_string()]);
    let a = server.addr.as_str();
    let tok = v.token(&["app:probe"], None);
    let args = br#"["Overdrawn", "balance below zero"]"#;
    let path = "/v1/apps/probe/functions/fail-with";
    let (status, body) = http(a, "POST", &format!("{path}/call"), Some(&tok), &[], args);
    assert_eq!(status, 422);
    let raised =
        json!({"type_name": "Overdrawn", "message": "balance below zero", "traceback": ""});
    assert_eq!(
        json_of(&body),
        json!({"error": {
            "kind": "call_failed",
            "message": "function `fail-with`: raised Overdrawn: balance below zero",
            "raised": raised,
        }})
    );
    let (status, body) = http(a, "POST", &format!("{path}/spawn"), Some(&tok), &[], args);
    assert_eq!(status, 202);
    let id = json_of(&body)["call_id"].as_str().unwrap().to_owned();
    let (status, body) = http(
        a,
        "GET",
        &format!("/v1/calls/{id}?wait=30"),
        Some(&tok),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        json_of(&body),
        json!({
            "status": "failed",
            "error": "function `fail-with`: raised Overdrawn: balance below zero",
            "raised": raised,
        })
    );
}
