//! Call overhead: a no-op export called through an app's warm pool, and
//! through a new container per call, next to the same export called
//! directly with wasmtime (one store, one instance) in the same run.
//!
//!   cargo bench -p vessel-host --bench calls
//!
//! The target (DESIGN §5) is a warm call of a no-op export under 50 µs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::{Duration, Instant};

use serde_json::json;
use vessel_host::app::Runtime;
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_host::storage::Stores;

const NOOP: &str = r#"(component
  (core module $m (func (export "noop")))
  (core instance $i (instantiate $m))
  (func (export "noop") (canon lift (core func $i "noop"))))"#;

const WARM_CALLS: u32 = 20_000;
const COLD_CALLS: u32 = 300;

fn per_call(total: Duration, n: u32) -> Duration {
    total / n
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("noop.wat"), NOOP).unwrap();
    std::fs::write(
        dir.path().join("vessel.toml"),
        "[functions.warm]\ncomponent = \"noop.wat\"\nexport = \"noop\"\n\
         [functions.cold]\ncomponent = \"noop.wat\"\nexport = \"noop\"\nidle_timeout = 0\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Baseline: wasmtime alone, with the same engine settings (async,
        // epoch interruption), one instance called over and over.
        let engine = VesselEngine::new(EngineConfig::default()).unwrap();
        let component = wasmtime::component::Component::new(engine.engine(), NOOP).unwrap();
        let mut store = wasmtime::Store::new(engine.engine(), ());
        store.set_epoch_deadline(u64::MAX / 2);
        let linker = wasmtime::component::Linker::<()>::new(engine.engine());
        let instance = linker
            .instantiate_async(&mut store, &component)
            .await
            .unwrap();
        let func = instance.get_func(&mut store, "noop").unwrap();
        for _ in 0..1000 {
            func.call_async(&mut store, &[], &mut []).await.unwrap();
        }
        let start = Instant::now();
        for _ in 0..WARM_CALLS {
            func.call_async(&mut store, &[], &mut []).await.unwrap();
        }
        let raw = per_call(start.elapsed(), WARM_CALLS);

        let runtime = Runtime::new(engine.clone(), Stores::default())
            .with_work_dir(dir.path().join("containers"));
        let app = runtime.load_path(dir.path()).unwrap();
        let warm = app.function("warm").unwrap();
        for _ in 0..1000 {
            warm.call(json!([])).await.unwrap();
        }
        let start = Instant::now();
        for _ in 0..WARM_CALLS {
            warm.call(json!([])).await.unwrap();
        }
        let warm_t = per_call(start.elapsed(), WARM_CALLS);
        assert_eq!(warm.stats().started, 1);

        let cold = app.function("cold").unwrap();
        let start = Instant::now();
        for _ in 0..COLD_CALLS {
            cold.call(json!([])).await.unwrap();
        }
        let cold_t = per_call(start.elapsed(), COLD_CALLS);
        assert_eq!(cold.stats().started, u64::from(COLD_CALLS));

        let ratio = |t: Duration| t.as_secs_f64() / raw.as_secs_f64();
        println!("no-op export, mean time per call:");
        println!("  wasmtime call_async, same instance (baseline) {raw:>10.2?}");
        println!(
            "  vessel warm container (app pool)              {warm_t:>10.2?}  {:>7.1}x baseline  (target < 50 µs)",
            ratio(warm_t)
        );
        println!(
            "  vessel new container per call                 {cold_t:>10.2?}  {:>7.1}x baseline",
            ratio(cold_t)
        );
        app.shutdown().await.unwrap();
    });
}
