//! Unit tests of `dict`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::storage::clock::ManualClock;
use crate::storage::embedded::{DurabilityMode, EmbeddedOptions};

const T0: u64 = 1_000_000;

fn open(dir: &std::path::Path, idle: u64, clock: &ManualClock, fast: bool) -> EmbeddedStore {
    let durability = if fast {
        // The property test makes thousands of writes; fsyncing each
        // would only slow it down. The durability barrier has its own
        // tests; here the logic is under test.
        DurabilityMode::Relaxed {
            interval: Duration::from_secs(3600),
        }
    } else {
        DurabilityMode::Sync
    };
    let opts = EmbeddedOptions {
        durability,
        dict_idle_expiry_ms: idle,
        ..EmbeddedOptions::default()
    };
    EmbeddedStore::open_with_clock(dir, opts, Arc::new(clock.clone())).unwrap()
}

fn setup(idle: u64) -> (tempfile::TempDir, EmbeddedStore, ManualClock) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), idle, &clock, true);
    assert!(s.create("d").unwrap());
    (dir, s, clock)
}

fn put(s: &EmbeddedStore, k: &str, v: &[u8]) -> u64 {
    match s.put("d", k, v, &PutOptions::default()).unwrap() {
        PutOutcome::Written { version } => version,
        PutOutcome::Skipped => panic!("unconditional put skipped"),
    }
}

fn get(s: &EmbeddedStore, k: &str) -> Option<Vec<u8>> {
    s.get("d", k).unwrap().map(|e| e.value)
}

#[test]
fn reads_refresh_only_after_a_fraction_of_the_idle_period() {
    let (_d, s, clock) = setup(32_000);
    put(&s, "a", b"1");
    let meta = s.dict_meta_of("d").unwrap();
    let entries = s.dict_trees(&meta).unwrap().entries;
    let access = || {
        Header::decode(b"a", &entries.get("a").unwrap().unwrap())
            .unwrap()
            .access
    };
    clock.advance_ms(999);
    get(&s, "a");
    assert_eq!(access(), T0, "a read within the slack writes nothing");
    clock.advance_ms(1);
    get(&s, "a");
    assert_eq!(access(), T0 + 1000);
}

#[test]
fn len_is_exact_and_sweep_uses_the_index() {
    let (_d, s, clock) = setup(10_000);
    let ttl = |ms| PutOptions {
        ttl_ms: Some(ms),
        ..PutOptions::default()
    };
    for i in 0..10 {
        s.put("d", &format!("t{i}"), b"x", &ttl(100)).unwrap();
    }
    for i in 0..5 {
        put(&s, &format!("p{i}"), b"x");
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
    let meta = s.dict_meta_of("d").unwrap();
    let t = s.dict_trees(&meta).unwrap();
    assert_eq!(t.entries.len(), 5);
    assert_eq!(t.index.len(), 5, "the index holds one key per entry");
    assert_eq!(meta.live, 5);
    // Idle entries: 10 s + slack.
    clock.advance_ms(10_000 + 10_000 / expiry::TOUCH_FRACTION);
    assert_eq!(s.sweep_expired(100).unwrap(), 5);
    assert_eq!(s.len("d").unwrap(), 0);
}

#[test]
fn idle_period_can_change_at_run_time() {
    let (_d, s, clock) = setup(DEFAULT_IDLE_EXPIRY_MS);
    put(&s, "a", b"1");
    clock.advance_ms(3_200);
    assert!(get(&s, "a").is_some());
    s.set_dict_idle_expiry_ms(3_200);
    assert_eq!(s.limits().idle_expiry_ms, 3_200);
    clock.advance_ms(3_300);
    assert_eq!(s.len("d").unwrap(), 0);
}

#[test]
fn cached_reads_follow_clear_delete_and_recreate() {
    let (_d, s, _c) = setup(DEFAULT_IDLE_EXPIRY_MS);
    put(&s, "a", b"1");
    assert_eq!(
        get(&s, "a").unwrap(),
        b"1",
        "the dict's trees are cached now"
    );
    s.clear("d").unwrap();
    assert_eq!(get(&s, "a"), None);
    put(&s, "a", b"2");
    assert_eq!(get(&s, "a").unwrap(), b"2");
    s.delete("d").unwrap();
    assert!(matches!(s.get("d", "a"), Err(DictError::NotFound(_))));
    assert!(matches!(
        s.scan("d", "", None, 10, false),
        Err(DictError::NotFound(_))
    ));
    assert!(s.create("d").unwrap());
    assert_eq!(get(&s, "a"), None);
    put(&s, "b", b"3");
    let page = s.scan("d", "", None, 10, true).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].value.as_deref(), Some(&b"3"[..]));
    // Many dicts: the cache starts afresh past its bound and stays right.
    for i in 0..READ_CACHE_DICTS + 10 {
        let name = format!("d{i}");
        s.create(&name).unwrap();
        assert_eq!(s.get(&name, "k").unwrap(), None);
    }
    assert_eq!(get(&s, "b").unwrap(), b"3");
}

#[test]
fn corrupt_records_are_errors_not_panics() {
    let (_d, s, _c) = setup(DEFAULT_IDLE_EXPIRY_MS);
    put(&s, "ok", b"1");
    let meta = s.dict_meta_of("d").unwrap();
    let t = s.dict_trees(&meta).unwrap();
    t.entries.insert("bad", &b"\x01short"[..]).unwrap();
    t.leases.insert("bad", &b"\x09"[..]).unwrap();
    assert!(matches!(s.get("d", "bad"), Err(DictError::Corrupt(_))));
    assert!(matches!(
        s.put("d", "bad", b"x", &PutOptions::default()),
        Err(DictError::Corrupt(_))
    ));
    assert!(matches!(
        s.increment("d", "bad", 1),
        Err(DictError::Corrupt(_))
    ));
    assert!(matches!(
        s.scan("d", "", None, 10, true),
        Err(DictError::Corrupt(_))
    ));
    assert!(matches!(s.lock("d", "bad", 10), Err(DictError::Corrupt(_))));
    assert_eq!(get(&s, "ok").unwrap(), b"1", "the rest still reads");
    s.dict_meta_tree()
        .unwrap()
        .insert("d", &b"\x01\x02"[..])
        .unwrap();
    assert!(matches!(
        s.put("d", "ok", b"2", &PutOptions::default()),
        Err(DictError::Corrupt(_))
    ));
    assert!(matches!(s.list(), Err(DictError::Corrupt(_))));
    // Reads use the cached trees; a store opened afresh reads the
    // record first.
    s.dict_forget_trees("d");
    assert!(matches!(s.get("d", "ok"), Err(DictError::Corrupt(_))));
}

#[test]
fn writes_survive_reopen_and_clear_frees_old_trees() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    {
        let s = open(dir.path(), DEFAULT_IDLE_EXPIRY_MS, &clock, false);
        s.create("d").unwrap();
        put(&s, "k", b"durable");
        s.create("e").unwrap();
        put_in(&s, "e", "x");
        s.clear("e").unwrap();
        put_in(&s, "e", "y");
    }
    let s = open(dir.path(), DEFAULT_IDLE_EXPIRY_MS, &clock, false);
    assert_eq!(get(&s, "k").unwrap(), b"durable");
    assert_eq!(s.get("e", "x").unwrap(), None);
    assert_eq!(s.len("e").unwrap(), 1);
    let trees = || s.db.tree_names().len();
    let before = trees();
    s.sweep_expired(10).unwrap();
    s.sweep_expired(10).unwrap();
    assert_eq!(trees(), before - 2, "the cleared trees are dropped");
    assert_eq!(s.get("e", "y").unwrap().unwrap().value, b"v");
}

fn put_in(s: &EmbeddedStore, dict: &str, k: &str) {
    s.put(dict, k, b"v", &PutOptions::default()).unwrap();
}

#[test]
fn background_sweeper_runs_and_stops() {
    let (_d, s, clock) = setup(DEFAULT_IDLE_EXPIRY_MS);
    s.put(
        "d",
        "t",
        b"x",
        &PutOptions {
            ttl_ms: Some(10),
            ..PutOptions::default()
        },
    )
    .unwrap();
    clock.advance_ms(10);
    let sweeper =
        crate::storage::dict::spawn_sweeper(Arc::new(s.clone()), Duration::from_millis(5));
    let start = std::time::Instant::now();
    while s.dict_meta_of("d").unwrap().live != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never swept");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(sweeper);
}

#[test]
fn cached_reads_never_go_back_or_stay_stale() {
    const WRITES: u64 = 600;
    for fast in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let s = open(dir.path(), DEFAULT_IDLE_EXPIRY_MS, &clock, fast);
        s.create("d").unwrap();
        put(&s, "k", b"0");
        let value = |s: &EmbeddedStore| -> u64 {
            String::from_utf8(get(s, "k").unwrap())
                .unwrap()
                .parse()
                .unwrap()
        };
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..3 {
                scope.spawn(|| {
                    let mut last = 0;
                    while !done.load(Ordering::Relaxed) {
                        let now = value(&s);
                        assert!(now >= last, "read {now} after {last}");
                        last = now;
                    }
                    assert_eq!(value(&s), WRITES, "a stale row outlived the writes");
                });
            }
            for i in 1..=WRITES {
                put(&s, "k", i.to_string().as_bytes());
                assert_eq!(value(&s), i, "read-your-writes");
            }
            done.store(true, Ordering::Relaxed);
        });
        // Clear and delete leave nothing to serve.
        s.clear("d").unwrap();
        assert_eq!(get(&s, "k"), None);
        put(&s, "k", b"again");
        assert_eq!(get(&s, "k").unwrap(), b"again");
        s.delete("d").unwrap();
        s.create("d").unwrap();
        assert_eq!(get(&s, "k"), None);
    }
}

#[test]
fn contending_threads_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), DEFAULT_IDLE_EXPIRY_MS, &clock, false);
    s.create("d").unwrap();
    const THREADS: usize = 8;
    let barrier = std::sync::Barrier::new(THREADS);
    let winners: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|i| {
                let (s, barrier) = (&s, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    let mut won = 0;
                    // if-absent: one winner per key.
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
                    for _ in 0..25 {
                        s.increment("d", "n", 1).unwrap();
                        // CAS loop: read, add, write if unchanged.
                        loop {
                            let cur = s.get("d", "cas").unwrap();
                            let (n, opts) = match cur {
                                Some(e) => (
                                    parse_counter("cas", &e.value).unwrap(),
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
                    }
                    won
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 10, "exactly one winner per if-absent key");
    assert_eq!(get(&s, "n").unwrap(), (THREADS * 25).to_string().as_bytes());
    assert_eq!(
        get(&s, "cas").unwrap(),
        (THREADS * 25).to_string().as_bytes()
    );
    assert!(
        s.dict_log_rounds() < (THREADS * 85) as u64,
        "group commit shares fsyncs"
    );
}

/// A value from [`EXTERNAL_VALUE_BYTES`] up is a blob: the entry in sled is
/// its header and reference, every read returns the bytes, refreshes and
/// reopening keep it, gc keeps it while an entry names it and removes it
/// after.
#[test]
fn large_values_live_in_the_blob_folder_and_gc_keeps_them_while_named() {
    use crate::storage::volume::GcOptions;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let big: Vec<u8> = (0..EXTERNAL_VALUE_BYTES + 7)
        .map(|i| (i % 253) as u8)
        .collect();
    let just_under = vec![9u8; EXTERNAL_VALUE_BYTES - 1];
    let gc_now = |s: &EmbeddedStore| {
        crate::storage::volume::VolumeStore::gc(
            s,
            &GcOptions {
                pinned: &|_| false,
                min_age: Some(Duration::ZERO),
            },
        )
        .unwrap()
    };
    {
        let s = open(dir.path(), 60_000, &clock, false);
        assert!(s.create("d").unwrap());
        s.put("d", "big", &big, &PutOptions::default()).unwrap();
        s.put("d", "under", &just_under, &PutOptions::default())
            .unwrap();
        assert_eq!(
            s.blobs().list().unwrap().len(),
            1,
            "only the big value is a blob"
        );
        let meta = s.dict_meta_of("d").unwrap();
        let entries = s.db.open_tree(tree_name(meta.data_id, 'e')).unwrap();
        let row = entries.get("big").unwrap().unwrap();
        assert_eq!(
            row.len(),
            ENTRY_HEADER + 40,
            "sled holds the reference only"
        );
        assert_eq!(s.get("d", "big").unwrap().unwrap().value, big);
        // A read that refreshes the access time keeps the reference.
        clock.advance_ms(40_000);
        assert_eq!(s.get("d", "big").unwrap().unwrap().value, big);
        assert_eq!(
            entries.get("big").unwrap().unwrap().len(),
            ENTRY_HEADER + 40
        );
        let page = s.scan("d", "", None, 10, true).unwrap();
        assert_eq!(page.items[0].key, "big");
        assert_eq!(page.items[0].size, big.len() as u64);
        assert_eq!(page.items[0].value.as_deref(), Some(&big[..]));
        assert!(matches!(
            s.increment("d", "big", 1),
            Err(DictError::NotACounter { .. })
        ));
        assert_eq!(gc_now(&s).removed_blobs, 0, "gc removed a named value");
    }
    let s = open(dir.path(), 60_000, &clock, false);
    assert_eq!(s.get("d", "big").unwrap().unwrap().value, big);
    // Replaced by a small value: the blob is unnamed, and gc removes it.
    s.update("d", &[("big".to_owned(), b"1".to_vec())]).unwrap();
    assert_eq!(gc_now(&s).removed_blobs, 1);
    assert!(s.blobs().list().unwrap().is_empty());
    // Put again and popped: the pop returns the bytes.
    s.put("d", "big", &big, &PutOptions::default()).unwrap();
    assert_eq!(s.pop("d", "big").unwrap().unwrap().value, big);
    assert_eq!(gc_now(&s).removed_blobs, 1);
}
