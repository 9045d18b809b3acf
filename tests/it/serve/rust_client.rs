//! The Rust client's dict operations beyond get and put, against a real
//! `vessel serve`: conditional puts, TTL, contains/len, remove, pop,
//! increment, update, get-many, paging, clear and leases with fencing.

use std::time::Duration;

use serde_json::{Value, json};
use vessel_host::client::Client;
use vessel_host::service::dict::{PutIf, PutResult};
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
