//! Load (issue #7, item 7): 64 containers hammer one volume and one dict
//! for a bounded time. Each worker loops: increment the shared counter
//! `hits`, put its own key, write one of its four files in the mounted
//! volume and commit. Printed per run: iterations and operations per
//! second, p50/p99 latency of the dict operations and of write + commit
//! (as the guest measures them), peak RSS of this process (VmHWM, reset
//! before each run), and the check that nothing acknowledged was lost
//! (`check_load`: every increment counted, every last put and last
//! committed file present byte for byte, one version per commit).
//!
//! Baselines measured in the same run, before the 64 containers:
//! - the same operations as raw store calls from 64 Rust threads (no
//!   guest, no WASI, no call machinery);
//! - the same guest loop in 1 container.
//!
//!   cargo bench -p vessel-tests --bench load
//!
//! `VESSEL_BENCH_LOAD_SECS` sets the time per run (default 10),
//! `VESSEL_BENCH_LOAD_WORKERS` the number of containers (default 64).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::time::{Duration, Instant};
use vessel_tests::harness::figures::env_u64;

use serde_json::json;
use vessel_host::app::Runtime;
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::service::Service;
use vessel_host::storage::dict::PutOptions;
use vessel_tests::harness::nodes;
use vessel_tests::reliability::{
    LoadCheck, WorkerReport, check_load, content, load_manifest, open_store, parse_load_main,
    peak_rss_kib, percentile, reset_peak_rss,
};

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The guest's loop as raw store calls: worker `w` for `run`.
fn raw_worker(service: &Service, w: u32, run: Duration) -> WorkerReport {
    let dicts = service.stores.dicts.as_ref().unwrap();
    let volumes = service.stores.volumes.as_ref().unwrap();
    let mut r = WorkerReport {
        worker: w,
        ..WorkerReport::default()
    };
    let end = Instant::now() + run;
    let mut i = 0u64;
    while Instant::now() < end {
        let t = Instant::now();
        dicts.increment("load", "hits", 1).unwrap();
        r.increments += 1;
        r.dict_us.push(micros(t.elapsed()));
        let t = Instant::now();
        dicts
            .put(
                "load",
                &format!("w{w}"),
                i.to_string().as_bytes(),
                &PutOptions::default(),
            )
            .unwrap();
        r.dict_us.push(micros(t.elapsed()));
        let t = Instant::now();
        let bytes = content(3, w, i);
        let blob = volumes.put_blob(&bytes).unwrap();
        let node = nodes::file(blob, bytes.len() as u64);
        let path = format!("w{w}/f{}", i % 4);
        let info = volumes
            .commit("loadvol", &[nodes::put(path, node)])
            .unwrap();
        r.commits += 1;
        r.last_version = info.version;
        r.commit_us.push(micros(t.elapsed()));
        r.iterations += 1;
        i += 1;
    }
    r
}

fn raw_run(home: &Path, workers: u32, run: Duration) -> (Vec<WorkerReport>, Duration, Service) {
    let service = open_store(home, "load bench");
    service
        .stores
        .dicts
        .as_ref()
        .unwrap()
        .create("load")
        .unwrap();
    service
        .stores
        .volumes
        .as_ref()
        .unwrap()
        .create("loadvol")
        .unwrap();
    let t = Instant::now();
    let reports = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let service = &service;
                s.spawn(move || raw_worker(service, w, run))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    (reports, t.elapsed(), service)
}

/// `load-main` with `workers` containers for `run`, in a fresh data dir;
/// the peak RSS is reset once the app is loaded (its component compiled or
/// read from `cache`), so it covers the containers and their calls.
fn guest_run(
    rt: &tokio::runtime::Runtime,
    home: &Path,
    cache: &Path,
    workers: u32,
    run: Duration,
) -> (Vec<WorkerReport>, Duration, Service) {
    // Loading an app starts its pools' tasks.
    let _tokio = rt.enter();
    let service = open_store(home, "load bench");
    let engine = VesselEngine::new(EngineConfig {
        cache_dir: Some(cache.to_owned()),
        ..EngineConfig::default()
    })
    .unwrap();
    let runtime =
        Runtime::new(engine, service.stores.clone()).with_work_dir(home.join("containers"));
    let app = runtime.load_path(&load_manifest(home)).unwrap();
    let main = app.function("load-main").unwrap();
    reset_peak_rss();
    let (result, elapsed) = rt.block_on(async {
        let t = Instant::now();
        let result = main
            .call(json!([workers, run.as_millis() as u64]))
            .await
            .unwrap();
        let elapsed = t.elapsed();
        app.shutdown().await.unwrap();
        (result, elapsed)
    });
    (parse_load_main(&result), elapsed, service)
}

struct Row {
    name: String,
    check: LoadCheck,
    elapsed: Duration,
    dict_ops: u64,
    commit_ops: u64,
    dict_p50: u32,
    dict_p99: u32,
    commit_p50: u32,
    commit_p99: u32,
    peak_mib: f64,
}

fn row(name: &str, reports: &[WorkerReport], elapsed: Duration, service: &Service) -> Row {
    let check = check_load(service, "loadvol", reports);
    let mut dict: Vec<u32> = reports.iter().flat_map(|r| r.dict_us.clone()).collect();
    let mut commit: Vec<u32> = reports.iter().flat_map(|r| r.commit_us.clone()).collect();
    Row {
        name: name.to_owned(),
        check,
        elapsed,
        dict_ops: dict.len() as u64,
        commit_ops: commit.len() as u64,
        dict_p50: percentile(&mut dict, 50.0),
        dict_p99: percentile(&mut dict, 99.0),
        commit_p50: percentile(&mut commit, 50.0),
        commit_p99: percentile(&mut commit, 99.0),
        peak_mib: peak_rss_kib() as f64 / 1024.0,
    }
}

fn print(r: &Row) {
    let secs = r.elapsed.as_secs_f64();
    println!(
        "{:<28} {:>8.0} ops/s ({:>6.0} dict + {:>5.0} commits/s)  dict p50 {:>6} µs p99 {:>7} µs  \
         commit p50 {:>6} µs p99 {:>7} µs  peak RSS {:>6.1} MiB  lost: nothing ({} increments, \
         {} commits, head v{})",
        r.name,
        (r.dict_ops + r.commit_ops) as f64 / secs,
        r.dict_ops as f64 / secs,
        r.commit_ops as f64 / secs,
        r.dict_p50,
        r.dict_p99,
        r.commit_p50,
        r.commit_p99,
        r.peak_mib,
        r.check.increments,
        r.check.commits,
        r.check.head_version,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too
    // and must stay quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs = env_u64("VESSEL_BENCH_LOAD_SECS", if quick { 1 } else { 10 });
    let workers = env_u64("VESSEL_BENCH_LOAD_WORKERS", 64) as u32;
    let run = Duration::from_secs(secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let can_reset = reset_peak_rss();
    println!(
        "load: {workers} workers, {secs} s per run; each iteration = increment `hits` + put own key + write 1 file and commit"
    );
    if !can_reset {
        println!("(peak RSS could not be reset between runs: figures are cumulative)");
    }

    let mut rows = Vec::new();
    {
        let home = tempfile::tempdir().unwrap();
        reset_peak_rss();
        let (reports, elapsed, service) = raw_run(home.path(), workers, run);
        rows.push(row(
            &format!("raw store, {workers} threads"),
            &reports,
            elapsed,
            &service,
        ));
        print(rows.last().unwrap());
    }
    // One compile cache for both guest runs: the first load compiles.
    let cache = tempfile::tempdir().unwrap();
    for (name, n) in [
        ("guest, 1 container".to_owned(), 1),
        (format!("guest, {workers} containers"), workers),
    ] {
        let home = tempfile::tempdir().unwrap();
        let (reports, elapsed, service) = guest_run(&rt, home.path(), cache.path(), n, run);
        assert_eq!(reports.len(), n as usize);
        rows.push(row(&name, &reports, elapsed, &service));
        print(rows.last().unwrap());
    }
}
