//! Volume byte quotas (issue #17, point 3) through every door: the CLI
//! (direct and forwarded to a running owner), the HTTP API, and a guest
//! whose mount commit or object write would cross the quota. The store's
//! rule itself is pinned on both backends in `conformance::volume`.

use serde_json::{Value, json};
use vessel_tests::{Vessel, http, json_of};

use vessel_tests::harness::Host;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn listed(v: &Vessel, name: &str) -> Value {
    json(v.run(&["volume", "list", "--json"]).ok())
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
        .clone()
}

fn put_stdin(v: &Vessel, name: &str, remote: &str, bytes: &[u8]) -> vessel_tests::Run {
    use std::io::Write;
    let mut child = v
        .command()
        .args(["volume", "put", name, "-", remote])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI may stop reading once the quota is passed.
    let _ = child.stdin.take().unwrap().write_all(bytes);
    vessel_tests::Run::from(child.wait_with_output().unwrap())
}

/// The CLI: created with a quota (bytes or a size with a unit), shown by
/// `list` (table and JSON) and `quota`, enforced by `put` (a file, stdin)
/// with an error naming the volume, the quota and the size it would reach,
/// changed and removed later. Runs on a plain data dir and again on one a
/// `vessel serve` owns (the commands are forwarded over its socket).
#[test]
fn cli_quota_is_set_shown_enforced_and_changed() {
    for served in [false, true] {
        let v = Vessel::new();
        let _server = served.then(|| vessel_tests::serve(v.command(), &[]));
        let work = tempfile::tempdir().unwrap();
        v.run(&["volume", "create", "q", "--max-bytes", "1KiB"])
            .ok()
            .contains("quota of 1.00 KiB");
        v.run(&["volume", "create", "plain"]).ok();
        // A bad size is a usage error naming the flag.
        v.run(&["volume", "create", "bad", "--max-bytes", "10XB"])
            .fails(2, &["--max-bytes", "unknown unit"]);
        v.run(&["volume", "create", "bad", "--max-bytes", "16EiB"])
            .fails(2, &["--max-bytes"]);
        v.run(&["volume", "ls", "bad"])
            .fails(1, &["does not exist"]);

        assert_eq!(listed(&v, "q")["max_bytes"], json!(1024));
        assert_eq!(listed(&v, "plain")["max_bytes"], Value::Null);
        let table = v.run(&["volume", "list"]).ok().to_owned();
        assert!(table.lines().next().unwrap().contains("QUOTA"), "{table}");
        let q = json(v.run(&["volume", "quota", "q", "--json"]).ok());
        assert_eq!(
            (q["max_bytes"].clone(), q["bytes"].clone()),
            (json!(1024), json!(0))
        );

        let file = work.path().join("six-hundred.bin");
        std::fs::write(&file, vec![1u8; 600]).unwrap();
        let f = file.to_str().unwrap();
        v.run(&["volume", "put", "q", f, "/a.bin"]).ok();
        // A second 600 bytes: the commit refuses, naming volume, quota and
        // the size it would reach; nothing lands.
        v.run(&["volume", "put", "q", f, "/b.bin"]).fails(
            1,
            &[
                "volume `q`",
                "would reach 1200 bytes",
                "quota of 1024 bytes",
            ],
        );
        // From stdin, past the quota: stopped while reading.
        put_stdin(&v, "q", "/big.bin", &vec![2u8; 1 << 20]).fails(
            1,
            &["volume `q`", "at least 1025 bytes", "quota of 1024 bytes"],
        );
        let ls = v.run(&["volume", "ls", "q"]).ok().to_owned();
        assert_eq!(ls, "a.bin\n", "a refused put changed the volume");
        assert_eq!(listed(&v, "q")["version"], json!(1));
        assert_eq!(listed(&v, "q")["bytes"], json!(600));
        // The other volume has no quota.
        put_stdin(&v, "plain", "/big.bin", &vec![2u8; 1 << 20]).ok();

        // Raised, the put lands; lowered below the size, a growing put is
        // refused and a removal still works; removed, anything goes.
        let q = json(
            v.run(&["volume", "quota", "q", "--max-bytes", "2000", "--json"])
                .ok(),
        );
        assert_eq!(q["max_bytes"], json!(2000));
        v.run(&["volume", "put", "q", f, "/b.bin"]).ok();
        assert!(
            v.run(&["volume", "quota", "q", "--max-bytes", "100"])
                .ok()
                .contains("holds 1.17 KiB (1200 bytes) in 2 inodes, with a quota of 100 B")
        );
        // (A single file past the whole quota is stopped while read.)
        v.run(&["volume", "put", "q", f, "/c.bin"])
            .fails(1, &["would reach at least 101 bytes", "quota of 100 bytes"]);
        v.run(&["volume", "rm", "q", "/b.bin"]).ok();
        let q = json(
            v.run(&["volume", "quota", "q", "--unlimited", "--json"])
                .ok(),
        );
        assert_eq!(q["max_bytes"], Value::Null);
        v.run(&["volume", "put", "q", f, "/c.bin"]).ok();
        v.run(&["volume", "quota", "q", "--max-bytes", "1", "--unlimited"])
            .fails(2, &["--unlimited"]);
        v.run(&["volume", "quota", "nope"])
            .fails(1, &["`nope` does not exist"]);
    }
}

/// The HTTP API: `?max_bytes=` on create, the quota in `GET
/// /v1/volumes/{name}` and the listing, 507 `no_space` for an upload past
/// it (whole or streamed), `PUT`/`DELETE /v1/volumes/{name}/quota`.
#[test]
fn http_quota_is_set_shown_enforced_and_changed() {
    let v = Vessel::new();
    let server = vessel_tests::serve(v.command(), &[]);
    let a = server.addr.as_str();
    let tok = v.token(&["volume:*:rw"], None);
    let t = Some(tok.as_str());
    let (status, body) = http(a, "POST", "/v1/volumes/h?max_bytes=100", t, &[], b"");
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let (status, body) = http(a, "POST", "/v1/volumes/x?max_bytes=ten", t, &[], b"");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let info = |name: &str| {
        let (status, body) = http(a, "GET", &format!("/v1/volumes/{name}"), t, &[], b"");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        json_of(&body)
    };
    assert_eq!(info("h")["max_bytes"], json!(100));
    let (_, body) = http(a, "GET", "/v1/volumes", t, &[], b"");
    assert_eq!(json_of(&body)[0]["max_bytes"], json!(100));

    let put = |path: &str, bytes: &[u8]| {
        let (status, body) = http(
            a,
            "PUT",
            &format!("/v1/volumes/h/files/{path}"),
            t,
            &[],
            bytes,
        );
        (status, json_of(&body))
    };
    assert_eq!(put("a", &[1u8; 60]).0, 201);
    let (status, err) = put("b", &[1u8; 60]);
    assert_eq!(status, 507, "{err}");
    assert_eq!(err["error"]["kind"], json!("no_space"));
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("volume `h` would reach 120 bytes, over its quota of 100 bytes"),
        "{msg}"
    );
    let (status, err) = put("big", &vec![2u8; 4 << 20]);
    assert_eq!(status, 507, "{err}");
    assert_eq!(info("h")["version"], json!(1));
    assert_eq!(info("h")["bytes"], json!(60));

    let (status, body) = http(a, "PUT", "/v1/volumes/h/quota?max_bytes=1000", t, &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json_of(&body)["max_bytes"], json!(1000));
    assert_eq!(put("b", &[1u8; 60]).0, 201);
    let (status, _) = http(a, "PUT", "/v1/volumes/h/quota", t, &[], b"");
    assert_eq!(status, 400, "a quota PUT without max_bytes");
    let (status, _) = http(
        a,
        "PUT",
        "/v1/volumes/h/quota?max_bytes=99999999999999999999",
        t,
        &[],
        b"",
    );
    assert_eq!(status, 400);
    let (status, body) = http(a, "DELETE", "/v1/volumes/h/quota", t, &[], b"");
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["max_bytes"], Value::Null);
    assert_eq!(put("big", &vec![2u8; 4 << 20]).0, 201);
    let read_only = v.token(&["volume:h:r"], None);
    let (status, _) = http(
        a,
        "PUT",
        "/v1/volumes/h/quota?max_bytes=1",
        Some(&read_only),
        &[],
        b"",
    );
    assert_eq!(status, 403, "a read-only token changed the quota");
}

/// A guest whose mount commit would take the volume over its quota gets
/// `no-space` naming the volume, the quota and the size; the volume and
/// other containers see nothing of it, and the guest can shrink its
/// changes and commit. The object API's write-file is held to the quota
/// too.
#[tokio::test]
async fn a_guest_mount_commit_over_the_quota_gets_no_space() {
    let env = Host::new();
    let vols = env.volumes();
    vols.create_with("q", Some(1 << 20)).unwrap();
    let mut a = env.start("volprobe", env.config(&[("q", "/data")])).await;
    let mut b = env.start("volprobe", env.config(&[("q", "/data")])).await;
    let wrote = a
        .call("fs-write-len", json!(["/data/big.bin", 2u64 << 20, 65536]))
        .await;
    assert_eq!(
        wrote,
        json!({"ok": 2u64 << 20}),
        "the mount itself is not capped"
    );
    let err = a.call("commit", json!(["/data"])).await;
    let msg = err["err"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("no space:")
            && msg
                .contains("volume `q` would reach 2097152 bytes, over its quota of 1048576 bytes"),
        "{err}"
    );
    let info = vols.info("q").unwrap();
    assert_eq!(
        (info.version, info.bytes),
        (0, 0),
        "the refused commit landed"
    );
    assert_eq!(b.call("reload", json!(["/data"])).await, json!({"ok": 0}));
    assert!(
        b.call("fs-read", json!(["/data/big.bin"]))
            .await
            .get("err")
            .is_some()
    );
    // Shrunk under the quota, the same container's commit lands.
    assert_eq!(
        a.call("fs-write-len", json!(["/data/big.bin", 1u64 << 19, 65536]))
            .await,
        json!({"ok": 1u64 << 19})
    );
    let ok = a.call("commit", json!(["/data"])).await;
    assert!(
        ok["ok"].as_str().unwrap_or_default().starts_with("1 "),
        "{ok}"
    );
    assert_eq!(vols.info("q").unwrap().bytes, 1 << 19);
    // The object API of a container without the mount writes to the
    // store: a write-file past the quota is refused whole.
    let mut c = env.start("volprobe", env.config(&[])).await;
    let big = "x".repeat(600 << 10);
    let err = c
        .call("obj-write", json!(["q", "obj.txt", big, true]))
        .await;
    let msg = err["err"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("no space:") && msg.contains("over its quota of 1048576 bytes"),
        "{err}"
    );
    assert_eq!(vols.info("q").unwrap().version, 1);
    assert!(vols.node("q", "obj.txt").unwrap().is_none());
}
