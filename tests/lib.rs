//! Helpers for vessel's integration tests and benches: where the built
//! guests and the `vessel` binary are, and running the binary with a
//! private data dir; the in-process host, guests and bystander are in
//! [`harness`].

// Test helpers: a panic with a message is the right failure here.
#![allow(clippy::indexing_slicing)]

pub mod harness;
pub mod reliability;
pub mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The directory holding the test programs built by `build.rs`.
pub fn guest_dir() -> PathBuf {
    PathBuf::from(env!("VESSEL_GUEST_DIR"))
}

/// The path of the built test program `name` (`add`, `types`, ...).
pub fn guest(name: &str) -> PathBuf {
    let p = guest_dir().join(format!("{name}.wasm"));
    assert!(p.exists(), "test program {} was not built", p.display());
    p
}

/// The `vessel` binary the tests run: `$VESSEL_BIN` when set (run as
/// given: the explicit override), else `target/<profile>/vessel` beside this
/// test executable, built first (see [`build_vessel`]) so that a test never
/// runs a binary older than the sources.
pub fn vessel_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VESSEL_BIN") {
        return PathBuf::from(p);
    }
    // One build per test process; the test threads wait for it here, and
    // cargo's own lock on the target dir serialises test processes.
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    match BUILT.get_or_init(build_vessel) {
        Ok(bin) => bin.clone(),
        Err(e) => panic!("{e}"),
    }
}

/// Where this test executable was built: the target dir, the profile
/// (`debug`, `release`, ...) and the `--target` triple when one was given.
pub struct BuildLayout {
    pub target_dir: PathBuf,
    pub profile: String,
    pub profile_dir: PathBuf,
    pub target: Option<&'static str>,
}

impl BuildLayout {
    /// The layout of the running test executable.
    pub fn of_this_test() -> Result<Self, String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find the test executable: {e}"))?;
        // <target>/[<triple>/]<profile>/deps/<test>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in a cargo target dir", exe.display()))?;
        let profile = profile_dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{} has no profile name", profile_dir.display()))?;
        let above = profile_dir
            .parent()
            .ok_or_else(|| format!("{} is not in a cargo target dir", profile_dir.display()))?;
        // With `--target`, cargo puts the profile dirs under the triple.
        let triple = env!("VESSEL_TEST_TARGET");
        let (target_dir, target) = if above.file_name().is_some_and(|n| n == triple) {
            (above.parent().unwrap_or(above), Some(triple))
        } else {
            (above, None)
        };
        Ok(BuildLayout {
            target_dir: target_dir.to_owned(),
            profile: profile.to_owned(),
            profile_dir: profile_dir.to_owned(),
            target,
        })
    }
}

/// `cargo` as the outer build ran it, without the variables cargo sets for
/// a test executable: inherited, they differ from what the outer build saw
/// and make cargo rebuild crates that read them (ring reads
/// CARGO_MANIFEST_DIR), twice per test run.
pub fn cargo_command() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `cargo build -p vessel-host --bin vessel` with this test
/// executable's profile, target dir and target, so the binary beside it is
/// built from the sources as they are now (a no-op when it is up to date),
/// and returns its path.
pub fn build_vessel() -> Result<PathBuf, String> {
    let layout = BuildLayout::of_this_test()?;
    let mut cmd = cargo_command();
    cmd.args(["build", "--quiet", "-p", "vessel-host", "--bin", "vessel"])
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&layout.target_dir);
    match layout.profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    if let Some(t) = layout.target {
        cmd.args(["--target", t]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run cargo to build vessel: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the vessel binary failed ({:?}); set VESSEL_BIN to test a given binary:\n{}",
            cmd,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bin = layout
        .profile_dir
        .join(format!("vessel{}", std::env::consts::EXE_SUFFIX));
    if !bin.exists() {
        return Err(format!(
            "cargo built vessel, but {} does not exist",
            bin.display()
        ));
    }
    Ok(bin)
}

/// Whether the tests run as root (some cases need another uid).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid of `nobody`, the other user of the cases that need one.
pub const NOBODY_UID: u32 = 65534;

/// A `vessel` invocation with its own data dir, removed on drop.
pub struct Vessel {
    pub home: tempfile::TempDir,
    /// The shared backend its commands use (`VESSEL_METADATA`,
    /// `VESSEL_BLOBS`); the embedded store when `None`.
    backend: Option<(String, String)>,
}

impl Default for Vessel {
    fn default() -> Self {
        Self::new()
    }
}

impl Vessel {
    pub fn new() -> Self {
        // 0700, as vessel makes a data dir: one others can reach draws a
        // warning.
        let home = tempfile::Builder::new()
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        Vessel {
            home,
            backend: None,
        }
    }

    /// A `vessel` with its own data dir on the shared backend: PostgreSQL
    /// at `metadata` and S3 at `blobs` (see [`servers::shared`]). Two of
    /// them on the same backend are two hosts.
    pub fn on_backend(metadata: &str, blobs: &str) -> Self {
        Vessel {
            backend: Some((metadata.to_owned(), blobs.to_owned())),
            ..Vessel::new()
        }
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(vessel_bin());
        c.env("VESSEL_HOME", self.home.path())
            .env_remove("VESSEL_CACHE_DIR")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        match &self.backend {
            Some((metadata, blobs)) => c
                .env("VESSEL_METADATA", metadata)
                .env("VESSEL_BLOBS", blobs),
            None => c.env_remove("VESSEL_METADATA").env_remove("VESSEL_BLOBS"),
        };
        c
    }

    /// `vessel token create` with a `--scope` for each of `scopes`, and
    /// `--max-calls` when given: the new token.
    pub fn token(&self, scopes: &[&str], max_calls: Option<u32>) -> String {
        let max_calls = max_calls.map(|n| n.to_string());
        let mut args = vec!["token", "create"];
        for s in scopes {
            args.extend(["--scope", s]);
        }
        if let Some(n) = &max_calls {
            args.extend(["--max-calls", n]);
        }
        self.run(&args).ok().trim().to_owned()
    }

    /// The ids `vessel token list --json` shows, in its order.
    pub fn token_ids(&self) -> Vec<String> {
        let list = self.run(&["token", "list", "--json"]).ok().to_owned();
        let all: serde_json::Value = serde_json::from_str(&list)
            .unwrap_or_else(|e| panic!("token list --json is not JSON ({e}): {list}"));
        all.as_array()
            .unwrap_or_else(|| panic!("token list --json is not an array: {list}"))
            .iter()
            .map(|t| {
                t["id"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a token without an id: {t}"))
                    .to_owned()
            })
            .collect()
    }

    /// Runs `vessel call TARGET FUNCTION ARGS...` (TARGET a component or an
    /// app) to completion.
    pub fn call(&self, target: &Path, function: &str, args: &[&str]) -> Run {
        let target = target.display().to_string();
        let mut all = vec!["call", target.as_str(), function];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Runs `vessel ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run vessel: {e}"));
        Run::from(out)
    }
}

/// The outcome of one `vessel` process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        let r = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        // Guest panics print from unnamed (wasm) threads; a host panic comes
        // from `main` or a tokio worker.
        let host_panic = r
            .stderr
            .lines()
            .any(|l| l.contains("panicked at") && !l.starts_with("thread '<unnamed>'"));
        assert!(!host_panic, "vessel panicked: {}", r.stderr);
        r
    }
}

impl Run {
    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "vessel failed: {self:?}");
        &self.stdout
    }

    /// Asserts exit code `code` and that stderr contains every needle.
    pub fn fails(&self, code: i32, needles: &[&str]) {
        assert_eq!(self.code, code, "unexpected exit code: {self:?}");
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}: {}",
                self.stderr
            );
        }
    }
}

/// The repository's root directory.
/// Where scripts/setup installed the test suite's componentize-js (the
/// build scripts' default): tests that build JavaScript through `vessel
/// build` point `VESSEL_JS_TOOLS` here instead of running `npm ci` each.
pub fn js_tools_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("js-tools")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Copies the example app `components/NAME/vessel.toml` into `dir`, with
/// its `component = "..."` paths pointed at the guest built for the tests,
/// and returns the new manifest's path.
pub fn example_app(name: &str, dir: &Path) -> PathBuf {
    let src = repo_root()
        .join("components")
        .join(name)
        .join("vessel.toml");
    let text = std::fs::read_to_string(&src)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", src.display()));
    // Cargo names the artifact after the crate: `model-store` builds
    // `model_store.wasm`.
    let wasm = guest(&name.replace('-', "_"));
    let rewritten: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("component = ") {
                format!("component = {:?}", wasm.display().to_string())
            } else {
                l.to_owned()
            }
        })
        .collect();
    let out = dir.join("vessel.toml");
    std::fs::write(&out, rewritten.join("\n"))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    out
}

/// Writes `manifest` to `dir/vessel.toml`, replacing `@PROBE@` with the path
/// of the `appprobe` test program, and returns the file's path.
pub fn write_app(dir: &Path, manifest: &str) -> PathBuf {
    write_manifest(
        dir,
        &manifest.replace("@PROBE@", "@APPPROBE@"),
        &["appprobe"],
    )
}

/// Writes `manifest` to `dir/vessel.toml`, replacing `@NAME@` with the path
/// of test program `name` for each name in `programs` (`@CRASHLOOP@` for
/// `crashloop`), and returns the file's path.
pub fn write_manifest(dir: &Path, manifest: &str, programs: &[&str]) -> PathBuf {
    let mut text = manifest.to_owned();
    for p in programs {
        text = text.replace(
            &format!("@{}@", p.to_uppercase()),
            &guest(p).display().to_string(),
        );
    }
    let out = dir.join("vessel.toml");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", out.display()));
    out
}

/// A running `vessel serve`, killed if the test ends before stopping it.
pub struct Server {
    pub child: std::process::Child,
    /// The TCP address it listens on.
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (a `vessel` command with its data dir and backend set)
/// as `vessel serve` on a free loopback port, with `extra` arguments, and
/// waits until it listens.
pub fn serve(mut command: Command, extra: &[&str]) -> Server {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start vessel serve: {e}"));
    let stderr = child
        .stderr
        .take()
        .unwrap_or_else(|| panic!("vessel serve has no stderr pipe"));
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("vessel serve exited before listening"))
            .unwrap_or_else(|e| panic!("cannot read vessel serve's stderr: {e}"));
        let rest = line
            .split("serving on http://")
            .nth(1)
            .or_else(|| line.split("serving on https://").nth(1));
        if let Some(rest) = rest {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr }
}

/// Parses a JSON answer, naming the body when it is not JSON.
pub fn json_of(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`);
/// returns the status and the body. Enough for API tests without a client
/// library.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, _, body) = http_with_headers(addr, method, path, token, headers, body);
    (status, body)
}

/// [`http`], with the response's headers too (names lowercased).
pub fn http_with_headers(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, std::collections::BTreeMap<String, String>, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let sent = s.write_all(req.as_bytes()).and_then(|()| s.write_all(body));
    // A server may answer (413, say) and close before the body is sent;
    // its answer is then already here to read.
    let early_close = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        )
    };
    if let Err(e) = &sent
        && !early_close(e)
    {
        panic!("cannot send to {addr}: {e}");
    }
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw)
        && (raw.is_empty() || !early_close(&e))
    {
        panic!("cannot read from {addr}: {e} (sending: {sent:?})");
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..line_end]).trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    out
}
