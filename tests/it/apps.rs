//! Apps: manifests, warm containers, calls between functions, limits and
//! grants, through the real CLI and through the library API.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use vessel_host::app::App;
use vessel_tests::harness::Host;
use vessel_tests::{Vessel, write_app};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The probe app most tests use: one function per export, with small
/// limits so failures come fast.
const PROBE_APP: &str = r#"
[app]
name = "probe"

[dicts.granted]
create_if_missing = true

[functions.add]
component = "@PROBE@"

[functions.count]
component = "@PROBE@"
max_containers = 1

[functions.square]
component = "@PROBE@"
export = "slow-square"
max_containers = 4

[functions.caller]
component = "@PROBE@"
export = "call"
timeout = 20
dicts = ["granted"]

[functions.fan-out]
component = "@PROBE@"

[functions.map-square]
component = "@PROBE@"

[functions.get-twice]
component = "@PROBE@"

[functions.recurse]
component = "@PROBE@"
max_containers = 20

[functions.lonely]
component = "@PROBE@"
export = "recurse"
max_containers = 1

[functions.spin]
component = "@PROBE@"
timeout = 1

[functions.bomb]
component = "@PROBE@"
memory = 32

[functions.boom]
component = "@PROBE@"

[functions.fail-with]
component = "@PROBE@"

[functions.open-dict]
component = "@PROBE@"
dicts = ["granted"]

[functions.open-volume]
component = "@PROBE@"
volumes = ["granted-vol"]
"#;

/// The probe app, through the real CLI with a data dir of its own.
struct ProbeCli {
    v: Vessel,
    app: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl ProbeCli {
    fn new() -> ProbeCli {
        let dir = tempfile::tempdir().unwrap();
        let app = write_app(dir.path(), PROBE_APP);
        ProbeCli {
            v: Vessel::new(),
            app,
            _dir: dir,
        }
    }

    /// `vessel call APP FUNCTION ARGS...`, which must succeed: its output.
    fn call(&self, function: &str, args: &[&str]) -> String {
        self.v.call(&self.app, function, args).ok().to_owned()
    }

    /// `function` called with `args` (JSON) by `caller`, through the
    /// guest's remote call: the caller's answer.
    fn via_caller(&self, function: &str, args: &str) -> String {
        self.call("caller", &["--function", function, "--arguments", args])
            .trim()
            .to_owned()
    }
}

#[test]
fn call_reaches_functions_of_an_app_by_name() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = s(&write_app(dir.path(), PROBE_APP));
    assert_eq!(
        v.run(&["call", &app, "add", "--a", "2", "--b", "40"]).ok(),
        "42\n"
    );
    // The directory holding vessel.toml names the app too.
    assert_eq!(
        v.run(&["call", &s(dir.path()), "add", "--args", "[1, 2]"])
            .ok(),
        "3\n"
    );
    v.run(&["call", &app, "nope"])
        // Not found, as a missing dict or volume: exit 1.
        .fails(1, &["no function `nope`", "add", "caller"]);
    v.run(&["call", &app, "add", "--a", "x", "--b", "1"])
        .fails(2, &["parameter a", "s32"]);
    v.run(&[
        "call", &app, "add", "--a", "1", "--b", "1", "--memory", "64",
    ])
    .fails(2, &["--memory", "vessel.toml"]);
    v.run(&["run", &app])
        .fails(2, &["no entrypoint", "--entrypoint"]);
}

#[test]
fn remote_spawn_and_map_run_callees_in_their_own_containers() {
    let cli = ProbeCli::new();
    let call = |function: &str, args: &str| cli.via_caller(function, args);
    assert_eq!(call("add", "[2, 3]"), r#"{"ok":"5"}"#);
    assert_eq!(call("add", r#"{"a": 1, "b": 1}"#), r#"{"ok":"2"}"#);
    // Errors the caller can handle, each named.
    let err = call("nope", "[]");
    assert!(err.contains("not found") && err.contains("`nope`"), "{err}");
    let err = call("add", "[1,");
    assert!(
        err.contains("invalid argument") && err.contains("not JSON"),
        "{err}"
    );
    let err = call("add", r#"["x", 1]"#);
    assert!(
        err.contains("invalid argument") && err.contains("s32"),
        "{err}"
    );

    let out = cli.call(
        "fan-out",
        &[
            "--function",
            "add",
            "--inputs",
            r#"["[1,2]", "[3,4]", "[5]"]"#,
        ],
    );
    let out: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(out[0], "ok:3");
    assert_eq!(out[1], "ok:7");
    assert!(
        out[2].starts_with("err:") && out[2].contains("missing argument `b`"),
        "{out:?}"
    );

    assert_eq!(
        cli.call("map-square", &["--xs", "[1, 2, 3, 4, 5]"]),
        "{\"ok\":[1,4,9,16,25]}\n"
    );
    assert_eq!(
        cli.call("recurse", &["--function", "recurse", "--depth", "3"]),
        "{\"ok\":3}\n"
    );
}

#[test]
fn callee_failures_are_errors_for_the_caller() {
    let cli = ProbeCli::new();
    let call = |function: &str, args: &str| cli.via_caller(function, args);
    let err = call("spin", "[]");
    assert!(
        err.contains("call failed") && err.contains("timed out"),
        "{err}"
    );
    let err = call("bomb", "[]");
    assert!(
        err.contains("call failed") && err.contains("trapped"),
        "{err}"
    );
    let err = call("boom", r#"["kaboom"]"#);
    assert!(
        err.contains("call failed") && err.contains("trapped"),
        "{err}"
    );

    // An error the callee raised (`vessel_sdk::fail`) arrives as data.
    let err = call("fail-with", r#"["Overdrawn", "balance below zero"]"#);
    assert_eq!(
        err,
        "{\"err\":\"raised type=Overdrawn message=balance below zero traceback=\\\"\\\" \
         (call failed: function `fail-with`: raised Overdrawn: balance below zero)\"}"
    );
    // Uncaught, it is the CLI's one line, with no trap noise.
    let out = cli.v.call(
        &cli.app,
        "fail-with",
        &[
            "--type-name",
            "Overdrawn",
            "--message",
            "balance below zero",
        ],
    );
    out.fails(1, &[]);
    assert_eq!(
        out.stderr,
        "error: function `fail-with`: raised Overdrawn: balance below zero\n"
    );

    // `get` twice gives the same outcome.
    let out = cli.call(
        "get-twice",
        &["--function", "boom", "--arguments", r#"["x"]"#],
    );
    let out: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(out.len(), 2);
    assert!(
        out[0].starts_with("err:") && out[0].contains("trapped"),
        "{out:?}"
    );
    assert_eq!(out[0], out[1]);

    // Runaway recursion stops at the depth limit.
    let out = cli.call("recurse", &["--function", "recurse", "--depth", "40"]);
    assert!(out.contains("nest more than 16"), "{out}");
    // A function with one container cannot wait for itself.
    let out = cli.call("lonely", &["--function", "lonely", "--depth", "2"]);
    assert!(out.contains("max_containers"), "{out}");
}

#[test]
fn functions_open_only_what_they_are_granted() {
    let cli = ProbeCli::new();
    assert_eq!(
        cli.call("open-dict", &["--name", "granted"]),
        "{\"ok\":null}\n"
    );
    let out = cli.call("open-dict", &["--name", "other"]);
    assert!(
        out.contains("access denied") && out.contains("other"),
        "{out}"
    );
    let out = cli.call("open-volume", &["--name", "other"]);
    assert!(
        out.contains("access denied") && out.contains("other"),
        "{out}"
    );
    assert_eq!(
        cli.call("open-volume", &["--name", "granted-vol"]),
        "{\"ok\":null}\n"
    );
    // Remote calls do not widen grants: `caller` may open `granted`, but
    // `add` runs with its own (empty) grants.
    let out = cli.via_caller("open-dict", r#"["other"]"#);
    assert!(out.contains("access denied"), "{out}");
}

#[test]
fn manifest_errors_name_the_key_at_fault() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 7] = [
        (
            "[functions.f]\ncomponent = \"@PROBE@\"\nmemroy = 64\n",
            &["unknown field `memroy`", "line 3"],
        ),
        (
            "[functions.f]\ncomponent = \"missing.wasm\"\n",
            &["functions.f.component", "missing.wasm"],
        ),
        (
            "[functions.f]\ncomponent = \"@PROBE@\"\nexport = \"nope\"\n",
            &[
                "functions.f.export",
                "no exported function `nope`",
                "slow-square",
            ],
        ),
        (
            "[functions.f]\ncomponent = \"@PROBE@\"\nexport = \"add\"\nmounts = { \"/data\" = \"ghost\" }\n",
            &[
                "functions.f.mounts.\"/data\"",
                "volume `ghost` does not exist",
                "vessel volume create ghost",
            ],
        ),
        (
            "[functions.f]\ncomponent = \"@PROBE@\"\nexport = \"add\"\ntimeout = 0\n",
            &["functions.f.timeout", "more than 0"],
        ),
        (
            "[app]\nentrypoint = \"g\"\n[functions.f]\ncomponent = \"@PROBE@\"\nexport = \"add\"\n",
            &["app.entrypoint", "no function `g`"],
        ),
        (
            "[functions.f]\ncomponent = \"@PROBE@\"\nexport = \"wasi:cli/run\"\n",
            &["functions.f.export", "does not export wasi:cli/run"],
        ),
    ];
    for (manifest, needles) in cases {
        let app = s(&write_app(dir.path(), manifest));
        v.run(&["call", &app, "f"]).fails(2, needles);
    }
    // Declared names no function can reach load, with a warning.
    let app = s(&write_app(
        dir.path(),
        "[dicts.unused]\n[functions.f]\ncomponent = \"@PROBE@\"\nexport = \"add\"\n",
    ));
    let out = v.run(&["call", &app, "f", "--args", "[1, 1]"]);
    assert_eq!(out.ok(), "2\n");
    assert!(
        out.stderr.contains("warning: dict `unused`"),
        "{}",
        out.stderr
    );
    v.run(&["call", &s(&dir.path().join("nope.toml")), "f"])
        .fails(2, &["nope.toml"]);
}

#[test]
fn a_command_can_be_the_entrypoint() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let command = vessel_tests::guest("command");
    let app = s(&write_app(
        dir.path(),
        &format!(
            "[app]\nentrypoint = \"cli\"\n[functions.cli]\ncomponent = {:?}\nexport = \"wasi:cli/run\"\n",
            s(&command)
        ),
    ));
    assert_eq!(v.run(&["run", &app, "--", "echo", "hi"]).ok(), "hi\n");
    // WASI 0.2 `exit` carries success or failure only.
    assert_eq!(v.run(&["run", &app, "--", "exit", "3"]).code, 1);
    v.run(&["call", &app, "cli"])
        .fails(2, &["`cli` is a command"]);
}

#[test]
fn fuel_bounds_a_call() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = s(&write_app(
        dir.path(),
        "[functions.spin]\ncomponent = \"@PROBE@\"\nfuel = 1000000\n\
         [functions.add]\ncomponent = \"@PROBE@\"\nfuel = 1000000\n",
    ));
    v.run(&["call", &app, "spin"])
        .fails(1, &["ran out of fuel", "1000000"]);
    assert_eq!(
        v.run(&["call", &app, "add", "--args", "[1, 2]"]).ok(),
        "3\n"
    );
}

// ---- The library API: Runtime → App → Function ----

/// Loads `manifest` (see [`write_app`]) into `host`'s runtime.
fn load(host: &Host, manifest: &str) -> App {
    host.runtime
        .load_path(&write_app(host.home.path(), manifest))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn warm_containers_are_reused_and_concurrent_calls_get_their_own() {
    let host = Host::new();
    let app = load(&host, PROBE_APP);

    // The same container serves sequential calls: its state carries over.
    let count = app.function("count").unwrap();
    for expected in 1..=3 {
        assert_eq!(count.call(json!([])).await.unwrap(), json!(expected));
    }
    assert_eq!(count.stats().started, 1);

    // Calls that overlap each get a container, up to max_containers (4).
    let square = app.function("square").unwrap();
    let out = square.starmap((1..=4).map(|x| json!([x, 1500]))).await;
    let out: Vec<_> = out.into_iter().map(Result::unwrap).collect();
    assert_eq!(out, vec![json!(1), json!(4), json!(9), json!(16)]);
    assert_eq!(square.stats().started, 4);
    // More inputs than containers: they queue and reuse the warm ones.
    let out = square.map((1..=12).map(|x| json!(x))).await;
    assert_eq!(out.len(), 12);
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    let stats = square.stats();
    assert_eq!(stats.started, 4, "{stats:?}");
    assert_eq!((stats.idle, stats.busy), (4, 0), "{stats:?}");

    // A trap retires the container; the next call gets a new one.
    let boom = app.function("boom").unwrap();
    assert!(boom.call(json!(["x"])).await.is_err());
    assert!(boom.call(json!(["y"])).await.is_err());
    let stats = boom.stats();
    assert_eq!(
        (stats.started, stats.retired, stats.idle),
        (2, 2, 0),
        "{stats:?}"
    );
    app.shutdown().await.unwrap();
}

/// Polls `done` every `every` until it holds; fails with `what` once
/// `within` has passed.
async fn wait_until(within: Duration, every: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "{what}");
        tokio::time::sleep(every).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_containers_retire_with_a_final_commit() {
    let host = Host::new();
    let app = load(
        &host,
        r#"
        [volumes.data]
        create_if_missing = true
        [functions.write]
        component = "@PROBE@"
        export = "put-text"
        mounts = { "/data" = "data" }
        idle_timeout = 0.5
        commit_every = 0
        "#,
    );
    let write = app.function("write").unwrap();
    assert_eq!(
        write.call(json!(["/data/x.txt", "kept"])).await.unwrap(),
        json!({"ok": null})
    );
    let volumes = host.volumes().clone();
    // Not committed yet: background commits are off and the container is
    // warm.
    assert!(volumes.node("data", "x.txt").unwrap().is_none());
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the idle container was not retired",
        || write.stats().retired > 0,
    )
    .await;
    assert!(volumes.node("data", "x.txt").unwrap().is_some());
    assert_eq!(write.stats().idle, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_containers_commit_in_the_background_and_at_shutdown() {
    let host = Host::new();
    let app = load(
        &host,
        r#"
        [volumes.data]
        create_if_missing = true
        [functions.write]
        component = "@PROBE@"
        export = "put-text"
        mounts = { "/data" = "data" }
        commit_every = 0.3
        [functions.read]
        component = "@PROBE@"
        export = "get-text"
        mounts = { "/data" = "data" }
        "#,
    );
    let volumes = host.volumes().clone();
    let write = app.function("write").unwrap();
    write.call(json!(["/data/a.txt", "a"])).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        "the idle container never committed",
        || volumes.node("data", "a.txt").unwrap().is_some(),
    )
    .await;
    assert_eq!(write.stats().idle, 1, "committing does not retire it");
    write.call(json!(["/data/b.txt", "b"])).await.unwrap();
    app.shutdown().await.unwrap();
    assert!(volumes.node("data", "b.txt").unwrap().is_some());
    // After shutdown the app takes no calls.
    let err = app
        .function("read")
        .unwrap()
        .call(json!(["/data/a.txt"]))
        .await;
    assert!(err.unwrap_err().to_string().contains("shutting down"));
}

/// A function that waits for another still commits in the background: the
/// caller's file lands while the callee sleeps, not when the call returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_commits_in_the_background_while_it_waits_for_a_callee() {
    let host = Host::new();
    let app = load(
        &host,
        r#"
        [volumes.data]
        create_if_missing = true
        [functions.caller]
        component = "@PROBE@"
        export = "put-then-call"
        mounts = { "/data" = "data" }
        commit_every = 0.2
        [functions.slow-square]
        component = "@PROBE@"
        "#,
    );
    let volumes = host.volumes().clone();
    let call = app.function("caller").unwrap().spawn(json!([
        "/data/before-call.txt",
        "x",
        "slow-square",
        "[7, 3000]"
    ]));
    wait_until(
        Duration::from_millis(2500),
        Duration::from_millis(20),
        "no background commit while the caller waited",
        || volumes.node("data", "before-call.txt").unwrap().is_some(),
    )
    .await;
    assert_eq!(call.get().await.unwrap(), json!({"ok": "49"}));
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_host_keeps_serving_while_guests_loop_and_bomb() {
    let host = Host::new();
    let app = load(&host, PROBE_APP);
    let spin = app.function("spin").unwrap().spawn(json!([]));
    let bomb = app.function("bomb").unwrap().spawn(json!([]));
    let add = app.function("add").unwrap();
    for i in 0..20 {
        assert_eq!(add.call(json!([i, 1])).await.unwrap(), json!(i + 1));
    }
    let spin = spin.get().await.unwrap_err().to_string();
    assert!(spin.contains("timed out"), "{spin}");
    let bomb = bomb.get().await.unwrap_err().to_string();
    assert!(bomb.contains("trapped"), "{bomb}");
    assert_eq!(add.call(json!({"a": 2, "b": 2})).await.unwrap(), json!(4));
}
