//! The shared backend's local blob cache through the real CLI: its bound
//! (`--blob-cache-size`) and what gc drops from it.

use vessel_tests::Vessel;
use vessel_tests::servers::shared;

/// Bytes of the blob files under a host's `blob-cache/` (not `tmp/`).
fn cache_bytes(h: &Vessel) -> u64 {
    let root = h.home.path().join("blob-cache");
    let mut total = 0;
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                if e.file_name() != "tmp" {
                    stack.push(e.path());
                }
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// `--blob-cache-size` bounds a host's cache: reading more than it holds
/// drops the least recently used blobs (read again, they are fetched
/// again), and gc drops copies of blobs another host's gc removed.
#[test]
fn the_blob_cache_stays_under_its_bound() {
    let (m, b) = shared().fresh();
    let (writer, reader) = (Vessel::on_backend(&m, &b), Vessel::on_backend(&m, &b));
    writer.run(&["volume", "create", "big"]).ok();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..8u8 {
        std::fs::write(dir.path().join(format!("f{i}")), vec![i; 100 << 10]).unwrap();
    }
    let src = dir.path().display().to_string();
    writer.run(&["volume", "put", "big", &src, "/"]).ok();
    let get = |i: u8| {
        let out = reader.run(&[
            "--blob-cache-size",
            "300KiB",
            "volume",
            "get",
            "big",
            &format!("/f{i}"),
            "-",
        ]);
        assert_eq!(out.stdout.as_bytes(), vec![i; 100 << 10].as_slice(), "f{i}");
    };
    for i in 0..8 {
        get(i);
        let held = cache_bytes(&reader);
        assert!(held <= 300 << 10, "after f{i}: {held} bytes cached");
    }
    assert_eq!(cache_bytes(&reader), 300 << 10);
    // The first blob was dropped long ago: read again, it comes back.
    get(0);
    // Another host deletes the volume and collects: the reader's gc
    // drops its copies of what is gone.
    writer.run(&["volume", "delete", "big", "--yes"]).ok();
    writer.run(&["volume", "gc", "--min-age", "0"]).ok();
    reader.run(&["volume", "gc", "--min-age", "0"]).ok();
    assert_eq!(cache_bytes(&reader), 0);
}
