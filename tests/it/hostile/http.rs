//! Hostile HTTP tenants and noisy guests against the real `vessel serve`
//! (issue #17, point 6 and the output and spawn-storm cases of point 10).
//!
//! The attacker holds a token, perhaps one with no useful scope, or runs a
//! guest that floods its output. Each test starts its own server and stops
//! it at the end (`Server` kills it on drop); where the attack takes time, a
//! bystander tenant calls a function every 20 ms and must be answered
//! within `BYSTANDER_PATIENCE` throughout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vessel_tests::{Server, Vessel, guest};

use vessel_tests::harness::{BYSTANDER_EVERY, BYSTANDER_PATIENCE, Seen};

/// A `vessel serve` of the `noisy` app (and the bystander's `add`).
struct Served {
    v: Vessel,
    server: Server,
    _dir: tempfile::TempDir,
}

impl Served {
    fn start(extra: &[&str], stdout: Stdio) -> Served {
        let v = Vessel::new();
        let dir = tempfile::tempdir().unwrap();
        let noisy = guest("noisy").display().to_string();
        let add = guest("add").display().to_string();
        let manifest = format!(
            "[app]\nname = \"noisy\"\n\
             [functions.flood]\ncomponent = {noisy:?}\nexport = \"flood\"\n\
             [functions.nap]\ncomponent = {noisy:?}\nexport = \"nap\"\n\
             [functions.big]\ncomponent = {noisy:?}\nexport = \"big-result\"\n\
             [functions.bystander]\ncomponent = {add:?}\nexport = \"add\"\nmax_containers = 2\n"
        );
        let path = dir.path().join("vessel.toml");
        std::fs::write(&path, manifest).unwrap();
        let mut command = v.command();
        command.stdout(stdout);
        let mut args = vec!["--app".to_owned(), path.display().to_string()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = vessel_tests::serve(command, &args);
        Served {
            v,
            server,
            _dir: dir,
        }
    }

    fn addr(&self) -> &str {
        &self.server.addr
    }

    fn token(&self, scopes: &[&str], max_calls: Option<u32>) -> String {
        self.v.token(scopes, max_calls)
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.server.child.id(), "VmRSS:")
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// An answer: status, head (lower-cased) and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::trim)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts that the error message contains `needle`.
    fn says(&self, needle: &str) {
        let m = self.message();
        assert!(m.contains(needle), "{} {m:?} lacks {needle:?}", self.status);
    }

    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Opens a connection and sends a request's head (`Connection: close`),
/// with `headers` (its length or chunking among them) and no body yet.
fn send_head(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Reads one answer, failing the test if it takes longer than `patience`.
fn read_reply(s: &TcpStream, patience: Duration, what: &str) -> Reply {
    try_read_reply(s, patience).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Reads one answer within `patience`, or says why not.
fn try_read_reply(s: &TcpStream, patience: Duration) -> Result<Reply, String> {
    s.set_read_timeout(Some(patience))
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return Err(format!("the connection closed before an answer ({head:?})")),
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "no answer within {patience:?} ({e}, after {:.2?})",
                    started.elapsed()
                ));
            }
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let reply = Reply {
        status,
        head,
        body: Vec::new(),
    };
    let len: usize = reply
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)
        .map_err(|e| format!("the body of a {status} was cut: {e}"))?;
    Ok(Reply { body, ..reply })
}

/// Sends the head of a request declaring a `len`-byte body, and nothing
/// of the body: the answer must come within 2 s, with `status`.
fn refused_before_body(
    addr: &str,
    (method, path, len): (&str, &str, u64),
    token: &str,
    status: u16,
) -> Reply {
    let c = send_head(
        addr,
        method,
        path,
        Some(token),
        &[("Content-Length", len.to_string())],
    );
    let r = read_reply(&c, Duration::from_secs(2), &format!("{method} {path}"));
    assert_eq!(r.status, status, "{method} {path}: {r:?}");
    r
}

/// One whole request on its own connection.
fn request(addr: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> Reply {
    let mut s = send_head(
        addr,
        method,
        path,
        token,
        &[("Content-Length", body.len().to_string())],
    );
    s.write_all(body).unwrap();
    read_reply(&s, Duration::from_secs(60), &format!("{method} {path}"))
}

/// A tenant calling the `bystander` function every 20 ms over HTTP, on a
/// thread of its own: every call must answer, correctly, within
/// `BYSTANDER_PATIENCE`.
struct Bystander {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Seen, String>>,
}

impl Bystander {
    fn start(addr: &str, token: &str) -> Bystander {
        let (addr, token) = (addr.to_owned(), token.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut i = 0i64;
            while !flag.load(Ordering::SeqCst) {
                i += 1;
                let t = Instant::now();
                let body = format!("[{i}, 1]");
                let mut s = send_head(
                    &addr,
                    "POST",
                    "/v1/apps/noisy/functions/bystander/call",
                    Some(&token),
                    &[("Content-Length", body.len().to_string())],
                );
                s.write_all(body.as_bytes()).unwrap();
                let got =
                    try_read_reply(&s, BYSTANDER_PATIENCE).map_err(|e| format!("call {i}: {e}"))?;
                if got.status != 200 || got.json()["result"] != json!(i + 1) {
                    return Err(format!(
                        "call {i} answered {} {}",
                        got.status,
                        String::from_utf8_lossy(&got.body)
                    ));
                }
                seen.answer(t.elapsed());
                std::thread::sleep(BYSTANDER_EVERY);
            }
            Ok(seen)
        });
        Bystander { stop, thread }
    }

    /// Fails the test now if the bystander has already stopped answering.
    fn check(&mut self) {
        if self.thread.is_finished() && !self.stop.load(Ordering::SeqCst) {
            self.stop.store(true, Ordering::SeqCst);
            let got =
                std::mem::replace(&mut self.thread, std::thread::spawn(|| Err(String::new())));
            match got.join().unwrap() {
                Err(e) => panic!("the bystander stopped answering: {e}"),
                Ok(seen) => panic!("the bystander stopped early: {seen:?}"),
            }
        }
    }

    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        let seen = self
            .thread
            .join()
            .unwrap()
            .unwrap_or_else(|e| panic!("the bystander stopped answering: {e}"));
        assert!(seen.answered > 0, "the bystander never answered");
        seen
    }
}

/// The routes that take a body, each with a length over its limit.
const BODY_ROUTES: &[(&str, &str, u64)] = &[
    ("PUT", "/v1/dicts/kv/keys/k", (100 << 20) + 1025),
    ("POST", "/v1/apps/noisy/functions/nap/call", (16 << 20) + 1),
    ("POST", "/v1/apps/noisy/functions/nap/spawn", (16 << 20) + 1),
    ("POST", "/v1/volumes/vol/cp", (16 << 20) + 1),
    ("POST", "/v1/volumes/vol/rename", (16 << 20) + 1),
];

/// A token with no useful scope sends the head of a large request on every
/// route that takes a body, and then a slow body: it is refused (403)
/// before it sends a byte, and 64 such tenants at once leave the server's
/// memory where it was.
#[test]
fn a_token_without_scope_never_has_its_body_read() {
    let s = Served::start(&[], Stdio::null());
    let a = s.addr().to_owned();
    let stranger = s.token(&["volume:elsewhere:r"], None);
    let mut routes: Vec<(&str, &str, u64)> = BODY_ROUTES.to_vec();
    routes.push(("PUT", "/v1/volumes/vol/files/big.bin", 1 << 30));
    for route in routes {
        let r = refused_before_body(&a, route, &stranger, 403);
        r.says("may not");
    }

    let before = s.rss_kib();
    let tenants: Vec<_> = (0..64)
        .map(|i| {
            let (a, stranger) = (a.clone(), stranger.clone());
            std::thread::spawn(move || {
                let mut c = send_head(
                    &a,
                    "PUT",
                    &format!("/v1/dicts/kv/keys/k{i}"),
                    Some(&stranger),
                    &[("Content-Length", (100 << 20).to_string())],
                );
                let r = read_reply(&c, Duration::from_secs(5), "a no-scope dict put");
                // Then the body, slowly: 1 MiB in 64 KiB pieces. The server
                // has answered; whatever it does with these bytes, it must
                // not keep them.
                let piece = vec![b'x'; 64 << 10];
                for _ in 0..16 {
                    if c.write_all(&piece).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                r.status
            })
        })
        .collect();
    for t in tenants {
        assert_eq!(t.join().unwrap(), 403);
    }
    let after = s.rss_kib();
    println!("64 refused tenants trickling 1 MiB each: server RSS {before} -> {after} KiB");
    assert!(
        after < before + 32 * 1024,
        "the server's RSS grew from {before} to {after} KiB"
    );
    assert_eq!(request(&a, "GET", "/v1/health", None, b"").status, 200);
}

/// A body whose declared length is over its route's limit is refused (413)
/// before a byte of it is sent; a chunked body is cut at the limit.
#[test]
fn a_body_over_its_route_limit_is_refused_before_it_is_read() {
    let s = Served::start(&[], Stdio::null());
    let a = s.addr().to_owned();
    let tok = s.token(&["volume:*:rw", "dict:*:rw", "app:*"], None);
    assert_eq!(
        request(&a, "POST", "/v1/dicts/kv", Some(&tok), b"").status,
        201
    );
    for &(method, path, len) in BODY_ROUTES {
        let m = refused_before_body(&a, (method, path, len), &tok, 413).message();
        assert!(
            m.contains(&format!("is {len} bytes")) && m.contains("at most"),
            "{m}"
        );
    }

    // Chunked: no length to refuse up front; cut once past 100 MiB. The
    // answer is read as it comes, while the chunks go out.
    let mut c = send_head(
        &a,
        "PUT",
        "/v1/dicts/kv/keys/chunked",
        Some(&tok),
        &[("Transfer-Encoding", "chunked".to_owned())],
    );
    let reader = c.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        read_reply(&reader, Duration::from_secs(60), "a chunked dict put")
    });
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    while !answer.is_finished() && sent < 200 << 20 {
        let framed = c
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|()| c.write_all(&chunk))
            .and_then(|()| c.write_all(b"\r\n"));
        if framed.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let r = answer.join().unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    r.says("passed this route's limit");
    assert!(
        sent < 150 << 20,
        "the server read {sent} bytes before refusing"
    );
    let r = request(&a, "GET", "/v1/dicts/kv/keys/chunked", Some(&tok), b"");
    assert_eq!(r.status, 404, "nothing was written: {r:?}");
}

/// A body that stops sending is cut off after `--body-timeout` with 408,
/// on every route that reads one (never 500, never a hang), and the server
/// answers others meanwhile.
#[test]
fn a_stalled_body_is_cut_off_with_408() {
    let s = Served::start(&["--body-timeout", "1"], Stdio::null());
    let a = s.addr().to_owned();
    let tok = s.token(&["volume:*:rw", "dict:*:rw", "app:*"], None);
    assert_eq!(
        request(&a, "POST", "/v1/dicts/kv", Some(&tok), b"").status,
        201
    );
    assert_eq!(
        request(&a, "POST", "/v1/volumes/vol", Some(&tok), b"").status,
        201
    );
    let mut routes: Vec<(&str, &str)> = BODY_ROUTES.iter().map(|(m, p, _)| (*m, *p)).collect();
    routes.push(("PUT", "/v1/volumes/vol/files/stalled.bin"));
    for (method, path) in routes {
        let mut c = send_head(
            &a,
            method,
            path,
            Some(&tok),
            &[("Content-Length", "1000".to_owned())],
        );
        c.write_all(b"[1, 2, 3, ").unwrap();
        let started = Instant::now();
        let r = read_reply(&c, Duration::from_secs(10), &format!("{method} {path}"));
        let took = started.elapsed();
        assert_eq!(r.status, 408, "{method} {path}: {r:?}");
        r.says("sent nothing for 1s");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{method} {path}: cut after {took:?}"
        );
        assert_eq!(request(&a, "GET", "/v1/health", None, b"").status, 200);
    }
    let r = request(
        &a,
        "GET",
        "/v1/volumes/vol/files/stalled.bin",
        Some(&tok),
        b"",
    );
    assert_eq!(r.status, 404, "a cut upload is not committed: {r:?}");
}

/// A token's requests hold at most `--body-mib-per-token` of bodies in the
/// server's memory: past it, 429 with `Retry-After` before the body is
/// read; the budget comes back when the requests end.
#[test]
fn a_token_holds_at_most_its_body_budget() {
    let s = Served::start(&["--body-mib-per-token", "8"], Stdio::null());
    let a = s.addr().to_owned();
    let writer = s.token(&["dict:*:rw"], None);
    let other = s.token(&["dict:*:rw"], None);
    assert_eq!(
        request(&a, "POST", "/v1/dicts/kv", Some(&writer), b"").status,
        201
    );
    let len = 3 << 20;
    let open = |tok: &str, key: &str| {
        send_head(
            &a,
            "PUT",
            &format!("/v1/dicts/kv/keys/{key}"),
            Some(tok),
            &[("Content-Length", len.to_string())],
        )
    };
    // Two 3 MiB values on their way (the server counts a declared length
    // at once), a third would pass 8 MiB.
    let mut first = open(&writer, "a");
    let mut second = open(&writer, "b");
    std::thread::sleep(Duration::from_millis(300));
    let third = open(&writer, "c");
    let r = read_reply(&third, Duration::from_secs(2), "a put past the budget");
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    r.says("8388608 bytes");
    // Another token has its own budget.
    let r = request(
        &a,
        "PUT",
        "/v1/dicts/kv/keys/d",
        Some(&other),
        &vec![b'1'; len],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let value = vec![b'2'; len];
    for c in [&mut first, &mut second] {
        c.write_all(&value).unwrap();
        let r = read_reply(c, Duration::from_secs(30), "a put within the budget");
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = request(&a, "PUT", "/v1/dicts/kv/keys/c", Some(&writer), &value);
    assert_eq!(r.status, 200, "the budget came back: {r:?}");
}

/// One token spawns as fast as it can: it gets its limit of running calls
/// (8 by default) and 429s with `Retry-After` past it, while another token's
/// calls, of the same function, still answer at once.
#[test]
fn a_spawn_storm_hits_the_token_limit_while_others_answer() {
    let s = Served::start(&[], Stdio::null());
    let a = s.addr().to_owned();
    let storm = s.token(&["app:noisy"], None);
    let calm = s.token(&["app:noisy"], None);
    let bystander = Bystander::start(&a, &calm);
    let started = Instant::now();
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for _ in 0..200 {
        let r = request(
            &a,
            "POST",
            "/v1/apps/noisy/functions/nap/spawn",
            Some(&storm),
            b"[7, 6000]",
        );
        match r.status {
            202 => accepted.push(r.json()["call_id"].as_str().unwrap().to_owned()),
            429 => {
                refused += 1;
                assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
                assert!(r.message().contains("8 call(s) running"), "{}", r.message());
            }
            _ => panic!("a spawn answered {r:?}"),
        }
    }
    let storm_took = started.elapsed();
    assert!(
        storm_took < Duration::from_secs(4),
        "the storm took {storm_took:?}: its calls may have ended"
    );
    assert_eq!(accepted.len(), 8, "{refused} refused");
    assert_eq!(refused, 192);
    // Sync calls count too.
    let r = request(
        &a,
        "POST",
        "/v1/apps/noisy/functions/nap/call",
        Some(&storm),
        b"[1, 0]",
    );
    assert_eq!(r.status, 429, "{r:?}");
    // The other token's call of the same function answers at once.
    let t = Instant::now();
    let r = request(
        &a,
        "POST",
        "/v1/apps/noisy/functions/nap/call",
        Some(&calm),
        b"[5, 0]",
    );
    assert_eq!((r.status, r.json()["result"].clone()), (200, json!(5)));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The storm's calls finish, and its places come back.
    for id in &accepted {
        let r = request(
            &a,
            "GET",
            &format!("/v1/calls/{id}?wait=30"),
            Some(&storm),
            b"",
        );
        assert_eq!(r.json(), json!({"status": "done", "result": 7}));
    }
    let r = request(
        &a,
        "POST",
        "/v1/apps/noisy/functions/nap/call",
        Some(&storm),
        b"[3, 0]",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let seen = bystander.finish();
    println!("spawn storm: 8 accepted, 192 refused in {storm_took:.2?}; bystander {seen:?}");
}

/// With the call store full of running calls, a spawn is refused (503,
/// `Retry-After`) and no running call loses its result; finished calls are
/// then evicted oldest first to make room, with a 404 that says so.
#[test]
fn a_running_call_is_never_dropped_from_a_full_store() {
    let s = Served::start(&["--max-stored-calls", "4"], Stdio::null());
    let a = s.addr().to_owned();
    let tok = s.token(&["app:noisy"], None);
    let spawn = |x: u32, ms: u32| {
        request(
            &a,
            "POST",
            "/v1/apps/noisy/functions/nap/spawn",
            Some(&tok),
            format!("[{x}, {ms}]").as_bytes(),
        )
    };
    let ids: Vec<String> = (1..=4)
        .map(|x| {
            // They finish in the order they started, 400 ms apart.
            let r = spawn(x, 1000 + 400 * x);
            assert_eq!(r.status, 202, "{r:?}");
            r.json()["call_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let r = spawn(5, 0);
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    r.says("every one is still running");
    for (x, id) in (1..=4).zip(&ids) {
        let r = request(
            &a,
            "GET",
            &format!("/v1/calls/{id}?wait=30"),
            Some(&tok),
            b"",
        );
        assert_eq!(
            r.json(),
            json!({"status": "done", "result": x}),
            "call {id}"
        );
    }
    // Now finished: a new spawn evicts the oldest finished call.
    let r = spawn(6, 0);
    assert_eq!(r.status, 202, "{r:?}");
    let r = request(&a, "GET", &format!("/v1/calls/{}", ids[0]), Some(&tok), b"");
    assert_eq!(r.status, 404, "{r:?}");
    r.says("dropped to make room");
    let r = request(&a, "GET", &format!("/v1/calls/{}", ids[3]), Some(&tok), b"");
    assert_eq!(r.json(), json!({"status": "done", "result": 4}));
}

/// Finished calls' results are kept within `--stored-results-mib`: a
/// tenant spawning calls with large results and never fetching them does
/// not grow the server's memory past it.
#[test]
fn spawned_results_are_kept_within_their_byte_budget() {
    let s = Served::start(&["--stored-results-mib", "8"], Stdio::null());
    let a = s.addr().to_owned();
    let tok = s.token(&["app:noisy"], None);
    // Warm up (the function's container and its memory), then measure.
    let big = |kib: u32| {
        let r = request(
            &a,
            "POST",
            "/v1/apps/noisy/functions/big/spawn",
            Some(&tok),
            format!("[{kib}]").as_bytes(),
        );
        assert_eq!(r.status, 202, "{r:?}");
        let id = r.json()["call_id"].as_str().unwrap().to_owned();
        let r = request(
            &a,
            "GET",
            &format!("/v1/calls/{id}?wait=60"),
            Some(&tok),
            b"",
        );
        (id, r)
    };
    big(4096);
    let before = s.rss_kib();
    let mut ids = Vec::new();
    for _ in 0..40 {
        let (id, r) = big(4096);
        assert_eq!(r.status, 200);
        ids.push(id);
    }
    let after = s.rss_kib();
    println!("40 results of 4 MiB kept under 8 MiB: server RSS {before} -> {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "the server's RSS grew from {before} to {after} KiB"
    );
    let r = request(&a, "GET", &format!("/v1/calls/{}", ids[0]), Some(&tok), b"");
    assert_eq!(r.status, 404, "{r:?}");
    r.says("dropped to make room");
    let r = request(
        &a,
        "GET",
        &format!("/v1/calls/{}", ids[39]),
        Some(&tok),
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"].as_str().map(str::len), Some(4 << 20));
    // One result over the whole budget is kept as a failure that says so.
    let (_, r) = big(9 * 1024);
    let v = r.json();
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("more than this server keeps"),
        "{v}"
    );
}

/// Guests writing 1 GiB to stdout under `vessel serve`, whose own stdout
/// nobody reads: two through HTTP calls, one through a `vessel call`
/// forwarded over the owner's socket. The server's memory stays bounded,
/// a bystander tenant keeps answering, and the server's stdout says how
/// much guest output it dropped.
#[test]
fn guests_flooding_stdout_under_serve_keep_the_host_bounded() {
    let mut s = Served::start(&[], Stdio::piped());
    let a = s.addr().to_owned();
    let flooder = s.token(&["app:noisy"], None);
    let calm = s.token(&["app:noisy"], None);
    let pid = s.server.child.id();
    let start_rss = s.rss_kib();
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::SeqCst) {
                peak = peak.max(proc_status_kib(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let mut bystander = Bystander::start(&a, &calm);
    let started = Instant::now();
    let http_floods: Vec<_> = (0..2)
        .map(|_| {
            let (a, flooder) = (a.clone(), flooder.clone());
            std::thread::spawn(move || {
                request(
                    &a,
                    "POST",
                    "/v1/apps/noisy/functions/flood/call",
                    Some(&flooder),
                    b"[1024, false]",
                )
            })
        })
        .collect();
    // The forwarded call's output is the caller's own: it streams back to
    // this test, which counts it.
    let manifest = s._dir.path().join("vessel.toml");
    let mut command = s.v.command();
    command
        .args(["call"])
        .arg(&manifest)
        .args(["flood", "--args", "[1024, false]"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let forwarded = std::thread::spawn(move || {
        let mut child = command.spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        let mut tail = Vec::new();
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n as u64;
            tail.extend_from_slice(&buf[..n]);
            let keep = tail.len().saturating_sub(64);
            tail.drain(..keep);
        }
        let status = child.wait().unwrap();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        (got, tail, status.success(), err)
    });
    // Until every flood is done, the bystander must keep answering (a host
    // whose workers wait on a full pipe stops answering anyone).
    let deadline = Instant::now() + Duration::from_secs(300);
    while !(forwarded.is_finished() && http_floods.iter().all(|f| f.is_finished())) {
        bystander.check();
        assert!(Instant::now() < deadline, "the floods did not end in 300 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (got, tail, ok, err) = forwarded.join().unwrap();
    assert!(ok, "the forwarded call failed: {err}");
    // 1 GiB of output, then the result line.
    assert_eq!(got, (1 << 30) + "1073741824\n".len() as u64);
    assert!(String::from_utf8_lossy(&tail).ends_with("x1073741824\n"));
    for f in http_floods {
        let r = f.join().unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        // The guest's writes all succeeded; what was dropped was dropped
        // by the host.
        assert_eq!(r.json()["result"], json!(1u64 << 30));
    }
    let took = started.elapsed();
    let seen = bystander.finish();
    sampling.store(false, Ordering::SeqCst);
    let peak = sampler.join().unwrap();
    let hwm = proc_status_kib(pid, "VmHWM:");
    println!(
        "3 GiB of guest stdout in {took:.2?}: server RSS {start_rss} KiB at start, peak {peak} KiB \
         (high-water mark {hwm} KiB); bystander {seen:?}"
    );
    assert!(
        hwm < start_rss + 256 * 1024,
        "the server's memory grew from {start_rss} to {hwm} KiB"
    );
    // The server's stdout: what fit in the backlog, and a note for the rest.
    let mut stdout = s.server.child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(7).any(|w| w == b"dropped") {
                break;
            }
        }
        seen
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        reader.is_finished(),
        "no note of dropped output on the server's stdout"
    );
    let seen = reader.join().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert!(
        text.contains("bytes of guest stdout dropped"),
        "{}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(seen.len() < 4 << 20, "{} bytes were waiting", seen.len());
}
