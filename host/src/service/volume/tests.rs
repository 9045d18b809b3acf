//! Unit tests of the volume operations, on an embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::storage::embedded::EmbeddedOptions;

fn service(dir: &Path) -> Service {
    Service::open_embedded(dir, EmbeddedOptions::default()).unwrap()
}

fn read(svc: &Service, vol: &str, path: &str) -> Vec<u8> {
    let mut out = Vec::new();
    svc.volume_read(vol, path, &mut out, None).unwrap();
    out
}

#[test]
fn batch_upload_lands_as_one_version() {
    let data = tempfile::tempdir().unwrap();
    let svc = service(&data.path().join("store"));
    svc.volume_create("v").unwrap();
    let local = data.path().join("local");
    std::fs::create_dir_all(local.join("sub/empty")).unwrap();
    std::fs::write(local.join("sub/x.txt"), b"x").unwrap();
    std::fs::write(local.join("top.txt"), b"top").unwrap();
    let file = data.path().join("one.txt");
    std::fs::write(&file, b"one").unwrap();

    let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = seen.clone();
    let mut batch = svc
        .volume_batch("v", false)
        .unwrap()
        .with_progress(Arc::new(move |n| {
            counter.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }));
    batch
        .put_file(&file, "/remote-path.txt")
        .unwrap()
        .put_directory(&local, "/remote/directory")
        .unwrap()
        .put_bytes(b"some data", "/foobar")
        .unwrap();
    // Nothing is visible before commit.
    assert_eq!(svc.volume_info("v").unwrap().version, 0);
    let info = batch.commit().unwrap();
    assert_eq!(info.version, 1, "one version for the whole batch");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        3 + 1 + 3 + 9
    );
    assert_eq!(read(&svc, "v", "remote-path.txt"), b"one");
    assert_eq!(read(&svc, "v", "remote/directory/sub/x.txt"), b"x");
    assert_eq!(read(&svc, "v", "foobar"), b"some data");
    let empty = svc.volume_ls("v", "remote/directory/sub/empty", false);
    assert_eq!(empty.unwrap(), vec![], "empty directories come along");
}

#[test]
fn batch_overwrite_rules() {
    let data = tempfile::tempdir().unwrap();
    let svc = service(data.path());
    svc.volume_create("v").unwrap();
    let mut b = svc.volume_batch("v", false).unwrap();
    b.put_bytes(b"1", "f")
        .unwrap()
        .put_bytes(b"d", "d/x")
        .unwrap();
    b.commit().unwrap();

    // force=false: an existing file is refused by name, whole batch.
    let mut b = svc.volume_batch("v", false).unwrap();
    b.put_bytes(b"new", "g")
        .unwrap()
        .put_bytes(b"2", "f")
        .unwrap();
    match b.commit() {
        Err(VolumeOpError::FileExists { path, .. }) => assert_eq!(path, "f"),
        other => panic!("expected FileExists, got {other:?}"),
    }
    // A file under an existing file too.
    let mut b = svc.volume_batch("v", false).unwrap();
    b.put_bytes(b"2", "f/under").unwrap();
    assert!(matches!(b.commit(), Err(VolumeOpError::FileExists { path, .. }) if path == "f"));
    assert_eq!(svc.volume_info("v").unwrap().version, 1);
    assert!(svc.volume_stat("v", "g").unwrap().is_none());

    // A directory is never replaced by a file, force or not.
    for force in [false, true] {
        let mut b = svc.volume_batch("v", force).unwrap();
        b.put_bytes(b"2", "d").unwrap();
        assert!(matches!(
            b.commit(),
            Err(VolumeOpError::IsADirectory { .. })
        ));
    }
    // force=true overwrites files.
    let mut b = svc.volume_batch("v", true).unwrap();
    b.put_bytes(b"2", "f").unwrap();
    b.commit().unwrap();
    assert_eq!(read(&svc, "v", "f"), b"2");

    // The same file twice in one batch is refused as it is added.
    let mut b = svc.volume_batch("v", true).unwrap();
    b.put_bytes(b"a", "twice").unwrap();
    assert!(matches!(
        b.put_bytes(b"b", "twice"),
        Err(VolumeOpError::Duplicate { .. })
    ));
    // Bad inputs.
    assert!(matches!(
        svc.volume_batch("v", false)
            .unwrap()
            .put_file(data.path().join("nope"), "x"),
        Err(VolumeOpError::LocalMissing { .. })
    ));
    assert!(
        svc.volume_batch("v", false)
            .unwrap()
            .put_bytes(b"x", "../x")
            .unwrap_err()
            .is_usage()
    );
    assert!(svc.volume_batch("nope", false).is_err());
    assert!(svc.volume_create("a\0b").unwrap_err().is_usage());
}
