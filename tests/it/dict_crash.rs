//! kill -9 of the real `vessel` binary while a guest (`dictloop`) makes
//! acknowledged dict puts and increments, under both durability modes.
//! After every kill the store must open, hold every acknowledged write, and
//! be consistent: each put is followed by its increment, so the counter is
//! at least the last acknowledged value and never more than the number of
//! keys, and at most one put per crash lacks its increment.

use std::process::Stdio;
use std::time::{Duration, Instant};

use vessel_host::service::Service;
use vessel_host::storage::dict::DictStore;
use vessel_host::storage::embedded::EmbeddedOptions;
use vessel_tests::reliability::{Rng, line_reader};
use vessel_tests::{Vessel, guest};

/// Parses `ack I N`.
fn ack(line: &str) -> (u64, i64) {
    let mut parts = line.split(' ');
    assert_eq!(parts.next(), Some("ack"), "unexpected output {line:?}");
    let i = parts.next().and_then(|s| s.parse().ok());
    let n = parts.next().and_then(|s| s.parse().ok());
    match (i, n) {
        (Some(i), Some(n)) => (i, n),
        _ => panic!("unexpected output {line:?}"),
    }
}

/// Every `k…` key of the dict with its value, and the counter.
fn contents(store: &dyn DictStore) -> (Vec<(String, Vec<u8>)>, i64) {
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .scan("crash", "k", cursor.as_deref(), 0, true)
            .unwrap();
        keys.extend(
            page.items
                .into_iter()
                .map(|i| (i.key, i.value.unwrap_or_default())),
        );
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let counter = match store.get("crash", "counter").unwrap() {
        Some(e) => std::str::from_utf8(&e.value).unwrap().parse().unwrap(),
        None => 0,
    };
    (keys, counter)
}

fn crash_loop(durability: &str, iterations: u64) {
    let v = Vessel::new();
    let program = guest("dictloop");
    let mut rng = Rng::for_test("dict crash test");
    let mut acked: Vec<u64> = Vec::new();
    let mut last_counter = 0i64;
    let mut next = 0u64;
    let mut killed_mid_loop = 0;
    for round in 0..iterations {
        let mut child = v
            .command()
            .args(["--durability", durability, "run"])
            .arg(&program)
            .args(["--", "crash", &next.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (rx, reader) = line_reader(child.stdout.take().unwrap());
        // One round in five dies at a random moment of start-up (compile
        // cache, store open, first write); the others after a random
        // number of acknowledgements plus a random few microseconds, so
        // the kill lands anywhere inside a put or an increment.
        let want = if round % 5 == 0 { 0 } else { 1 + rng.below(40) };
        let mut got = 0;
        if want == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(150)));
        } else {
            let deadline = Instant::now() + Duration::from_secs(20);
            while got < want {
                let left = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(line) => {
                        let (i, n) = ack(&line);
                        acked.push(i);
                        last_counter = last_counter.max(n);
                        got += 1;
                    }
                    Err(e) => panic!("round {round}: no ack from the child ({e})"),
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(3_000)));
            killed_mid_loop += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        // Lines read after the kill were acknowledged before it.
        for line in rx.try_iter() {
            let (i, n) = ack(&line);
            acked.push(i);
            last_counter = last_counter.max(n);
        }

        let service = Service::open_embedded(v.home.path(), EmbeddedOptions::default())
            .unwrap_or_else(|e| {
                panic!("round {round}: the store does not open after kill -9: {e}")
            });
        let store = service.stores.dicts.clone().unwrap();
        if !store.exists("crash").unwrap() {
            assert!(acked.is_empty(), "round {round}: the dict is gone");
            continue;
        }
        let (keys, counter) = contents(store.as_ref());
        let present: std::collections::BTreeMap<&str, &[u8]> = keys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        for i in &acked {
            let key = format!("k{i:08}");
            assert_eq!(
                present.get(key.as_str()).copied(),
                Some(format!("v{i}").as_bytes()),
                "round {round}: acknowledged put {key} is lost"
            );
        }
        for (k, val) in &keys {
            let i: u64 = k.trim_start_matches('k').parse().unwrap();
            assert_eq!(
                val,
                format!("v{i}").as_bytes(),
                "round {round}: {k} is torn"
            );
        }
        let n_keys = keys.len() as i64;
        assert!(
            counter >= last_counter,
            "round {round}: counter {counter} < acknowledged {last_counter}"
        );
        assert!(
            counter <= n_keys && n_keys - counter <= round as i64 + 1,
            "round {round}: counter {counter} does not fit {n_keys} keys"
        );
        assert_eq!(
            store.len("crash").unwrap(),
            n_keys as u64 + u64::from(counter > 0),
            "round {round}: len is not exact"
        );
        // Continue after the highest key written, acknowledged or not, so
        // every key is put once.
        next = keys
            .last()
            .map(|(k, _)| k.trim_start_matches('k').parse::<u64>().unwrap() + 1)
            .unwrap_or(0);
        drop(store);
        drop(service);
    }
    assert!(killed_mid_loop >= iterations * 3 / 4);
    assert!(
        acked.len() as u64 >= killed_mid_loop,
        "every mid-loop kill came after at least one ack"
    );
}

#[test]
fn dict_writes_survive_kill_9() {
    crash_loop("sync", 24);
}

/// Relaxed durability promises survival of kill -9 of the host (writes
/// reach the OS before the acknowledgement); only an OS crash or power loss
/// may lose the last second, which a test cannot stage.
#[test]
fn relaxed_dict_writes_survive_kill_9() {
    crash_loop("relaxed", 12);
}

/// Relaxed durability, chosen by flag or by `VESSEL_DURABILITY`: writes
/// of one process are there for the next after a clean exit.
#[test]
fn relaxed_writes_survive_clean_exit() {
    let v = Vessel::new();
    v.run(&["--durability", "relaxed", "dict", "create", "kv"])
        .ok();
    v.run(&["dict", "put", "kv", "a", "1", "--durability", "relaxed"])
        .ok();
    let out = v
        .command()
        .env("VESSEL_DURABILITY", "relaxed")
        .args(["dict", "put", "kv", "b", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let kv = guest("kvprobe");
    let set = v.run(&[
        "--durability",
        "relaxed",
        "call",
        kv.to_str().unwrap(),
        "op",
        "--args",
        r#"["incr", "kv", "c", "", 3]"#,
    ]);
    assert_eq!(set.ok().trim(), r#""ok 3""#);
    assert_eq!(v.run(&["dict", "get", "kv", "a"]).ok().trim(), "1");
    assert_eq!(v.run(&["dict", "get", "kv", "b"]).ok().trim(), "2");
    assert_eq!(v.run(&["dict", "get", "kv", "c"]).ok().trim(), "3");
    let bad = v.run(&["--durability", "fast", "dict", "list"]);
    bad.fails(2, &["invalid value 'fast'", "sync", "relaxed"]);
}
