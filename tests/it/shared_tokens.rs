//! API tokens on the shared backend: kept in PostgreSQL, so every host
//! accepts the same tokens, and a revoke made through one host is refused
//! by every other at its next request.

use std::time::{Duration, Instant};

use vessel_tests::servers::shared;
use vessel_tests::{Vessel, http};

/// Host A makes a token; host B (another data dir, another server) accepts
/// it; A revokes it; B refuses it at once, and certainly within a second.
#[test]
fn a_token_revoked_on_one_host_is_refused_by_the_other_within_a_second() {
    let (m, b) = shared().fresh();
    let (a, bh) = (Vessel::on_backend(&m, &b), Vessel::on_backend(&m, &b));
    a.run(&["dict", "create", "kv"]).ok();
    a.run(&["dict", "put", "kv", "k", "\"v\""]).ok();
    let tok = a.token(&["dict:kv:r"], None);
    let (server_a, server_b) = (
        vessel_tests::serve(a.command(), &[]),
        vessel_tests::serve(bh.command(), &[]),
    );
    let get = |addr: &str| http(addr, "GET", "/v1/dicts/kv/keys/k", Some(&tok), &[], b"").0;
    assert_eq!(get(&server_a.addr), 200);
    assert_eq!(
        get(&server_b.addr),
        200,
        "host B must accept host A's token"
    );
    // Neither data dir holds the tokens: the database does.
    for h in [&a, &bh] {
        assert!(!h.home.path().join("tokens.json").exists());
    }
    let ids = bh.token_ids();
    assert_eq!(ids.len(), 1, "host B lists host A's token: {ids:?}");
    a.run(&["token", "revoke", &ids[0]]).ok();
    let revoked = Instant::now();
    let mut status = get(&server_b.addr);
    while status == 200 && revoked.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        status = get(&server_b.addr);
    }
    let took = revoked.elapsed();
    assert_eq!(status, 401, "host B still accepts a revoked token");
    assert!(
        took < Duration::from_secs(1),
        "host B took {took:?} to refuse"
    );
    assert_eq!(get(&server_a.addr), 401);
    // The revoke is gone everywhere, and a second one says so.
    assert!(a.token_ids().is_empty());
    let again = bh.run(&["token", "revoke", &ids[0]]);
    assert!(again.stderr.contains(&ids[0]), "{}", again.stderr);
}

/// 50 `vessel token create` processes, spread over two hosts, all land in
/// the one table.
#[test]
fn fifty_concurrent_token_creates_on_two_hosts_are_all_kept() {
    let (m, b) = shared().fresh();
    let hosts = [Vessel::on_backend(&m, &b), Vessel::on_backend(&m, &b)];
    // The first use creates the tables; do it once before the crowd.
    assert!(hosts[0].token_ids().is_empty());
    std::thread::scope(|s| {
        for i in 0..10 {
            let h = &hosts[i % 2];
            s.spawn(move || {
                for j in 0..5 {
                    h.run(&["token", "create", "--scope", &format!("dict:d{i}x{j}:r")])
                        .ok();
                }
            });
        }
    });
    let (a, b) = (hosts[0].token_ids(), hosts[1].token_ids());
    assert_eq!(a.len(), 50, "{a:?}");
    assert_eq!(a, b, "both hosts list the same tokens in the same order");
}

/// A data dir once used with the shared backend refuses token commands
/// without it, rather than write a tokens.json no server would read.
#[test]
fn token_commands_on_a_shared_data_dir_need_the_backend() {
    let (m, b) = shared().fresh();
    let h = Vessel::on_backend(&m, &b);
    h.token(&["dict:kv:r"], None);
    let mut cmd = h.command();
    cmd.env_remove("VESSEL_METADATA")
        .env_remove("VESSEL_BLOBS")
        .args(["token", "create", "--scope", "dict:kv:r"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("shared backend"), "{stderr}");
    assert!(!h.home.path().join("tokens.json").exists());
}
