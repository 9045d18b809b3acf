//! Power loss under guests (issue #17, point 8): the same power model as
//! the store-level iterations above, with guests in containers doing the
//! writing and the reading.
//!
//! - Volume commits read by a second container: a writer container writes
//!   files into its mount and commits; a reader container reloads its
//!   mount and reads every file after each commit. The power is cut at a
//!   random storage call. After the reboot the volume must hold every
//!   acknowledged commit, and everything the reader read: a state a
//!   container was shown must not be taken back by a power cut. (Before
//!   commits became visible only once durable, the reader was shown a
//!   commit whose fsync the cut stopped, and the reboot lost it.)
//! - Dict writes on the async guest path (`DictStore::deferring`): guests
//!   on several containers put their own keys and read each other's. After
//!   the reboot every put a guest was told succeeded is there, and every
//!   value a guest read.
//!
//! `VESSEL_POWER_GUEST_ITERATIONS` sets the iterations of each (default
//! 40); `VESSEL_POWER_SEED` the first seed, `VESSEL_POWER_CUT` a fixed cut.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::service::Service;
use vessel_host::storage::dict::DictStore;
use vessel_host::storage::disk::{PowerOptions, SledTear, StorageIo};
use vessel_host::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use vessel_tests::harness::{Guest, Host};

use super::{Rng, env_u64, scratch};

fn iterations() -> u64 {
    env_u64("VESSEL_POWER_GUEST_ITERATIONS").unwrap_or(40)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A store on the power model in `live/data`, or `None` when the cut came
/// during start-up.
fn open_store(live: &Path, cut: Option<u64>) -> (StorageIo, Option<Service>) {
    let data = live.join("data");
    std::fs::create_dir(&data).unwrap();
    let io = StorageIo::power_sim(
        &data,
        PowerOptions {
            cut_after: cut,
            sabotage: None,
            tear: SledTear::TornTail,
        },
    );
    let options = EmbeddedOptions {
        io: io.clone(),
        ..EmbeddedOptions::default()
    };
    let service = Service::open_embedded(&data, options).ok();
    (io, service)
}

/// Cuts the power (if the cut has not come yet) and opens what a disk
/// could have kept.
fn reboot(io: &StorageIo, seed: u64) -> Result<(tempfile::TempDir, EmbeddedStore), String> {
    io.cut_power();
    let (dir, store, _) = super::reboot(io, seed)?;
    Ok((dir, store))
}

/// Runs `iteration` for the seeds of this test, each cut at a call drawn
/// over an uncut run's calls; panics with how to replay the first failure.
fn run(label: &str, iteration: impl Fn(u64, Option<u64>) -> Result<Tally, String>) -> Tally {
    let first = env_u64("VESSEL_POWER_SEED").unwrap_or(1);
    let dry = iteration(first, None).unwrap_or_else(|e| {
        panic!("{label}: the uncut run fails ({e}); VESSEL_POWER_SEED={first}")
    });
    let span = dry.calls + dry.calls / 5 + 1;
    let mut cut_rng = Rng(first ^ 0x9e57_0000);
    let mut total = Tally::default();
    for i in 0..iterations() {
        let seed = first + i;
        let cut = env_u64("VESSEL_POWER_CUT").unwrap_or(1 + cut_rng.below(span));
        let t = iteration(seed, Some(cut)).unwrap_or_else(|e| {
            panic!(
                "{label}: seed {seed}, power cut at call {cut}: {e}\n(VESSEL_POWER_SEED={seed} \
                 VESSEL_POWER_CUT={cut} VESSEL_POWER_GUEST_ITERATIONS=1 replays it)"
            )
        });
        total.add(&t);
    }
    eprintln!(
        "power loss ({label}): {} iterations, {} acknowledged writes and {} reads by another \
         container checked after the reboot, {} cuts inside a write ({} of those landed), lost 0",
        total.iterations, total.acked, total.reads, total.cut_inside, total.landed
    );
    assert!(total.acked > 0 && total.reads > 0, "{label}: {total:?}");
    total
}

#[derive(Debug, Default)]
struct Tally {
    iterations: u64,
    acked: u64,
    reads: u64,
    cut_inside: u64,
    landed: u64,
    calls: u64,
}

impl Tally {
    fn add(&mut self, t: &Tally) {
        self.iterations += 1;
        self.acked += t.acked;
        self.reads += t.reads;
        self.cut_inside += t.cut_inside;
        self.landed += t.landed;
    }
}

// ---- volume commits read by a second container ----

/// File name → contents.
type Files = BTreeMap<String, String>;

/// What the containers did before the cut.
#[derive(Debug, Default)]
struct VolumeRun {
    /// Version → the files, of every commit the writer made: acknowledged,
    /// and the one in flight at the cut.
    states: BTreeMap<u64, Files>,
    /// The last acknowledged version.
    acked: u64,
    commits: u64,
    in_flight: Option<u64>,
    /// What the reader container was shown: version and files.
    seen: Vec<(u64, Files)>,
}

fn ok_of(v: &Value) -> Option<&Value> {
    v.as_object().and_then(|o| o.get("ok"))
}

/// The reader container reloads and reads every file; `None` if a call
/// failed (nothing was shown to it then).
async fn read_all(b: &mut Guest) -> Option<(u64, Files)> {
    let reloaded = b.try_call("reload", json!(["/data"])).await.ok()?;
    let version = ok_of(&reloaded)?.as_u64()?;
    let listed = b.try_call("fs-list", json!(["/data"])).await.ok()?;
    let mut files = Files::new();
    for name in ok_of(&listed)?.as_array()? {
        let name = name.as_str()?;
        let read = b
            .try_call("fs-read", json!([format!("/data/{name}")]))
            .await
            .ok()?;
        files.insert(name.to_owned(), ok_of(&read)?.as_str()?.to_owned());
    }
    Some((version, files))
}

async fn volume_workload(env: &Host, seed: u64, steps: usize) -> VolumeRun {
    let mut run = VolumeRun::default();
    if env.volumes().create("v").is_err() {
        return run;
    }
    run.states.insert(0, Files::new());
    let mut rng = Rng(seed);
    let mut a = env.start("volprobe", env.config(&[("v", "/data")])).await;
    let mut b = env.start("volprobe", env.config(&[("v", "/data")])).await;
    let mut files = Files::new();
    for step in 0..steps {
        let mut next = files.clone();
        for _ in 0..1 + rng.below(2) {
            let name = format!("f{}", rng.below(5));
            let mut text = format!("{seed}-{step}-{}", rng.next());
            // Now and then a larger file (its blob takes several calls).
            if rng.below(4) == 0 {
                text = text.repeat(1 + rng.below(4000) as usize);
            }
            let w = a
                .try_call("fs-write", json!([format!("/data/{name}"), text]))
                .await;
            assert_eq!(ok_of(&w.unwrap()), Some(&Value::Null), "fs-write");
            next.insert(name, text);
        }
        let committed = a.try_call("commit", json!(["/data"])).await;
        let version = committed.ok().and_then(|v| {
            let text = ok_of(&v)?.as_str()?.to_owned();
            text.split(' ').next()?.parse::<u64>().ok()
        });
        match version {
            Some(v) => {
                run.states.insert(v, next.clone());
                run.acked = v;
                run.commits += 1;
                files = next;
            }
            None => {
                run.in_flight = Some(run.acked + 1);
                run.states.insert(run.acked + 1, next);
            }
        }
        // The other container looks, after every commit and after the
        // failed one (twice: a failed commit must stay invisible).
        for _ in 0..if run.in_flight.is_some() { 2 } else { 1 } {
            if let Some(seen) = read_all(&mut b).await {
                run.seen.push(seen);
            }
        }
        if run.in_flight.is_some() {
            break;
        }
    }
    run
}

/// Files by name and size, for a message.
fn summary(files: Option<&Files>) -> String {
    match files {
        None => "no such commit".into(),
        Some(f) => f
            .iter()
            .map(|(name, text)| format!("{name}: {} bytes", text.len()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn rebooted_volume(store: &EmbeddedStore) -> Result<Option<(u64, Files)>, String> {
    // The store-level check's reader: hash-checked blobs, sizes as the
    // nodes say.
    let model = super::observe(store, &["v".to_owned()])?;
    let Some((version, raw)) = model.volumes.get("v") else {
        return Ok(None);
    };
    let mut files = Files::new();
    for (path, bytes) in raw {
        let text = String::from_utf8(bytes.clone())
            .map_err(|_| format!("{path}: not the text written"))?;
        files.insert(path.clone(), text);
    }
    Ok(Some((*version, files)))
}

fn volume_iteration(engine: &VesselEngine, seed: u64, cut: Option<u64>) -> Result<Tally, String> {
    let live = scratch();
    let (io, service) = open_store(live.path(), cut);
    let run = match service {
        None => VolumeRun::default(),
        Some(service) => {
            let env = Host::with_service(tempfile::tempdir().unwrap(), service, engine);
            let run = runtime().block_on(volume_workload(&env, seed, 10));
            io.cut_power();
            run
        }
    };
    let calls = io.calls();
    let (_dir, store) = reboot(&io, seed)?;
    let got = rebooted_volume(&store)?;
    // What a container was shown must have survived: the reboot is at the
    // newest version anyone saw (or one after, the commit in flight).
    let newest_seen = run.seen.iter().map(|(v, _)| *v).max();
    for (v, files) in &run.seen {
        if run.states.get(v) != Some(files) {
            return Err(format!(
                "the reader was shown version {v} as {}, which no commit made",
                summary(Some(files))
            ));
        }
    }
    let (version, files) = match got {
        Some(g) => g,
        None if run.states.is_empty() => (0, Files::new()),
        None => return Err("volume `v` is gone".into()),
    };
    if let Some(s) = newest_seen
        && version < s
    {
        return Err(format!(
            "a second container read version {s} ({}), but after the power cut the volume is at \
             version {version}: what it read was lost",
            summary(run.states.get(&s))
        ));
    }
    if version < run.acked {
        return Err(format!(
            "acknowledged version {} lost: the volume is at {version}",
            run.acked
        ));
    }
    let allowed = run.in_flight.map_or(run.acked, |f| f.max(run.acked));
    if version > allowed || run.states.get(&version).is_some_and(|f| *f != files) {
        return Err(format!(
            "the volume came back at version {version} with {}, which is neither \
             acknowledged nor the commit in flight",
            summary(Some(&files))
        ));
    }
    Ok(Tally {
        acked: run.commits,
        reads: run.seen.len() as u64,
        cut_inside: u64::from(run.in_flight.is_some()),
        landed: u64::from(run.in_flight.is_some_and(|f| version == f)),
        calls,
        ..Tally::default()
    })
}

#[test]
fn commits_read_by_a_second_container_survive_power_loss() {
    let engine = VesselEngine::new(EngineConfig::default()).unwrap();
    run("volume commits read by a second container", |seed, cut| {
        volume_iteration(&engine, seed, cut)
    });
}

// ---- dict writes on the async guest path ----

const DICT: &str = "kv";
const WRITERS: u64 = 4;

const DICT_APP: &str = r#"
[functions.op]
component = "@DICTPROBE@"
export = "op"
dicts = ["kv"]
max_containers = 4
"#;

/// Per key: the last value a guest was told was stored, the value in
/// flight at the cut, the highest value another guest read and how many
/// reads found one.
#[derive(Debug, Default, Clone, Copy)]
struct KeyRun {
    acked: u64,
    in_flight: Option<u64>,
    read: u64,
    reads: u64,
}

async fn dict_workload(host: &Host) -> Vec<KeyRun> {
    let mut keys = vec![KeyRun::default(); WRITERS as usize];
    let Some(dicts) = host.service.stores.dicts.clone() else {
        return keys;
    };
    if DictStore::create(dicts.as_ref(), DICT).is_err() {
        return keys;
    }
    let app = host.load(DICT_APP, &["dictprobe"]);
    let f = app.function("op").unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            // (key w as written, key w+1 as read)
            let (mut own, mut other, mut reads) = (KeyRun::default(), 0u64, 0u64);
            let next = (w + 1) % WRITERS;
            for i in 1..=12u64 {
                let put = f
                    .call(json!(["put", DICT, format!("k{w}"), i.to_string(), 0]))
                    .await;
                match put.ok().and_then(|v| v.as_str().map(str::to_owned)) {
                    Some(s) if s.starts_with("ok ") => own.acked = i,
                    _ => {
                        own.in_flight = Some(i);
                        break;
                    }
                }
                let got = f
                    .call(json!(["get", DICT, format!("k{next}"), "", 0]))
                    .await;
                if let Some(s) = got.ok().and_then(|v| v.as_str().map(str::to_owned))
                    && let Some(rest) = s.strip_prefix("some ")
                    && let Some(n) = rest.split(' ').next().and_then(|n| n.parse().ok())
                {
                    other = other.max(n);
                    reads += 1;
                }
            }
            (own, other, reads)
        }));
    }
    for (w, t) in tasks.into_iter().enumerate() {
        let (own, other, reads) = t.await.unwrap();
        let k = &mut keys[w];
        (k.acked, k.in_flight) = (own.acked, own.in_flight);
        let next = (w + 1) % WRITERS as usize;
        keys[next].read = keys[next].read.max(other);
        keys[next].reads += reads;
    }
    let _ = app.shutdown().await;
    keys
}

fn dict_iteration(engine: &VesselEngine, seed: u64, cut: Option<u64>) -> Result<Tally, String> {
    let live = scratch();
    let (io, service) = open_store(live.path(), cut);
    let keys = match service {
        None => vec![KeyRun::default(); WRITERS as usize],
        Some(service) => {
            let host = Host::with_service(tempfile::tempdir().unwrap(), service, engine);
            let keys = runtime().block_on(dict_workload(&host));
            io.cut_power();
            keys
        }
    };
    let calls = io.calls();
    let (_dir, store) = reboot(&io, seed)?;
    let mut t = Tally {
        calls,
        ..Tally::default()
    };
    for (w, k) in keys.iter().enumerate() {
        let got = match store.get(DICT, &format!("k{w}")) {
            Ok(Some(e)) => String::from_utf8_lossy(&e.value)
                .parse::<u64>()
                .map_err(|_| format!("k{w} holds {:?}", e.value))?,
            Ok(None) => 0,
            Err(vessel_host::storage::dict::DictError::NotFound(_)) => 0,
            Err(e) => return Err(format!("get k{w}: {e}")),
        };
        if got < k.acked {
            return Err(format!(
                "k{w}: a guest was told {} was stored, the reboot has {got}",
                k.acked
            ));
        }
        if got < k.read {
            return Err(format!(
                "k{w}: another guest read {}, the reboot has {got}: what it read was lost",
                k.read
            ));
        }
        if got > k.in_flight.unwrap_or(k.acked).max(k.acked) {
            return Err(format!("k{w}: {got} was never written"));
        }
        t.acked += k.acked;
        t.reads += k.reads;
        t.cut_inside += u64::from(k.in_flight.is_some());
        t.landed += u64::from(k.in_flight.is_some_and(|f| got == f));
    }
    // The store takes writes after the reboot (the dict's creation may
    // have been what the cut stopped).
    DictStore::create(&store, DICT).map_err(|e| format!("create after the reboot: {e}"))?;
    store
        .put(DICT, "after", b"1", &Default::default())
        .map_err(|e| format!("a put after the reboot: {e}"))?;
    Ok(t)
}

#[test]
fn dict_writes_on_the_async_guest_path_survive_power_loss() {
    let engine = VesselEngine::new(EngineConfig::default()).unwrap();
    run("dict writes from guests (deferring)", |seed, cut| {
        dict_iteration(&engine, seed, cut)
    });
}
