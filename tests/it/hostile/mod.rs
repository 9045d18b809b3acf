//! Hostile guests and hostile neighbours (issue #17): every limit of the
//! sandbox, attacked as an attacker would, beside a bystander container in
//! the same host that must keep answering throughout.
//!
//! One submodule per limit. RELIABILITY.md's threat-model table names each
//! test here with the limit it pins, its default and its error. The host
//! and the bystander are `vessel_tests::harness`'s.

use std::time::Duration;

use vessel_tests::harness::{BYSTANDER, Bystander, Host};

mod disk;
mod http;
mod memory;
mod time;

/// The harness itself: a bystander alone answers every call, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bystander_alone_answers_every_call() {
    let host = Host::new();
    let app = host.load(BYSTANDER, &[]);
    let b = Bystander::start(&app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = b.finish().await;
    assert!(seen.answered >= 3, "{seen:?}");
    app.shutdown().await.unwrap();
}
