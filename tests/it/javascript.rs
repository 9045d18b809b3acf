//! JavaScript guests, built by scripts/build-js with componentize-js: the
//! docs/javascript.md walkthrough (which is components/js-guestbook), and a
//! probe that runs the SDK (guest-sdk/js/vessel.js) through the real CLI.
//! Each test builds one component (about 12 MB) and compiles it once.

use vessel_tests::Vessel;

use crate::python::{assert_page_is_example, build_probe, dict_values_cross_the_cli};
use crate::walkthrough;

#[test]
fn javascript_walkthrough_runs_as_documented() {
    let walked = walkthrough::run("docs/javascript.md");
    assert_page_is_example(&walked, "js-guestbook", &["test.sh"]);
    assert!(walked.root.path().join("guestbook/guestbook.wasm").exists());
}

const PROBE_APP: &str = r#"
[app]
name = "jsprobe"

[functions.dict-api]
component = "jsprobe.wasm"
dicts = ["kv"]

[functions.volume-api]
component = "jsprobe.wasm"
volumes = ["objects"]

[functions.versions-api]
component = "jsprobe.wasm"
volumes = ["versioned", "versioned-fork"]

[volumes.contested]
create_if_missing = true

[functions.conflict-api]
component = "jsprobe.wasm"
mounts = { "/data" = { volume = "contested", conflicts = "fail" } }

[functions.other-writer]
component = "jsprobe.wasm"
mounts = { "/data" = "contested" }

[functions.calls]
component = "jsprobe.wasm"

[functions.errors]
component = "jsprobe.wasm"
dicts = ["kv-missing"]

[functions.square]
component = "jsprobe.wasm"

[functions.fail]
component = "jsprobe.wasm"

[functions.fail-custom]
component = "jsprobe.wasm"

[functions.lookup]
component = "jsprobe.wasm"
dicts = ["kv"]
"#;

#[test]
fn javascript_sdk_through_the_cli() {
    let (_dir, app) = build_probe("build-js", "jsprobe", PROBE_APP);
    let v = Vessel::new();

    assert_eq!(
        v.call(&app, "dict-api", &[]).ok(),
        "kv 1 {\"x\":[1,2.5,null,true],\"s\":\"héllo\"}\n\
         undefined 7 true false\n\
         2 2\n\
         false 1\n\
         true 3 gone\n\
         true false\n\
         [\"b\",\"k1\",\"k2\",\"k3\",\"k4\"] [1,2,3,4]\n\
         [[\"k1\",1],[\"k2\",2],[\"k3\",3],[\"k4\",4]] 5\n\
         true 10\n\
         cas PreconditionFailed: precondition failed\n\
         1 42 42\n\
         job true true\n\
         2500 p/00000 p/02499 3123750\n\
         0\n\
         number key TypeError: dict keys are strings, not number\n\
         bigint CodecError: cannot encode or decode the value: cannot store the value as JSON: BigInt value can't be serialized in JSON\n\
         undefined CodecError: cannot encode or decode the value: cannot store undefined as JSON\n\
         [0,255,98]\n\
         json read of bytes CodecError: cannot encode or decode the value: the value at \"blob\" is not JSON (TextDecoder.decode: Decoding failed.); read it with { raw: true }\n\
         string in raw TypeError: a raw dict stores Uint8Array values\n"
    );
    dict_values_cross_the_cli(&v, &app);

    assert_eq!(
        v.call(&app, "volume-api", &[]).ok(),
        "objects 0\n\
         exists AlreadyExists: already exists: a/b.txt exists (pass overwrite to replace it)\n\
         [[\"a/b.txt\",\"file\",12],[\"a/c.bin\",\"file\",2]]\n\
         hello, again [97,103,97,105,110]\n\
         non-empty InvalidArgument: invalid argument: a is a non-empty directory (remove it recursively)\n\
         gone NotFound: not found: copy.txt in volume `objects`\n\
         {\"version\":5,\"changed\":0,\"removed\":0} number\n"
    );
    assert_eq!(
        v.run(&["volume", "get", "objects", "a/c.bin", "-"]).ok(),
        "\u{1}\u{2}"
    );

    assert_eq!(
        v.call(&app, "versions-api", &[]).ok(),
        "3 0 [[3,1],[2,1]]\n\
         1 one\n\
         write at a version AccessDenied: access denied: volume `versioned` at version 1 is read-only\n\
         [{\"path\":\"a.txt\",\"change\":\"modified\",\"type\":\"file\",\"sizeBefore\":3,\"sizeAfter\":3},{\"path\":\"b.txt\",\"change\":\"added\",\"type\":\"file\",\"sizeAfter\":3}]\n\
         [[\"a.txt\",\"modified\"]] []\n\
         versioned-fork 1 [\"a.txt\"]\n\
         2 forked [\"a.txt\"]\n\
         4 two one\n\
         missing version NotFound: not found: volume `versioned` has no version 99: its head is version 4\n\
         version and create InvalidArgument: invalid argument: a handle on a version cannot create the volume\n"
    );
    crate::python::fork_and_source_went_their_own_ways(&v);
    assert_eq!(
        v.call(&app, "conflict-api", &[]).ok(),
        "conflict [\"f.txt\"] 1 true\n\
         {\"version\":2,\"changed\":1,\"removed\":0}\n\
         mine+theirs\n\
         bad policy InvalidArgument: invalid argument: conflicts=\"maybe\": \"last-writer-wins\" or \"fail\"\n\
         plain commit PreconditionFailed: precondition failed\n\
         {\"version\":4,\"changed\":1,\"removed\":0}\n"
    );
    assert_eq!(
        v.run(&["volume", "get", "contested", "f.txt", "-"]).ok(),
        "mine again"
    );

    let out = v.call(&app, "calls", &[]);
    assert_eq!(
        out.ok(),
        "49 64\n\
         81 81\n\
         [1,4,9]\n\
         true RangeError boom true RangeError RangeError: boom true\n\
         true true Overdrawn balance below zero function `fail-custom`: raised Overdrawn: balance below zero\n\
         unknown NotFound: not found: app `jsprobe` has no function `nope`; it has: calls, conflict-api, dict-api, errors, fail, fail-custom, lookup, other-writer, square, versions-api, volume-api\n\
         bad args TypeError: calling square: pass the arguments as an array (by position) or an object (by name)\n"
    );
    // Caught errors print nothing.
    assert!(!out.stderr.contains("boom"), "{}", out.stderr);

    assert_eq!(
        v.call(&app, "errors", &[]).ok(),
        "true true AccessDenied access denied: this function is not granted dict `secret`\n\
         true dict `kv-missing` does not exist\n\
         bad name InvalidArgument: invalid argument: invalid dict name \"bad/name\": '/' is not allowed (use ASCII letters, digits, `.`, `_`, `-`)\n\
         ungranted volume AccessDenied: access denied: this function is not granted volume `ghost`\n\
         not mounted NotFound: not found: no volume is mounted at /elsewhere\n\
         volume busy: open files: a, b\n"
    );

    // An error the guest does not catch: its class, message and stack,
    // then one line of vessel's naming the function and the error, and
    // exit status 1.
    let out = v.call(&app, "lookup", &["--key", "nope"]);
    out.fails(
        1,
        &[
            "NotFound: not found: no key nope\n    at lookup@app.js:",
            "error: function `lookup`: raised NotFound: not found: no key nope\n",
        ],
    );
    assert!(!out.stderr.contains("unreachable"), "{}", out.stderr);
    assert!(!out.stderr.contains("vessel.js:"), "{}", out.stderr);
}
