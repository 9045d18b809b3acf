//! Load (issue #7, item 7), the short version the normal suite runs: 64
//! containers of one app hammer one volume and one dict through the real
//! `vessel` binary, then the store must hold every acknowledged write
//! ([`check_load`]: every increment counted, every worker's last put and
//! last committed files byte for byte, one version per acknowledged
//! commit). No timing is asserted; the figures (ops/s, p99 latency, peak
//! memory, next to baselines) come from `cargo bench -p vessel-tests
//! --bench load`.

use vessel_tests::Vessel;
use vessel_tests::reliability::{check_load, load_manifest, open_store, parse_load_main};

#[test]
fn sixty_four_containers_on_one_volume_and_dict_lose_nothing() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let app = load_manifest(dir.path());
    let run = v.run(&[
        "call",
        app.to_str().unwrap(),
        "load-main",
        "--args",
        "[64, 2000]",
    ]);
    let result: serde_json::Value = serde_json::from_str(run.ok().trim()).unwrap();
    let reports = parse_load_main(&result);
    assert_eq!(reports.len(), 64);
    assert!(
        reports.iter().all(|r| r.iterations > 0),
        "every worker made progress"
    );
    let service = open_store(v.home.path(), "load");
    let check = check_load(&service, "loadvol", &reports);
    eprintln!("load: {check:?}, nothing lost");
}
