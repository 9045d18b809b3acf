//! The Rust client's dict operations beyond get and put, against a real
//! `vessel serve`: conditional puts, TTL, contains/len, remove, pop,
//! increment, update, get-many, paging, clear and leases with fencing; and
//! its volume history: versions, reads at a version, diff, restore,
//! retention and conflict-checked writes.

use std::time::Duration;

use serde_json::{Value, json};
use vessel_host::client::Client;
use vessel_host::service::dict::{PutIf, PutResult};
use vessel_host::storage::volume::DiffKind;
use vessel_tests::Vessel;

#[test]
fn the_rust_client_has_the_whole_dict_api() {
    let v = Vessel::new();
    let server = super::start(&v, &[]);
    let tok = v.token(&["dict:*:rw"], None);
    let kv = Client::connect(&server.addr, &tok).dict("kv");
    assert!(kv.create().unwrap());
    assert!(kv.is_empty().unwrap());

    // If absent, then compare-and-swap on the version.
    let PutResult::Written { version: v1 } = kv.put_if("k", &1, PutIf::Absent).unwrap() else {
        panic!("the first if-absent put was refused")
    };
    assert_eq!(
        kv.put_if("k", &2, PutIf::Absent).unwrap(),
        PutResult::Refused { current: Some(v1) }
    );
    let PutResult::Written { version: v2 } = kv.put_if("k", &3, PutIf::Version(v1)).unwrap() else {
        panic!("a CAS on the current version was refused")
    };
    assert_eq!(
        kv.put_if("k", &4, PutIf::Version(v1)).unwrap(),
        PutResult::Refused { current: Some(v2) }
    );
    assert_eq!(
        kv.put_if("absent", &4, PutIf::Version(v1)).unwrap(),
        PutResult::Refused { current: None }
    );
    assert_eq!(kv.get::<i64>("k").unwrap(), Some(3));
    assert_eq!(kv.version_of("k").unwrap(), Some(v2));

    // TTL.
    kv.put_with_ttl("short", &"soon gone", Duration::from_millis(200))
        .unwrap();
    assert!(kv.contains("short").unwrap());
    std::thread::sleep(Duration::from_millis(500));
    assert!(!kv.contains("short").unwrap());
    assert_eq!(kv.get::<String>("short").unwrap(), None);

    // Counters, pop, remove.
    assert_eq!(kv.increment("n", 5).unwrap(), 5);
    assert_eq!(kv.increment("n", -2).unwrap(), 3);
    assert_eq!(kv.pop::<i64>("n").unwrap(), Some(3));
    assert_eq!(kv.pop::<i64>("n").unwrap(), None);
    assert!(kv.remove("k").unwrap());
    assert!(!kv.remove("k").unwrap());

    // Many keys, and paging in key order.
    let mut entries = serde_json::Map::new();
    for i in 0..25 {
        entries.insert(format!("p{i:02}"), json!(i));
    }
    entries.insert("obj".into(), json!({"z": 1, "a": 2}));
    kv.update(&entries).unwrap();
    assert_eq!(kv.len().unwrap(), 26);
    assert_eq!(
        kv.get_many::<Value>(&["p03", "nope", "obj"]).unwrap(),
        [Some(json!(3)), None, Some(json!({"z": 1, "a": 2}))]
    );
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = kv.items_after("p", cursor.as_deref(), 10).unwrap();
        keys.extend(page.items.into_iter().map(|i| i.key));
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(
        keys,
        (0..25).map(|i| format!("p{i:02}")).collect::<Vec<_>>()
    );

    // Leases: one holder; a lapsed lease cannot be renewed once another
    // holder took the key, and its release does not free the new lock.
    let lease = kv.lock("job", Duration::from_secs(30)).unwrap().unwrap();
    assert!(kv.lock("job", Duration::from_secs(30)).unwrap().is_none());
    lease.renew(Duration::from_secs(30)).unwrap();
    lease.release().unwrap();
    let short = kv.lock("job", Duration::from_millis(100)).unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let taker = kv.lock("job", Duration::from_secs(30)).unwrap().unwrap();
    assert!(taker.token() > short.token());
    let err = short.renew(Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    short.release().unwrap();
    assert!(kv.lock("job", Duration::from_secs(30)).unwrap().is_none());
    taker.release().unwrap();

    kv.clear().unwrap();
    assert_eq!(kv.len().unwrap(), 0);
    // A missing dict is an error, not an absent key.
    let err = Client::connect(&server.addr, &tok)
        .dict("none")
        .contains("k")
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
}

#[test]
fn the_rust_client_reads_and_restores_volume_history() {
    let v = Vessel::new();
    let server = super::start(&v, &[]);
    let tok = v.token(&["volume:*:rw"], None);
    let vol = Client::connect(&server.addr, &tok).volume("hist");
    vol.create().unwrap();
    let v1 = vol.write_file("a.txt", b"one", false).unwrap();
    let v2 = vol.write_file("b.txt", b"bee", false).unwrap();
    let v3 = vol.write_file("a.txt", b"three", true).unwrap();
    let v4 = vol.remove("b.txt", false).unwrap().version;

    // The versions, newest first.
    let h = vol.history(10).unwrap();
    assert_eq!(h.head, v4);
    assert!(h.oldest <= v1, "{h:?}");
    assert_eq!(
        h.versions.iter().map(|x| x.version).collect::<Vec<_>>(),
        [v4, v3, v2, v1]
    );
    assert_eq!((h.versions[0].changed, h.versions[0].removed), (0, 1));
    assert_eq!(h.versions[1].bytes_added, 5);
    assert_eq!(vol.history(1).unwrap().versions.len(), 1);

    // A handle at a version reads as that commit left it; the head moves on.
    let at2 = vol.at(v2);
    assert_eq!((at2.name(), at2.version()), ("hist", Some(v2)));
    assert_eq!(at2.read_file("a.txt").unwrap(), b"one");
    assert_eq!(at2.read_range("b.txt", 1, 10).unwrap(), b"ee");
    let names: Vec<_> = at2
        .listdir("/", false)
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names, ["a.txt", "b.txt"]);
    assert_eq!(vol.read_file("a.txt").unwrap(), b"three");
    assert_eq!(vol.read_file("b.txt").unwrap_err().status(), Some(404));
    // A version never committed is a 404 naming the head.
    let err = vol.at(v4 + 100).read_file("a.txt").unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(err.to_string().contains(&v4.to_string()), "{err}");

    // Writes through a version handle are refused before any request.
    for err in [
        at2.write_file("c.txt", b"x", true).unwrap_err(),
        at2.remove("a.txt", false).unwrap_err(),
        at2.restore(v1).unwrap_err(),
        at2.set_retention(Duration::ZERO).unwrap_err(),
    ] {
        assert_eq!(err.status(), Some(400), "{err}");
    }
    assert_eq!(vol.history(10).unwrap().head, v4, "nothing was committed");

    // Diff: from v1 to the head, between two versions, and from a handle
    // at a version (up to that version).
    let d = vol.diff(v1, None).unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (
            d[0].path.as_str(),
            d[0].change,
            d[0].size_before,
            d[0].size_after
        ),
        ("a.txt", DiffKind::Modified, Some(3), Some(5))
    );
    let d = vol.diff(v1, Some(v2)).unwrap();
    assert_eq!(
        d.iter()
            .map(|e| (e.path.as_str(), e.change))
            .collect::<Vec<_>>(),
        [("b.txt", DiffKind::Added)]
    );
    assert_eq!(vol.at(v2).diff(v1, None).unwrap(), d);
    let d = vol.diff(v2, None).unwrap();
    assert_eq!(
        d.iter()
            .map(|e| (e.path.as_str(), e.change))
            .collect::<Vec<_>>(),
        [("a.txt", DiffKind::Modified), ("b.txt", DiffKind::Removed)]
    );

    // Restore: v2's tree is the head again, as a new version.
    let r = vol.restore(v2).unwrap();
    assert!(r.version > v4, "{r:?}");
    assert_eq!(vol.read_file("a.txt").unwrap(), b"one");
    assert_eq!(vol.read_file("b.txt").unwrap(), b"bee");
    assert_eq!(vol.history(1).unwrap().head, r.version);

    // Conflict-checked writes: one that read the path at the head lands
    // (replacing the file without `overwrite`); a stale one is 412 naming
    // the path, and changes nothing.
    let head = r.version;
    let w = vol.write_file_if("a.txt", b"mine", head).unwrap();
    assert_eq!(w, head + 1);
    let err = vol.write_file_if("a.txt", b"stale", head).unwrap_err();
    assert_eq!(err.status(), Some(412), "{err}");
    assert!(err.to_string().contains("a.txt"), "{err}");
    assert_eq!(vol.read_file("a.txt").unwrap(), b"mine");
    // A later commit to another path is no conflict.
    vol.write_file_if("b.txt", b"bee 2", head).unwrap();

    // Retention.
    let s = vol.set_retention(Duration::from_secs(3600)).unwrap();
    assert_eq!(s.retention_ms, 3_600_000);
    assert_eq!(vol.history(1).unwrap().retention_ms, 3_600_000);
}
