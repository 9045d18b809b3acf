//! Unit tests of `wal`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;

struct Open {
    db: sled::Db,
    wal: Wal,
    tree: Tree,
}

fn open(dir: &Path, mode: DurabilityMode) -> Open {
    // A relaxed store's flusher may hold the last one open a moment.
    let mut tries = 0;
    let db = loop {
        match sled::Config::new()
            .path(dir.join("db"))
            .flush_every_ms(None)
            .open()
        {
            Ok(db) => break db,
            Err(e) if tries < 100 => {
                tries += 1;
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    };
    let durability = Durability::new(db.clone(), dir.join("db"), mode);
    let wal = Wal::open(&db, &dir.join("wal"), &StorageIo::default(), &durability).unwrap();
    let tree = db.open_tree("t").unwrap();
    Open { db, wal, tree }
}

fn put(o: &Open, pairs: &[(&str, &str)]) {
    o.wal
        .transact(
            true,
            |e| e,
            |b| {
                for (k, v) in pairs {
                    b.insert(&o.tree, k.as_bytes(), v.as_bytes());
                }
                Ok::<_, io::Error>(())
            },
        )
        .unwrap();
}

/// As a crash before sled wrote anything since the store opened
/// leaves it: no record applied, the tree empty.
fn sled_forgets_everything(o: &Open) {
    o.wal
        .inner
        .state
        .insert(APPLIED, &0u64.to_be_bytes()[..])
        .unwrap();
    o.tree.clear().unwrap();
    o.db.flush().unwrap();
}

fn get(o: &Open, k: &str) -> Option<Vec<u8>> {
    o.tree.get(k).unwrap().map(|v| v.to_vec())
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn synced(o: &Open) -> u64 {
    o.wal.inner.sync.lock().unwrap().synced
}

#[test]
fn a_deferred_write_is_answered_before_its_round_and_awaited_after() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), DurabilityMode::Sync);
    put(&o, &[("a", "0")]);
    let before = synced(&o);
    let seq = o
        .wal
        .deferring(&mut || {
            put(&o, &[("a", "1")]);
            put(&o, &[("b", "2")]);
            // A change that must be in sled before it returns waits
            // even here.
            o.wal.undeferred(|| put(&o, &[("c", "3")]));
            put(&o, &[("d", "4")]);
        })
        .expect("the writes must be awaited");
    assert_eq!(seq, before + 4, "the newest record is the one to await");
    // `c`'s round covered `a` and `b` (appended before it), not `d`.
    assert_eq!(synced(&o), before + 3);
    assert_eq!(get(&o, "d"), None, "not in sled before its round");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(o.wal.durable(seq)).unwrap();
    assert!(synced(&o) >= seq);
    assert_eq!(get(&o, "d").as_deref(), Some(&b"4"[..]));
    assert_eq!(get(&o, "a").as_deref(), Some(&b"1"[..]));
    // Outside `deferring`, writes wait again.
    put(&o, &[("e", "5")]);
    assert_eq!(synced(&o), seq + 1);
    // Nothing deferred: nothing to await.
    assert_eq!(o.wal.deferring(&mut || ()), None);
}

#[test]
fn a_task_waiting_on_another_round_is_woken_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), DurabilityMode::Sync);
    let seq = o.wal.deferring(&mut || put(&o, &[("a", "1")])).unwrap();
    // Pretend a round is running, so the future must wait for it.
    o.wal.inner.sync.lock().unwrap().syncing = true;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    let waiting = rt.spawn(o.wal.durable(seq));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!waiting.is_finished(), "resolved while a round ran");
    assert_eq!(o.wal.inner.sync.lock().unwrap().wakers.len(), 1);
    // The round ends without covering it: the woken task leads its own.
    {
        let mut st = o.wal.inner.sync.lock().unwrap();
        st.syncing = false;
        for w in st.wakers.drain(..) {
            w.wake();
        }
    }
    rt.block_on(waiting).unwrap().unwrap();
    assert!(synced(&o) >= seq);
    assert_eq!(get(&o, "a").as_deref(), Some(&b"1"[..]));
}

#[test]
fn replay_completes_what_sled_kept_only_part_of() {
    let dir = tempfile::tempdir().unwrap();
    {
        let o = open(dir.path(), DurabilityMode::Sync);
        put(&o, &[("a", "1")]);
        put(&o, &[("b", "2"), ("c", "3")]);
        // sled kept the first record and half of the second, as a
        // crash between its writes would leave it.
        o.tree.remove("c").unwrap();
        o.wal
            .inner
            .state
            .insert(APPLIED, &1u64.to_be_bytes()[..])
            .unwrap();
        o.tree.insert("a", "stale").unwrap();
        o.db.flush().unwrap();
        // Keep the log file: a dropped store does not checkpoint.
    }
    let o = open(dir.path(), DurabilityMode::Sync);
    assert_eq!(
        get(&o, "a").as_deref(),
        Some(&b"stale"[..]),
        "record 1 was applied: not replayed"
    );
    assert_eq!(get(&o, "b").as_deref(), Some(&b"2"[..]));
    assert_eq!(
        get(&o, "c").as_deref(),
        Some(&b"3"[..]),
        "record 2 replayed whole"
    );
    assert_eq!(
        log_files(dir.path()).len(),
        1,
        "the replayed file is gone after the checkpoint"
    );
    put(&o, &[("d", "4")]);
    assert_eq!(get(&o, "d").as_deref(), Some(&b"4"[..]));
}

#[test]
fn a_torn_tail_ends_the_replay_and_what_precedes_it_survives() {
    let dir = tempfile::tempdir().unwrap();
    {
        let o = open(dir.path(), DurabilityMode::Sync);
        put(&o, &[("a", "1")]);
        put(&o, &[("b", "2")]);
        sled_forgets_everything(&o);
    }
    // Tear the second record: its last byte never reached the disk.
    let file = log_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let end = |at: usize| at + HEADER + u64_of(&bytes[at..at + 8]).unwrap() as usize;
    let second_end = end(end(0));
    assert!(
        bytes[second_end..].iter().all(|b| *b == 0),
        "zeros follow the records"
    );
    bytes[second_end - 1] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let o = open(dir.path(), DurabilityMode::Sync);
    assert_eq!(get(&o, "a").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&o, "b"), None, "a torn record is not applied");
    put(&o, &[("c", "3")]);
    drop(o);
    let o = open(dir.path(), DurabilityMode::Sync);
    assert_eq!(
        get(&o, "c").as_deref(),
        Some(&b"3"[..]),
        "numbering went on after the tear"
    );
}

#[test]
fn log_files_frame_decode_and_encode_back() {
    let dir = tempfile::tempdir().unwrap();
    {
        let o = open(dir.path(), DurabilityMode::Sync);
        put(&o, &[("a", "1"), ("b", "")]);
        o.wal
            .transact(
                true,
                |e| e,
                |b| {
                    b.remove(&o.tree, "a");
                    Ok::<_, io::Error>(())
                },
            )
            .unwrap();
    }
    let bytes = std::fs::read(log_files(dir.path()).pop().unwrap()).unwrap();
    assert_eq!(check_log(&bytes), Ok(2), "both records, then zeros");
    let first = frames(&bytes).next().unwrap();
    assert!(first.intact);
    let ops = decode(first.payload).unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!((ops[1].key, ops[1].value), (&b"b"[..], Some(&b""[..])));
    // Trailing bytes or a bad tag make a payload not a record's.
    let mut longer = first.payload.to_vec();
    longer.push(0);
    assert!(decode(&longer).is_none());
    assert_eq!(check_log(b"\x00\x00\x00\x00\x00\x00\x00\x05short"), Ok(0));
}

#[test]
fn a_full_log_is_checkpointed_into_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), DurabilityMode::Sync);
    o.wal
        .inner
        .checkpoint_bytes
        .store(4096, std::sync::atomic::Ordering::Relaxed);
    let first = log_files(dir.path());
    let v = "x".repeat(1000);
    for i in 0..20 {
        put(&o, &[(&format!("k{i}"), &v)]);
    }
    let now = log_files(dir.path());
    assert_eq!(now.len(), 1, "old files are removed: {now:?}");
    assert_ne!(now, first, "the log moved to a new file");
    assert!(std::fs::metadata(&now[0]).unwrap().len() <= 4096 + 1100);
    drop(o);
    let o = open(dir.path(), DurabilityMode::Sync);
    for i in 0..20 {
        assert_eq!(get(&o, &format!("k{i}")).as_deref(), Some(v.as_bytes()));
    }
}

#[test]
fn sled_sees_a_write_only_once_it_is_durable_and_unwaited_ones_land_soon() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), DurabilityMode::Sync);
    let rounds = o.wal.rounds();
    o.wal
        .transact(
            false,
            |e| e,
            |b| {
                b.insert(&o.tree, "lazy", "1");
                Ok::<_, io::Error>(())
            },
        )
        .unwrap();
    // A later batch reads it before sled has it.
    let seen = o
        .wal
        .transact(
            true,
            |e| e,
            |b| Ok::<_, io::Error>(b.get(&o.tree, b"lazy").unwrap()),
        )
        .unwrap();
    assert_eq!(seen.as_deref(), Some(&b"1"[..]));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&o, "lazy").is_none() {
        assert!(std::time::Instant::now() < deadline, "never applied");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(o.wal.rounds() > rounds);
}

#[test]
fn relaxed_mode_applies_at_once_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let o = open(
            dir.path(),
            DurabilityMode::Relaxed {
                interval: Duration::from_secs(3600),
            },
        );
        let rounds = o.wal.rounds();
        put(&o, &[("a", "1"), ("b", "2")]);
        assert_eq!(get(&o, "a").as_deref(), Some(&b"1"[..]));
        assert_eq!(o.wal.rounds(), rounds, "no fsync round in relaxed mode");
        // sled loses its unflushed writes (as at kill -9); the log
        // (in the page cache) brings them back.
        sled_forgets_everything(&o);
    }
    let o = open(dir.path(), DurabilityMode::Sync);
    assert_eq!(get(&o, "b").as_deref(), Some(&b"2"[..]));
}

#[test]
fn ids_never_repeat_even_if_sled_forgets_its_generator() {
    let dir = tempfile::tempdir().unwrap();
    let o = open(dir.path(), DurabilityMode::Sync);
    let id = |o: &Open| {
        o.wal
            .transact(true, |e| e, |b| b.new_id().map_err(to_io))
            .unwrap()
    };
    let a = id(&o);
    let b = id(&o);
    assert!(b > a);
    assert_eq!(
        u64_of(&o.wal.inner.state.get(NEXT_ID).unwrap().unwrap()),
        Some(b),
        "the counter is stored with the batch"
    );
}
