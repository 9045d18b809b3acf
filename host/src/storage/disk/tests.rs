//! Unit tests of `disk`.

#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn fault_plans_parse_and_bad_ones_say_why() {
    let p = FaultPlan::parse("fsync:3, write:1:forever:enospc").unwrap();
    assert_eq!(
        p.faults,
        vec![
            Fault {
                kind: OpKind::Fsync,
                nth: 3,
                mode: FaultMode::Once,
                error: FaultError::Eio
            },
            Fault {
                kind: OpKind::Write,
                nth: 1,
                mode: FaultMode::Forever,
                error: FaultError::Enospc
            },
        ]
    );
    for (spec, needle) in [
        ("", "names no fault"),
        ("sync:1", "unknown call kind \"sync\""),
        ("fsync", "needs a count"),
        ("fsync:0", "needs a count"),
        ("fsync:x", "needs a count"),
        ("fsync:1:sometimes", "unknown option \"sometimes\""),
    ] {
        let e = FaultPlan::parse(spec).unwrap_err().to_string();
        assert!(e.contains(needle), "{spec:?}: {e}");
        assert!(e.contains("KIND:N"), "{e}");
    }
}

#[test]
fn the_nth_call_fails_once_or_forever_and_clears() {
    let dir = tempfile::tempdir().unwrap();
    let io = StorageIo::faulty(FaultPlan::single(
        OpKind::Create,
        2,
        FaultMode::Once,
        FaultError::Eio,
    ));
    // Before the store opened nothing counts.
    io.create_dir(&dir.path().join("setup")).unwrap();
    io.opened();
    io.create_dir(&dir.path().join("a")).unwrap();
    let e = io.create_dir(&dir.path().join("b")).unwrap_err();
    assert!(e.to_string().contains("injected fault, create #2"), "{e}");
    assert!(e.to_string().contains("/b"), "names the path: {e}");
    assert!(!dir.path().join("b").exists(), "a failed call does nothing");
    io.create_dir(&dir.path().join("b")).unwrap();
    assert_eq!(io.counts().create, 3);
    assert_eq!(io.faults_fired(), 1);

    io.reset_counts();
    io.set_faults(FaultPlan::single(
        OpKind::Fsync,
        1,
        FaultMode::Forever,
        FaultError::Enospc,
    ));
    for _ in 0..3 {
        let e = io.sync_dir(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull, "{e}");
    }
    io.clear_faults();
    io.sync_dir(dir.path()).unwrap();
    assert_eq!(io.counts().fsync, 4);
}

#[test]
fn create_dir_all_fsyncs_each_new_directory_s_parent() {
    let dir = tempfile::tempdir().unwrap();
    let io = StorageIo::faulty(FaultPlan::default());
    io.opened();
    io.create_dir_all(&dir.path().join("a/b/c")).unwrap();
    let c = io.counts();
    assert_eq!((c.create, c.fsync), (3, 3));
    io.create_dir_all(&dir.path().join("a/b/c")).unwrap();
    assert_eq!(io.counts().create, 3, "an existing directory is left alone");
}
