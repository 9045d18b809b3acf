//! Crash tests (issue #7, item 1): the real `vessel` binary is killed with
//! SIGKILL at random points, seeded (the seed is printed; set
//! `VESSEL_CRASH_SEED` to replay it), while
//! - eight containers of one app commit to one volume in loops,
//! - eight containers of one app cycle dict put, update and increment,
//! - `vessel volume put` (files and directories) and `vessel dict put`
//!   processes run one after the other.
//!
//! Each scenario runs 70 kills by default; `VESSEL_CRASH_ITERATIONS=N`
//! runs N (the long mode, see RELIABILITY.md). After every kill the test
//! opens the store as the next process would and checks:
//! - the store opens;
//! - each volume's head version is at least the last acknowledged one;
//! - the state is exactly what the acknowledged operations made, plus at
//!   most the one operation per writer that was in flight at the kill;
//! - garbage collection (minimum age 0, nothing running) removes exactly
//!   the blobs no head names, and every blob a head names survives and
//!   verifies ([`check_gc`]);
//! - the killed hosts' container directories do not pile up (each host
//!   removes those of dead hosts when it starts its first container).
//!
//! What is exactly checkable: every writer owns its paths and keys and
//! runs its operations one at a time, each returning only once durable, and
//! it prints an acknowledgement after each returned. So the landed
//! operations of a writer are a prefix of its sequence; if its last
//! acknowledged operation is number A, the prefix ends at A or A+1 (the
//! one in flight may have landed before its line was printed), and never
//! earlier. The check finds which of the two states the store holds and
//! requires it to be that state exactly, byte for byte; the next round's
//! writers resume from there. A volume's head version is then known
//! exactly too: every landed commit made one version.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use vessel_tests::reliability::{
    GcCheck, Rng, VolumeTree, check_gc, container_dirs, content, crash_iterations, dict_entries,
    line_reader, open_store, volume_tree,
};
use vessel_tests::{Vessel, write_manifest};

/// Kills per scenario in the normal suite (three scenarios: over 200).
const DEFAULT_KILLS: u64 = 70;
const WRITERS: usize = 8;

const VOL_APP: &str = r#"
[app]
name = "crash-volume"

[volumes.crashvol]
create_if_missing = true

[functions.vol-main]
component = "@CRASHLOOP@"
max_containers = 1
timeout = 86400

[functions.vol-writer]
component = "@CRASHLOOP@"
mounts = { "/data" = "crashvol" }
max_containers = 8
# Only explicit commits, so each landed commit is one the writer made.
commit_every = 0
timeout = 86400
memory = 64
"#;

const DICT_APP: &str = r#"
[app]
name = "crash-dict"

[dicts.crashdict]
create_if_missing = true

[functions.dict-main]
component = "@CRASHLOOP@"
max_containers = 1
timeout = 86400

[functions.dict-writer]
component = "@CRASHLOOP@"
dicts = ["crashdict"]
max_containers = 8
timeout = 86400
memory = 64
"#;

/// A `vessel call APP FUNCTION` child whose stdout lines arrive on `rx`.
struct Host {
    child: Child,
    rx: mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Host {
    fn start(v: &Vessel, app: &Path, function: &str, args: serde_json::Value) -> Host {
        let mut child = v
            .command()
            .arg("call")
            .arg(app)
            .arg(function)
            .arg("--args")
            .arg(args.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (rx, reader) = line_reader(child.stdout.take().unwrap());
        Host { child, rx, reader }
    }

    /// SIGKILL, then every line the child wrote before it died.
    fn kill(mut self) -> Vec<String> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.reader.join().unwrap();
        self.rx.try_iter().collect()
    }
}

/// Lets the host run until a random point: one round in five dies at a
/// random moment of start-up (app load, compile cache, store open,
/// containers starting); the others after a random number of
/// acknowledgements plus a random few milliseconds, so the kill lands
/// anywhere inside an operation. Every line read goes to `on_line`.
fn run_until_kill(
    host: Host,
    rng: &mut Rng,
    round: u64,
    tag: &str,
    mut on_line: impl FnMut(&str),
) -> bool {
    let mid_loop = !round.is_multiple_of(5);
    if mid_loop {
        let want = 1 + rng.below(80);
        let deadline = Instant::now() + Duration::from_secs(120);
        for _ in 0..want {
            let left = deadline.saturating_duration_since(Instant::now());
            match host.rx.recv_timeout(left) {
                Ok(line) => on_line(&line),
                Err(e) => {
                    let _ = host.kill();
                    panic!("{tag}: no acknowledgement from the host ({e})");
                }
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(5_000)));
    } else {
        std::thread::sleep(Duration::from_millis(rng.below(600)));
    }
    for line in host.kill() {
        on_line(&line);
    }
    mid_loop
}

/// Container directories left behind: only the last host's (its main
/// function's and its writers'), as every host removes those of the hosts
/// killed before it when it starts its first container.
fn check_container_dirs(data_dir: &Path, tag: &str) {
    let dirs = container_dirs(data_dir);
    assert!(
        dirs.len() <= WRITERS + 1,
        "{tag}: {} container directories pile up: {dirs:?}",
        dirs.len()
    );
}

fn field(parts: &[&str], i: usize, line: &str) -> u64 {
    parts
        .get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output {line:?}"))
}

// ---------------------------------------------------------------------------
// (a) Commit loops of many containers.

/// What volume writer `w` leaves after its commits 0..=j: `cur` and
/// `tmp{j}` hold j, and each of the eight slots what the last commit that
/// wrote it put there.
fn expected_writer_files(w: u32, j: u64) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    out.insert(format!("w{w}/cur"), j.to_string().into_bytes());
    out.insert(format!("w{w}/tmp{j}"), j.to_string().into_bytes());
    for q in 0..8u64.min(j + 1) {
        let i = q + (j - q) / 8 * 8;
        out.insert(format!("w{w}/slot{q}"), content(1, w, i));
    }
    out
}

#[test]
fn volume_commits_of_many_containers_survive_kill_9() {
    let kills = crash_iterations(DEFAULT_KILLS);
    let mut rng = Rng::for_test("crash::volume_commits");
    let seed = rng.seed();
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = write_manifest(dir.path(), VOL_APP, &["crashloop"]);
    // Per writer: the last iteration whose commit landed (None: none yet).
    let mut landed: Vec<Option<u64>> = vec![None; WRITERS];
    let mut max_acked_version = 0u64;
    let mut versions_seen = HashSet::new();
    let (mut acked_total, mut unacked_landed, mut mid_loop_kills) = (0u64, 0u64, 0u64);
    let mut gc_total = GcCheck::default();
    for round in 0..kills {
        let tag = format!("crash::volume_commits seed {seed} round {round}");
        let starts: Vec<u64> = landed.iter().map(|j| j.map_or(0, |j| j + 1)).collect();
        // Per writer: the last iteration acknowledged in this round.
        let mut acked: Vec<Option<u64>> = vec![None; WRITERS];
        let host = Host::start(&v, &app, "vol-main", json!([starts]));
        let mid = run_until_kill(host, &mut rng, round, &tag, |line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.first(), Some(&"vol"), "{tag}: host said {line:?}");
            let w = field(&parts, 1, line) as usize;
            let i = field(&parts, 2, line);
            let version = field(&parts, 3, line);
            assert!(w < WRITERS, "{tag}: {line:?}");
            let next = acked[w].map_or(starts[w], |a| a + 1);
            assert_eq!(i, next, "{tag}: writer {w} skipped an iteration");
            acked[w] = Some(i);
            assert!(
                versions_seen.insert(version),
                "{tag}: version {version} acknowledged twice"
            );
            max_acked_version = max_acked_version.max(version);
            acked_total += 1;
        });
        mid_loop_kills += u64::from(mid);

        check_container_dirs(v.home.path(), &tag);
        let service = open_store(v.home.path(), &tag);
        let Some(VolumeTree {
            version,
            files,
            dirs,
        }) = volume_tree(&service, "crashvol")
        else {
            assert!(
                acked.iter().all(Option::is_none) && landed.iter().all(Option::is_none),
                "{tag}: the volume is gone"
            );
            continue;
        };
        assert!(
            version >= max_acked_version,
            "{tag}: head version {version} < acknowledged {max_acked_version}"
        );
        let mut expected_version = 0;
        for w in 0..WRITERS {
            // The last commit known to have landed: acknowledged now, or
            // found by the previous check.
            let known = acked[w].or(landed[w]);
            let cur = files
                .get(&format!("w{w}/cur"))
                .map(|b| std::str::from_utf8(b).unwrap().parse::<u64>().unwrap());
            let ok = match (known, cur) {
                (None, None) => true,
                (None, Some(j)) => j == 0,
                (Some(k), Some(j)) => j == k || j == k + 1,
                (Some(_), None) => false,
            };
            assert!(
                ok,
                "{tag}: writer {w}: last acknowledged commit {known:?}, the head holds {cur:?}"
            );
            if cur.is_some() && cur != known {
                unacked_landed += 1;
            }
            landed[w] = cur;
            let Some(j) = cur else { continue };
            expected_version += j + 1;
            let prefix = format!("w{w}/");
            let mine: BTreeMap<String, Vec<u8>> = files
                .iter()
                .filter(|(p, _)| p.starts_with(&prefix))
                .map(|(p, b)| (p.clone(), b.clone()))
                .collect();
            let want = expected_writer_files(w as u32, j);
            if mine != want {
                let got: BTreeSet<_> = mine.keys().collect();
                let exp: BTreeSet<_> = want.keys().collect();
                let differ: Vec<_> = want
                    .iter()
                    .filter(|(p, b)| mine.get(*p).is_some_and(|m| m != *b))
                    .map(|(p, _)| p)
                    .collect();
                panic!(
                    "{tag}: writer {w} after commit {j}: paths {got:?}, expected {exp:?}; \
                     contents differ at {differ:?}"
                );
            }
        }
        let want_dirs: BTreeSet<String> = (0..WRITERS)
            .filter(|w| landed[*w].is_some())
            .map(|w| format!("w{w}"))
            .collect();
        assert_eq!(dirs, want_dirs, "{tag}: directories");
        let writers_files: usize = (0..WRITERS)
            .filter_map(|w| landed[w].map(|j| expected_writer_files(w as u32, j).len()))
            .sum();
        assert_eq!(files.len(), writers_files, "{tag}: unexpected files");
        assert_eq!(
            version, expected_version,
            "{tag}: the head version is not the number of landed commits"
        );
        let gc = check_gc(&service, &tag);
        gc_total.orphans += gc.orphans;
        gc_total.live = gc.live;
    }
    assert!(mid_loop_kills >= kills * 3 / 4);
    assert!(
        acked_total >= mid_loop_kills,
        "every mid-loop kill came after at least one acknowledgement"
    );
    eprintln!(
        "crash::volume_commits: {kills} kills, {acked_total} acknowledged commits, \
         {unacked_landed} landed unacknowledged, {} orphan blobs collected, {} live, nothing lost",
        gc_total.orphans, gc_total.live
    );
}

// ---------------------------------------------------------------------------
// (b) Dict put / update / increment loops.

/// What dict writer `w` leaves after its operations 0..ops (see the
/// crashloop guest: op 3i puts, 3i+1 updates, 3i+2 increments).
fn expected_writer_entries(w: u32, ops: u64) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let puts = ops.div_ceil(3);
    for q in 0..16u64.min(puts) {
        let i = q + (puts - 1 - q) / 16 * 16;
        out.insert(format!("p{w}/{q:02}"), content(2, w, i));
    }
    let updates = (ops + 1) / 3;
    if let Some(last) = updates.checked_sub(1) {
        let tag = format!("i{last}").into_bytes();
        out.insert(format!("u{w}/a"), tag.clone());
        out.insert(format!("u{w}/b"), tag);
        for q in 0..4u64.min(updates) {
            let i = q + (last - q) / 4 * 4;
            out.insert(format!("u{w}/c{q}"), content(2, w, i));
        }
    }
    let increments = ops / 3;
    if increments > 0 {
        out.insert(format!("c{w}"), increments.to_string().into_bytes());
    }
    out
}

/// The writer a key of `crashdict` belongs to.
fn key_writer(key: &str) -> Option<usize> {
    let rest = key
        .strip_prefix('p')
        .or_else(|| key.strip_prefix('u'))
        .or_else(|| key.strip_prefix('c'))?;
    let digits = rest.split('/').next()?;
    digits.parse().ok()
}

#[test]
fn dict_put_update_increment_loops_survive_kill_9() {
    let kills = crash_iterations(DEFAULT_KILLS);
    let mut rng = Rng::for_test("crash::dict_loops");
    let seed = rng.seed();
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = write_manifest(dir.path(), DICT_APP, &["crashloop"]);
    // Per writer: how many of its operations landed.
    let mut landed: Vec<u64> = vec![0; WRITERS];
    let (mut acked_total, mut unacked_landed, mut mid_loop_kills) = (0u64, 0u64, 0u64);
    for round in 0..kills {
        let tag = format!("crash::dict_loops seed {seed} round {round}");
        let starts = landed.clone();
        // Per writer: operations acknowledged so far (a count, so the
        // next one is its number).
        let mut acked = landed.clone();
        let host = Host::start(&v, &app, "dict-main", json!([starts]));
        let mid = run_until_kill(host, &mut rng, round, &tag, |line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.first(), Some(&"dict"), "{tag}: host said {line:?}");
            let w = field(&parts, 1, line) as usize;
            let op = field(&parts, 2, line);
            assert!(w < WRITERS, "{tag}: {line:?}");
            assert_eq!(op, acked[w], "{tag}: writer {w} skipped an operation");
            if op % 3 == 2 {
                // Increments are exactly once across every crash: the
                // (i+1)-th increment returns i+1.
                let n = field(&parts, 3, line);
                assert_eq!(n, op / 3 + 1, "{tag}: writer {w}'s increment {op}");
            }
            acked[w] = op + 1;
            acked_total += 1;
        });
        mid_loop_kills += u64::from(mid);

        check_container_dirs(v.home.path(), &tag);
        let service = open_store(v.home.path(), &tag);
        let Some(entries) = dict_entries(&service, "crashdict") else {
            assert!(
                acked.iter().all(|a| *a == 0),
                "{tag}: the dict is gone after acknowledged writes"
            );
            continue;
        };
        let mut by_writer: Vec<BTreeMap<String, Vec<u8>>> = vec![BTreeMap::new(); WRITERS];
        for (k, val) in entries {
            let w = key_writer(&k)
                .filter(|w| *w < WRITERS)
                .unwrap_or_else(|| panic!("{tag}: unexpected key {k:?}"));
            by_writer[w].insert(k, val);
        }
        for w in 0..WRITERS {
            let known = acked[w];
            let found = [known, known + 1]
                .into_iter()
                .find(|ops| by_writer[w] == expected_writer_entries(w as u32, *ops));
            let Some(ops) = found else {
                let want = expected_writer_entries(w as u32, known);
                let lost: Vec<_> = want
                    .iter()
                    .filter(|(k, b)| by_writer[w].get(*k) != Some(*b))
                    .map(|(k, _)| k)
                    .collect();
                panic!(
                    "{tag}: writer {w} acknowledged {known} operations; the dict matches \
                     neither {known} nor {} of them (differs at {lost:?})",
                    known + 1
                );
            };
            unacked_landed += ops - known;
            landed[w] = ops;
        }
        check_gc(&service, &tag);
    }
    assert!(mid_loop_kills >= kills * 3 / 4);
    assert!(acked_total >= mid_loop_kills);
    eprintln!(
        "crash::dict_loops: {kills} kills, {acked_total} acknowledged operations \
         ({} per writer on average), {unacked_landed} landed unacknowledged, nothing lost",
        landed.iter().sum::<u64>() / WRITERS as u64
    );
}

// ---------------------------------------------------------------------------
// (c) The CLI: `vessel volume put` and `vessel dict put`.

/// One CLI operation and the state it makes when it lands.
enum CliOp {
    /// Files (path → bytes) one `volume put` commits as one version.
    Volume(BTreeMap<String, Vec<u8>>),
    /// A key and the bytes `dict put` stores.
    Dict(String, Vec<u8>),
}

#[test]
fn cli_volume_and_dict_puts_survive_kill_9() {
    let kills = crash_iterations(DEFAULT_KILLS);
    let mut rng = Rng::for_test("crash::cli_puts");
    let seed = rng.seed();
    let v = Vessel::new();
    v.run(&["volume", "create", "cv"]).ok();
    v.run(&["dict", "create", "cd"]).ok();
    let local = tempfile::tempdir().unwrap();
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut version = 0u64;
    let mut entries: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // Mean run time of finished processes per kind, to aim the kills
    // inside them.
    let mut mean_ms = [80.0f64; 3];
    let (mut killed, mut ops, mut acked, mut killed_landed) = (0u64, 0u64, 0u64, 0u64);
    let mut gc_orphans = 0u64;
    while killed < kills {
        let i = ops;
        ops += 1;
        let tag = format!("crash::cli_puts seed {seed} op {i}");
        let kind = rng.below(3) as usize;
        let mut cmd = v.command();
        let op = match kind {
            0 => {
                let remote = format!("f{}", i % 6);
                let bytes = content(1, 100, i);
                let path = local.path().join(format!("file{i}"));
                std::fs::write(&path, &bytes).unwrap();
                cmd.args(["volume", "put", "cv"])
                    .arg(&path)
                    .args([remote.as_str(), "--force"]);
                CliOp::Volume(BTreeMap::from([(remote, bytes)]))
            }
            1 => {
                let remote = format!("d{}", i % 3);
                let src = local.path().join(format!("dir{i}"));
                std::fs::create_dir_all(src.join("sub")).unwrap();
                let mut planned = BTreeMap::new();
                for (n, name) in ["a", "b", "sub/c"].iter().enumerate() {
                    let bytes = content(1, 101 + n as u32, i);
                    std::fs::write(src.join(name), &bytes).unwrap();
                    planned.insert(format!("{remote}/{name}"), bytes);
                }
                cmd.args(["volume", "put", "cv"])
                    .arg(&src)
                    .args([remote.as_str(), "--force"]);
                CliOp::Volume(planned)
            }
            _ => {
                let key = format!("k{}", i % 6);
                let text = format!("v{i}-{}", "x".repeat(rng.below(4096) as usize));
                let value = serde_json::Value::String(text);
                cmd.args(["dict", "put", "cd", &key, &value.to_string()]);
                CliOp::Dict(key, serde_json::to_vec(&value).unwrap())
            }
        };
        let delay = Duration::from_micros(rng.below((mean_ms[kind] * 2000.0) as u64 + 1));
        let start = Instant::now();
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if start.elapsed() >= delay {
                break None;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let ok = match status {
            Some(status) => {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                assert!(status.success(), "{tag}: the put failed: {status}: {err}");
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                mean_ms[kind] = 0.8 * mean_ms[kind] + 0.2 * ms;
                acked += 1;
                true
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed += 1;
                false
            }
        };

        let service = open_store(v.home.path(), &tag);
        let landed = match &op {
            CliOp::Volume(planned) => {
                let tree = volume_tree(&service, "cv").unwrap();
                let (got_version, got) = (tree.version, tree.files);
                let mut after = files.clone();
                after.extend(planned.clone());
                let landed = if got == after && got_version == version + 1 {
                    true
                } else if !ok && got == files && got_version == version {
                    false
                } else {
                    let differ: Vec<_> = after
                        .iter()
                        .filter(|(p, b)| got.get(*p) != Some(*b))
                        .map(|(p, _)| p)
                        .collect();
                    panic!(
                        "{tag}: after a {} put the volume is at version {got_version} \
                         (was {version}) and differs from the put's state at {differ:?}",
                        if ok { "finished" } else { "killed" }
                    );
                };
                if landed {
                    files = after;
                    version += 1;
                }
                landed
            }
            CliOp::Dict(key, value) => {
                let got = dict_entries(&service, "cd").unwrap();
                let mut after = entries.clone();
                after.insert(key.clone(), value.clone());
                let landed = if got == after {
                    true
                } else if !ok && got == entries {
                    false
                } else {
                    panic!(
                        "{tag}: after a {} `dict put {key}` the dict holds {:?}",
                        if ok { "finished" } else { "killed" },
                        got.keys().collect::<Vec<_>>()
                    );
                };
                if landed {
                    entries = after;
                }
                landed
            }
        };
        if !ok && landed {
            killed_landed += 1;
        }
        gc_orphans += check_gc(&service, &tag).orphans;
    }
    assert!(acked > 0, "no put ever finished");
    eprintln!(
        "crash::cli_puts: {killed} kills in {ops} puts ({acked} acknowledged, \
         {killed_landed} killed after landing), {gc_orphans} orphan blobs collected, nothing lost"
    );
}
