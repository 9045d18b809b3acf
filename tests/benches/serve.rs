//! `vessel serve` under load (issue #8): requests per second and p50/p99
//! latency over HTTP/1.1 on loopback, with keep-alive connections from
//! client threads, each operation for a bounded time:
//!
//! - a call of an app's near no-op function (`add`, two i32s);
//! - dict get of one key, and dict put (durable: fsynced before the
//!   answer, as `vessel serve` runs by default), each client its own key.
//!
//! Baseline from the same run: `GET /v1/health` through the same server
//! and clients, the floor of one HTTP round trip with routing (no token
//! check, no store). Ratios are against its p50.
//!
//!   cargo bench -p vessel-tests --bench serve
//!
//! The server is the library's `server::serve`, the code `vessel serve`
//! runs, started in this process so no binary needs building.
//! `VESSEL_BENCH_SERVE_SECS` (default 3) and `VESSEL_BENCH_SERVE_CLIENTS`
//! (default 16) change the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vessel_tests::harness::figures::env_u64;

use vessel_host::app::Runtime;
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::server::auth::{Scope, TokenStore};
use vessel_host::server::{self, ServeOptions, ServerState};
use vessel_host::service::Service;
use vessel_host::storage::embedded::EmbeddedOptions;
use vessel_tests::reliability::percentile;

/// One keep-alive connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
    token: String,
}

impl Conn {
    fn open(addr: &str, token: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
            host: addr.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Sends one request and reads the answer; returns the status.
    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> u16 {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\n\r\n",
            self.host,
            self.token,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        self.writer.write_all(&req).unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            let h = h.trim_end().to_ascii_lowercase();
            if h.is_empty() {
                break;
            }
            assert!(
                !h.starts_with("transfer-encoding"),
                "{method} {path}: a chunked answer"
            );
            if let Some(v) = h.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).unwrap();
        assert!(
            status < 300,
            "{method} {path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        status
    }
}

struct Figures {
    per_sec: f64,
    p50_us: u32,
    p99_us: u32,
}

/// `clients` threads each send `make(client)` requests on one connection
/// for `secs`.
fn run(
    addr: &str,
    token: &str,
    clients: u64,
    secs: u64,
    make: impl Fn(u64) -> (&'static str, String, Vec<u8>) + Sync,
) -> Figures {
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut all: Vec<u32> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let make = &make;
                scope.spawn(move || {
                    let mut conn = Conn::open(addr, token);
                    let (method, path, body) = make(c);
                    let mut lat = Vec::new();
                    while Instant::now() < end {
                        let t = Instant::now();
                        conn.request(method, &path, &body);
                        lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let took = started.elapsed().as_secs_f64();
    Figures {
        per_sec: all.len() as f64 / took,
        p50_us: percentile(&mut all, 50.0),
        p99_us: percentile(&mut all, 99.0),
    }
}

fn main() {
    let secs = env_u64("VESSEL_BENCH_SERVE_SECS", 3);
    let clients = env_u64("VESSEL_BENCH_SERVE_CLIENTS", 16);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let service = Service::open_embedded(dir.path(), EmbeddedOptions::default()).unwrap();
    let manifest = vessel_tests::write_app(
        dir.path(),
        "[app]\nname = \"bench\"\n[functions.add]\ncomponent = \"@PROBE@\"\n\
         max_containers = 64\n",
    );
    let engine = VesselEngine::new(EngineConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..EngineConfig::default()
    })
    .unwrap();
    let runtime =
        Runtime::new(engine, service.stores.clone()).with_work_dir(dir.path().join("containers"));
    let app = rt.block_on(async { runtime.load_path(&manifest) }).unwrap();
    let tokens = TokenStore::new(dir.path());
    let (token, _) = tokens
        .create(
            None,
            vec![
                Scope::parse("dict:*:rw").unwrap(),
                Scope::parse("app:*").unwrap(),
            ],
            // Every client thread calls at once.
            Some(u32::try_from(clients).unwrap()),
            None,
        )
        .unwrap();
    service.dict_create("bench").unwrap();
    service.dict_put("bench", "k", b"\"value\"").unwrap();
    let state = Arc::new(ServerState::new(
        service,
        BTreeMap::from([("bench".to_owned(), app)]),
        tokens,
    ));
    let listener = rt
        .block_on(server::bind_tcp("127.0.0.1:0".parse().unwrap(), false))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = rt.spawn(server::serve(
        state,
        Some(listener),
        None,
        ServeOptions::default(),
        async move {
            let _ = stopped.await;
        },
    ));

    println!(
        "vessel serve on loopback: {clients} keep-alive clients, {secs} s per operation \
         ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let health = run(&addr, &token, clients, secs, |_| {
        ("GET", "/v1/health".into(), Vec::new())
    });
    let call = run(&addr, &token, clients, secs, |_| {
        (
            "POST",
            "/v1/apps/bench/functions/add/call".into(),
            b"[20, 22]".to_vec(),
        )
    });
    let get = run(&addr, &token, clients, secs, |_| {
        ("GET", "/v1/dicts/bench/keys/k".into(), Vec::new())
    });
    let put = run(&addr, &token, clients, secs, |c| {
        (
            "PUT",
            format!("/v1/dicts/bench/keys/c{c}"),
            b"\"value\"".to_vec(),
        )
    });
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>12}",
        "operation", "req/s", "p50 µs", "p99 µs", "p50 / health"
    );
    for (name, f) in [
        ("GET /v1/health (baseline)", &health),
        ("no-op function call", &call),
        ("dict get", &get),
        ("dict put (fsynced)", &put),
    ] {
        println!(
            "{name:<34} {:>10.0} {:>9} {:>9} {:>11.1}x",
            f.per_sec,
            f.p50_us,
            f.p99_us,
            f64::from(f.p50_us) / f64::from(health.p50_us.max(1))
        );
    }
    let _ = stop.send(());
    rt.block_on(task).unwrap();
}
