//! vessel-client, the Python client (clients/python), against a real
//! `vessel serve`: its own unittest suite (clients/python/tests), and one
//! module (tests/programs/pyboth/shared.py) run unchanged inside a Python
//! guest and on the host through the client, with the same output.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use vessel_tests::{Server, Vessel, repo_root};

use crate::python::build_probe;

const APP: &str = r#"
[app]
name = "pyboth"

[functions.run]
component = "pyboth.wasm"
dicts = ["both-guest", "none-guest"]
volumes = ["both-guest"]

[functions.square]
component = "pyboth.wasm"

[functions.fail]
component = "pyboth.wasm"
"#;

/// The client's virtualenv python, the client freshly installed into it by
/// scripts/python-client (once per test run).
fn client_python() -> &'static PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let script = repo_root().join("scripts/python-client");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/python-client failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A served data dir with the pyboth app, and a token with every scope.
struct Served {
    v: Vessel,
    server: Server,
    token: String,
    _app_dir: tempfile::TempDir,
}

fn serve_app() -> Served {
    let (app_dir, app) = build_probe("build-python", "pyboth", APP);
    let v = Vessel::new();
    let token = v.token(&["dict:*:rw", "volume:*:rw", "app:*"], None);
    let server = vessel_tests::serve(v.command(), &["--app", &app.display().to_string()]);
    Served {
        v,
        server,
        token,
        _app_dir: app_dir,
    }
}

/// Runs the client's python with `args`, talking to `s`; returns stdout.
fn python(s: &Served, args: &[&str], extra_env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(client_python());
    cmd.args(args)
        .current_dir(repo_root())
        .env("VESSEL_URL", format!("http://{}", s.server.addr))
        .env("VESSEL_TOKEN", &s.token)
        .env_remove("VESSEL_HOME")
        .env_remove("PYTHONPATH");
    for (k, val) in extra_env {
        cmd.env(k, val);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the client's python: {e}"));
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn python_client_suite_against_vessel_serve() {
    let s = serve_app();
    let read_only = s.v.token(&["dict:*:r"], None);
    let home = s.v.home.path().display().to_string();
    python(
        &s,
        &[
            "-m",
            "unittest",
            "discover",
            "-v",
            "-s",
            "clients/python/tests",
        ],
        &[
            ("VESSEL_TEST_READ_TOKEN", read_only),
            ("VESSEL_TEST_HOME", home),
            ("VESSEL_TEST_APP", "pyboth".to_owned()),
        ],
    );
}

#[test]
fn one_module_runs_the_same_in_a_guest_and_on_the_host() {
    let s = serve_app();
    // In the guest: the app's `run` calls shared.exercise("guest"), reached
    // through the client's Function.remote.
    let in_guest = python(
        &s,
        &[
            "-c",
            "import vessel; print(vessel.Function.from_name('pyboth', 'run').remote('guest'))",
        ],
        &[],
    );
    // On the host: the same module, imported from the app's folder.
    let on_host = python(
        &s,
        &[
            "-c",
            "import sys; sys.path.insert(0, 'tests/programs/pyboth'); import shared; print(shared.exercise('host'))",
        ],
        &[],
    );
    // `run` returns the JSON text, which the client prints as it is.
    let guest: serde_json::Value = serde_json::from_str(in_guest.trim())
        .unwrap_or_else(|e| panic!("`run` returned no JSON text ({e}): {in_guest}"));
    let host: serde_json::Value = serde_json::from_str(on_host.trim())
        .unwrap_or_else(|e| panic!("the host's output is not JSON ({e}): {on_host}"));
    assert_eq!(
        guest, host,
        "the module saw different things in the guest and on the host"
    );
    // And it saw real work, not two empty runs.
    let text = host.to_string();
    for expected in [
        "héllo",
        "cas refused",
        "NotFound dict",
        "hello again",
        "NotFound file",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} is missing from {text}"
        );
    }
    // The host's run went to the server's store: the CLI sees its volume.
    let listed = s.v.run(&["volume", "ls", "both-host"]).ok().to_owned();
    assert!(listed.contains("copy.txt"), "{listed}");
}

#[test]
fn clients_page_runs_as_documented() {
    let add = vessel_tests::guest("add").display().to_string();
    crate::walkthrough::run_beside_checkout("docs/clients.md", &[("ADD_WASM", &add)]);
}
