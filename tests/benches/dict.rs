//! Dict costs (embedded backend), each next to a baseline measured in the
//! same run on the same disk:
//! - `dict.get` from inside a component (the `dictbench` test program,
//!   through the Rust SDK), and the host's `DictStore::get`, vs a raw sled
//!   get of the same key (design target: the guest get within 3x): of one
//!   hot key, and over a set of 100,000 keys of 100 B–4 KiB read in a
//!   uniform and in a Zipf order, and once more with every process cache
//!   cold (the stores just opened);
//! - durable `dict.put` from 1 and from 16 concurrent containers (one
//!   fsync serves many writers; p50 of the latencies the guest measured)
//!   and the host's `DictStore::put`, vs the p50 of appending the value to
//!   a file and fsyncing it (design target: 1.2x); the single container's
//!   puts, the host's and the baseline's run in interleaved blocks, and the
//!   16 containers' wall time per put shows what sharing fsyncs buys;
//! - a scan of 100,000 keys in pages vs iterating the same keys in sled;
//! - resident memory (RSS) of a process holding 1,000,000 keys, vs the same
//!   keys in a bare sled database (each measured in a child process of its
//!   own, so neither sees the other's memory).
//!
//!   cargo bench -p vessel-tests --bench dict [-- get keyset put scan rss]
//!
//! Every timed figure is min/median/max of repeated turns, the project's
//! and its baseline's turns interleaved so a busy moment hits both.
//!
//! The guest program is built from tests/programs (wasm32-wasip2, with a
//! nested cargo, as tests/build.rs does) at the start of the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vessel_tests::harness::figures::{Spread, bench_guest_dir, cpu_time, median, rss_kib};

use vessel_host::container::{Container, ContainerConfig};
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::storage::Stores;
use vessel_host::storage::dict::{DictStore, PutOptions};
use vessel_host::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use vessel_tests::harness::Program;
use wasmtime::component::{Func, Val};

const VALUE_BYTES: usize = 100;
const CHILD_ENV: &str = "VESSEL_DICT_BENCH_CHILD";
const RSS_KEYS: usize = 1_000_000;

fn per_op(d: Duration, n: usize) -> Duration {
    d / u32::try_from(n).unwrap()
}

fn fmt(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 10_000.0 {
        format!("{ns:9.0} ns")
    } else if ns < 10_000_000.0 {
        format!("{:9.1} µs", ns / 1e3)
    } else {
        format!("{:9.1} ms", ns / 1e6)
    }
}

fn row(label: &str, ours: Duration, base_label: &str, base: Duration) {
    println!(
        "{label:<44} {}   {base_label:<34} {}   ratio {:6.2}x",
        fmt(ours),
        fmt(base),
        ours.as_secs_f64() / base.as_secs_f64().max(1e-15)
    );
}

/// `runs` timings of `f` (after one warm-up run).
fn spread(runs: usize, mut f: impl FnMut() -> Duration) -> Spread {
    f();
    Spread::of((0..runs).map(|_| f()).collect())
}

fn raw_sled(dir: &Path) -> sled::Db {
    sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .unwrap()
}

fn value(i: usize) -> Vec<u8> {
    let mut v = vec![b'x'; VALUE_BYTES];
    v[..8].copy_from_slice(&(i as u64).to_le_bytes());
    v
}

/// Builds the `dictbench` guest; returns the .wasm.
fn build_guest() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target = bench_guest_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "dictbench",
            // As a user builds a release guest; the test programs' profile
            // optimises for size, which would charge its slower code to
            // the host.
            "--config",
            "profile.release.opt-level=3",
        ])
        .arg("--manifest-path")
        .arg(root.join("tests/programs/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap();
    assert!(status.success(), "building the dictbench guest failed");
    target.join("wasm32-wasip2/release/dictbench.wasm")
}

/// The dictbench guest, compiled once for a run.
struct Guest(Program);

impl Guest {
    fn load(tmp: &Path, wasm: &Path) -> Guest {
        let engine = VesselEngine::new(EngineConfig {
            cache_dir: Some(tmp.join("cache")),
            ..EngineConfig::default()
        })
        .unwrap();
        Guest(Program::load(&engine, wasm))
    }

    /// A new container of the guest over `store`, and its export `name`.
    async fn instance(&self, store: &EmbeddedStore, name: &str) -> (Container, Func) {
        let config = ContainerConfig {
            stores: Stores {
                dicts: Some(Arc::new(store.clone())),
                volumes: None,
            },
            ..ContainerConfig::default()
        };
        let mut g = self.0.start(&config).await;
        let func = g.func(name);
        (g.c, func)
    }
}

fn bench_get(tmp: &Path) {
    const N: usize = 50_000;
    const TURNS: usize = 30;
    let store = EmbeddedStore::open(&tmp.join("get"), EmbeddedOptions::default()).unwrap();
    store.create("bench").unwrap();
    store
        .put("bench", "key", &value(1), &PutOptions::default())
        .unwrap();

    let raw = raw_sled(&tmp.join("get-raw"));
    raw.insert("key", value(1)).unwrap();
    let sled_loop = || {
        let t = Instant::now();
        for _ in 0..N {
            black_box(raw.get(black_box("key")).unwrap());
        }
        per_op(t.elapsed(), N)
    };
    let host_loop = || {
        let t = Instant::now();
        for _ in 0..N {
            black_box(store.get(black_box("bench"), black_box("key")).unwrap());
        }
        per_op(t.elapsed(), N)
    };

    let wasm = build_guest();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The three run in turns, best of 30 each, so a busy moment of the
    // machine hits all of them rather than one, and short enough that each
    // has quiet turns.
    let (guest_get, sled_get, host_get) = rt.block_on(async {
        let guest = Guest::load(tmp, &wasm);
        let (mut c, func) = guest.instance(&store, "get-loop").await;
        let mut time_loop = async |n: u32| {
            let params = [
                Val::String("bench".into()),
                Val::String("key".into()),
                Val::U32(n),
            ];
            let t = Instant::now();
            let out = c.call(func, &params, 1).await.unwrap();
            let elapsed = t.elapsed();
            let expect = Val::Result(Ok(Some(Box::new(Val::U64(
                u64::from(n) * VALUE_BYTES as u64,
            )))));
            assert_eq!(out, Some(expect));
            elapsed
        };
        // The call itself (and the dict open) without gets, then with N.
        let (mut guest, mut sled, mut host) = (Vec::new(), Vec::new(), Vec::new());
        time_loop(1000).await;
        sled_loop();
        host_loop();
        for _ in 0..TURNS {
            sled.push(sled_loop());
            host.push(host_loop());
            let fixed = time_loop(0).await;
            let with_gets = time_loop(N as u32).await;
            guest.push(per_op(with_gets.saturating_sub(fixed), N));
        }
        (Spread::of(guest), Spread::of(sled), Spread::of(host))
    });

    println!("get of one hot {VALUE_BYTES}-byte key ({N} gets a turn, {TURNS} turns):");
    spread_row(
        "  guest dict.get (component, SDK)",
        guest_get,
        "raw sled get",
        sled_get,
    );
    spread_row("  host DictStore::get", host_get, "raw sled get", sled_get);
}

/// One row of min/median/max figures beside their baseline's; the ratio is
/// of the medians, with the range of per-turn extremes beside it.
fn spread_row(label: &str, ours: Spread, base_label: &str, base: Spread) {
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64().max(1e-15);
    println!(
        "{label:<40} {}/{}/{}   {base_label:<26} {}/{}/{}   ratio {:5.2}x (min {:.2}x)",
        fmt(ours.min).trim(),
        fmt(ours.median).trim(),
        fmt(ours.max).trim(),
        fmt(base.min).trim(),
        fmt(base.median).trim(),
        fmt(base.max).trim(),
        r(ours.median, base.median),
        r(ours.min, base.min),
    );
}

const KEYSET: u32 = 100_000;
const KEYSET_READS: usize = 50_000;
const KEYSET_TURNS: usize = 7;

fn key_name(i: u32) -> String {
    format!("k{i:06}")
}

/// A small deterministic generator (xorshift64*), so every run reads the
/// same sequences.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `n` key indexes drawn uniformly from the key set.
fn uniform_reads(rng: &mut Rng, n: usize) -> Vec<u32> {
    (0..n)
        .map(|_| rng.below(u64::from(KEYSET)) as u32)
        .collect()
}

/// `n` key indexes drawn Zipf-distributed (s = 0.99, as YCSB's default)
/// over the key set; the ranks are scattered over the key space so the hot
/// keys are not neighbours in the tree.
fn zipf_reads(rng: &mut Rng, n: usize) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(KEYSET as usize);
    let mut sum = 0.0f64;
    for k in 1..=KEYSET {
        sum += 1.0 / f64::from(k).powf(0.99);
        cdf.push(sum);
    }
    (0..n)
        .map(|_| {
            let u = rng.unit() * sum;
            let rank = cdf.partition_point(|&c| c < u) as u64;
            // 7919 is coprime with 100,000: a bijection of the key set.
            ((rank * 7919 + 13) % u64::from(KEYSET)) as u32
        })
        .collect()
}

/// Reads `keys` from raw sled, naming each key as the guest does.
fn sled_reads(db: &sled::Db, keys: &[u32]) -> Duration {
    let t = Instant::now();
    for &i in keys {
        let v = db.get(key_name(i).as_bytes()).unwrap().unwrap();
        black_box(v.len());
    }
    t.elapsed()
}

/// Reads `keys` through the host's `DictStore::get`.
fn host_reads(store: &EmbeddedStore, keys: &[u32]) -> Duration {
    let t = Instant::now();
    for &i in keys {
        let v = store.get("bench", &key_name(i)).unwrap().unwrap();
        black_box(v.value.len());
    }
    t.elapsed()
}

/// Reads `keys` from inside the guest: the call with the gets less the same
/// call forming the same key names without them.
async fn guest_reads(c: &mut Container, func: Func, keys: &[u32]) -> Duration {
    let list = Val::List(keys.iter().map(|&i| Val::U32(i)).collect());
    let mut call = async |read: bool| {
        let params = [Val::String("bench".into()), list.clone(), Val::Bool(read)];
        let t = Instant::now();
        let out = c.call(func, &params, 1).await.unwrap();
        let took = t.elapsed();
        assert!(
            matches!(out, Some(Val::Result(Ok(_)))),
            "get-keys failed: {out:?}"
        );
        took
    };
    let bare = call(false).await;
    let with_gets = call(true).await;
    with_gets.saturating_sub(bare)
}

/// `dict.get` over 100,000 keys of 100 B–4 KiB (about 200 MiB), read in a
/// uniform and a Zipf order with warm caches, and in a uniform order just
/// after the stores were opened, each beside raw sled reading the same
/// keys in the same order.
fn bench_keyset(tmp: &Path) {
    let dir = tmp.join("keyset");
    let raw_dir = tmp.join("keyset-raw");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    {
        let store = EmbeddedStore::open(&dir, EmbeddedOptions::default()).unwrap();
        store.create("bench").unwrap();
        let raw = raw_sled(&raw_dir);
        let mut batch = Vec::with_capacity(10_000);
        for i in 0..KEYSET {
            let len = 100 + rng.below(4096 - 100 + 1) as usize;
            let mut v = vec![b'v'; len];
            v[..4].copy_from_slice(&i.to_le_bytes());
            batch.push((key_name(i), v));
            if batch.len() == 10_000 {
                store.update("bench", &batch).unwrap();
                let mut b = sled::Batch::default();
                for (k, v) in &batch {
                    b.insert(k.as_bytes(), v.as_slice());
                }
                raw.apply_batch(b).unwrap();
                batch.clear();
            }
        }
        raw.flush().unwrap();
    }
    let uniform = uniform_reads(&mut rng, KEYSET_READS);
    let zipf = zipf_reads(&mut rng, KEYSET_READS);
    let n = KEYSET_READS as u32;
    let wasm = build_guest();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();

    // Warm: one open store, each order read in turns by all three.
    let warm = rt.block_on(async {
        let store = EmbeddedStore::open(&dir, EmbeddedOptions::default()).unwrap();
        let raw = raw_sled(&raw_dir);
        let guest = Guest::load(tmp, &wasm);
        let (mut c, func) = guest.instance(&store, "get-keys").await;
        let mut out = Vec::new();
        for (name, keys) in [("uniform", &uniform), ("Zipf", &zipf)] {
            // One untimed pass fills every cache.
            sled_reads(&raw, keys);
            host_reads(&store, keys);
            guest_reads(&mut c, func, keys).await;
            let (mut g, mut s, mut h) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..KEYSET_TURNS {
                s.push(sled_reads(&raw, keys));
                h.push(host_reads(&store, keys));
                g.push(guest_reads(&mut c, func, keys).await);
            }
            out.push((
                name,
                Spread::of(g).per(n),
                Spread::of(s).per(n),
                Spread::of(h).per(n),
            ));
        }
        out
    });

    // Cold: each turn opens each store afresh (sled's page cache and the
    // dict's row cache empty) and reads the uniform order once. The
    // kernel's page cache stays warm: dropping it needs root.
    let cold = rt.block_on(async {
        let (mut g, mut s, mut h) = (Vec::new(), Vec::new(), Vec::new());
        let guest = Guest::load(tmp, &wasm);
        for _ in 0..KEYSET_TURNS {
            {
                let raw = raw_sled(&raw_dir);
                s.push(sled_reads(&raw, &uniform));
            }
            {
                let store = EmbeddedStore::open(&dir, EmbeddedOptions::default()).unwrap();
                h.push(host_reads(&store, &uniform));
            }
            {
                let store = EmbeddedStore::open(&dir, EmbeddedOptions::default()).unwrap();
                let (mut c, func) = guest.instance(&store, "get-keys").await;
                g.push(guest_reads(&mut c, func, &uniform).await);
            }
        }
        (
            Spread::of(g).per(n),
            Spread::of(s).per(n),
            Spread::of(h).per(n),
        )
    });

    println!(
        "get over {KEYSET} keys of 100 B-4 KiB ({KEYSET_READS} reads a turn, {KEYSET_TURNS} turns, \
         min/median/max per get):"
    );
    for (name, g, s, h) in warm {
        spread_row(&format!("  guest dict.get, {name}"), g, "raw sled get", s);
        spread_row(
            &format!("  host DictStore::get, {name}"),
            h,
            "raw sled get",
            s,
        );
    }
    let (g, s, h) = cold;
    spread_row(
        "  guest dict.get, uniform, cold",
        g,
        "raw sled get, cold",
        s,
    );
    spread_row(
        "  host DictStore::get, uniform, cold",
        h,
        "raw sled get, cold",
        s,
    );
    println!("  (cold: each store just opened, its caches empty; the OS page cache is warm)");
}

/// Runs the dictbench guest's `put-loop` in `containers` containers at
/// once (each its own instance, as separate functions would be), `blocks`
/// times `n` puts each, calling `between(block)` before each block (the
/// baselines run there, so they and the guest see the same moments of a
/// noisy machine); returns every put's latency as the guest measured it,
/// and the wall time and the process's CPU time of the guest blocks.
fn guest_puts(
    tmp: &Path,
    store: &EmbeddedStore,
    containers: usize,
    (blocks, n): (usize, u32),
    between: &mut dyn FnMut(usize),
) -> (Vec<Duration>, Duration, Duration) {
    let wasm = build_guest();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let guest = Guest::load(tmp, &wasm);
        let mut ready = Vec::new();
        for c in 0..containers {
            let (container, func) = guest.instance(store, "put-loop").await;
            ready.push((c, container, func));
        }
        let (mut all, mut wall, mut cpu) = (Vec::new(), Duration::ZERO, Duration::ZERO);
        for b in 0..blocks {
            between(b);
            let (start, cpu_start) = (Instant::now(), cpu_time());
            let mut tasks = Vec::new();
            for (c, mut container, func) in ready.drain(..) {
                tasks.push(tokio::spawn(async move {
                    let params = [
                        Val::String("bench".into()),
                        Val::String(format!("c{c}-b{b}-")),
                        Val::U32(n),
                        Val::U32(VALUE_BYTES as u32),
                    ];
                    let took = match container.call(func, &params, 1).await.unwrap() {
                        Some(Val::Result(Ok(Some(list)))) => match *list {
                            Val::List(items) => items
                                .into_iter()
                                .map(|v| match v {
                                    Val::U64(ns) => Duration::from_nanos(ns),
                                    other => panic!("not a latency: {other:?}"),
                                })
                                .collect::<Vec<_>>(),
                            other => panic!("not a list: {other:?}"),
                        },
                        other => panic!("put-loop failed: {other:?}"),
                    };
                    (c, container, func, took)
                }));
            }
            for t in tasks {
                let (c, container, func, took) = t.await.unwrap();
                all.extend(took);
                ready.push((c, container, func));
            }
            wall += start.elapsed();
            cpu += cpu_time().saturating_sub(cpu_start);
        }
        (all, wall, cpu)
    })
}

fn bench_put(tmp: &Path) {
    const N: usize = 400;
    const BLOCKS: usize = 8;
    const WRITERS: usize = 16;
    let store = EmbeddedStore::open(&tmp.join("put"), EmbeddedOptions::default()).unwrap();
    store.create("bench").unwrap();
    let v = value(7);

    // What the dict log does for one value, and no more: a `pwrite` into a
    // file zero-filled ahead (so no write grows the file and its metadata),
    // then `fdatasync`. It runs in blocks between the guest's blocks, and
    // the host's puts with it, so all three see the same machine.
    let (mut raw, mut host) = (Vec::new(), Vec::new());
    let mut f = std::fs::File::create(tmp.join("raw-fsync")).unwrap();
    f.write_all(&vec![0u8; (N + 1) * VALUE_BYTES]).unwrap();
    f.sync_all().unwrap();
    let mut offset = 0u64;
    let mut baselines = |b: usize| {
        for i in 0..N / BLOCKS {
            let t = Instant::now();
            std::os::unix::fs::FileExt::write_all_at(&f, &v, offset).unwrap();
            f.sync_data().unwrap();
            raw.push(t.elapsed());
            offset += VALUE_BYTES as u64;
            let t = Instant::now();
            store
                .put("bench", &format!("h{b}-{i}"), &v, &PutOptions::default())
                .unwrap();
            host.push(t.elapsed());
        }
    };
    let (one, _, _) = guest_puts(
        tmp,
        &store,
        1,
        (BLOCKS, (N / BLOCKS) as u32),
        &mut baselines,
    );
    let raw_p50 = median(raw);

    let rounds_before = store.dict_log_rounds();
    let (many, wall, cpu) = guest_puts(tmp, &store, WRITERS, (1, 250), &mut |_| {});
    let rounds = store.dict_log_rounds() - rounds_before;
    let many_puts = many.len();

    println!(
        "durable put of a {VALUE_BYTES}-byte value (p50 latency of {N} puts; lower is better):"
    );
    row(
        "  host DictStore::put",
        median(host),
        "pwrite+fdatasync (p50)",
        raw_p50,
    );
    row(
        "  guest dict.put, 1 container",
        median(one),
        "pwrite+fdatasync (p50)",
        raw_p50,
    );
    row(
        &format!(
            "  guest, {WRITERS} containers ({} puts per fsync)",
            many_puts as u64 / rounds.max(1)
        ),
        median(many),
        "pwrite+fdatasync (p50)",
        raw_p50,
    );
    row(
        &format!("  guest, {WRITERS} containers: wall time per put"),
        per_op(wall, many_puts),
        "pwrite+fdatasync (p50)",
        raw_p50,
    );
    // With every container putting in a loop, a put's latency cannot be
    // under the CPU all 16 puts of a turn take on the cores there are.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_put = per_op(cpu, many_puts);
    println!(
        "  ({WRITERS} containers: {} of CPU per put on {cores} cores, so a put waits at least {} \
         for the CPU of the other containers' puts)",
        fmt(per_put),
        fmt(per_put * WRITERS as u32 / cores as u32),
    );
}

fn bench_scan(tmp: &Path) {
    const KEYS: usize = 100_000;
    let store = EmbeddedStore::open(&tmp.join("scan"), EmbeddedOptions::default()).unwrap();
    store.create("bench").unwrap();
    let raw = raw_sled(&tmp.join("scan-raw"));
    let keys: Vec<(String, Vec<u8>)> = (0..KEYS)
        .map(|i| (format!("key{i:07}"), value(i)))
        .collect();
    for chunk in keys.chunks(10_000) {
        store.update("bench", chunk).unwrap();
        let mut b = sled::Batch::default();
        for (k, v) in chunk {
            b.insert(k.as_bytes(), v.as_slice());
        }
        raw.apply_batch(b).unwrap();
    }
    let scan = |with_values: bool| {
        spread(5, || {
            let t = Instant::now();
            let mut cursor: Option<String> = None;
            let mut n = 0;
            loop {
                let page = store
                    .scan("bench", "", cursor.as_deref(), 1000, with_values)
                    .unwrap();
                n += page.items.len();
                black_box(&page.items);
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(n, KEYS);
            t.elapsed()
        })
    };
    let with_values = scan(true);
    let keys_only = scan(false);
    let sled_iter = spread(5, || {
        let t = Instant::now();
        let mut n = 0;
        for item in raw.iter() {
            black_box(item.unwrap());
            n += 1;
        }
        assert_eq!(n, KEYS);
        t.elapsed()
    });
    println!("scan of {KEYS} keys in pages of 1,000 (whole scan, min/median/max of 5):");
    spread_row(
        "  scan with values",
        with_values,
        "raw sled iteration",
        sled_iter,
    );
    spread_row(
        "  scan of keys only",
        keys_only,
        "raw sled iteration",
        sled_iter,
    );
}

/// The child's side: fill `dir` with 1M keys, print the RSS before and
/// after.
fn rss_child(kind: &str, dir: &Path) {
    let before = rss_kib();
    let entry = |i: usize| (format!("key{i:07}"), value(i)[..16].to_vec());
    let t = Instant::now();
    match kind {
        "dict" => {
            let store = EmbeddedStore::open(dir, EmbeddedOptions::default()).unwrap();
            store.create("bench").unwrap();
            let mut batch = Vec::with_capacity(10_000);
            for i in 0..RSS_KEYS {
                batch.push(entry(i));
                if batch.len() == 10_000 {
                    store.update("bench", &batch).unwrap();
                    batch.clear();
                }
            }
            assert_eq!(store.len("bench").unwrap(), RSS_KEYS as u64);
        }
        _ => {
            let db = raw_sled(dir);
            for i in 0..RSS_KEYS {
                let (k, v) = entry(i);
                db.insert(k.as_bytes(), v).unwrap();
                if (i + 1) % 10_000 == 0 {
                    db.flush().unwrap();
                }
            }
            assert_eq!(db.len(), RSS_KEYS);
        }
    }
    println!("{} {} {}", before, rss_kib(), t.elapsed().as_millis());
}

fn bench_rss(tmp: &Path) {
    let run = |kind: &str| -> (u64, u64, u64) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, kind)
            .arg(tmp.join(format!("rss-{kind}")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let n: Vec<u64> = text
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        (n[0], n[1], n[2])
    };
    let (d0, d1, dms) = run("dict");
    let (s0, s1, sms) = run("sled");
    let mib = |k: u64| k as f64 / 1024.0;
    println!("memory of {RSS_KEYS} keys with 16-byte values (RSS of a fresh process):");
    println!(
        "  {:<42} {:7.1} MiB ({:+.1} MiB)   {:<34} {:7.1} MiB ({:+.1} MiB)   ratio {:6.2}x",
        "dict store after 100 updates of 10,000",
        mib(d1),
        mib(d1.saturating_sub(d0)),
        "raw sled inserts, same keys",
        mib(s1),
        mib(s1.saturating_sub(s0)),
        d1 as f64 / s1.max(1) as f64
    );
    println!(
        "  (filling took {dms} ms with fsynced updates, {sms} ms for raw sled inserts, flushed \
         every 10,000)"
    );
}

fn main() {
    if let Ok(kind) = std::env::var(CHILD_ENV) {
        let dir = PathBuf::from(std::env::args().nth(1).unwrap());
        rss_child(&kind, &dir);
        return;
    }
    // Stores and baselines share one temporary directory, so one disk.
    let tmp = tempfile::tempdir().unwrap();
    // `cargo bench --bench dict -- get scan` runs only those parts.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    type Part = (&'static str, fn(&Path));
    let parts: [Part; 5] = [
        ("get", bench_get),
        ("keyset", bench_keyset),
        ("put", bench_put),
        ("scan", bench_scan),
        ("rss", bench_rss),
    ];
    println!("vessel dict benchmark (embedded store, durability: sync)");
    for (name, run) in parts {
        if only.is_empty() || only.iter().any(|o| o == name) {
            println!();
            run(tmp.path());
        }
    }
}
