//! Call overhead of apps, each figure next to wasmtime alone measured in the
//! same run:
//! - a warm call of a no-op export (p50, target under 50 µs) next to
//!   `call_async` on one instance;
//! - a cold container start (a new container per call), without and with a
//!   mounted 1,000-file volume, next to wasmtime's instantiate + call;
//! - 1,000 parallel `starmap` calls next to wasmtime making as many
//!   instances as vessel started containers and spreading the 1,000 calls
//!   over them in parallel (and, labelled not like-for-like, 1,000
//!   sequential instantiate + call);
//! - a 2 MiB JSON argument: parsing it with serde_json, converting it to the
//!   export's types, and the whole call.
//!
//!   cargo bench -p vessel-tests --bench calls
//!
//! The components are written in the text format here, so the bench needs
//! no guest build.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use serde_json::json;
use vessel_host::call::{self, CallArgs};
use vessel_tests::harness::figures::Spread;
use vessel_tests::harness::{Host, nodes};

/// min/median/max of a figure.
fn spread(s: Spread) -> String {
    format!("{:.2?}/{:.2?}/{:.2?}", s.min, s.median, s.max)
}

const NOOP: &str = r#"(component
  (core module $m (func (export "noop")))
  (core instance $i (instantiate $m))
  (func (export "noop") (canon lift (core func $i "noop"))))"#;

/// `len: func(a: list<u32>) -> u32`, with a bump allocator that resets
/// after each call.
const LEN: &str = r#"(component
  (core module $m
    (memory (export "mem") 1)
    (global $bump (mut i32) (i32.const 8))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (local $ptr i32) (local $end i32) (local $have i32)
      (local.set $ptr (i32.and
        (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get 2))))
      (local.set $end (i32.add (local.get $ptr) (local.get 3)))
      (local.set $have (i32.mul (memory.size) (i32.const 65536)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq
                (memory.grow (i32.add (i32.div_u (i32.sub (local.get $end) (local.get $have))
                                                 (i32.const 65536))
                                      (i32.const 1)))
                (i32.const -1))
            (then unreachable))))
      (global.set $bump (local.get $end))
      (local.get $ptr))
    (func (export "len") (param i32 i32) (result i32)
      (global.set $bump (i32.const 8))
      (local.get 1)))
  (core instance $i (instantiate $m))
  (func (export "len") (param "a" (list u32)) (result u32)
    (canon lift (core func $i "len") (memory (core memory $i "mem"))
      (realloc (core func $i "realloc")))))"#;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn main() {
    let host = Host::new();
    let dir = &host.home;
    std::fs::write(dir.path().join("noop.wat"), NOOP).unwrap();
    std::fs::write(dir.path().join("len.wat"), LEN).unwrap();
    std::fs::write(
        dir.path().join("vessel.toml"),
        r#"
        [functions.warm]
        component = "noop.wat"
        export = "noop"
        [functions.cold]
        component = "noop.wat"
        export = "noop"
        idle_timeout = 0
        [functions.cold-mounted]
        component = "noop.wat"
        export = "noop"
        idle_timeout = 0
        mounts = { "/data" = "files" }
        [functions.wide]
        component = "noop.wat"
        export = "noop"
        max_containers = 100
        [functions.len]
        component = "len.wat"
        "#,
    )
    .unwrap();
    let volumes = host.volumes();
    volumes.create("files").unwrap();
    let blob = volumes.put_blob(&[7u8; 1024]).unwrap();
    volumes
        .commit("files", &nodes::spread(blob, 1024, 1000, 10))
        .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = &host.engine;
        let wt = engine.engine();
        let noop = wasmtime::component::Component::new(wt, NOOP).unwrap();
        let linker = wasmtime::component::Linker::<()>::new(wt);
        // wasmtime alone: instantiate once, call many times; and instantiate
        // + call each time. Same engine settings (async, epochs).
        let instantiate_call = || async {
            let mut store = wasmtime::Store::new(wt, ());
            store.set_epoch_deadline(u64::MAX / 2);
            let instance = linker.instantiate_async(&mut store, &noop).await.unwrap();
            let func = instance.get_func(&mut store, "noop").unwrap();
            func.call_async(&mut store, &[], &mut []).await.unwrap();
            (store, func)
        };
        let (mut store, func) = instantiate_call().await;
        let mut raw_warm = Vec::new();
        for i in 0..21_000 {
            let t = Instant::now();
            func.call_async(&mut store, &[], &mut []).await.unwrap();
            if i >= 1000 {
                raw_warm.push(t.elapsed());
            }
        }
        let mut raw_cold = Vec::new();
        for _ in 0..500 {
            let t = Instant::now();
            drop(instantiate_call().await);
            raw_cold.push(t.elapsed());
        }
        let raw_warm = pct(&mut raw_warm, 0.5);
        let raw_cold = pct(&mut raw_cold, 0.5);

        let app = host.runtime.load_path(dir.path()).unwrap();

        let warm = app.function("warm").unwrap();
        let mut warm_t = Vec::new();
        for i in 0..21_000 {
            let t = Instant::now();
            warm.call(json!([])).await.unwrap();
            if i >= 1000 {
                warm_t.push(t.elapsed());
            }
        }
        assert_eq!(warm.stats().started, 1);
        let warm_p99 = pct(&mut warm_t, 0.99);
        let warm_p50 = pct(&mut warm_t, 0.5);

        let mut cold_p50 = Vec::new();
        for name in ["cold", "cold-mounted"] {
            let f = app.function(name).unwrap();
            let mut v = Vec::new();
            for _ in 0..300 {
                let t = Instant::now();
                f.call(json!([])).await.unwrap();
                v.push(t.elapsed());
            }
            assert_eq!(f.stats().started, 300);
            cold_p50.push(pct(&mut v, 0.5));
        }

        // 1,000 parallel calls through `starmap` (up to 100 containers),
        // from a cold pool (a fresh load of the app each run), next to
        // wasmtime doing the same work: as many instances as vessel
        // started, the 1,000 calls spread over them, one task each, so
        // both run in parallel on the same threads.
        let (mut map_runs, mut raw_map_runs, mut wide_started) = (Vec::new(), Vec::new(), 0);
        for _ in 0..5 {
            let fresh = host.runtime.load_path(dir.path()).unwrap();
            let wide = fresh.function("wide").unwrap();
            // `noop` takes no argument, so each input is an empty list.
            let t = Instant::now();
            let out = wide.starmap((0..1000).map(|_| json!([]))).await;
            map_runs.push(t.elapsed());
            assert!(out.iter().all(Result::is_ok));
            wide_started = wide.stats().started;
            assert!(wide_started <= 100);
            fresh.shutdown().await.unwrap();

            let instances = wide_started.max(1) as usize;
            let t = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for k in 0..instances {
                let (wt, noop, linker) = (wt.clone(), noop.clone(), linker.clone());
                // This instance's share of the 1,000 calls.
                let calls = 1000 / instances + usize::from(k < 1000 % instances);
                tasks.spawn(async move {
                    let mut store = wasmtime::Store::new(&wt, ());
                    store.set_epoch_deadline(u64::MAX / 2);
                    let instance = linker.instantiate_async(&mut store, &noop).await.unwrap();
                    let func = instance.get_func(&mut store, "noop").unwrap();
                    for _ in 0..calls {
                        func.call_async(&mut store, &[], &mut []).await.unwrap();
                    }
                });
            }
            tasks.join_all().await;
            raw_map_runs.push(t.elapsed());
        }
        let map_t = Spread::of(map_runs);
        let raw_map = Spread::of(raw_map_runs);
        // Where a cold start goes: the container alone (scratch dir, WASI
        // context, mounts), made and dropped.
        let mut made = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            let c = vessel_host::container::Container::new(
                engine,
                &vessel_host::container::ContainerConfig {
                    work_dir: Some(dir.path().join("containers")),
                    ..Default::default()
                },
            )
            .unwrap();
            drop(c);
            made.push(t.elapsed());
        }
        let made = pct(&mut made, 0.5);
        let mut raw_1000_runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..1000 {
                drop(instantiate_call().await);
            }
            raw_1000_runs.push(t.elapsed());
        }
        let raw_1000 = Spread::of(raw_1000_runs);

        // A 2 MiB JSON argument: a list<u32> of ~250k numbers.
        let numbers: Vec<u32> = (0..262_144u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let text = serde_json::to_string(&json!([numbers])).unwrap();
        let len = app.function("len").unwrap();
        let export = host.program_at(&dir.path().join("len.wat")).export("len");
        let mut parse = Vec::new();
        let mut convert = Vec::new();
        let mut whole = Vec::new();
        for _ in 0..15 {
            let t = Instant::now();
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            parse.push(t.elapsed());
            let args = CallArgs {
                args: Some(doc.clone()),
                flags: Vec::new(),
            };
            let t = Instant::now();
            let vals = call::build_params(&export, &args).unwrap();
            convert.push(t.elapsed());
            drop(vals);
            let t = Instant::now();
            let n = len.call(doc).await.unwrap();
            whole.push(t.elapsed());
            assert_eq!(n, json!(numbers.len()));
        }
        let parse = pct(&mut parse, 0.5);
        let convert = pct(&mut convert, 0.5);
        let whole = pct(&mut whole, 0.5);

        println!("call overhead (p50 unless noted; wasmtime alone measured in this run)");
        println!("  no-op export, warm:");
        println!("    wasmtime call_async on one instance (baseline) {raw_warm:>10.2?}");
        println!(
            "    vessel warm container, p50                     {warm_p50:>10.2?}  {:>6.1}x  (target < 50 µs)",
            ratio(warm_p50, raw_warm)
        );
        println!("    vessel warm container, p99                     {warm_p99:>10.2?}");
        println!("  cold start (new container per call):");
        println!("    wasmtime instantiate + call (baseline)         {raw_cold:>10.2?}");
        println!(
            "    vessel, no volume                              {:>10.2?}  {:>6.1}x",
            cold_p50[0],
            ratio(cold_p50[0], raw_cold)
        );
        println!(
            "    vessel, 1,000-file volume mounted              {:>10.2?}  {:>6.1}x",
            cold_p50[1],
            ratio(cold_p50[1], raw_cold)
        );
        println!("    of which a container made and dropped          {made:>10.2?}");
        println!("  1,000 calls (min/median/max of 5 runs):");
        println!(
            "    wasmtime, {wide_started} instances in parallel (baseline)    {}",
            spread(raw_map)
        );
        println!(
            "    vessel starmap ({wide_started} containers started)     {}  {:>6.2}x",
            spread(map_t),
            ratio(map_t.median, raw_map.median)
        );
        println!(
            "    wasmtime, 1,000 x instantiate + call, sequential {}  (not like-for-like: \
             1,000 instances against {wide_started})",
            spread(raw_1000)
        );
        println!("  2 MiB JSON argument (list<u32>, {} numbers):", numbers.len());
        println!("    serde_json parse (baseline)                    {parse:>10.2?}");
        println!(
            "    JSON -> component values                       {convert:>10.2?}  {:>6.2}x",
            ratio(convert, parse)
        );
        println!(
            "    whole warm call (convert, lower, run)          {whole:>10.2?}  {:>6.2}x",
            ratio(whole, parse)
        );
        app.shutdown().await.unwrap();
    });
}
