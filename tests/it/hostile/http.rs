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

mod calls;

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
