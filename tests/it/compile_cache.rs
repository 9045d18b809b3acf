//! The on-disk compile cache: a second load is a hit, and a corrupt entry is
//! detected and rebuilt, never trusted. Its entries are native code, so a
//! forged entry, an entry from another cache, an entry or a folder others
//! can write are never loaded.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use vessel_host::engine::{CacheOutcome, EngineConfig, VesselEngine};
use vessel_tests::guest;

/// The entries (`*.cwasm`) in a cache folder.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

/// A new engine (as a new process would make) on the cache at `dir`.
fn engine_on(dir: &Path) -> VesselEngine {
    VesselEngine::new(EngineConfig {
        cache_dir: Some(dir.to_owned()),
        ..EngineConfig::default()
    })
    .unwrap()
}

/// The names a component exports.
fn exports(engine: &VesselEngine, c: &wasmtime::component::Component) -> Vec<String> {
    c.component_type()
        .exports(engine.engine())
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Bytes read through read(2)/pread(2) by this thread so far
/// (`rchar` of /proc/thread-self/io): mapped pages do not count.
fn thread_rchar() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// `component` with a custom section appended (valid anywhere in a
/// component): same-size variants with different bytes.
fn with_custom_section(component: &[u8], content: &[u8]) -> Vec<u8> {
    let name = b"vessel-test";
    let len = 1 + name.len() + content.len();
    assert!(len < 128, "one-byte LEB128 sizes only");
    let mut out = component.to_vec();
    out.push(0);
    out.push(len as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(content);
    out
}

/// Long enough after a file's last change that its stamp vouches for its
/// bytes (the cache's settle time is 100 ms on nanosecond filesystems).
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(250));
}

/// The MAC key's file in a cache folder.
const KEY_FILE: &str = "key";

fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
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

#[test]
fn a_forged_entry_is_never_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    assert_eq!(
        engine_on(&cache).load(&guest("add")).unwrap().1,
        CacheOutcome::Miss
    );
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    // Whoever can write the folder replaces add's entry with native code of
    // their own (here: another component's, which would load fine), and its
    // seal with one made with a plain checksum anyone can recompute. It
    // must never be deserialized.
    let engine = engine_on(&cache);
    let types = std::fs::read(guest("types")).unwrap();
    let payload = engine.engine().precompile_component(&types).unwrap();
    std::fs::write(&files[0], &payload).unwrap();
    let seal = files[0].with_extension("seal");
    let mut forged_seal = std::fs::read(&seal).unwrap();
    let body = forged_seal.len() - 32;
    let checksum = blake3::hash(&forged_seal[..body]);
    forged_seal[body..].copy_from_slice(checksum.as_bytes());
    std::fs::write(&seal, &forged_seal).unwrap();
    let forged = payload;

    let (component, outcome) = engine.load(&guest("add")).unwrap();
    assert_eq!(
        outcome,
        CacheOutcome::Rebuilt,
        "the forged entry was loaded"
    );
    let names = exports(&engine, &component);
    assert!(
        names.iter().any(|n| n == "add"),
        "add.wasm loaded as another component's code: {names:?}"
    );
    // The rebuilt entry is this cache's own again.
    assert_ne!(std::fs::read(&files[0]).unwrap(), forged);
    assert_eq!(
        engine_on(&cache).load(&guest("add")).unwrap().1,
        CacheOutcome::Hit
    );
}

#[test]
fn an_entry_from_another_cache_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    engine_on(&a).load(&guest("add")).unwrap();
    engine_on(&b).load(&guest("types")).unwrap();
    let from_a = entries(&a);
    assert_eq!(from_a.len(), 1);
    let copied = b.join(from_a[0].file_name().unwrap());
    std::fs::copy(&from_a[0], &copied).unwrap();
    assert_eq!(
        engine_on(&b).load(&guest("add")).unwrap().1,
        CacheOutcome::Rebuilt,
        "an entry signed with another cache's key was loaded"
    );
    assert_eq!(
        engine_on(&b).load(&guest("add")).unwrap().1,
        CacheOutcome::Hit
    );
    // Each folder has its own key, readable by its owner alone.
    let (ka, kb) = (a.join(KEY_FILE), b.join(KEY_FILE));
    assert_ne!(std::fs::read(&ka).unwrap(), std::fs::read(&kb).unwrap());
    for k in [ka, kb] {
        assert_eq!(std::fs::metadata(&k).unwrap().mode() & 0o777, 0o600);
    }
}

#[test]
fn an_entry_others_can_write_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    engine_on(&cache).load(&guest("add")).unwrap();
    let files = entries(&cache);
    set_mode(&files[0], 0o666);
    assert_eq!(
        engine_on(&cache).load(&guest("add")).unwrap().1,
        CacheOutcome::Rebuilt
    );
    assert_eq!(std::fs::metadata(&files[0]).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        engine_on(&cache).load(&guest("add")).unwrap().1,
        CacheOutcome::Hit
    );
}

#[test]
fn racing_processes_agree_on_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // Each thread is a new engine finding no key, as a new process would.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let cache = cache.clone();
            std::thread::spawn(move || {
                let name = if i % 2 == 0 { "add" } else { "types" };
                engine_on(&cache).load(&guest(name)).unwrap().1
            })
        })
        .collect();
    for t in threads {
        let outcome = t.join().unwrap();
        assert!(
            matches!(outcome, CacheOutcome::Miss | CacheOutcome::Hit),
            "{outcome:?}"
        );
    }
    // Had two keys been made, one of the entries would fail its MAC.
    for name in ["add", "types"] {
        assert_eq!(
            engine_on(&cache).load(&guest(name)).unwrap().1,
            CacheOutcome::Hit,
            "{name}"
        );
    }
    let key = cache.join(KEY_FILE);
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&cache).unwrap().mode() & 0o777, 0o700);
}

#[test]
fn a_cache_dir_others_can_write_is_not_used() {
    let v = vessel_tests::Vessel::new();
    let add = guest("add").display().to_string();
    let shared = tempfile::tempdir().unwrap();
    let cache = shared.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let shown = cache.display().to_string();
    // The call works, compiled in memory, the warning names the folder and
    // says the rest (`needles`), and nothing is read or written there.
    let refused = |needles: &[&str]| {
        let out = v.run(&[
            "--cache-dir",
            &shown,
            "call",
            &add,
            "add",
            "--args",
            "[1,1]",
        ]);
        assert_eq!(out.ok(), "2\n");
        for needle in [shown.as_str()].iter().chain(needles) {
            assert!(
                out.stderr.contains(needle),
                "no {needle:?} in {}",
                out.stderr
            );
        }
        assert_eq!(
            std::fs::read_dir(&cache).unwrap().count(),
            0,
            "the folder was used"
        );
    };
    set_mode(&cache, 0o775);
    refused(&["mode 775", &format!("chmod go-w {shown}")]);

    // A folder of another user, however private, is not used either.
    if !vessel_tests::is_root() {
        eprintln!("skipped the other-owner case: it needs root to chown");
        return;
    }
    set_mode(&cache, 0o700);
    let nobody = vessel_tests::NOBODY_UID;
    std::os::unix::fs::chown(&cache, Some(nobody), None).unwrap();
    refused(&[&format!("owned by uid {nobody}"), "--cache-dir"]);
}

#[test]
fn a_hit_reads_neither_the_component_nor_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let wasm = dir.path().join("types.wasm");
    std::fs::copy(guest("types"), &wasm).unwrap();
    let wasm_len = std::fs::metadata(&wasm).unwrap().len();
    settle();
    // A new engine per load, as a new process would make.
    let load = |want: CacheOutcome| {
        let engine = engine_on(&cache);
        let before = thread_rchar();
        let (_, outcome) = engine.load(&wasm).unwrap();
        let read = thread_rchar() - before;
        assert_eq!(outcome, want);
        read
    };
    // Compiles, and remembers the component's hash against its stamp.
    let first = load(CacheOutcome::Miss);
    assert!(
        first >= wasm_len,
        "the first load read {first} of {wasm_len} bytes"
    );
    let files = entries(&cache);
    assert_eq!(files.len(), 1, "{files:?}");
    let entry_len = std::fs::metadata(&files[0]).unwrap().len();
    // The seal was made as the entry was written, too soon to vouch for
    // its bytes: this hit reads the entry and checks its MAC, then renews
    // the seal. The component itself is not read again.
    settle();
    let second = load(CacheOutcome::Hit);
    assert!(
        second >= entry_len && second < entry_len + wasm_len / 2,
        "the second load read {second} bytes (entry {entry_len}, component {wasm_len})"
    );
    // From now on a hit is a few small records: the entry is mapped.
    for _ in 0..3 {
        let read = load(CacheOutcome::Hit);
        assert!(
            read < 16 * 1024 && read < wasm_len / 4 && read < entry_len / 4,
            "a hit read {read} bytes (component {wasm_len}, entry {entry_len})"
        );
    }
}

#[test]
fn a_component_rewritten_in_place_is_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let wasm = dir.path().join("add.wasm");
    let add = std::fs::read(guest("add")).unwrap();
    let (a, b) = (
        with_custom_section(&add, b"aaaa"),
        with_custom_section(&add, b"bbbb"),
    );
    std::fs::write(&wasm, &a).unwrap();
    settle();
    assert_eq!(engine_on(&cache).load(&wasm).unwrap().1, CacheOutcome::Miss);
    settle();
    assert_eq!(engine_on(&cache).load(&wasm).unwrap().1, CacheOutcome::Hit);
    // Same inode, same size, mtime set back: only ctime tells. The new
    // bytes are hashed and compiled, not mistaken for the old ones.
    let mtime = std::fs::metadata(&wasm).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&wasm).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &b, 0).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&wasm).unwrap().len(), a.len() as u64);
    assert_eq!(engine_on(&cache).load(&wasm).unwrap().1, CacheOutcome::Miss);
    assert_eq!(entries(&cache).len(), 2);
    settle();
    assert_eq!(engine_on(&cache).load(&wasm).unwrap().1, CacheOutcome::Hit);
}

#[test]
fn an_entry_rewritten_in_place_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    engine_on(&cache).load(&guest("add")).unwrap();
    settle();
    // Renews the seal, so the next hit would map the entry unread.
    assert_eq!(
        engine_on(&cache).load(&guest("add")).unwrap().1,
        CacheOutcome::Hit
    );
    let files = entries(&cache);
    // One byte flipped in place, the mtime put back: same inode, same
    // size, so only the stamp's ctime moves. The seal no longer vouches,
    // the content MAC is checked and fails.
    let engine = engine_on(&cache);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let mtime = std::fs::metadata(&files[0]).unwrap().modified().unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[0])
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &bytes[mid..=mid], mid as u64).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    let (component, outcome) = engine.load(&guest("add")).unwrap();
    assert_eq!(outcome, CacheOutcome::Rebuilt);
    assert!(exports(&engine, &component).iter().any(|n| n == "add"));
}

/// The cache keeps at most `--cache-size` of compiled code, least recently
/// used out first (a hit counts as a use), and `vessel cache ls|prune`
/// show and trim it through the binary.
#[test]
fn the_cache_is_bounded_least_recently_used_first() {
    let v = vessel_tests::Vessel::new();
    let add = guest("add").display().to_string();
    let types = guest("types").display().to_string();
    let ls = |size: &str| -> Vec<(String, u64)> {
        let out = v.run(&["--cache-size", size, "cache", "ls", "--json"]);
        let listed: serde_json::Value = serde_json::from_str(out.ok()).unwrap();
        listed
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let call_add = || {
        v.run(&["call", &add, "add", "--args", "[1,2]"])
            .ok()
            .to_owned()
    };
    assert!(ls("4GiB").is_empty());
    assert_eq!(call_add(), "3\n");
    let first = ls("4GiB");
    assert_eq!(first.len(), 1, "{first:?}");
    std::thread::sleep(std::time::Duration::from_millis(50));
    let out = v.run(&["call", &types, "echo-u8", "--args", "[7]"]);
    assert_eq!(out.ok(), "7\n");
    std::thread::sleep(std::time::Duration::from_millis(50));
    // A hit makes add the most recently used.
    assert_eq!(call_add(), "3\n");
    let both = ls("4GiB");
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[1].0, first[0].0, "add was used last: {both:?}");
    let (types_name, types_bytes) = both[0].clone();
    let add_bytes = both[1].1;

    // Pruning to add's size removes the least recently used: types.
    let out = v.run(&["cache", "prune", "--max-size", &add_bytes.to_string()]);
    assert!(
        out.ok().starts_with("Removed 1 compiled component(s) ("),
        "{out:?}"
    );
    assert!(out.ok().contains("; kept 1 ("), "{out:?}");
    assert!(types_bytes > 0);
    let left = ls("4GiB");
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].0, types_name);

    // With a bound below one entry, compiling keeps only the new one.
    let out = v.run(&[
        "--cache-size",
        "1",
        "call",
        &types,
        "echo-u8",
        "--args",
        "[9]",
    ]);
    assert_eq!(out.ok(), "9\n");
    let only = ls("1");
    assert_eq!(only.iter().map(|e| &e.0).collect::<Vec<_>>(), [&types_name]);
    // The removed entry is compiled again when next used.
    assert_eq!(call_add(), "3\n");

    let table = v.run(&["cache", "ls"]);
    assert!(table.ok().contains("2 compiled component(s)"), "{table:?}");
    assert!(table.ok().contains("of 4.00 GiB"), "{table:?}");
    let out = v.run(&["cache", "prune", "--all"]);
    assert!(
        out.ok().starts_with("Removed 2 compiled component(s)"),
        "{out:?}"
    );
    assert!(ls("4GiB").is_empty());
    assert_eq!(call_add(), "3\n");

    // Bad sizes are named.
    let out = v.run(&["--cache-size", "12XB", "cache", "ls"]);
    out.fails(2, &["unknown unit \"xb\"", "--cache-size"]);
}
