//! Other users of the host (issue #17, point 4): a data dir vessel makes is
//! theirs to read nothing of, whatever the umask; the owner socket serves
//! its own uid only; an existing data dir open to others is named with its
//! fix. (The compile cache's cases are in `compile_cache`.)

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vessel_tests::{Run, Vessel, guest};

/// `cmd` run under umask 022, the usual default, whatever the test's is.
fn umask_022(cmd: &mut Command) -> &mut Command {
    // SAFETY: umask is async-signal-safe and touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o022);
            Ok(())
        })
    }
}

/// `vessel` for the data dir `data`, under umask 022.
fn vessel_in(v: &Vessel, data: &Path) -> Command {
    let mut c = v.command();
    c.env("VESSEL_HOME", data);
    umask_022(&mut c);
    c
}

fn run(mut cmd: Command, args: &[&str]) -> Run {
    Run::from(cmd.args(args).output().unwrap())
}

/// A `vessel serve` whose stderr goes to a file, so a test can read what
/// it logged. Killed on drop unless stopped.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(mut cmd: Command, log: PathBuf) -> Serve {
        let file = std::fs::File::create(&log).unwrap();
        let child = cmd
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let s = Serve { child, log };
        s.wait_for_log("serving on http://");
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "vessel serve never logged {needle:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve: {status:?}: {}", self.log());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every entry under `root` (itself included) whose mode gives group or
/// others any right, with its mode; symlinks (whose mode means nothing)
/// are skipped. Entries below a directory in `skip_below` are not listed.
fn open_to_others(root: &Path, skip_below: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue; // gone meanwhile (a container's file)
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.mode() & 0o077 != 0 {
            found.push(format!("{} {:o}", p.display(), meta.mode() & 0o7777));
        }
        if meta.is_dir()
            && !skip_below.contains(&p)
            && let Ok(rd) = std::fs::read_dir(&p)
        {
            stack.extend(rd.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    found.sort();
    found
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn a_data_dir_made_under_umask_022_is_private() {
    let v = Vessel::new();
    let data = v.home.path().join("data");
    let probe = guest("volprobe").display().to_string();
    let add = guest("add").display().to_string();
    let server = Serve::start(vessel_in(&v, &data), v.home.path().join("serve.log"));

    // Through the owner's socket: every part of the store.
    let local = v.home.path().join("f.txt");
    std::fs::write(&local, b"volume file").unwrap();
    let local = local.display().to_string();
    run(vessel_in(&v, &data), &["volume", "create", "vol"]).ok();
    run(
        vessel_in(&v, &data),
        &["volume", "put", "vol", &local, "/f.txt"],
    )
    .ok();
    run(vessel_in(&v, &data), &["dict", "create", "d"]).ok();
    run(
        vessel_in(&v, &data),
        &["dict", "put", "d", "k", "\"secret\""],
    )
    .ok();
    run(
        vessel_in(&v, &data),
        &["token", "create", "--scope", "dict:d:r"],
    )
    .ok();
    assert_eq!(
        run(
            vessel_in(&v, &data),
            &["call", &add, "add", "--args", "[1,1]"]
        )
        .ok(),
        "2\n"
    );
    // A guest with a mount, alive while the tree is walked: its container
    // directory is there, with the files it wrote (in the mount's working
    // tree and its scratch).
    let mut guest_call = vessel_in(&v, &data)
        .args([
            "call",
            &probe,
            "write-then-sleep",
            "--volume",
            "vol:/data",
            "--args",
            r#"["/data/g.txt", "from a guest", 6000]"#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let containers = data.join("containers");
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        let found = std::fs::read_dir(&containers).ok().and_then(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.join("mounts/0/g.txt").exists())
        });
        if let Some(dir) = found {
            break dir;
        }
        assert!(Instant::now() < deadline, "the guest never wrote g.txt");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The guest's own files have the umask's modes (wasmtime-wasi sets
    // none); its container directory keeps every other user out of them.
    assert_eq!(mode(&live), 0o700, "{}", live.display());
    let open = open_to_others(&data, std::slice::from_ref(&live));
    assert!(open.is_empty(), "open to group or others: {open:#?}");
    for part in [
        "db",
        "blobs",
        "wal",
        "cache/components",
        "run",
        "containers",
    ] {
        assert_eq!(mode(&data.join(part)), 0o700, "{part}");
    }
    assert_eq!(mode(&data), 0o700);
    let socket = data.join("run/vessel.sock");
    assert!(socket.exists(), "no owner socket at {}", socket.display());

    let out = Run::from(guest_call.wait_with_output().unwrap());
    assert_eq!(out.ok(), "{\"ok\":null}\n");
    guest_call = vessel_in(&v, &data)
        .args(["volume", "get", "vol", "g.txt", "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let got = guest_call.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.stdout), "from a guest");
    server.stop();

    // With the owner gone: the store opened and closed directly as well.
    run(vessel_in(&v, &data), &["dict", "put", "d", "k2", "1"]).ok();
    let open = open_to_others(&data, &[]);
    assert!(open.is_empty(), "open to group or others: {open:#?}");
}

#[test]
fn an_open_data_dir_gets_a_warning_with_its_fix() {
    let v = Vessel::new();
    let data = v.home.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(vessel_in(&v, &data), &["dict", "list"]);
    out.ok();
    let shown = data.display().to_string();
    for needle in [
        "warning:",
        shown.as_str(),
        "mode 755",
        &format!("chmod -R go-rwx {shown}"),
    ] {
        assert!(
            out.stderr.contains(needle),
            "no {needle:?} in {}",
            out.stderr
        );
    }
    // Fixed as told: no warning.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run(vessel_in(&v, &data), &["dict", "list"]);
    out.ok();
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

/// How a connection made as another user ended.
#[derive(Debug, PartialEq, Eq)]
enum AsOther {
    /// connect() failed: the file permissions kept the user out.
    NoConnect,
    /// Connected, sent a request, and got an answer.
    Served,
    /// Connected, sent a request, and the server closed without a byte.
    Refused,
}

/// Connects to the Unix socket `path` as uid/gid `uid` from a forked child
/// (SO_PEERCRED records the credentials at connect time), sends an API
/// request and reports what came back.
fn connect_as(uid: u32, path: &Path) -> AsOther {
    use std::os::unix::ffi::OsStrExt;
    // Everything the child needs is made before the fork: after it, only
    // async-signal-safe calls.
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len(), "socket path too long");
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let request = b"GET /v1/dicts HTTP/1.1\r\nHost: vessel\r\nConnection: close\r\n\r\n";
    // SAFETY: the child runs only async-signal-safe calls on memory made
    // before the fork, then _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        unsafe {
            let code = 'child: {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                {
                    break 'child 10;
                }
                let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if fd < 0 {
                    break 'child 11;
                }
                let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
                if libc::connect(fd, (&raw const addr).cast(), len) != 0 {
                    break 'child 2;
                }
                // A refused peer may be closed on before the request is
                // sent; what matters is what comes back.
                let _ = libc::write(fd, request.as_ptr().cast(), request.len());
                let mut buf = [0u8; 64];
                match libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) {
                    n if n > 0 => 0,
                    0 => 1,
                    _ => 1,
                }
            };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "child: {status}");
    match libc::WEXITSTATUS(status) {
        0 => AsOther::Served,
        1 => AsOther::Refused,
        2 => AsOther::NoConnect,
        other => panic!("the child could not become uid {uid} ({other})"),
    }
}

#[test]
fn the_owner_socket_refuses_other_uids() {
    if !vessel_tests::is_root() {
        eprintln!("skipped: becoming another uid to connect needs root");
        return;
    }
    let v = Vessel::new();
    let data = v.home.path().join("data");
    let server = Serve::start(vessel_in(&v, &data), v.home.path().join("serve.log"));
    let socket = data.join("run/vessel.sock");
    assert!(socket.exists());
    let nobody = vessel_tests::NOBODY_UID;
    // As made, nobody else gets as far as connecting.
    assert_eq!(connect_as(nobody, &socket), AsOther::NoConnect);

    // The file permissions opened by mistake (here by hand): the uid check
    // still refuses the connection.
    for dir in [v.home.path(), data.as_path(), &data.join("run")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(connect_as(nobody, &socket), AsOther::Refused);
    server.wait_for_log(&format!(
        "refused a connection to the owner socket from uid {nobody}"
    ));
    // The owner itself is still served, through the same socket.
    assert_eq!(connect_as(0, &socket), AsOther::Served);
    run(vessel_in(&v, &data), &["dict", "create", "d"]).ok();
    server.stop();
}
