//! docs/rust.md, run as written: a Rust guest from an empty folder to a
//! running app that uses a dict and a volume.

use crate::walkthrough;

#[test]
fn rust_walkthrough_runs_as_documented() {
    let walked = walkthrough::run("docs/rust.md");
    assert!(
        walked
            .root
            .path()
            .join("notes/target/wasm32-wasip2/release/notes.wasm")
            .exists()
    );
}
