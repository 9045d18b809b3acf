//! Wall time: a call ends at its deadline wherever its guest waits (a
//! sleep, a poll, stdin, a lease it holds itself, another function), not
//! only while it runs wasm code. Its container is retired and its slot
//! freed, and what it had not committed is dropped.
//!
//! On a host that checks the deadline only in the epoch callback, each
//! waiting guest here outlives its 1 s timeout by the length of its wait
//! (20 s, a day, for ever), which [`PATIENCE`] turns into a failure.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use vessel_host::app::{App, AppError};
use vessel_host::container::GuestStdio;
use vessel_tests::{Vessel, guest};

use vessel_tests::harness::{BYSTANDER, Bystander, Host};

/// The timeout of every hostile function here.
const TIMEOUT: Duration = Duration::from_secs(1);

/// How long after its deadline a guest may take to stop (the issue's
/// bound). The call measured also makes its container, which takes a few
/// milliseconds.
const STOPS_WITHIN: Duration = Duration::from_millis(100);

/// The longest a test waits for a call, so a host that lets a guest wait
/// on fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

const APP: &str = r#"
[app]
name = "time"

[dicts.locks]
create_if_missing = true

[volumes.pad]
create_if_missing = true

[functions.nap]
component = "@HOG@"
timeout = 1
max_containers = 1

[functions.poll]
component = "@HOG@"
export = "poll-forever"
timeout = 1

[functions.lease]
component = "@HOG@"
export = "lease-loop"
dicts = ["locks"]
timeout = 1

[functions.caller]
component = "@HOG@"
export = "call-and-wait"
timeout = 1

[functions.scribble]
component = "@HOG@"
export = "scribble-then-hang"
mounts = { "/data" = "pad" }
commit_every = 0
timeout = 1

[functions.reader]
component = "@COMMAND@"
export = "wasi:cli/run"
timeout = 1
"#;

/// A host whose guests' stdin is a pipe nobody writes to or closes.
fn host_with_silent_stdin() -> (Host, tokio::io::DuplexStream) {
    let mut host = Host::new();
    let (writer, reader) = tokio::io::duplex(64);
    let stdio = GuestStdio::Piped {
        stdin: Arc::new(wasmtime_wasi::cli::AsyncStdinStream::new(reader)),
        stdout: Arc::new(std::io::empty()),
        stderr: Arc::new(std::io::empty()),
    };
    host.runtime = host.runtime.clone().with_stdio(stdio);
    (host, writer)
}

fn load(host: &Host) -> App {
    host.load(&format!("{APP}{BYSTANDER}"), &["hog", "command"])
}

/// Awaits `call`, which must time out: within [`STOPS_WITHIN`] of the
/// function's deadline, with `timed out after 1s`.
async fn cut<T: std::fmt::Debug>(what: &str, call: impl Future<Output = Result<T, AppError>>) {
    let t = Instant::now();
    let got = tokio::time::timeout(PATIENCE, call).await;
    let took = t.elapsed();
    let err = match got {
        Err(_) => panic!("{what}: still waiting after {PATIENCE:?}; its timeout is {TIMEOUT:?}"),
        Ok(Ok(v)) => panic!("{what}: answered {v:?} instead of timing out"),
        Ok(Err(e)) => e.to_string(),
    };
    assert!(err.contains("timed out after 1s"), "{what}: {err}");
    eprintln!("{what}: cut after {took:?}");
    assert!(
        took <= TIMEOUT + STOPS_WITHIN,
        "{what}: stopped {took:?} after it started; its timeout is {TIMEOUT:?}"
    );
}

/// The function's container was retired and its slot is free.
fn retired(app: &App, function: &str) {
    let stats = app.function(function).unwrap().stats();
    assert_eq!(stats.busy, 0, "{function}: {stats:?}");
    assert_eq!(stats.idle, 0, "{function}: {stats:?}");
    assert_eq!(stats.retired, stats.started, "{function}: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn asleep_past_its_timeout_it_is_cut_and_its_slot_freed() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let nap = app.function("nap").unwrap();
    cut("nap 20 s", nap.call(json!([20_000]))).await;
    retired(&app, "nap");
    // Its only slot is free: the next call gets it at once.
    let t = Instant::now();
    assert_eq!(nap.call(json!([0])).await.unwrap(), json!(0));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polling_forever_it_is_cut() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let poll = app.function("poll").unwrap();
    cut("poll forever", poll.call(json!([]))).await;
    retired(&app, "poll");
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocked_on_a_stdin_that_never_closes_it_is_cut() {
    let (host, _stdin_writer) = host_with_silent_stdin();
    let app = load(&host);
    let b = Bystander::start(&app);
    let reader = app.function("reader").unwrap();
    cut(
        "reading stdin",
        reader.run_command(vec!["stdin".into()], true),
    )
    .await;
    retired(&app, "reader");
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_on_its_own_lease_it_is_cut() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let lease = app.function("lease").unwrap();
    // Retrying every 20 s: a host that checks its deadline only between
    // wasm instructions sees the guest again after the first retry.
    cut("a lease loop", lease.call(json!(["locks", "mine", 20_000]))).await;
    retired(&app, "lease");
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_on_a_callee_that_sleeps_both_are_cut() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let caller = app.function("caller").unwrap();
    let nap = app.function("nap").unwrap();
    for spawn in [false, true] {
        let how = if spawn { "spawn and get" } else { "remote" };
        let args = json!(["nap", "[20000]", spawn]);
        cut(how, caller.call(args)).await;
        // The callee has a deadline of its own, started a little later.
        // Its only container slot is free soon after the caller's ended.
        let t = Instant::now();
        let next = tokio::time::timeout(PATIENCE, nap.call(json!([0]))).await;
        assert_eq!(
            next.map_err(|_| "still waiting")
                .and_then(|r| r.map_err(|_| "failed")),
            Ok(json!(0)),
            "{how}: the callee's slot"
        );
        assert!(
            t.elapsed() < STOPS_WITHIN * 3,
            "{how}: the callee held its slot {:?} past its caller's end",
            t.elapsed()
        );
        retired(&app, "caller");
    }
    let stats = nap.stats();
    // Two callees timed out; two calls of `nap 0` ran in warm or new ones.
    assert!(stats.retired >= 2, "{stats:?}");
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timed_out_container_commits_nothing_it_had_not() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let volumes = host.service.stores.volumes.clone().unwrap();
    let scribble = app.function("scribble").unwrap();
    for how in ["spin", "nap"] {
        let file = format!("{how}.txt");
        let args = json!([format!("/data/{file}"), "half-done", how]);
        cut(&format!("a write, then {how}"), scribble.call(args)).await;
        // Neither the epoch callback (a CPU loop) nor a cut wait (a sleep)
        // ends with a final commit of the write.
        assert_eq!(
            volumes.node("pad", &file).unwrap().map(|_| ()),
            None,
            "{file} was committed after a timeout"
        );
    }
    retired(&app, "scribble");
    b.finish().await;
    app.shutdown().await.unwrap();
}

/// `vessel call` of a bare component: the issue's reproduction. A second
/// `vessel call` meanwhile is the bystander.
#[test]
fn vessel_call_of_a_sleeper_exits_at_its_timeout() {
    let v = Vessel::new();
    let hog = guest("hog").display().to_string();
    let add = guest("add").display().to_string();
    // Compiled once first: the bound is on the call, not on compiling.
    assert_eq!(v.run(&["call", &hog, "nap", "--ms", "0"]).ok().trim(), "0");
    let t = Instant::now();
    let sleeper = v
        .command()
        .args(["call", &hog, "nap", "--ms", "20000", "--timeout", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let bystander = v.run(&["call", &add, "add", "--a", "2", "--b", "3"]);
    assert_eq!(bystander.ok().trim(), "5");
    let out = vessel_tests::Run::from(wait_at_most(sleeper, PATIENCE));
    let took = t.elapsed();
    out.fails(1, &["function `nap`", "timed out after 1s"]);
    assert!(took < Duration::from_secs(2), "vessel call took {took:?}");
}

/// `vessel run` of a command reading a stdin this test holds open.
#[test]
fn vessel_run_blocked_on_stdin_exits_at_its_timeout() {
    let v = Vessel::new();
    let command = guest("command").display().to_string();
    // Compiled once first: the bound is on the run, not on compiling.
    assert_eq!(v.run(&["run", &command, "--", "echo", "hi"]).ok(), "hi\n");
    let t = Instant::now();
    let mut child = v
        .command()
        .args(["run", &command, "--timeout", "1", "--", "stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Held open, never written: the guest's read never ends by itself.
    let _stdin = child.stdin.take();
    let out = vessel_tests::Run::from(wait_at_most(child, PATIENCE));
    let took = t.elapsed();
    out.fails(1, &["timed out after 1s"]);
    assert!(took < Duration::from_secs(2), "vessel run took {took:?}");
}

/// `--timeout 0` is the operator's way to lift the deadline a bare
/// component gets by default (300 s).
#[test]
fn timeout_zero_lifts_the_deadline() {
    let v = Vessel::new();
    let hog = guest("hog").display().to_string();
    let out = v.run(&["call", &hog, "nap", "--ms", "1200", "--timeout", "0"]);
    assert_eq!(out.ok().trim(), "1200");
    v.run(&["call", &hog, "nap", "--ms", "1", "--timeout", "-1"])
        .fails(2, &["--timeout", "0 for no limit"]);
}

/// Waits for `child` to exit, killing it after `limit`.
fn wait_at_most(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "vessel still ran after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
