//! Guests that misbehave end with a clear error and leave the host able to
//! serve other calls.

use vessel_tests::{Vessel, guest};

#[test]
fn infinite_loop_hits_the_timeout() {
    let v = Vessel::new();
    let faults = guest("faults").display().to_string();
    let start = std::time::Instant::now();
    v.run(&["call", &faults, "spin", "--timeout", "0.5"])
        .fails(1, &["function `spin`", "timed out"]);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn memory_bomb_fails_cleanly() {
    let v = Vessel::new();
    let faults = guest("faults").display().to_string();
    v.run(&["call", &faults, "bomb", "--mib", "200", "--memory", "64"])
        .fails(1, &["function `bomb`", "trapped"]);
    // Under the limit it works.
    assert_eq!(
        v.run(&["call", &faults, "bomb", "--mib", "8", "--memory", "64"])
            .ok(),
        "8\n"
    );
}

#[test]
fn panic_and_stack_overflow_are_traps() {
    let v = Vessel::new();
    let faults = guest("faults").display().to_string();
    v.run(&["call", &faults, "panic", "--msg", "boom"])
        .fails(1, &["trapped"]);
    v.run(&["call", &faults, "recurse", "--depth", "100000000"])
        .fails(1, &["trapped"]);
    assert_eq!(
        v.run(&["call", &faults, "recurse", "--depth", "10"]).ok(),
        "55\n"
    );
}

#[test]
fn capabilities_without_a_backing_say_so() {
    let v = Vessel::new();
    let probe = guest("probe").display().to_string();
    // `vessel call` serves the data dir's dict store.
    let out = v.run(&["call", &probe, "try-dict-open", "--name", "kv"]);
    assert_eq!(out.ok(), "\"ok kv\"\n");
    // Nothing is mounted: a clear not-found, not a trap.
    let out = v.run(&["call", &probe, "try-volume-mounted", "--path", "/data"]);
    assert_eq!(
        out.ok(),
        "\"error: not found: no volume is mounted at /data\"\n"
    );
    let out = v.run(&["call", &probe, "try-remote", "--function", "f"]);
    // A component run on its own has no app to call into.
    let out = out.ok();
    assert!(
        out.contains("unavailable") && out.contains("need an app"),
        "{out}"
    );
}

#[tokio::test]
async fn host_keeps_serving_while_a_guest_spins() {
    use vessel_host::app::call_component;
    use vessel_host::call::CallArgs;
    use vessel_host::container::ContainerConfig;
    use vessel_host::engine::{EngineConfig, VesselEngine};
    use vessel_tests::harness::call_once;
    let engine = VesselEngine::new(EngineConfig::default()).unwrap();
    let spin_cfg = ContainerConfig {
        timeout: Some(std::time::Duration::from_secs(2)),
        ..ContainerConfig::default()
    };
    let e2 = engine.clone();
    let spinner = tokio::spawn(async move {
        call_component(
            &e2,
            &guest("faults"),
            "spin",
            &CallArgs::default(),
            &spin_cfg,
        )
        .await
    });
    // While it spins, other calls complete.
    for i in 0..5 {
        let r = call_once(
            &engine,
            "add",
            "add",
            serde_json::json!([i, 1]),
            &ContainerConfig::default(),
        )
        .await
        .unwrap();
        assert_eq!(r, Some(serde_json::json!(i + 1)));
    }
    let err = spinner.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}
