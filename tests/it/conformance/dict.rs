//! Dict semantics every backend keeps (see `storage::dict`'s module docs).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vessel_host::storage::dict::{
    DictEntry, DictError, DictStore, PutOptions, PutOutcome, ScanItem,
};

use super::{Backend, Make, Setup, T0};

mod model;
use model::behaves_like_a_sorted_map_with_expiry;

const WEEK: u64 = 7 * 24 * 3600 * 1000;

fn setup(make: &Make, idle_ms: u64) -> Backend {
    let b = make(Setup {
        idle_ms,
        ..Setup::default()
    });
    assert!(b.dicts.create("d").unwrap());
    b
}

fn put(s: &dyn DictStore, k: &str, v: &[u8]) -> u64 {
    match s.put("d", k, v, &PutOptions::default()).unwrap() {
        PutOutcome::Written { version } => version,
        PutOutcome::Skipped => panic!("unconditional put skipped"),
    }
}

fn get(s: &dyn DictStore, k: &str) -> Option<Vec<u8>> {
    s.get("d", k).unwrap().map(|e| e.value)
}

fn ttl(ms: u64) -> PutOptions {
    PutOptions {
        ttl_ms: Some(ms),
        ..PutOptions::default()
    }
}

fn names_are_validated_and_missing_dicts_are_not_found(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    assert!(!s.create("d").unwrap(), "second create reports it existed");
    for bad in ["", ".x", "a/b", "a b", &"x".repeat(65), "é"] {
        let e = s.create(bad).unwrap_err();
        assert!(matches!(e, DictError::InvalidName { .. }), "{bad:?}: {e}");
    }
    assert!(s.create(&"x".repeat(64)).unwrap());
    assert!(matches!(
        s.get("nope", "k").unwrap_err(),
        DictError::NotFound(n) if n == "nope"
    ));
    assert!(matches!(
        s.put("nope", "k", b"v", &PutOptions::default()),
        Err(DictError::NotFound(_))
    ));
    assert!(matches!(
        s.scan("nope", "", None, 1, false),
        Err(DictError::NotFound(_))
    ));
    assert!(matches!(s.delete("nope"), Err(DictError::NotFound(_))));
    assert!(!s.exists("nope").unwrap());
    let names: Vec<String> = s.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, vec!["d".to_string(), "x".repeat(64)]);
    put(s, "k", b"v");
    s.delete("d").unwrap();
    assert!(!s.exists("d").unwrap());
    assert!(matches!(s.get("d", "k"), Err(DictError::NotFound(_))));
    assert!(
        s.create("d").unwrap(),
        "a deleted name can be created again"
    );
    assert_eq!(get(s, "k"), None, "and starts empty");
}

/// Every operation checks its arguments before the backend sees them: a
/// bad dict name and an over-long key are refused by each one, and nothing
/// is written.
fn every_operation_refuses_bad_names_and_keys(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    put(s, "k", b"v");
    let (bad, long) = ("a/b", "k".repeat(4097));
    let keys = vec![long.clone()];
    let pairs = vec![(long.clone(), b"v".to_vec())];
    let opts = PutOptions::default();
    let by_name: Vec<(&str, Result<(), DictError>)> = vec![
        ("delete", s.delete(bad)),
        ("exists", s.exists(bad).map(drop)),
        ("get", s.get(bad, "k").map(drop)),
        ("get_many", s.get_many(bad, &[]).map(drop)),
        ("put", s.put(bad, "k", b"v", &opts).map(drop)),
        ("pop", s.pop(bad, "k").map(drop)),
        ("contains", s.contains(bad, "k").map(drop)),
        ("len", s.len(bad).map(drop)),
        ("update", s.update(bad, &[])),
        ("remove_many", s.remove_many(bad, &[]).map(drop)),
        ("scan", s.scan(bad, "", None, 10, true).map(drop)),
        ("clear", s.clear(bad)),
        ("increment", s.increment(bad, "k", 1).map(drop)),
        ("lock", s.lock(bad, "k", 1000).map(drop)),
        ("renew", s.renew(bad, "k", 1, 1000).map(drop)),
        ("release", s.release(bad, "k", 1)),
    ];
    for (op, r) in by_name {
        assert!(
            matches!(r, Err(DictError::InvalidName { .. })),
            "{op} with a bad name: {r:?}"
        );
    }
    let by_key: Vec<(&str, Result<(), DictError>)> = vec![
        ("get", s.get("d", &long).map(drop)),
        ("get_many", s.get_many("d", &keys).map(drop)),
        ("put", s.put("d", &long, b"v", &opts).map(drop)),
        ("pop", s.pop("d", &long).map(drop)),
        ("contains", s.contains("d", &long).map(drop)),
        ("update", s.update("d", &pairs)),
        ("remove_many", s.remove_many("d", &keys).map(drop)),
        ("scan prefix", s.scan("d", &long, None, 10, true).map(drop)),
        (
            "scan cursor",
            s.scan("d", "", Some(&long), 10, true).map(drop),
        ),
        ("increment", s.increment("d", &long, 1).map(drop)),
        ("lock", s.lock("d", &long, 1000).map(drop)),
        ("renew", s.renew("d", &long, 1, 1000).map(drop)),
        ("release", s.release("d", &long, 1)),
    ];
    for (op, r) in by_key {
        assert!(
            matches!(r, Err(DictError::InvalidKey(_))),
            "{op} with a 4097-byte key: {r:?}"
        );
    }
    assert_eq!(s.len("d").unwrap(), 1, "nothing was written");
    assert_eq!(get(s, "k").as_deref(), Some(&b"v"[..]));
    // An empty update writes nothing but still finds a missing dict.
    s.update("d", &[]).unwrap();
    assert!(matches!(s.update("nope", &[]), Err(DictError::NotFound(_))));
}

fn versions_grow_per_dict_and_are_never_reused(make: &Make) {
    let b = setup(make, WEEK);
    let v5 = {
        let s = &*b.dicts;
        let v1 = put(s, "a", b"1");
        let v2 = put(s, "b", b"2");
        assert!(v2 > v1);
        s.pop("d", "b").unwrap();
        let v3 = put(s, "b", b"2");
        assert!(v3 > v2);
        s.clear("d").unwrap();
        let v4 = put(s, "b", b"2");
        assert!(v4 > v3, "clear must not reset versions");
        s.delete("d").unwrap();
        s.create("d").unwrap();
        let v5 = put(s, "b", b"2");
        assert!(v5 > v4, "delete and create again must not reset versions");
        v5
    };
    let b = b.reopen();
    let s = &*b.dicts;
    assert_eq!(s.get("d", "b").unwrap().unwrap().version, v5);
    assert!(put(s, "c", b"3") > v5, "the counter persists");
}

fn cas_compares_versions_not_values(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    let v1 = put(s, "k", b"same");
    let cas = |v| PutOptions {
        if_version: Some(v),
        ..PutOptions::default()
    };
    let v2 = match s.put("d", "k", b"same", &cas(v1)).unwrap() {
        PutOutcome::Written { version } => version,
        PutOutcome::Skipped => panic!("skipped"),
    };
    assert!(matches!(
        s.put("d", "k", b"same", &cas(v1)),
        Err(DictError::VersionMismatch { key }) if key == "k"
    ));
    assert_eq!(s.get("d", "k").unwrap().unwrap().version, v2);
    assert!(matches!(
        s.put("d", "absent", b"x", &cas(1)),
        Err(DictError::VersionMismatch { .. })
    ));
    assert_eq!(get(s, "absent"), None);
}

fn if_absent_writes_once_and_reports_it(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    let once = PutOptions {
        if_absent: true,
        ttl_ms: Some(1000),
        ..PutOptions::default()
    };
    assert!(matches!(
        s.put("d", "lock", b"me", &once).unwrap(),
        PutOutcome::Written { .. }
    ));
    assert_eq!(
        s.put("d", "lock", b"you", &once).unwrap(),
        PutOutcome::Skipped
    );
    assert_eq!(get(s, "lock").unwrap(), b"me");
    b.clock.advance_ms(1000);
    assert!(matches!(
        s.put("d", "lock", b"you", &once).unwrap(),
        PutOutcome::Written { .. }
    ));
    assert_eq!(get(s, "lock").unwrap(), b"you");
    assert_eq!(s.len("d").unwrap(), 1);
}

fn idle_expiry_counts_reads_and_writes(make: &Make) {
    // idle 32 s: slack 1 s, so an entry lives 33 s after its last access.
    let b = setup(make, 32_000);
    let (s, clock) = (&*b.dicts, &b.clock);
    put(s, "a", b"1");
    put(s, "b", b"2");
    clock.advance_ms(20_000);
    assert!(get(s, "b").is_some(), "a read at 20 s refreshes b");
    clock.advance_ms(12_999);
    let page = s.scan("d", "a", None, 10, false).unwrap();
    assert_eq!(page.items.len(), 1, "a lives until 33 s");
    clock.advance_ms(1);
    assert_eq!(get(s, "a"), None, "a expired at 33 s without access");
    assert_eq!(s.len("d").unwrap(), 1);
    clock.advance_ms(19_999);
    assert!(
        s.contains("d", "b").unwrap(),
        "alive at 52.999 s (and refreshed)"
    );
    clock.advance_ms(33_000);
    assert!(!s.contains("d", "b").unwrap());
    assert_eq!(s.len("d").unwrap(), 0);
}

fn own_ttl_is_not_extended_by_reads(make: &Make) {
    let b = setup(make, WEEK);
    let (s, clock) = (&*b.dicts, &b.clock);
    s.put("d", "t", b"x", &ttl(5_000)).unwrap();
    clock.advance_ms(4_999);
    assert!(get(s, "t").is_some());
    clock.advance_ms(1);
    assert_eq!(get(s, "t"), None);
    s.put("d", "u", b"x", &ttl(5_000)).unwrap();
    put(s, "u", b"y");
    clock.advance_ms(10_000);
    assert_eq!(
        get(s, "u").unwrap(),
        b"y",
        "a plain put is back on the idle clock"
    );
    assert!(matches!(
        s.put("d", "z", b"x", &ttl(0)),
        Err(DictError::InvalidArgument(_))
    ));
}

fn len_is_exact_and_sweep_removes_what_is_due(make: &Make) {
    let b = setup(make, 10_000);
    let (s, clock) = (&*b.dicts, &b.clock);
    for i in 0..10 {
        s.put("d", &format!("t{i}"), b"x", &ttl(100)).unwrap();
    }
    for i in 0..5 {
        put(s, &format!("p{i}"), b"x");
    }
    assert_eq!(s.len("d").unwrap(), 15);
    clock.advance_ms(100);
    assert_eq!(s.len("d").unwrap(), 5, "expired entries never count");
    assert_eq!(s.sweep_expired(100).unwrap(), 0, "len purged them already");
    for i in 0..4 {
        s.put("d", &format!("t{i}"), b"x", &ttl(100)).unwrap();
    }
    clock.advance_ms(100);
    assert_eq!(s.sweep_expired(1).unwrap(), 1, "max bounds a sweep");
    assert_eq!(s.sweep_expired(100).unwrap(), 3);
    assert_eq!(s.len("d").unwrap(), 5);
    clock.advance_ms(10_000 + 10_000 / 32);
    assert_eq!(s.sweep_expired(100).unwrap(), 5);
    assert_eq!(s.len("d").unwrap(), 0);
    let listed: Vec<(String, u64)> = s
        .list()
        .unwrap()
        .into_iter()
        .map(|i| (i.name, i.len))
        .collect();
    assert_eq!(listed, vec![("d".to_string(), 0)]);
}

fn scan_pages_by_key_without_skips_or_repeats_under_writes(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    for i in (0..100).step_by(2) {
        put(s, &format!("k{i:03}"), b"v");
    }
    put(s, "other", b"v");
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut round = 0;
    loop {
        let page = s
            .scan("d", "k", cursor.as_deref(), 7, round % 2 == 0)
            .unwrap();
        assert!(page.items.len() <= 7);
        for it in &page.items {
            assert_eq!(it.value.is_some(), round % 2 == 0);
            seen.push(it.key.clone());
        }
        put(s, &format!("k{:03}", 2 * round + 1), b"new");
        s.pop("d", &format!("k{:03}", 98 - 2 * round)).unwrap();
        round += 1;
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "keys come once each, in order");
    for i in (0..50).step_by(2) {
        let k = format!("k{i:03}");
        if get(s, &k).is_some() {
            assert!(seen.contains(&k), "{k} skipped");
        }
    }
    assert!(!seen.iter().any(|k| k == "other"));
    let many: Vec<(String, Vec<u8>)> = (0..1_100)
        .map(|i| (format!("z{i:05}"), Vec::new()))
        .collect();
    s.update("d", &many).unwrap();
    assert_eq!(s.scan("d", "z", None, 0, false).unwrap().items.len(), 1_000);
    assert_eq!(
        s.scan("d", "z", None, 50_000, false).unwrap().items.len(),
        1_000
    );
    let last = s.scan("d", "z", Some("z01000"), 1_000, false).unwrap();
    assert_eq!(last.items.len(), 99);
    assert_eq!(last.cursor, None, "the last page says it is the last");
    assert_eq!(
        s.scan("d", "z", Some("a"), 1, false).unwrap().items[0].key,
        "z00000"
    );
    // Byte order, and keys beyond ASCII.
    put(s, "\u{e9}", b"1");
    put(s, "\u{7f}", b"2");
    put(s, "\u{10000}", b"3");
    let all = s.scan("d", "", Some("z99999"), 10, false).unwrap();
    let keys: Vec<&str> = all.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["\u{7f}", "\u{e9}", "\u{10000}"]);
}

fn increment_uses_decimal_text_and_never_panics(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    assert_eq!(s.increment("d", "n", 5).unwrap(), 5);
    assert_eq!(s.increment("d", "n", -7).unwrap(), -2);
    assert_eq!(get(s, "n").unwrap(), b"-2");
    put(s, "j", b"41");
    assert_eq!(s.increment("d", "j", 1).unwrap(), 42);
    for bad in [&b"abc"[..], b"", b" 1", b"1.5", b"\xff\xfe", &[0u8; 8][..]] {
        put(s, "bad", bad);
        assert!(
            matches!(s.increment("d", "bad", 1), Err(DictError::NotACounter { ref key }) if key == "bad"),
            "{bad:?}"
        );
        assert_eq!(get(s, "bad").unwrap(), bad, "left as it was");
    }
    put(s, "max", i64::MAX.to_string().as_bytes());
    assert!(matches!(
        s.increment("d", "max", 1),
        Err(DictError::Overflow { .. })
    ));
    assert_eq!(s.increment("d", "max", -1).unwrap(), i64::MAX - 1);
    put(s, "min", i64::MIN.to_string().as_bytes());
    assert!(matches!(
        s.increment("d", "min", -1),
        Err(DictError::Overflow { .. })
    ));
}

fn leases_fence_with_growing_tokens(make: &Make) {
    let b = setup(make, WEEK);
    let d = {
        let (s, clock) = (&*b.dicts, &b.clock);
        let a = s.lock("d", "job", 1_000).unwrap().unwrap();
        assert_eq!(a.expires_at_ms, T0 + 1_000);
        assert_eq!(s.lock("d", "job", 1_000).unwrap(), None, "held");
        let other = s.lock("d", "other-job", 1_000).unwrap().unwrap();
        assert_ne!(other.token, a.token);
        clock.advance_ms(900);
        s.renew("d", "job", a.token, 1_000).unwrap();
        clock.advance_ms(900);
        assert_eq!(s.lock("d", "job", 1_000).unwrap(), None);
        clock.advance_ms(200);
        s.renew("d", "job", a.token, 1_000).unwrap();
        clock.advance_ms(1_000);
        let b2 = s.lock("d", "job", 1_000).unwrap().unwrap();
        assert!(b2.token > a.token);
        assert!(matches!(
            s.renew("d", "job", a.token, 1_000),
            Err(DictError::LeaseLost { key }) if key == "job"
        ));
        s.release("d", "job", a.token).unwrap();
        assert_eq!(s.lock("d", "job", 1_000).unwrap(), None);
        s.release("d", "job", b2.token).unwrap();
        let c = s.lock("d", "job", 1_000).unwrap().unwrap();
        assert!(c.token > b2.token, "tokens grow across release");
        s.release("d", "job", c.token).unwrap();
        s.clear("d").unwrap();
        let d = s.lock("d", "job", 1_000).unwrap().unwrap();
        assert!(d.token > c.token, "and across clear");
        d
    };
    let b = b.reopen();
    let (s, clock) = (&*b.dicts, &b.clock);
    assert_eq!(s.lock("d", "job", 1_000).unwrap(), None, "persisted");
    clock.advance_ms(1_000);
    s.delete("d").unwrap();
    s.create("d").unwrap();
    let e = s.lock("d", "job", 1_000).unwrap().unwrap();
    assert!(e.token > d.token, "and across restart, delete and create");
    assert!(matches!(
        s.lock("d", "job", 0),
        Err(DictError::InvalidArgument(_))
    ));
}

fn limits_are_enforced_with_clear_errors(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    let long = "k".repeat(4097);
    let e = s.put("d", &long, b"", &PutOptions::default()).unwrap_err();
    assert!(
        matches!(e, DictError::InvalidKey(_)) && e.to_string().contains("4096"),
        "{e}"
    );
    assert!(matches!(s.get("d", &long), Err(DictError::InvalidKey(_))));
    put(s, &"k".repeat(4096), b"ok");
    let big = vec![0u8; (100 << 20) + 1];
    let e = s.put("d", "big", &big, &PutOptions::default()).unwrap_err();
    assert!(
        matches!(e, DictError::TooLarge(_)) && e.to_string().contains("104857600"),
        "{e}"
    );
    drop(big);
    let many: Vec<(String, Vec<u8>)> = (0..10_001)
        .map(|i| (format!("u{i}"), b"1".to_vec()))
        .collect();
    let e = s.update("d", &many).unwrap_err();
    assert!(
        matches!(e, DictError::TooLarge(_)) && e.to_string().contains("10000"),
        "{e}"
    );
    assert_eq!(s.len("d").unwrap(), 1, "nothing of the update landed");
    s.update("d", &many[..10_000]).unwrap();
    assert_eq!(s.len("d").unwrap(), 10_001);
    let l = s.limits();
    assert_eq!(
        (l.max_key_bytes, l.max_value_bytes, l.max_update_entries),
        (4096, 100 << 20, 10_000)
    );
    // A large value round-trips.
    let value: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    s.put("d", "large", &value, &PutOptions::default()).unwrap();
    assert_eq!(get(s, "large").unwrap(), value);
}

fn remove_many_is_one_step_and_counts_live_entries(make: &Make) {
    let b = setup(make, 32_000);
    let (s, clock) = (&*b.dicts, &b.clock);
    put(s, "a", b"1");
    put(s, "b", b"2");
    put(s, "old", b"3");
    clock.advance_ms(20_000);
    put(s, "a", b"1");
    put(s, "b", b"2");
    put(s, "c", b"4");
    clock.advance_ms(13_000);
    let keys: Vec<String> = ["a", "old", "missing", "a", "c"]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    assert_eq!(s.remove_many("d", &keys).unwrap(), 2);
    assert_eq!((get(s, "a"), get(s, "c")), (None, None));
    assert_eq!(get(s, "b").unwrap(), b"2");
    assert_eq!(s.len("d").unwrap(), 1, "len stays exact");
    let too_many: Vec<String> = (0..=10_000).map(|_| "b".to_owned()).collect();
    assert!(matches!(
        s.remove_many("d", &too_many),
        Err(DictError::TooLarge(_))
    ));
    let bad = vec!["b".to_owned(), "k".repeat(5000)];
    assert!(matches!(
        s.remove_many("d", &bad),
        Err(DictError::InvalidKey(_))
    ));
    assert_eq!(get(s, "b").unwrap(), b"2");
    assert!(matches!(
        s.remove_many("nope", &["b".to_owned()]),
        Err(DictError::NotFound(_))
    ));
}

fn update_is_all_or_nothing(make: &Make) {
    let b = setup(make, WEEK);
    let s = &*b.dicts;
    let bad = vec![
        ("a".to_string(), b"1".to_vec()),
        ("k".repeat(5000), b"2".to_vec()),
    ];
    assert!(s.update("d", &bad).is_err());
    assert_eq!(get(s, "a"), None);
    let before = put(s, "x", b"0");
    s.update(
        "d",
        &[
            ("a".into(), b"1".to_vec()),
            ("b".into(), b"2".to_vec()),
            ("a".into(), b"3".to_vec()),
        ],
    )
    .unwrap();
    assert_eq!(get(s, "a").unwrap(), b"3", "the last of a key wins");
    let (va, vb) = (
        s.get("d", "a").unwrap().unwrap().version,
        s.get("d", "b").unwrap().unwrap().version,
    );
    assert!(vb > before && va > vb, "versions follow the pairs' order");
    assert_eq!(s.len("d").unwrap(), 3);
    let many = s
        .get_many("d", &["b".into(), "zz".into(), "a".into()])
        .unwrap();
    assert_eq!(
        many.into_iter()
            .map(|e| e.map(|e| e.value))
            .collect::<Vec<_>>(),
        vec![Some(b"2".to_vec()), None, Some(b"3".to_vec())]
    );
    s.update("d", &[]).unwrap();
    assert!(matches!(s.update("nope", &[]), Err(DictError::NotFound(_))));
}

/// Threads (and, on the shared backend, two hosts) hammer the same keys.
fn contending_writers_lose_nothing(make: &Make) {
    let b = setup(make, WEEK);
    let (second, _) = b.second_host();
    const THREADS: usize = 8;
    const ROUNDS: usize = 15;
    let stores: Vec<std::sync::Arc<dyn DictStore>> = vec![b.dicts.clone(), second];
    let (winners, tokens): (usize, Vec<u64>) = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|i| {
                let s = stores[i % 2].clone();
                sc.spawn(move || {
                    let mut won = 0;
                    let mut tokens = Vec::new();
                    for k in 0..10 {
                        let o = s
                            .put(
                                "d",
                                &format!("once{k}"),
                                format!("{i}").as_bytes(),
                                &PutOptions {
                                    if_absent: true,
                                    ..PutOptions::default()
                                },
                            )
                            .unwrap();
                        if matches!(o, PutOutcome::Written { .. }) {
                            won += 1;
                        }
                    }
                    for _ in 0..ROUNDS {
                        s.increment("d", "n", 1).unwrap();
                        loop {
                            let cur = s.get("d", "cas").unwrap();
                            let (n, opts) = match cur {
                                Some(e) => (
                                    std::str::from_utf8(&e.value)
                                        .unwrap()
                                        .parse::<i64>()
                                        .unwrap(),
                                    PutOptions {
                                        if_version: Some(e.version),
                                        ..PutOptions::default()
                                    },
                                ),
                                None => (
                                    0,
                                    PutOptions {
                                        if_absent: true,
                                        ..PutOptions::default()
                                    },
                                ),
                            };
                            match s.put("d", "cas", (n + 1).to_string().as_bytes(), &opts) {
                                Ok(PutOutcome::Written { .. }) => break,
                                Ok(PutOutcome::Skipped)
                                | Err(DictError::VersionMismatch { .. }) => continue,
                                Err(e) => panic!("{e}"),
                            }
                        }
                        // A lease taken is exclusive; its token fences.
                        if let Some(l) = s.lock("d", "lease", 60_000).unwrap() {
                            tokens.push(l.token);
                            s.release("d", "lease", l.token).unwrap();
                        }
                    }
                    (won, tokens)
                })
            })
            .collect();
        let mut w = 0;
        let mut t = Vec::new();
        for h in hs {
            let (won, tokens) = h.join().unwrap();
            w += won;
            t.extend(tokens);
        }
        (w, t)
    });
    let s = &*b.dicts;
    assert_eq!(winners, 10, "exactly one winner per if-absent key");
    assert_eq!(
        get(s, "n").unwrap(),
        (THREADS * ROUNDS).to_string().as_bytes()
    );
    assert_eq!(
        get(s, "cas").unwrap(),
        (THREADS * ROUNDS).to_string().as_bytes()
    );
    let mut sorted = tokens.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        tokens.len(),
        "no fencing token handed out twice"
    );
    assert!(!tokens.is_empty());
}

super::suite!(
    names_are_validated_and_missing_dicts_are_not_found,
    every_operation_refuses_bad_names_and_keys,
    versions_grow_per_dict_and_are_never_reused,
    cas_compares_versions_not_values,
    if_absent_writes_once_and_reports_it,
    idle_expiry_counts_reads_and_writes,
    own_ttl_is_not_extended_by_reads,
    len_is_exact_and_sweep_removes_what_is_due,
    scan_pages_by_key_without_skips_or_repeats_under_writes,
    increment_uses_decimal_text_and_never_panics,
    leases_fence_with_growing_tokens,
    limits_are_enforced_with_clear_errors,
    remove_many_is_one_step_and_counts_live_entries,
    update_is_all_or_nothing,
    contending_writers_lose_nothing,
    behaves_like_a_sorted_map_with_expiry,
);
