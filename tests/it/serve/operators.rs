//! What an operator of `vessel serve` relies on: tokens made and revoked
//! from many processes at once, and a log line per request.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use vessel_tests::{Server, Vessel, http};

use super::start;

/// `vessel token create` and `revoke` from many processes at once lose
/// nothing: every token made is listed, and a revoked one never comes
/// back (the file's rewrites are serialised by a lock).
#[test]
fn concurrent_token_creates_and_revokes_lose_nothing() {
    let v = Vessel::new();
    let doomed = v.token(&["dict:gone:r"], None);
    let ids = |v: &Vessel| v.token_ids();
    let first = ids(&v);
    assert_eq!(first.len(), 1);
    std::thread::scope(|s| {
        for i in 0..10 {
            let v = &v;
            s.spawn(move || {
                for j in 0..5 {
                    v.run(&["token", "create", "--scope", &format!("dict:d{i}x{j}:r")])
                        .ok();
                }
            });
        }
        let v = &v;
        let id = first[0].clone();
        s.spawn(move || {
            v.run(&["token", "revoke", &id]).ok();
        });
    });
    let after = ids(&v);
    assert_eq!(after.len(), 50, "{after:?}");
    assert!(!after.contains(&first[0]), "the revoked token came back");
    let server = start(&v, &[]);
    let (status, _) = http(&server.addr, "GET", "/v1/dicts", Some(&doomed), &[], b"");
    assert_eq!(status, 401);
}

/// `vessel serve` logs one line per request by default (request id, method,
/// route template, status, bytes, latency, caller as a token id, never the
/// secret), as JSON objects with `--log-format json`; the request id comes
/// back in `x-request-id`.
#[test]
fn requests_are_logged_with_their_id_route_status_and_caller() {
    use std::sync::{Arc, Mutex};
    let v = Vessel::new();
    let tok = v.token(&["dict:*:rw", "app:probe"], None);
    let dir = tempfile::tempdir().unwrap();
    let app = vessel_tests::write_app(
        dir.path(),
        "[app]\nname = \"probe\"\n[functions.add]\ncomponent = \"@PROBE@\"\n",
    );
    let mut child = v
        .command()
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--app", &app.display().to_string()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("serving on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let server = Server { child, addr };
    let a = server.addr.as_str();
    assert_eq!(http(a, "POST", "/v1/dicts/kv", Some(&tok), &[], b"").0, 201);
    let (status, headers, _) =
        vessel_tests::http_with_headers(a, "GET", "/v1/dicts/kv/keys/nope", Some(&tok), &[], b"");
    assert_eq!(status, 404);
    let request_id = headers["x-request-id"].clone();
    assert_eq!(http(a, "GET", "/v1/dicts", None, &[], b"").0, 401);
    let (status, body) = http(
        a,
        "POST",
        "/v1/apps/probe/functions/add/call",
        Some(&tok),
        &[],
        b"[1, 2]",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let token_id: String = {
        let list = v.run(&["token", "list", "--json"]).ok().to_owned();
        serde_json::from_str::<Value>(&list).unwrap()[0]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let entries: Vec<Value> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["target"] == "vessel::access" || e["target"] == "vessel::calls")
            .collect();
        if entries.len() >= 5 || Instant::now() > deadline {
            break entries;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let calls: Vec<&Value> = entries
        .iter()
        .filter(|e| e["target"] == "vessel::calls")
        .collect();
    assert_eq!(calls.len(), 1, "{entries:?}");
    let c = &calls[0]["fields"];
    assert_eq!(
        (c["app"].clone(), c["function"].clone()),
        (Value::from("probe"), Value::from("add"))
    );
    assert_eq!(c["outcome"], "ok");
    assert!(
        c["container"].as_u64().unwrap() > 0 && c["duration_ms"].as_f64().is_some(),
        "{c}"
    );
    let entries: Vec<Value> = entries
        .into_iter()
        .filter(|e| e["target"] == "vessel::access")
        .collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
    let missing = entries
        .iter()
        .find(|e| e["fields"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line for {request_id}: {entries:?}"));
    let f = &missing["fields"];
    assert_eq!(f["method"], "GET");
    assert_eq!(f["route"], "/v1/dicts/{name}/keys/{key}");
    assert_eq!(f["status"], 404);
    assert_eq!(f["caller"], token_id.as_str());
    assert!(f["latency_ms"].as_f64().is_some(), "{f}");
    let unauthorized = entries
        .iter()
        .find(|e| e["fields"]["status"] == 401)
        .unwrap();
    assert_eq!(unauthorized["fields"]["caller"], "-");
    let all = log.lock().unwrap().join("\n");
    assert!(!all.contains(&tok), "a token's secret reached the log");
}

/// Guest output under `vessel serve` goes to the server's stdout and
/// stderr with each line tagged by its call, `[app.function call=N] `,
/// where N is the call id of the call log line: two calls of one warm
/// container are told apart.
#[test]
fn guest_output_lines_carry_their_call_id() {
    use std::io::Read;
    let v = Vessel::new();
    let tok = v.token(&["app:noisy"], None);
    let dir = tempfile::tempdir().unwrap();
    let app = vessel_tests::write_manifest(
        dir.path(),
        "[app]\nname = \"noisy\"\n[functions.say]\ncomponent = \"@NOISY@\"\n",
        &["noisy"],
    );
    let mut child = v
        .command()
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--app", &app.display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("serving on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let server = Server { child, addr };
    for text in ["first", "second"] {
        let body = format!("[\"{text}\", 2]");
        let (status, got) = http(
            &server.addr,
            "POST",
            "/v1/apps/noisy/functions/say/call",
            Some(&tok),
            &[],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&got));
    }
    // The call ids, from the call log on stderr, and the guest's stderr
    // lines; both streams are read on threads, so a missing line fails the
    // test at its deadline rather than hanging it.
    let err_lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = err_lines.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let out_bytes = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let sink = out_bytes.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (ids, stderr_lines, out) = loop {
        let lines = err_lines.lock().unwrap().clone();
        let ids: Vec<u64> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["target"] == "vessel::calls")
            .map(|e| e["fields"]["call"].as_u64().unwrap())
            .collect();
        let out = out_bytes.lock().unwrap().clone();
        let done = ids.len() == 2
            && lines.iter().filter(|l| l.contains("(stderr)")).count() == 2
            && out.iter().filter(|b| **b == b'\n').count() == 4;
        if done || Instant::now() > deadline {
            break (ids, lines, out);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(ids.len(), 2, "{stderr_lines:?}");
    let out = String::from_utf8(out).unwrap();
    let (a, b) = (ids[0], ids[1]);
    assert_eq!(
        out,
        format!(
            "[noisy.say call={a}] first\n[noisy.say call={a}] first\n\
             [noisy.say call={b}] second\n[noisy.say call={b}] second\n"
        )
    );
    let tagged: Vec<&String> = stderr_lines
        .iter()
        .filter(|l| l.contains("(stderr)"))
        .collect();
    assert_eq!(
        tagged,
        [
            &format!("[noisy.say call={a}] first (stderr)"),
            &format!("[noisy.say call={b}] second (stderr)")
        ]
    );
    drop(server);
}

/// `token create --ttl`: the token works until its lifetime ends, then
/// gets 401 saying it expired; `token list` shows what is left; a lifetime
/// that is not one is refused with the forms it takes.
#[test]
fn tokens_with_a_lifetime_expire() {
    let v = Vessel::new();
    let server = start(&v, &[]);
    let a = server.addr.as_str();
    let owner = v.token(&["dict:*:rw"], None);
    assert_eq!(
        http(a, "POST", "/v1/dicts/kv", Some(&owner), &[], b"").0,
        201
    );
    let short = v
        .run(&["token", "create", "--scope", "dict:*:r", "--ttl", "2s"])
        .ok()
        .trim()
        .to_owned();
    let listed = v.run(&["token", "list"]).ok().to_owned();
    assert!(listed.contains("expires-in=2s"), "{listed}");
    assert_eq!(
        http(a, "GET", "/v1/dicts/kv", Some(&short), &[], b"").0,
        200
    );
    std::thread::sleep(Duration::from_millis(2200));
    let (status, body) = http(a, "GET", "/v1/dicts/kv", Some(&short), &[], b"");
    assert_eq!(status, 401);
    let body = String::from_utf8_lossy(&body).into_owned();
    assert!(body.contains("expired"), "{body}");
    assert!(v.run(&["token", "list"]).ok().contains("\texpired"));
    // A token without a lifetime is unaffected.
    assert_eq!(
        http(a, "GET", "/v1/dicts/kv", Some(&owner), &[], b"").0,
        200
    );
    v.run(&["token", "create", "--scope", "dict:*:r", "--ttl", "5w"])
        .fails(2, &["--ttl \"5w\"", "s, m, h or d"]);
}
