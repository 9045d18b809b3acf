//! Guests that misbehave in every way issue #7 lists (traps, panics, stack
//! overflow, memory bombs, 4 GiB lengths, stale handles, 10,000 open files,
//! trees 10,000 deep) get a clear error, the host stays up, and a container
//! started before the fault and used after it is unaffected.
//!
//! The host is this test process: a host panic or stack overflow fails the
//! test binary. Infinite loops are covered by `faults::
//! infinite_loop_hits_the_timeout` and `faults::
//! host_keeps_serving_while_a_guest_spins`.

use serde_json::json;

use vessel_tests::harness::{Guest, Host, err_of, ok};

/// A container with the volume `bystander` mounted at /data, holding a
/// committed file and an uncommitted one: what every fault test checks
/// afterwards.
async fn bystander(env: &Host) -> Guest {
    if env.volumes().info("bystander").is_err() {
        env.volumes().create("bystander").unwrap();
    }
    let mut b = env
        .start("hostile", env.config(&[("bystander", "/data")]))
        .await;
    assert_eq!(
        b.call("fs-write", json!(["/data/committed", "c"])).await,
        ok()
    );
    let r = b.call("commit", json!(["/data"])).await;
    assert!(r["ok"].is_string(), "{r}");
    assert_eq!(
        b.call("fs-write", json!(["/data/pending", "p"])).await,
        ok()
    );
    b
}

/// The bystander still reads both files, commits the pending one, and its
/// volume has it.
async fn bystander_is_fine(env: &Host, b: &mut Guest) {
    assert_eq!(
        b.call("fs-read", json!(["/data/committed"])).await,
        json!({"ok": "c"})
    );
    assert_eq!(
        b.call("fs-read", json!(["/data/pending"])).await,
        json!({"ok": "p"})
    );
    let r = b.call("commit", json!(["/data"])).await;
    assert!(r.get("ok").is_some(), "{r}");
    assert!(
        env.volumes()
            .node("bystander", "pending")
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn traps_panics_and_stack_overflow_leave_others_running() {
    let env = Host::new();
    let mut b = bystander(&env).await;
    let mut f = env.start("faults", env.config(&[])).await;
    let e = f.try_call("panic", json!(["boom"])).await.unwrap_err();
    assert!(
        e.contains("the guest trapped") && e.contains("unreachable"),
        "{e}"
    );
    // A trapped instance cannot be entered again: a clear error, not a
    // panic or a hang.
    let e = f.try_call("recurse", json!([3])).await.unwrap_err();
    assert!(e.contains("trapped"), "{e}");

    // A Rust guest's stack is in its linear memory, first: overflowing it
    // is an access below address 0.
    let mut f = env.start("faults", env.config(&[])).await;
    let e = f
        .try_call("recurse", json!([100_000_000u64]))
        .await
        .unwrap_err();
    assert!(e.contains("out of bounds memory access"), "{e}");
    // Recursion without a shadow stack exhausts wasmtime's own call stack.
    let wat = env.home.path().join("recurse.wat");
    std::fs::write(
        &wat,
        r#"(component
          (core module $m
            (func $f (export "f") (param i32) (result i32)
              local.get 0 i32.const 1 i32.add call $f))
          (core instance $i (instantiate $m))
          (func (export "f") (param "x" s32) (result s32)
            (canon lift (core func $i "f"))))"#,
    )
    .unwrap();
    let mut f = env.start_path(&wat, env.config(&[])).await;
    let e = f.try_call("f", json!([0])).await.unwrap_err();
    assert!(e.contains("call stack exhausted"), "{e}");
    bystander_is_fine(&env, &mut b).await;
    let mut f = env.start("faults", env.config(&[])).await;
    assert_eq!(f.call("recurse", json!([10])).await, json!(55));
}

#[tokio::test]
async fn a_memory_bomb_names_the_limit_and_others_keep_their_memory() {
    let env = Host::new();
    let mut b = bystander(&env).await;
    let mut config = env.config(&[]);
    config.memory_limit = 64 << 20;
    let mut f = env.start("faults", config.clone()).await;
    let e = f.try_call("bomb", json!([200])).await.unwrap_err();
    assert!(
        e.contains("out of memory") && e.contains("memory limit of 67108864 bytes"),
        "{e}"
    );
    bystander_is_fine(&env, &mut b).await;
    // Under the limit a new container gets its memory.
    let mut f = env.start("faults", config).await;
    assert_eq!(f.call("bomb", json!([8])).await, json!(8));
}

#[tokio::test]
async fn four_gib_lengths_are_short_reads_or_too_large() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut b = bystander(&env).await;
    let mut a = env.start("hostile", env.config(&[("vol", "/data")])).await;
    let mib = "x".repeat(1 << 20);
    assert_eq!(a.call("fs-write", json!(["/data/big", mib])).await, ok());
    assert_eq!(a.call("fs-write", json!(["/big", mib])).await, ok());
    a.call("commit", json!(["/data"])).await;
    // WASI reads return what one call may (POSIX read semantics): the host
    // clamps before allocating.
    for (path, how, most) in [
        ("/data/big", "read", 256 << 10),
        ("/data/big", "stream", 256 << 10),
        ("/big", "read", 64 << 10),
        ("/big", "stream", 64 << 10),
    ] {
        let r = a.call("huge-read", json!([path, how])).await;
        let got = r["ok"]
            .as_u64()
            .unwrap_or_else(|| panic!("{path} {how}: {r}"));
        assert!(got > 0 && got <= most, "{path} {how}: {got} bytes");
    }
    // The object API says why.
    let r = a.call("huge-read", json!(["/data:big", "object"])).await;
    let e = err_of(&r);
    assert!(
        e.contains("TooLarge") && e.contains("4294967296") && e.contains("67108864"),
        "{e}"
    );
    bystander_is_fine(&env, &mut b).await;
    // And the container goes on.
    assert_eq!(
        a.call("fs-read", json!(["/data/big"])).await["ok"],
        json!(mib)
    );
}

#[tokio::test]
async fn handles_used_after_drop_trap() {
    let env = Host::new();
    let mut b = bystander(&env).await;
    // wasmtime checks every handle against the guest's own table before
    // the host sees it: a freed index is unknown, a reused one has the
    // wrong type.
    for (kind, why) in [
        ("dict", "unknown handle index"),
        ("volume", "unknown handle index"),
        ("swapped", "used with the wrong type"),
    ] {
        let mut a = env.start("hostile", env.config(&[])).await;
        let e = a
            .try_call("use-after-drop", json!([kind]))
            .await
            .unwrap_err();
        assert!(
            e.contains("the guest trapped") && e.contains(why),
            "{kind}: {e}"
        );
    }
    bystander_is_fine(&env, &mut b).await;
    let mut a = env.start("hostile", env.config(&[])).await;
    assert_eq!(
        a.call("dict-open", json!(["uad"])).await,
        json!({"ok": "ok uad"})
    );
}

#[tokio::test]
async fn ten_thousand_open_files_hit_the_per_container_limit() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut b = bystander(&env).await;
    let mut a = env.start("hostile", env.config(&[("vol", "/data")])).await;
    a.call("fs-mkdir", json!(["/data/many"])).await;
    a.call("fs-mkdir", json!(["/many"])).await;
    let limit = vessel_host::container::DEFAULT_MAX_OPEN_FILES;
    // Under a mount and in scratch alike: the open past the limit fails
    // with a clear code, every file closes, and opening works again.
    for dir in ["/data/many", "/many"] {
        let r = a.call("open-many", json!([dir, 10_000])).await;
        // The directory descriptor open-many holds counts too.
        assert_eq!(r[0], json!(limit - 1), "{dir}: {r}");
        assert_eq!(r[1], json!("quota"), "{dir}: {r}");
        assert_eq!(r[2], ok(), "{dir}: {r}");
    }
    // Meanwhile another container opens files of its own.
    let r = b.call("open-many", json!(["/data", 100])).await;
    assert_eq!(r, json!([100, null, {"ok": null}]));
    bystander_is_fine(&env, &mut b).await;
    // What the guest created is there and commits.
    let r = a.call("commit", json!(["/data"])).await;
    assert!(r.get("ok").is_some(), "{r}");
    let listed = env.volumes().list_dir("vol", "many", false).unwrap();
    assert_eq!(
        listed.len(),
        limit as usize,
        "{limit} - 1 files and after-close"
    );
}

#[tokio::test]
async fn trees_ten_thousand_deep_stop_at_the_path_limit_and_the_rest_works() {
    let env = Host::new();
    env.volumes().create("vol").unwrap();
    let mut b = bystander(&env).await;
    let mut a = env.start("hostile", env.config(&[("vol", "/data")])).await;
    // Under a mount: paths are at most 4095 bytes (what the host's file
    // system calls take), so `d/d/...` stops at 2048 levels, with a clear
    // code, and everything made so far commits.
    let r = a.call("nest", json!(["/data", 10_000])).await;
    assert_eq!(r, json!([2048, "name-too-long"]));
    let r = a.call("commit", json!(["/data"])).await;
    assert_eq!(r, json!({"ok": "1 2048 0"}));
    assert_eq!(env.volumes().info("vol").unwrap().inodes, 2048);
    // A new container's snapshot has the whole chain; it lists it
    // recursively and removes it through the object API.
    let mut c = env.start("hostile", env.config(&[("vol", "/data")])).await;
    assert_eq!(
        c.call("nest-depth", json!(["/data"])).await,
        json!({"ok": [2048, false]})
    );
    assert_eq!(
        c.call("obj-count", json!(["/data", ""])).await,
        json!({"ok": 2048})
    );
    assert_eq!(c.call("obj-remove", json!(["/data", "d"])).await, ok());
    assert_eq!(
        c.call("commit", json!(["/data"])).await,
        json!({"ok": "2 0 1"})
    );
    assert_eq!(env.volumes().info("vol").unwrap().inodes, 0);
    // The first container reloads to the empty volume.
    assert_eq!(a.call("reload", json!(["/data"])).await, json!({"ok": 2}));
    assert_eq!(
        a.call("nest-depth", json!(["/data"])).await,
        json!({"ok": [0, false]})
    );

    // In scratch nothing is stored and the host adds no limit: 10,000
    // levels and a leaf, removed level by level through WASI, made again,
    // and removed with the container.
    let work = env.home.path().join("deep");
    let mut config = env.config(&[]);
    config.work_dir = Some(work.clone());
    let mut s = env.start("hostile", config).await;
    assert_eq!(
        s.call("nest", json!(["/", 10_000])).await,
        json!([10_000, null])
    );
    assert_eq!(
        s.call("nest-depth", json!(["/"])).await,
        json!({"ok": [10_000, true]})
    );
    assert_eq!(s.call("unnest", json!(["/"])).await, json!({"ok": 10_000}));
    assert_eq!(
        s.call("nest-depth", json!(["/"])).await,
        json!({"ok": [0, false]})
    );
    assert_eq!(
        s.call("nest", json!(["/", 10_000])).await,
        json!([10_000, null])
    );
    drop(s);
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0, "removed");
    bystander_is_fine(&env, &mut b).await;
}
