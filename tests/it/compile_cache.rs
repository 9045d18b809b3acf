//! The on-disk compile cache: a second load is a hit, and a corrupt entry is
//! detected and rebuilt, never trusted.

use vessel_host::engine::{CacheOutcome, EngineConfig, VesselEngine};
use vessel_tests::guest;

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn second_load_hits_and_corruption_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let engine = VesselEngine::new(EngineConfig {
        cache_dir: Some(cache.clone()),
        ..EngineConfig::default()
    })
    .unwrap();
    let (_, first) = engine.load(&guest("add")).unwrap();
    assert_eq!(first, CacheOutcome::Miss);
    let (_, second) = engine.load(&guest("add")).unwrap();
    assert_eq!(
        second,
        CacheOutcome::Memory,
        "the engine keeps what it loaded"
    );

    // A new engine (a new process) hits the disk cache.
    let fresh = || {
        VesselEngine::new(EngineConfig {
            cache_dir: Some(cache.clone()),
            ..EngineConfig::default()
        })
        .unwrap()
    };
    assert_eq!(fresh().load(&guest("add")).unwrap().1, CacheOutcome::Hit);

    // Flip one byte in the middle of the entry.
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    assert_eq!(
        fresh().load(&guest("add")).unwrap().1,
        CacheOutcome::Rebuilt
    );
    assert_eq!(fresh().load(&guest("add")).unwrap().1, CacheOutcome::Hit);

    // Truncate it to a few bytes.
    std::fs::write(&files[0], b"VSL").unwrap();
    assert_eq!(
        fresh().load(&guest("add")).unwrap().1,
        CacheOutcome::Rebuilt
    );

    // A different component gets a different entry.
    fresh().load(&guest("types")).unwrap();
    assert_eq!(entries(&cache).len(), 2);
}

#[test]
fn cli_second_call_uses_the_cache() {
    let v = vessel_tests::Vessel::new();
    let add = guest("add").display().to_string();
    v.run(&["call", &add, "add", "--args", "[1,1]"]).ok();
    let cache = v.home.path().join("cache").join("components");
    let before = entries(&cache);
    assert_eq!(before.len(), 1, "the first call writes one entry");
    let stamp = std::fs::metadata(&before[0]).unwrap().modified().unwrap();
    let out = v.run(&["-vv", "call", &add, "add", "--args", "[1,1]"]);
    assert_eq!(out.ok(), "2\n");
    assert!(out.stderr.contains("Hit"), "{}", out.stderr);
    assert_eq!(
        std::fs::metadata(&before[0]).unwrap().modified().unwrap(),
        stamp
    );
}

#[test]
fn data_dirs_share_a_cache_dir() {
    let shared = tempfile::tempdir().unwrap();
    let add = guest("add").display().to_string();
    let call = |v: &vessel_tests::Vessel, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["call", &add, "add", "--args", "[1,1]"]);
        v.run(&args)
    };
    // The flag and the environment variable name the same cache.
    let first = vessel_tests::Vessel::new();
    let dir = shared.path().display().to_string();
    assert_eq!(call(&first, &["--cache-dir", &dir]).ok(), "2\n");
    assert_eq!(entries(shared.path()).len(), 1);
    assert!(!first.home.path().join("cache").exists());

    let second = vessel_tests::Vessel::new();
    let out = second
        .command()
        .env("VESSEL_CACHE_DIR", shared.path())
        .args(["-vv", "call", &add, "add", "--args", "[1,1]"])
        .output()
        .unwrap();
    let out = vessel_tests::Run::from(out);
    assert_eq!(out.ok(), "2\n");
    assert!(out.stderr.contains("Hit"), "{}", out.stderr);
    assert_eq!(entries(shared.path()).len(), 1);
}
