//! The harness runs the `vessel` binary built from the sources as they are
//! now: a reproduce command (`cargo test -p vessel-tests ...`) never tests
//! a stale build.

use std::path::Path;
use std::time::SystemTime;

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<(SystemTime, std::path::PathBuf)> {
    let mut best: Option<(SystemTime, std::path::PathBuf)> = None;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if best
                .as_ref()
                .is_none_or(|(t, _)| meta.modified().unwrap() > *t)
            {
                best = Some((meta.modified().unwrap(), entry.path()));
            }
        }
    }
    best
}

#[test]
fn the_binary_run_is_newer_than_its_sources() {
    if std::env::var_os("VESSEL_BIN").is_some() {
        eprintln!("skipped: VESSEL_BIN names the binary to test, as given");
        return;
    }
    let bin = vessel_tests::vessel_bin();
    let built = std::fs::metadata(&bin).unwrap().modified().unwrap();
    let root = vessel_tests::repo_root();
    for dir in ["host/src", "wit"] {
        let (changed, path) = newest(&root.join(dir)).unwrap();
        assert!(
            built >= changed,
            "{} is older than {}: the harness would test a stale binary",
            bin.display(),
            path.display()
        );
    }
}
