//! docs/operations.md runs as written: deploying, TLS, tokens, logs,
//! metrics, backups, gc, and two hosts on the real PostgreSQL and S3 the
//! suite starts (the page's `$METADATA` and `$BLOBS`).

use vessel_tests::servers::shared;

#[test]
fn docs_operations_md_runs_as_written() {
    let (metadata, blobs) = shared().fresh();
    let walked = crate::walkthrough::run_with_env(
        "docs/operations.md",
        &[("METADATA", &metadata), ("BLOBS", &blobs)],
    );
    // The unit and proxy files the page shows are complete enough to use.
    let unit = &walked
        .files
        .iter()
        .find(|(p, _)| p == "vessel.service")
        .unwrap()
        .1;
    assert!(unit.contains("ExecStart=/usr/local/bin/vessel serve"));
}
