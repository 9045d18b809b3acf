//! Dicts over HTTP beyond get and put: compare-and-swap on the version in
//! `If-Match`, if-absent with `If-None-Match: *`, a TTL on put, raw bytes,
//! key removal, and refusals of what a route would otherwise ignore.

use std::time::{Duration, Instant};

use vessel_tests::{Vessel, http, http_with_headers, json_of};

#[test]
fn conditional_puts_ttl_raw_values_and_removal() {
    let v = Vessel::new();
    let server = super::start(&v, &[]);
    let a = server.addr.as_str();
    let tok = v.token(&["dict:*:rw", "volume:*:rw"], None);
    let t = Some(tok.as_str());
    assert_eq!(http(a, "POST", "/v1/dicts/kv", t, &[], b"").0, 201);
    let key = "/v1/dicts/kv/keys/k";

    // If-None-Match: * writes once; the second is 412 with the version.
    let (s, h, body) = http_with_headers(a, "PUT", key, t, &[("If-None-Match", "*")], b"\"one\"");
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let v1 = json_of(&body)["version"].as_u64().unwrap();
    assert_eq!(h["etag"], format!("\"{v1}\""));
    let (s, h, body) = http_with_headers(a, "PUT", key, t, &[("If-None-Match", "*")], b"\"two\"");
    assert_eq!(s, 412, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["error"]["kind"], "precondition_failed");
    assert_eq!(h["etag"], format!("\"{v1}\""));

    // If-Match: the current version writes; a stale one is 412, and the
    // value stays.
    let (s, h, body) = http_with_headers(
        a,
        "PUT",
        key,
        t,
        &[("If-Match", &format!("\"{v1}\""))],
        b"\"two\"",
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let v2 = json_of(&body)["version"].as_u64().unwrap();
    assert!(v2 > v1);
    assert_eq!(h["etag"], format!("\"{v2}\""));
    let (s, h, body) = http_with_headers(
        a,
        "PUT",
        key,
        t,
        &[("If-Match", &format!("\"{v1}\""))],
        b"\"lost\"",
    );
    assert_eq!(s, 412, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h["etag"], format!("\"{v2}\""));
    let (s, h, body) = http_with_headers(a, "GET", key, t, &[], b"");
    assert_eq!((s, h["etag"].clone()), (200, format!("\"{v2}\"")));
    assert_eq!(json_of(&body)["value"], "two");
    // CAS on an absent key is 412 without an ETag.
    let (s, h, _) = http_with_headers(
        a,
        "PUT",
        "/v1/dicts/kv/keys/none",
        t,
        &[("If-Match", "\"1\"")],
        b"1",
    );
    assert_eq!(s, 412);
    assert!(!h.contains_key("etag"), "{h:?}");
    // Malformed conditions are refused, not ignored.
    for (name, value) in [
        ("If-Match", "*"),
        ("If-Match", "abc"),
        ("If-None-Match", "\"3\""),
    ] {
        let (s, _) = http(a, "PUT", key, t, &[(name, value)], b"\"x\"");
        assert_eq!(s, 400, "{name}: {value}");
    }

    // Raw bytes back with Accept: application/octet-stream.
    let bytes = [0u8, 159, 146, 150, 255];
    assert_eq!(
        http(a, "PUT", "/v1/dicts/kv/keys/raw", t, &[], &bytes).0,
        200
    );
    let (s, h, body) = http_with_headers(
        a,
        "GET",
        "/v1/dicts/kv/keys/raw",
        t,
        &[("Accept", "application/octet-stream")],
        b"",
    );
    assert_eq!((s, body.as_slice()), (200, &bytes[..]));
    assert_eq!(h["content-type"], "application/octet-stream");

    // A TTL on put: gone once it passes.
    let (s, _) = http(a, "PUT", "/v1/dicts/kv/keys/brief?ttl_ms=300", t, &[], b"1");
    assert_eq!(s, 200);
    assert_eq!(
        http(a, "GET", "/v1/dicts/kv/keys/brief", t, &[], b"").0,
        200
    );
    let start = Instant::now();
    while http(a, "GET", "/v1/dicts/kv/keys/brief", t, &[], b"").0 != 404 {
        assert!(start.elapsed() < Duration::from_secs(10), "never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        http(a, "PUT", "/v1/dicts/kv/keys/brief?ttl_ms=0", t, &[], b"1").0,
        400
    );

    // HEAD says whether a key is there, with its version.
    let (s, h, body) = http_with_headers(a, "HEAD", key, t, &[], b"");
    assert_eq!((s, h["etag"].clone()), (200, format!("\"{v2}\"")));
    assert!(body.is_empty());
    assert_eq!(
        http(a, "HEAD", "/v1/dicts/kv/keys/none", t, &[], b"").0,
        404
    );

    // Increment: one atomic step; a missing key counts from 0; a value that
    // is not a counter is refused.
    let inc = |path: &str| {
        let (s, body) = http(a, "POST", path, t, &[], b"");
        (s, serde_json::from_slice::<serde_json::Value>(&body).ok())
    };
    let (s, body) = inc("/v1/dicts/kv/keys/n/increment");
    assert_eq!((s, body.unwrap()["value"].clone()), (200, 1.into()));
    let (s, body) = inc("/v1/dicts/kv/keys/n/increment?by=-5");
    assert_eq!((s, body.unwrap()["value"].clone()), (200, (-4).into()));
    assert_eq!(
        inc(&format!("{key}/increment")).0,
        400,
        "\"two\" is not a counter"
    );

    // Update writes all at once; get-many reads in order, null when absent.
    let (s, _) = http(
        a,
        "POST",
        "/v1/dicts/kv/update",
        t,
        &[],
        br#"{"entries": {"u1": {"a": 1}, "u2": [true]}}"#,
    );
    assert_eq!(s, 204);
    let (s, body) = http(
        a,
        "POST",
        "/v1/dicts/kv/get-many",
        t,
        &[],
        br#"{"keys": ["u2", "missing", "u1"]}"#,
    );
    assert_eq!(s, 200);
    let items = json_of(&body)["items"].clone();
    assert_eq!(items[0]["value"], serde_json::json!([true]));
    assert!(items[1].is_null());
    assert_eq!(items[2]["value"], serde_json::json!({"a": 1}));

    // DELETE removes a key (its version in ETag), then 404.
    let (s, h, _) = http_with_headers(a, "DELETE", key, t, &[], b"");
    assert_eq!((s, h["etag"].clone()), (204, format!("\"{v2}\"")));
    assert_eq!(http(a, "DELETE", key, t, &[], b"").0, 404);
    assert_eq!(http(a, "GET", key, t, &[], b"").0, 404);

    // What a route does not document is refused: an unknown query
    // parameter, or a condition it cannot check.
    let (s, body) = http(a, "GET", "/v1/dicts/kv/items?limt=5", t, &[], b"");
    assert_eq!(s, 400);
    let msg = json_of(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("`limt`") && msg.contains("limit"), "{msg}");
    assert_eq!(http(a, "GET", "/v1/dicts?x=1", t, &[], b"").0, 400);
    assert_eq!(http(a, "POST", "/v1/volumes/vol", t, &[], b"").0, 201);
    let (s, body) = http(
        a,
        "DELETE",
        "/v1/volumes/vol",
        t,
        &[("If-Match", "\"1\"")],
        b"",
    );
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        http(a, "GET", "/v1/volumes/vol", t, &[], b"").0,
        200,
        "not deleted"
    );
    assert_eq!(
        http(a, "GET", "/v1/dicts/kv/items?limit=5", t, &[], b"").0,
        200
    );
}

/// Leases over HTTP: one holder at a time, fencing tokens that grow with
/// every lease of a key, and a stale token refused (412) once its lease
/// expired and was taken; pop reads and removes in one step.
#[test]
fn leases_fence_with_growing_tokens_and_pop_removes() {
    let v = Vessel::new();
    let server = super::start(&v, &[]);
    let a = server.addr.as_str();
    let tok = v.token(&["dict:*:rw"], None);
    let t = Some(tok.as_str());
    assert_eq!(http(a, "POST", "/v1/dicts/kv", t, &[], b"").0, 201);
    let post = |path: &str| {
        let (s, body) = http(a, "POST", path, t, &[], b"");
        (
            s,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };
    let (s, first) = post("/v1/dicts/kv/keys/job/lock?ttl_ms=60000");
    assert_eq!(s, 200, "{first}");
    let t1 = first["token"].as_u64().unwrap();
    assert!(first["expires_at_ms"].as_u64().is_some());
    let (s, busy) = post("/v1/dicts/kv/keys/job/lock?ttl_ms=60000");
    assert_eq!((s, busy["error"]["kind"].clone()), (409, "busy".into()));
    assert_eq!(
        post(&format!(
            "/v1/dicts/kv/keys/job/renew?token={t1}&ttl_ms=60000"
        ))
        .0,
        200
    );
    assert_eq!(
        post(&format!("/v1/dicts/kv/keys/job/release?token={t1}")).0,
        204
    );
    // A short lease that expires is taken by the next holder, with a
    // larger token; the old token is refused from then on.
    let (s, short) = post("/v1/dicts/kv/keys/job/lock?ttl_ms=200");
    assert_eq!(s, 200);
    let t2 = short["token"].as_u64().unwrap();
    assert!(t2 > t1);
    std::thread::sleep(Duration::from_millis(400));
    let (s, next) = post("/v1/dicts/kv/keys/job/lock?ttl_ms=60000");
    assert_eq!(s, 200, "{next}");
    let t3 = next["token"].as_u64().unwrap();
    assert!(t3 > t2);
    let (s, stale) = post(&format!(
        "/v1/dicts/kv/keys/job/renew?token={t2}&ttl_ms=60000"
    ));
    assert_eq!(
        (s, stale["error"]["kind"].clone()),
        (412, "precondition_failed".into())
    );
    // Releasing with the stale token leaves the holder's lease alone.
    assert_eq!(
        post(&format!("/v1/dicts/kv/keys/job/release?token={t2}")).0,
        204
    );
    assert_eq!(post("/v1/dicts/kv/keys/job/lock?ttl_ms=60000").0, 409);
    assert_eq!(post("/v1/dicts/kv/keys/job/lock?ttl_ms=0").0, 400);
    assert_eq!(
        post("/v1/dicts/kv/keys/job/renew?token=1").0,
        400,
        "needs ttl_ms"
    );

    // Pop: the entry, removed in the same step; then 404.
    assert_eq!(
        http(a, "PUT", "/v1/dicts/kv/keys/p", t, &[], b"{\"n\": 1}").0,
        200
    );
    let (s, popped) = post("/v1/dicts/kv/keys/p/pop");
    assert_eq!(
        (s, popped["value"].clone()),
        (200, serde_json::json!({"n": 1}))
    );
    assert_eq!(post("/v1/dicts/kv/keys/p/pop").0, 404);
}

/// `items` pages with a `next` cursor: 25,000 entries in pages of 1,000
/// while a writer adds and rewrites keys, every entry that exists
/// throughout comes exactly once, and nothing repeats; `prefix` narrows
/// it; a forged cursor is refused.
#[test]
fn items_page_with_a_cursor_while_writers_run() {
    let v = Vessel::new();
    let server = super::start(&v, &[]);
    let a = server.addr.as_str();
    let tok = v.token(&["dict:*:rw"], None);
    let t = Some(tok.as_str());
    assert_eq!(http(a, "POST", "/v1/dicts/kv", t, &[], b"").0, 201);
    const N: u32 = 25_000;
    for chunk in 0..3 {
        let entries: serde_json::Map<String, serde_json::Value> = (chunk * 10_000
            ..(chunk + 1) * 10_000)
            .filter(|i| *i < N)
            .map(|i| (format!("k{i:05}"), serde_json::json!(i)))
            .collect();
        let body = serde_json::json!({ "entries": entries }).to_string();
        assert_eq!(
            http(a, "POST", "/v1/dicts/kv/update", t, &[], body.as_bytes()).0,
            204
        );
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // New keys between and after the old ones, and rewrites.
                http(
                    a,
                    "PUT",
                    &format!("/v1/dicts/kv/keys/k{:05}x", i % N),
                    t,
                    &[],
                    b"1",
                );
                http(
                    a,
                    "PUT",
                    &format!("/v1/dicts/kv/keys/k{:05}", i % N),
                    t,
                    &[],
                    b"2",
                );
                i += 7;
            }
        });
        let mut seen: Vec<String> = Vec::new();
        let mut path = "/v1/dicts/kv/items?limit=1000".to_owned();
        loop {
            let (s, body) = http(a, "GET", &path, t, &[], b"");
            assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
            let page = json_of(&body);
            for it in page["items"].as_array().unwrap() {
                seen.push(it["key"].as_str().unwrap().to_owned());
            }
            match page["next"].as_str() {
                Some(next) => {
                    assert_eq!(page["more"], true);
                    path = format!("/v1/dicts/kv/items?limit=1000&cursor={next}");
                }
                None => break,
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        seen
    });
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a key came twice");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "not in key order");
    for i in 0..N {
        assert!(
            seen.binary_search(&format!("k{i:05}")).is_ok(),
            "k{i:05} was skipped"
        );
    }
    let (s, body) = http(
        a,
        "GET",
        "/v1/dicts/kv/items?prefix=k0001&limit=100",
        t,
        &[],
        b"",
    );
    assert_eq!(s, 200);
    let page = json_of(&body);
    let keys: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert!(
        !keys.is_empty() && keys.iter().all(|k| k.starts_with("k0001")),
        "{keys:?}"
    );
    assert_eq!(
        http(a, "GET", "/v1/dicts/kv/items?cursor=zz", t, &[], b"").0,
        400
    );
}
