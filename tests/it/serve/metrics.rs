//! `GET /metrics`: the Prometheus scrape of a running `vessel serve`,
//! behind the `metrics:r` scope, with figures from each instrumented
//! place (HTTP, calls, containers, compile cache, dicts, fsync rounds,
//! volume commits).

use vessel_tests::{http, http_with_headers, write_app};

/// The value of the one sample whose line starts with `series` (name and
/// labels as the exposition writes them).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[test]
fn metrics_are_scraped_behind_their_scope() {
    let v = vessel_tests::Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = write_app(
        dir.path(),
        "[app]\nname = \"probe\"\n[functions.add]\ncomponent = \"@PROBE@\"\n",
    );
    let server = super::start(&v, &["--app", &app.display().to_string()]);
    let a = server.addr.as_str();
    let all = v.token(&["volume:*:rw", "dict:*:rw", "app:*"], None);
    let scraper = v.token(&["metrics:r"], None);
    let t = Some(all.as_str());

    assert_eq!(http(a, "POST", "/v1/dicts/kv", t, &[], b"").0, 201);
    assert_eq!(http(a, "PUT", "/v1/dicts/kv/keys/k", t, &[], b"1").0, 200);
    assert_eq!(http(a, "GET", "/v1/dicts/kv/keys/k", t, &[], b"").0, 200);
    assert_eq!(http(a, "GET", "/v1/dicts/kv/keys/nope", t, &[], b"").0, 404);
    assert_eq!(http(a, "POST", "/v1/volumes/vol", t, &[], b"").0, 201);
    assert_eq!(
        http(
            a,
            "PUT",
            "/v1/volumes/vol/files/f.bin",
            t,
            &[],
            &[7u8; 1000]
        )
        .0,
        201
    );
    let (s, body) = http(
        a,
        "POST",
        "/v1/apps/probe/functions/add/call",
        t,
        &[],
        b"[2, 3]",
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));

    // Without the scope: 403 naming it; without a token: 401.
    let (s, body) = http(a, "GET", "/metrics", t, &[], b"");
    assert_eq!(s, 403);
    assert!(String::from_utf8_lossy(&body).contains("metrics:r"));
    assert_eq!(http(a, "GET", "/metrics", None, &[], b"").0, 401);

    let (s, h, body) = http_with_headers(a, "GET", "/metrics", Some(&scraper), &[], b"");
    assert_eq!(s, 200);
    assert!(
        h["content-type"].starts_with("application/openmetrics-text"),
        "{h:?}"
    );
    let text = String::from_utf8(body).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let at_least = |series: &str, n: f64| {
        let got = sample(&text, series);
        assert!(got >= n, "{series} is {got}, expected at least {n}");
    };
    at_least(
        r#"vessel_http_requests_total{route="/v1/dicts/{name}/keys/{key}",method="PUT",status="200"}"#,
        1.0,
    );
    at_least(
        r#"vessel_http_requests_total{route="/v1/dicts/{name}/keys/{key}",method="GET",status="404"}"#,
        1.0,
    );
    at_least(
        r#"vessel_http_request_duration_seconds_count{route="/v1/volumes/{name}/files/{*path}"}"#,
        1.0,
    );
    at_least(
        r#"vessel_calls_total{app="probe",function="add",outcome="ok"}"#,
        1.0,
    );
    at_least(
        r#"vessel_call_duration_seconds_count{app="probe",function="add"}"#,
        1.0,
    );
    at_least("vessel_containers_started_total", 1.0);
    at_least("vessel_containers_warm", 1.0);
    assert_eq!(sample(&text, "vessel_containers_busy"), 0.0);
    assert!(
        text.contains("vessel_compile_cache_total{result="),
        "no compile-cache sample in\n{text}"
    );
    at_least(
        r#"vessel_dict_operations_total{op="put",outcome="ok"}"#,
        1.0,
    );
    at_least(
        r#"vessel_dict_operations_total{op="get",outcome="ok"}"#,
        2.0,
    );
    at_least(
        r#"vessel_dict_operation_duration_seconds_count{op="put"}"#,
        1.0,
    );
    at_least("vessel_fsync_rounds_total", 1.0);
    at_least("vessel_fsync_round_writes_count", 1.0);
    at_least("vessel_volume_commits_total", 1.0);
    at_least("vessel_volume_commit_bytes_total", 1000.0);
    at_least("vessel_volume_commit_duration_seconds_count", 1.0);
    // A method nobody documents is counted, as `other`, not by its name.
    let _ = http(a, "BREW", "/v1/health", None, &[], b"");
    let (_, body) = http(a, "GET", "/metrics", Some(&scraper), &[], b"");
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("BREW"), "{text}");
    assert!(text.contains(r#"method="other""#), "{text}");
}
