//! I/O fault injection (issue #7, item 3): the Nth write, fsync, rename or
//! create of an operation fails, for N = 1 up to how many such calls the
//! operation makes (counted in a dry run), once (the next call succeeds)
//! and forever (until cleared), with EIO and with ENOSPC. The operations
//! are real ones: a volume commit with its blob put, a dict put, an upload
//! of a local file into a volume; then the same through the `vessel` CLI
//! (`vessel volume put`) and through guests (a dict put and a volume write
//! whose host calls get the error).
//!
//! Every case checks: the operation fails with an error naming the call
//! (`disk full` for ENOSPC); no panic; nothing acknowledged before is lost
//! or corrupt, in the process and after reopening; the failed operation is
//! wholly absent or wholly present; and once the fault clears the store
//! recovers. A failed fsync is never retried into a success: after one,
//! the same process refuses further writes ("reopen the store"), unless the
//! failed fsync was of a temporary blob file, which is discarded and
//! written afresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vessel_host::storage::dict::{DictError, DictStore, PutOptions};
use vessel_host::storage::disk::{FaultError, FaultMode, FaultPlan, OpCounts, OpKind, StorageIo};
use vessel_host::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::volume::{Change, VolumeError, VolumeStore};
use vessel_tests::harness::{nodes, scratch};
use vessel_tests::{Run, Vessel, guest};

/// The operations faults are injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// put_blob of new bytes, then a commit naming it.
    VolumeCommit,
    /// A dict put.
    DictPut,
    /// put_blob_file of a 3 MiB local file (three 1 MiB writes), then a
    /// commit.
    UploadFile,
}

const DICT: &str = "kv";

/// What was acknowledged before the fault.
struct Baseline {
    files: BTreeMap<String, Vec<u8>>,
    version: u64,
    dict: BTreeMap<String, Vec<u8>>,
}

fn open(dir: &Path, io: StorageIo) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        EmbeddedOptions {
            io,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap()
}

fn baseline(store: &EmbeddedStore) -> Baseline {
    VolumeStore::create(store, "v").unwrap();
    DictStore::create(store, DICT).unwrap();
    let mut files = BTreeMap::new();
    let mut version = 0;
    for i in 0..3u8 {
        let data = vec![i; 1000 + usize::from(i)];
        let id = store.put_blob(&data).unwrap();
        let path = format!("base/f{i}");
        version = store
            .commit(
                "v",
                &[Change::Put {
                    path: path.clone(),
                    node: nodes::file(id, data.len() as u64),
                }],
            )
            .unwrap()
            .version;
        files.insert(path, data);
    }
    let mut dict = BTreeMap::new();
    for i in 0..3u8 {
        let (k, v) = (format!("base{i}"), vec![b'a' + i; 50]);
        store.put(DICT, &k, &v, &PutOptions::default()).unwrap();
        dict.insert(k, v);
    }
    Baseline {
        files,
        version,
        dict,
    }
}

/// The bytes an operation writes.
fn payload(op: Op) -> &'static [u8] {
    static UPLOAD: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    match op {
        Op::VolumeCommit => b"the new file's contents",
        Op::DictPut => b"the new value",
        Op::UploadFile => {
            UPLOAD.get_or_init(|| (0..3 << 20).map(|i: u32| (i % 251) as u8).collect())
        }
    }
}

fn target(op: Op) -> &'static str {
    match op {
        Op::VolumeCommit => "new/file",
        Op::DictPut => "new",
        Op::UploadFile => "upload/file",
    }
}

/// An operation's failure: its message and whether it is a full disk.
#[derive(Debug)]
struct Failed {
    message: String,
    disk_full: bool,
}

impl From<VolumeError> for Failed {
    fn from(e: VolumeError) -> Self {
        Failed {
            disk_full: matches!(e, VolumeError::DiskFull(_)),
            message: e.to_string(),
        }
    }
}

impl From<DictError> for Failed {
    fn from(e: DictError) -> Self {
        Failed {
            disk_full: matches!(e, DictError::DiskFull(_)),
            message: e.to_string(),
        }
    }
}

fn perform(op: Op, store: &EmbeddedStore, local: &Path) -> Result<(), Failed> {
    let data = payload(op);
    match op {
        Op::VolumeCommit => {
            let id = store.put_blob(data)?;
            store.commit(
                "v",
                &[Change::Put {
                    path: target(op).into(),
                    node: nodes::file(id, data.len() as u64),
                }],
            )?;
        }
        Op::DictPut => {
            store.put(DICT, target(op), data, &PutOptions::default())?;
        }
        Op::UploadFile => {
            let (id, size) = store.put_blob_file(local)?;
            store.commit(
                "v",
                &[Change::Put {
                    path: target(op).into(),
                    node: nodes::file(id, size),
                }],
            )?;
        }
    }
    Ok(())
}

/// Whether the operation's effect is visible: wholly (`true`) or not at
/// all (`false`); `Err` if partly or corrupt. A volume's version may be one
/// further (a retry used to be applied in memory before it was refused;
/// now a poisoned store refuses it up front).
fn landed(op: Op, store: &EmbeddedStore, base: &Baseline) -> Result<bool, String> {
    let data = payload(op);
    match op {
        Op::DictPut => match store.get(DICT, target(op)).map_err(|e| e.to_string())? {
            None => Ok(false),
            Some(e) if e.value == data => Ok(true),
            Some(e) => Err(format!("dict value of {} bytes is neither", e.value.len())),
        },
        Op::VolumeCommit | Op::UploadFile => {
            let snap = store.snapshot("v").map_err(|e| e.to_string())?;
            let node = snap
                .nodes
                .iter()
                .find(|(p, _)| p == target(op))
                .map(|(_, n)| n.clone());
            match node {
                None if snap.version == base.version => Ok(false),
                Some(n) if (base.version + 1..=base.version + 2).contains(&snap.version) => {
                    let id = n.blob.ok_or("no blob")?;
                    let bytes = store
                        .read_blob(&id, 0, n.size)
                        .map_err(|e| format!("the new file's blob: {e}"))?;
                    if bytes == data {
                        Ok(true)
                    } else {
                        Err("the new file's contents differ".into())
                    }
                }
                other => Err(format!(
                    "version {} (baseline {}), new file {:?}",
                    snap.version,
                    base.version,
                    other.is_some()
                )),
            }
        }
    }
}

/// Everything acknowledged before is there, byte for byte, and every blob
/// the head names is whole.
fn check_baseline(store: &EmbeddedStore, base: &Baseline) -> Result<(), String> {
    let snap = store.snapshot("v").map_err(|e| e.to_string())?;
    for (path, node) in &snap.nodes {
        if let Some(id) = &node.blob {
            let bytes = store
                .read_blob(id, 0, node.size)
                .map_err(|e| format!("{path}: {e}"))?;
            if let Some(want) = base.files.get(path)
                && &bytes != want
            {
                return Err(format!("{path} differs"));
            }
        }
    }
    for path in base.files.keys() {
        if !snap.nodes.iter().any(|(p, _)| p == path) {
            return Err(format!("{path} is missing"));
        }
    }
    for (k, v) in &base.dict {
        match store.get(DICT, k).map_err(|e| e.to_string())? {
            Some(e) if &e.value == v => {}
            other => return Err(format!("dict key {k}: {other:?}")),
        }
    }
    Ok(())
}

/// One case's outcome, for the totals.
#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    recovered_in_process: u64,
    needed_reopen: u64,
    landed_anyway: u64,
}

fn local_file(dir: &Path) -> PathBuf {
    let p = dir.join("upload.bin");
    std::fs::write(&p, payload(Op::UploadFile)).unwrap();
    p
}

/// How many calls of each kind `op` makes after the baseline.
fn dry_run(op: Op) -> OpCounts {
    let dir = scratch();
    let local = local_file(dir.path());
    let io = StorageIo::faulty(FaultPlan::default());
    let store = open(&dir.path().join("data"), io.clone());
    baseline(&store);
    io.reset_counts();
    perform(op, &store, &local).unwrap();
    io.counts()
}

fn run_case(op: Op, kind: OpKind, nth: u64, mode: FaultMode, error: FaultError, t: &mut Tally) {
    let what = format!("{op:?}, {kind} #{nth} {mode:?} {error:?}");
    let dir = scratch();
    let local = local_file(dir.path());
    let data_dir = dir.path().join("data");
    let io = StorageIo::faulty(FaultPlan::default());
    let store = open(&data_dir, io.clone());
    let base = baseline(&store);
    io.reset_counts();
    io.set_faults(FaultPlan::single(kind, nth, mode, error));

    let failed = match perform(op, &store, &local) {
        Err(f) => f,
        Ok(()) => panic!("{what}: the operation succeeded although the fault fired"),
    };
    assert!(io.faults_fired() > 0, "{what}: the fault never fired");
    assert!(
        failed
            .message
            .contains(&format!("injected fault, {kind} #{nth}")),
        "{what}: the error does not name the failed call: {}",
        failed.message
    );
    if error == FaultError::Enospc {
        assert!(
            failed.disk_full && failed.message.contains("out of disk space"),
            "{what}: ENOSPC is not reported as a full disk: {failed:?}"
        );
    }
    // In this process: nothing acknowledged is lost, the operation is all
    // or nothing.
    check_baseline(&store, &base).unwrap_or_else(|e| panic!("{what}: before reopening: {e}"));
    landed(op, &store, &base).unwrap_or_else(|e| panic!("{what}: half an operation: {e}"));

    // The fault clears; the same process tries again.
    io.clear_faults();
    let retried = perform(op, &store, &local);
    let failed_fsync_of_temp = kind == OpKind::Fsync && failed.message.contains("/blobs/tmp/");
    match &retried {
        Ok(()) => {
            // A failed fsync is never retried into a success, except the
            // fsync of a temporary blob file, whose bytes are written anew.
            assert!(
                kind != OpKind::Fsync || failed_fsync_of_temp,
                "{what}: a retry after a failed fsync reported success: {}",
                failed.message
            );
            assert!(landed(op, &store, &base).unwrap(), "{what}");
            t.recovered_in_process += 1;
        }
        Err(e) => {
            assert!(
                e.message.contains("reopen the store"),
                "{what}: the retry fails without saying how to recover: {}",
                e.message
            );
            t.needed_reopen += 1;
        }
    }
    drop(store);

    // Reopened (plain I/O): everything acknowledged is there, the
    // operation all or nothing, and it can be done now.
    let store = open(&data_dir, StorageIo::default());
    check_baseline(&store, &base).unwrap_or_else(|e| panic!("{what}: after reopening: {e}"));
    let present = landed(op, &store, &base)
        .unwrap_or_else(|e| panic!("{what}: half an operation after reopening: {e}"));
    if retried.is_ok() {
        assert!(present, "{what}: an acknowledged retry was lost");
    } else if present {
        t.landed_anyway += 1;
    } else {
        perform(op, &store, &local)
            .unwrap_or_else(|e| panic!("{what}: no recovery after reopening: {e:?}"));
        assert!(landed(op, &store, &base).unwrap(), "{what}");
    }
    t.cases += 1;
}

fn matrix(op: Op) {
    let counts = dry_run(op);
    let mut t = Tally::default();
    let kinds = [OpKind::Write, OpKind::Fsync, OpKind::Rename, OpKind::Create];
    for kind in kinds {
        let end = counts.get(kind);
        for nth in 1..=end {
            for (mode, error) in [
                (FaultMode::Once, FaultError::Eio),
                (FaultMode::Forever, FaultError::Eio),
                (FaultMode::Forever, FaultError::Enospc),
            ] {
                run_case(op, kind, nth, mode, error, &mut t);
            }
        }
    }
    eprintln!(
        "I/O faults ({op:?}): calls per operation write {} fsync {} rename {} create {}; \
         {} cases (N = 1..end x once/forever EIO + forever ENOSPC), {} recovered in the same \
         process, {} needed a reopen ({} of those had landed whole); lost 0",
        counts.write,
        counts.fsync,
        counts.rename,
        counts.create,
        t.cases,
        t.recovered_in_process,
        t.needed_reopen,
        t.landed_anyway
    );
    assert!(counts.write > 0 && counts.fsync > 0, "{counts:?}");
}

#[test]
fn faults_in_a_volume_commit() {
    matrix(Op::VolumeCommit);
}

#[test]
fn faults_in_a_dict_put() {
    matrix(Op::DictPut);
}

#[test]
fn faults_in_an_upload_from_a_file() {
    matrix(Op::UploadFile);
}

/// The rule, on its own: after a failed fsync of sled's files or of the
/// blob folder, no write of the same process is acknowledged until the
/// store is reopened, however often it is retried.
#[test]
fn a_failed_fsync_is_never_retried_into_success() {
    let (mut cases, mut temp) = (0, 0);
    for op in [Op::DictPut, Op::VolumeCommit] {
        let dry = dry_run(op);
        for nth in 1..=dry.fsync {
            let dir = scratch();
            let local = local_file(dir.path());
            let io = StorageIo::faulty(FaultPlan::default());
            let store = open(&dir.path().join("data"), io.clone());
            baseline(&store);
            assert_eq!(VolumeStore::readiness(&store), [("embedded store", Ok(()))]);
            io.reset_counts();
            io.set_faults(FaultPlan::single(
                OpKind::Fsync,
                nth,
                FaultMode::Once,
                FaultError::Eio,
            ));
            let first = perform(op, &store, &local).unwrap_err();
            if first.message.contains("/blobs/tmp/") {
                temp += 1;
                continue;
            }
            cases += 1;
            // `/v1/ready` says so: the store cannot serve writes.
            let ready = VolumeStore::readiness(&store);
            assert!(
                matches!(ready.as_slice(), [("embedded store", Err(why))] if why.contains("failed")),
                "{op:?} fsync #{nth}: {ready:?}"
            );
            for attempt in 0..3 {
                let fsyncs = io.counts().fsync;
                let again = perform(op, &store, &local);
                let e = again.expect_err("a write after a failed fsync was acknowledged");
                assert!(e.message.contains("reopen the store"), "{e:?}");
                // And it did not even try: no new fsync was issued for it.
                assert_eq!(
                    io.counts().fsync,
                    fsyncs,
                    "{op:?} fsync #{nth}, attempt {attempt}"
                );
            }
        }
    }
    eprintln!(
        "I/O faults (failed fsync, then 3 retries): {cases} cases refused every retry until \
         reopened; {temp} failed fsyncs of a temporary blob file were left out"
    );
    assert!(cases > 0);
}

// ---- through the CLI and guests ----

fn with_faults(v: &Vessel, plan: &str, args: &[&str]) -> Run {
    let out = v
        .command()
        .env("VESSEL_FAULTS", plan)
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn cli_volume_put_fails_cleanly_and_recovers() {
    let v = Vessel::new();
    let files = tempfile::tempdir().unwrap();
    let base = files.path().join("base.bin");
    std::fs::write(&base, b"acknowledged before any fault").unwrap();
    let new = files.path().join("new.bin");
    v.run(&["volume", "create", "v"]).ok();
    v.run(&["volume", "put", "v", &s(&base), "base.bin"]).ok();
    let got = files.path().join("got.bin");
    let get = |name: &str| -> Option<Vec<u8>> {
        let _ = std::fs::remove_file(&got);
        let r = v.run(&["volume", "get", "v", name, &s(&got)]);
        match r.code {
            0 => Some(std::fs::read(&got).unwrap()),
            _ => {
                assert!(r.stderr.contains("no such file"), "{r:?}");
                None
            }
        }
    };
    let mut runs = 0;
    let mut ends = Vec::new();
    for kind in ["write", "fsync", "rename", "create"] {
        let mut n = 1;
        loop {
            let dest = format!("new-{kind}-{n}.bin");
            // New contents every time, so no put is deduplicated.
            let mut new_bytes = dest.as_bytes().to_vec();
            new_bytes.extend((0..200_000u32).map(|i| (i % 253) as u8));
            std::fs::write(&new, &new_bytes).unwrap();
            let out = with_faults(
                &v,
                &format!("{kind}:{n}:once"),
                &["volume", "put", "v", &s(&new), &dest],
            );
            runs += 1;
            if !out.stderr.contains("injected fault") {
                // N is past the calls a put makes: it simply works.
                out.ok();
                assert!(n > 1, "`vessel volume put` made no {kind} call");
                ends.push(format!("{kind} {}", n - 1));
                break;
            }
            out.fails(1, &["error:", &format!("injected fault, {kind} #{n}")]);
            // Nothing acknowledged lost; the put all or nothing.
            assert_eq!(
                get("base.bin").as_deref(),
                Some(&b"acknowledged before any fault"[..])
            );
            if let Some(b) = get(&dest) {
                assert!(b == new_bytes, "{kind} #{n}: a partial file was published");
            }
            // The fault is gone with that process: the put works now.
            v.run(&["volume", "put", "v", &s(&new), &dest, "--force"])
                .ok();
            assert!(get(&dest).unwrap() == new_bytes);
            n += 1;
        }
    }
    // A full disk, from the first write on.
    std::fs::write(&new, b"never stored").unwrap();
    let out = with_faults(
        &v,
        "write:1:forever:enospc",
        &["volume", "put", "v", &s(&new), "full.bin"],
    );
    out.fails(
        1,
        &["error:", "out of disk space", "no space left on device"],
    );
    assert_eq!(get("full.bin"), None);
    // A bad plan is a usage error naming the expected form.
    with_faults(&v, "fsync:0", &["volume", "list"]).fails(2, &["KIND:N"]);
    eprintln!(
        "I/O faults (CLI volume put): calls per put {}; {runs} runs with a fault plan, lost 0",
        ends.join(", ")
    );
}

#[test]
fn guests_get_the_error_and_the_store_recovers() {
    let v = Vessel::new();
    v.run(&["dict", "create", DICT]).ok();
    v.run(&["dict", "put", DICT, "base", "\"kept\""]).ok();
    let dictprobe = s(&guest("dictprobe"));
    let put = |plan: Option<&str>, value: &str| -> Run {
        let args = [
            "call", &dictprobe, "op", "--name", "put-json", "--dict", DICT, "--key", "k", "--arg",
            value, "--n", "0",
        ];
        match plan {
            Some(p) => with_faults(&v, p, &args),
            None => v.run(&args),
        }
    };
    // The first fsync after the store opened is the put's: the guest gets
    // the WIT `io` error, the host goes on.
    let out = put(Some("fsync:1:forever"), "\"v1\"");
    let text = out.ok();
    assert!(
        text.contains("error: i/o error") && text.contains("injected fault, fsync #1"),
        "{text}"
    );
    // A full disk is `no-space`.
    let out = put(Some("fsync:1:forever:enospc"), "\"v2\"");
    let text = out.ok();
    assert!(
        text.contains("error: no space") && text.contains("no space left on device"),
        "{text}"
    );
    assert_eq!(v.run(&["dict", "get", DICT, "base"]).ok(), "\"kept\"\n");
    // Recovered: the put works and is there.
    assert!(put(None, "\"v3\"").ok().contains("ok v"));
    assert_eq!(v.run(&["dict", "get", DICT, "k"]).ok(), "\"v3\"\n");

    // A volume write through the object API (blob put + commit) whose
    // rename fails.
    let volprobe = s(&guest("volprobe"));
    v.run(&["volume", "create", "objs"]).ok();
    let write = |plan: Option<&str>| -> Run {
        let args = [
            "call",
            &volprobe,
            "obj-write",
            "--args",
            r#"["objs", "a.txt", "hello", true]"#,
        ];
        match plan {
            Some(p) => with_faults(&v, p, &args),
            None => v.run(&args),
        }
    };
    let out = write(Some("rename:1:once"));
    let text = out.ok();
    assert!(
        text.contains("\"err\"") && text.contains("injected fault, rename #1"),
        "{text}"
    );
    let ls = v.run(&["volume", "ls", "objs"]);
    assert!(!ls.ok().contains("a.txt"), "{ls:?}");
    assert_eq!(write(None).ok(), "{\"ok\":null}\n");
    assert!(v.run(&["volume", "ls", "objs"]).ok().contains("a.txt"));
}

// ---- visibility after durability (issue #17, point 8) ----

/// A second reader's view: the newest version it saw, and whether the new
/// file was there (or `Err` naming the read that failed).
type View = Result<(u64, bool), String>;

/// What a second reader sees of volume `v`: its version by every read
/// path (snapshot, info, listing, node), which must agree, and whether
/// the new file is there.
fn second_reader_view(store: &EmbeddedStore) -> View {
    let snap = store.snapshot("v").map_err(|e| format!("snapshot: {e}"))?;
    let info = store.info("v").map_err(|e| format!("info: {e}"))?;
    let listed = VolumeStore::list(store)
        .map_err(|e| format!("list: {e}"))?
        .into_iter()
        .find(|i| i.name == "v")
        .ok_or("`v` is not listed")?;
    let node = store
        .node("v", target(Op::VolumeCommit))
        .map_err(|e| format!("node: {e}"))?;
    let in_dir = store
        .list_dir("v", "new", false)
        .map(|l| !l.is_empty())
        .unwrap_or(false);
    let in_snap = snap
        .nodes
        .iter()
        .any(|(p, _)| p == target(Op::VolumeCommit));
    let versions = [snap.version, info.version, listed.version];
    // The read paths may each be before or after the commit (it lands
    // between them when it succeeds), but no path may show it while
    // another (read later) does not, unless the commit succeeded.
    let seen = in_snap || node.is_some() || in_dir || versions.iter().any(|v| *v > versions[0]);
    Ok((versions.into_iter().max().unwrap_or(0), seen))
}

/// A volume commit is visible to another reader of the same store (what
/// other containers, HTTP and the CLI through the owner read) only once
/// its fsync has succeeded, and never when the fsync failed: a second
/// thread reads while the commit's first fsync is pending (held 400 ms by
/// a hook), and again after. On main the reader saw the commit during the
/// fsync, and a failed commit stayed visible.
#[test]
fn a_second_reader_never_sees_a_commit_before_its_fsync_or_after_it_failed() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, mpsc};
    use std::time::Duration;
    for fail in [true, false] {
        let dir = scratch();
        let io = StorageIo::faulty(FaultPlan::default());
        let store = open(&dir.path().join("data"), io.clone());
        let base = baseline(&store);
        let data = payload(Op::VolumeCommit);
        let blob = store.put_blob(data).unwrap();

        // The reader starts when the commit's first fsync is about to run.
        let (start_tx, start_rx) = mpsc::channel::<()>();
        let (seen_tx, seen_rx) = mpsc::channel::<View>();
        let reader = {
            let store = store.clone();
            std::thread::spawn(move || {
                if start_rx.recv().is_ok() {
                    let _ = seen_tx.send(second_reader_view(&store));
                }
            })
        };
        // What the reader answered while the fsync was held.
        let during: Arc<Mutex<Option<View>>> = Arc::default();
        let fired = Arc::new(AtomicBool::new(false));
        let seen_rx = Arc::new(Mutex::new(seen_rx));
        {
            let (during, fired, seen_rx) = (during.clone(), fired.clone(), seen_rx.clone());
            let start_tx = Mutex::new(Some(start_tx));
            io.set_call_hook(Some(Arc::new(move |kind, _path| {
                if kind != OpKind::Fsync || fired.swap(true, Ordering::SeqCst) {
                    return;
                }
                if let Some(tx) = start_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                let got = seen_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_millis(400));
                *during.lock().unwrap() = got.ok();
            })));
        }
        io.reset_counts();
        if fail {
            io.set_faults(FaultPlan::single(
                OpKind::Fsync,
                1,
                FaultMode::Forever,
                FaultError::Eio,
            ));
        }
        let committed = store.commit(
            "v",
            &[Change::Put {
                path: target(Op::VolumeCommit).into(),
                node: nodes::file(blob, data.len() as u64),
            }],
        );
        assert!(fired.load(Ordering::SeqCst), "the commit issued no fsync");
        assert_eq!(committed.is_err(), fail, "{committed:?}");
        // The reader's answer: during the held fsync, or after it.
        let early = during.lock().unwrap().take();
        let answered_early = early.is_some();
        let answer = match early {
            Some(a) => a,
            None => seen_rx
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
                .expect("the second reader never answered"),
        };
        reader.join().unwrap();
        io.set_call_hook(None);
        let (version, seen) = answer.unwrap_or_else(|e| panic!("fail={fail}: the reader: {e}"));
        assert!(
            !(answered_early && seen),
            "fail={fail}: a second reader saw version {version} while its fsync was pending"
        );
        if fail {
            assert!(
                !seen && version == base.version,
                "a second reader saw a commit whose fsync failed (version {version}, \
                 baseline {})",
                base.version
            );
            // Never afterwards either, by any read path, however often.
            for _ in 0..3 {
                let (v, s) = second_reader_view(&store).unwrap();
                assert!(!s && v == base.version, "a failed commit became visible");
            }
            check_baseline(&store, &base).unwrap();
            // Writes stay refused until the store is reopened.
            let again = store.commit(
                "v",
                &[Change::Remove {
                    path: "base/f0".into(),
                }],
            );
            assert!(
                again.unwrap_err().to_string().contains("reopen the store"),
                "a write after a failed fsync was accepted"
            );
        } else {
            assert!(committed.is_ok());
            assert!(seen && version == base.version + 1, "{version} {seen}");
        }
        drop(store);
        let store = open(&dir.path().join("data"), StorageIo::default());
        check_baseline(&store, &base).unwrap();
        let (v, s) = second_reader_view(&store).unwrap();
        if !fail {
            assert!(
                s && v == base.version + 1,
                "an acknowledged commit was lost"
            );
        }
    }
}
