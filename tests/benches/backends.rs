//! The shared backend (PostgreSQL + S3) next to the embedded one (sled +
//! blob folder), measured in the same run on the same machine:
//!
//!   cargo bench -p vessel-tests --bench backends
//!
//! Starts its own PostgreSQL and SeaweedFS on loopback (stopped at the
//! end) and prints, for each backend:
//! - commit latency: put a 4 KiB blob and commit it as one changed file of
//!   a 10,000-file volume (median and p90 of 200 commits);
//! - dict get and put ops/s: one thread, 2 s each (puts are durable:
//!   fsync for the embedded store, a committed transaction for
//!   PostgreSQL), and puts from 8 threads;
//! - mount time: `Mount::materialize` of the 10,000-file volume from a
//!   store handle just opened (the snapshot read from the store) and with
//!   the head unchanged since the last mount (cached snapshot).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use vessel_host::storage::dict::{DictStore, PutOptions};
use vessel_host::storage::embedded::{EmbeddedOptions, EmbeddedStore};
use vessel_host::storage::remote::{RemoteOptions, RemoteStore};
use vessel_host::storage::volume::VolumeStore;
use vessel_host::volume::{Mount, VolumeMount};
use vessel_tests::harness::nodes;
use vessel_tests::servers::{Postgres, Seaweed};

const FILES: usize = 10_000;
const COMMITS: usize = 200;
const OPS_TIME: Duration = Duration::from_secs(2);

struct Figures {
    commit_p50: Duration,
    commit_p90: Duration,
    get_ops: f64,
    put_ops: f64,
    put_ops_8: f64,
    mount_cold: Duration,
    mount_warm: Duration,
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn ops_per_sec(threads: usize, f: impl Fn(usize, usize) + Sync) -> f64 {
    let total = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (f, total) = (&f, &total);
            s.spawn(move || {
                let mut i = 0;
                while start.elapsed() < OPS_TIME {
                    f(t, i);
                    i += 1;
                }
                total.fetch_add(i, std::sync::atomic::Ordering::Relaxed);
            });
        }
    });
    total.into_inner() as f64 / start.elapsed().as_secs_f64()
}

fn measure(
    label: &str,
    open: &dyn Fn() -> (Arc<dyn DictStore>, Arc<dyn VolumeStore>),
    root: &std::path::Path,
) -> Figures {
    let (dicts, volumes) = open();
    eprintln!("{label}: setting up a {FILES}-file volume");
    volumes.create("bench").unwrap();
    let blob = volumes.put_blob(&[7u8; 1024]).unwrap();
    volumes
        .commit("bench", &nodes::spread(blob, 1024, FILES, 100))
        .unwrap();
    // Commit latency: one changed file (its upload included).
    let mut lat = Vec::with_capacity(COMMITS);
    for i in 0..COMMITS {
        let mut body = vec![0u8; 4096];
        body[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let t = Instant::now();
        let id = volumes.put_blob(&body).unwrap();
        let path = format!("d{:02}/f{:05}", i % 100, i);
        volumes
            .commit("bench", &[nodes::put(path, nodes::file(id, 4096))])
            .unwrap();
        lat.push(t.elapsed());
    }
    let commit_p50 = pct(&mut lat, 50);
    let commit_p90 = pct(&mut lat, 90);
    // Dicts.
    dicts.create("bench").unwrap();
    for i in 0..1000 {
        dicts
            .put(
                "bench",
                &format!("k{i}"),
                b"value-value-value",
                &PutOptions::default(),
            )
            .unwrap();
    }
    let get_ops = ops_per_sec(1, |_, i| {
        dicts
            .get("bench", &format!("k{}", i % 1000))
            .unwrap()
            .unwrap();
    });
    let put_ops = ops_per_sec(1, |_, i| {
        dicts
            .put(
                "bench",
                &format!("p{}", i % 1000),
                b"value",
                &PutOptions::default(),
            )
            .unwrap();
    });
    let put_ops_8 = ops_per_sec(8, |t, i| {
        dicts
            .put(
                "bench",
                &format!("q{t}-{}", i % 100),
                b"value",
                &PutOptions::default(),
            )
            .unwrap();
    });
    drop((dicts, volumes));
    // Mounts: from a handle just opened, then with the head unchanged.
    let spec = VolumeMount {
        guest: "/data".into(),
        volume: "bench".into(),
        read_only: false,
        version: None,
        conflicts: Default::default(),
    };
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for run in 0..7 {
        let (_, volumes) = open();
        let dir = root.join(format!("{label}-cold-{run}"));
        let t = Instant::now();
        let m = Mount::materialize(&volumes, &spec, &dir).unwrap();
        cold.push(t.elapsed());
        drop(m);
        let dir = root.join(format!("{label}-warm-{run}"));
        let t = Instant::now();
        let m = Mount::materialize(&volumes, &spec, &dir).unwrap();
        warm.push(t.elapsed());
        drop(m);
    }
    Figures {
        commit_p50,
        commit_p90,
        get_ops,
        put_ops,
        put_ops_8,
        mount_cold: pct(&mut cold, 50),
        mount_warm: pct(&mut warm, 50),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("embedded");
    let embedded = measure(
        "embedded",
        &|| {
            let s = EmbeddedStore::open(&data, EmbeddedOptions::default()).unwrap();
            (
                Arc::new(s.clone()) as Arc<dyn DictStore>,
                Arc::new(s) as Arc<dyn VolumeStore>,
            )
        },
        root.path(),
    );
    eprintln!("starting PostgreSQL and SeaweedFS");
    let pg = Postgres::start();
    let s3 = Seaweed::start();
    let cache = root.path().join("cache");
    let n = std::sync::atomic::AtomicUsize::new(0);
    let remote = measure(
        "remote",
        &|| {
            // A fresh cache per handle: each open is a new host.
            let c = cache.join(
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    .to_string(),
            );
            let o = RemoteOptions::new(&pg.url_for("public"), &s3.url("bench"), c);
            let s = RemoteStore::open(o).unwrap();
            (
                Arc::new(s.clone()) as Arc<dyn DictStore>,
                Arc::new(s) as Arc<dyn VolumeStore>,
            )
        },
        root.path(),
    );
    println!("| figure | embedded (sled + folder) | PostgreSQL + S3 | ratio |");
    println!("| --- | --- | --- | --- |");
    let row =
        |name: &str, a: String, b: String, r: f64| println!("| {name} | {a} | {b} | {r:.1}x |");
    let (e, r) = (&embedded, &remote);
    row(
        "commit, 1 file of 10,000 (p50)",
        ms(e.commit_p50),
        ms(r.commit_p50),
        r.commit_p50.as_secs_f64() / e.commit_p50.as_secs_f64(),
    );
    row(
        "commit (p90)",
        ms(e.commit_p90),
        ms(r.commit_p90),
        r.commit_p90.as_secs_f64() / e.commit_p90.as_secs_f64(),
    );
    row(
        "dict get, 1 thread",
        format!("{:.0} ops/s", e.get_ops),
        format!("{:.0} ops/s", r.get_ops),
        e.get_ops / r.get_ops,
    );
    row(
        "dict put, 1 thread",
        format!("{:.0} ops/s", e.put_ops),
        format!("{:.0} ops/s", r.put_ops),
        e.put_ops / r.put_ops,
    );
    row(
        "dict put, 8 threads",
        format!("{:.0} ops/s", e.put_ops_8),
        format!("{:.0} ops/s", r.put_ops_8),
        e.put_ops_8 / r.put_ops_8,
    );
    row(
        "mount 10,000 files, store just opened",
        ms(e.mount_cold),
        ms(r.mount_cold),
        r.mount_cold.as_secs_f64() / e.mount_cold.as_secs_f64(),
    );
    row(
        "mount, head unchanged",
        ms(e.mount_warm),
        ms(r.mount_warm),
        r.mount_warm.as_secs_f64() / e.mount_warm.as_secs_f64(),
    );
    println!("(ratio: how many times slower the shared backend is)");
}
