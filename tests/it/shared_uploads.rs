//! Multipart uploads on the shared backend: each one in flight is recorded
//! in the database, so the upload of a process killed midway (whose parts
//! S3 keeps, unlisted and billed, until aborted) is aborted by gc once no
//! process has advanced it for gc's minimum age.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;
use serde_json::Value;
use vessel_tests::Vessel;
use vessel_tests::servers::{S3_ACCESS_KEY, S3_BUCKET, S3_SECRET_KEY, shared};

const MIB: usize = 1 << 20;

/// The rows of `vessel_uploads` in the schema of `metadata`:
/// (object, upload id, bytes).
fn uploads(metadata: &str) -> Vec<(String, String, u64)> {
    let schema = metadata.rsplit("search_path%3D").next().unwrap();
    let out = shared().pg.sql(&format!(
        "SELECT object || ' ' || upload_id || ' ' || bytes FROM {schema}.vessel_uploads"
    ));
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].parse().unwrap())
        })
        .collect()
}

fn s3() -> AmazonS3 {
    AmazonS3Builder::new()
        .with_bucket_name(S3_BUCKET)
        .with_region("us-east-1")
        .with_endpoint(format!("http://127.0.0.1:{}", shared().s3.s3_port))
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_access_key_id(S3_ACCESS_KEY)
        .with_secret_access_key(S3_SECRET_KEY)
        .build()
        .unwrap()
}

/// Whether S3 still takes a part for upload `id` of `key`.
fn upload_open(rt: &tokio::runtime::Runtime, key: &str, id: &str) -> bool {
    let store = s3();
    let path = ObjectPath::from(key);
    rt.block_on(store.put_part(&path, &id.to_owned(), 50, vec![7u8; 1024].into()))
        .is_ok()
}

fn gc(h: &Vessel, min_age: Option<&str>) -> Value {
    let mut args = vec!["volume", "gc", "--json"];
    if let Some(a) = min_age {
        args.extend(["--min-age", a]);
    }
    serde_json::from_str(h.run(&args).ok()).unwrap()
}

#[test]
fn gc_aborts_the_multipart_upload_of_a_killed_put_and_no_other() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (m, b) = shared().fresh();
    let h = Vessel::on_backend(&m, &b);
    h.run(&["volume", "create", "big"]).ok();
    // A finished multipart upload (over the 16 MiB threshold) leaves no row.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("whole.bin");
    std::fs::write(&file, vec![1u8; 40 * MIB]).unwrap();
    h.run(&["volume", "put", "big", file.to_str().unwrap(), "/whole.bin"])
        .ok();
    assert!(uploads(&m).is_empty(), "{:?}", uploads(&m));

    // A put from a pipe that stalls after 40 MiB: the first four parts go
    // up, the fifth waits for bytes that never come. Then kill -9.
    let mut put = h.command();
    put.args(["volume", "put", "big", "-", "/killed.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = put.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![2u8; 40 * MIB]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        if let Some(r) = uploads(&m).into_iter().find(|r| r.2 >= 32 * MIB as u64) {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "no upload recorded: {:?}",
            uploads(&m)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let (key, id, bytes) = row;
    assert_eq!(bytes, 32 * MIB as u64);
    assert!(
        upload_open(&rt, &key, &id),
        "the killed put's upload is open"
    );

    // gc at its default minimum age (an hour) leaves a recent upload be:
    // it could belong to a live process.
    let report = gc(&h, None);
    assert_eq!(report["removed_uploads"], 0, "{report}");
    assert_eq!(uploads(&m).len(), 1);
    assert!(upload_open(&rt, &key, &id));

    // Past it, gc aborts it, says so with its bytes, and forgets it.
    let report = gc(&h, Some("0"));
    assert_eq!(report["removed_uploads"], 1, "{report}");
    assert_eq!(report["removed_upload_bytes"], 32 * MIB as u64, "{report}");
    assert!(uploads(&m).is_empty());
    assert!(!upload_open(&rt, &key, &id), "gc left the upload open");
    // The finished file is untouched.
    let got = h.run(&["volume", "get", "big", "/whole.bin", "-"]);
    assert_eq!(got.ok().len(), 40 * MIB);
    let again = gc(&h, Some("0"));
    assert_eq!(again["removed_uploads"], 0, "{again}");
}
