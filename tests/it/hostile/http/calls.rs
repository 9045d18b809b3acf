//! Hostile calls over HTTP: spawn storms against the token's limits, stores
//! of results that fill up, and guests flooding their output, while a
//! bystander keeps answering.

use super::*;

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
