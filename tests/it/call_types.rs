//! Every type of the JSON mapping round-trips through a component, and
//! values that do not fit are refused with the parameter's path and type.

use serde_json::{Value, json};
use vessel_host::call::CallError;
use vessel_host::container::ContainerConfig;
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_tests::harness::call_once;

fn engine() -> VesselEngine {
    VesselEngine::new(EngineConfig::default()).unwrap()
}

async fn call(engine: &VesselEngine, func: &str, args: Value) -> Result<Option<Value>, CallError> {
    call_once(engine, "types", func, args, &ContainerConfig::default()).await
}

async fn echo(engine: &VesselEngine, func: &str, v: Value) -> Value {
    call(engine, func, json!([v.clone()]))
        .await
        .unwrap_or_else(|e| panic!("{func}({v}): {e}"))
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn every_type_round_trips() {
    let e = engine();
    let cases: Vec<(&str, Value)> = vec![
        ("echo-bool", json!(true)),
        ("echo-bool", json!(false)),
        ("echo-s8", json!(-128)),
        ("echo-u8", json!(255)),
        ("echo-s16", json!(-32768)),
        ("echo-u16", json!(65535)),
        ("echo-s32", json!(-2147483648i64)),
        ("echo-u32", json!(4294967295u64)),
        ("echo-s64", json!(i64::MIN)),
        ("echo-s64", json!(i64::MAX)),
        ("echo-u64", json!(u64::MAX)),
        ("echo-f32", json!(0.1)),
        ("echo-f32", json!(-3.5)),
        ("echo-f64", json!(0.1)),
        ("echo-f64", json!(1e300)),
        ("echo-f64", json!("NaN")),
        ("echo-f64", json!("inf")),
        ("echo-f64", json!("-inf")),
        ("echo-f32", json!("inf")),
        ("echo-char", json!("é")),
        ("echo-char", json!("🦀")),
        ("echo-string", json!("hello\n\"world\" ✓")),
        ("echo-string", json!("")),
        ("echo-list", json!([1, 2, 3])),
        ("echo-list", json!([])),
        ("echo-bytes", json!([0, 1, 255])),
        ("echo-nested", json!([["a"], [], ["b", "c"]])),
        ("echo-record", json!({"x": 1, "y": -2})),
        ("echo-optional-field", json!({"name": "a", "nick": "b"})),
        ("echo-optional-field", json!({"name": "a", "nick": null})),
        ("echo-tuple", json!([7, "seven", true])),
        ("echo-variant", json!({"circle": 1.5})),
        ("echo-variant", json!({"square": 4})),
        ("echo-variant", json!("empty")),
        ("echo-enum", json!("green")),
        ("echo-flags", json!(["read", "exec"])),
        ("echo-flags", json!([])),
        ("echo-option", json!("x")),
        ("echo-option", json!(null)),
        ("echo-result", json!({"ok": 3})),
        ("echo-result", json!({"err": "bad"})),
        ("echo-unit-result", json!({"ok": null})),
        ("echo-unit-result", json!({"err": null})),
        ("echo-points", json!([{"x": 1, "y": 2}, {"x": 3, "y": 4}])),
    ];
    for (func, v) in cases {
        assert_eq!(echo(&e, func, v.clone()).await, v, "{func}");
    }
}

#[tokio::test]
async fn alternative_input_forms() {
    let e = engine();
    // base64 for list<u8>
    assert_eq!(
        echo(&e, "echo-bytes", json!("AAH/")).await,
        json!([0, 1, 255])
    );
    // big integers as strings (for clients without exact 64-bit numbers)
    assert_eq!(
        echo(&e, "echo-u64", json!("18446744073709551615")).await,
        json!(u64::MAX)
    );
    // a missing option field is none
    assert_eq!(
        echo(&e, "echo-optional-field", json!({"name": "a"})).await,
        json!({"name": "a", "nick": null})
    );
    // a variant case without payload may also be written as an object
    assert_eq!(
        echo(&e, "echo-variant", json!({"empty": null})).await,
        json!("empty")
    );
    // duplicated flags collapse
    assert_eq!(
        echo(&e, "echo-flags", json!(["write", "write"])).await,
        json!(["write"])
    );
    // a trailing option parameter may be left out
    let r = call(&e, "maybe", json!([1])).await.unwrap();
    assert_eq!(r, Some(json!(101)));
    let r = call(&e, "maybe", json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(r, Some(json!(3)));
}

#[tokio::test]
async fn mismatches_name_the_path_and_type() {
    let e = engine();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("echo-bool", json!(1), "v: expected bool, got 1"),
        ("echo-u8", json!(256), "256 is out of range for u8"),
        ("echo-u8", json!(-1), "-1 is out of range for u8"),
        ("echo-s8", json!(1.5), "expected s8, got 1.5"),
        ("echo-u64", json!("12x"), "expected u64"),
        ("echo-f64", json!("fast"), "expected f64"),
        ("echo-char", json!("ab"), "one-character string"),
        ("echo-char", json!(""), "one-character string"),
        ("echo-string", json!(null), "expected string, got null"),
        ("echo-list", json!([1, "2"]), "v[1]: expected u32"),
        ("echo-bytes", json!("***"), "not base64"),
        ("echo-nested", json!([["a", 1]]), "v[0][1]: expected string"),
        (
            "echo-record",
            json!({"x": 1}),
            "missing field `y` of type s32",
        ),
        (
            "echo-record",
            json!({"x": 1, "y": 2, "z": 3}),
            "unknown field `z`",
        ),
        (
            "echo-record",
            json!([1, 2]),
            "expected record { x: s32, y: s32 }",
        ),
        ("echo-tuple", json!([1, "a"]), "array of 3 elements"),
        ("echo-tuple", json!([1, 2, true]), "v[1]: expected string"),
        (
            "echo-variant",
            json!({"triangle": 3}),
            "unknown case `triangle`",
        ),
        (
            "echo-variant",
            json!("circle"),
            "needs a payload of type f64",
        ),
        ("echo-variant", json!({"empty": 3}), "has no payload"),
        (
            "echo-variant",
            json!({"circle": 1, "square": 2}),
            "{\"case\": payload}",
        ),
        (
            "echo-enum",
            json!("purple"),
            "unknown enum case `purple` (cases: red, green, blue)",
        ),
        ("echo-flags", json!(["fly"]), "unknown flag `fly`"),
        ("echo-option", json!(5), "expected string, got 5"),
        (
            "echo-result",
            json!({"maybe": 1}),
            "{\"ok\": ...} or {\"err\": ...}",
        ),
        ("echo-result", json!({"ok": "x"}), "v.ok: expected u32"),
        (
            "echo-points",
            json!([{"x": 1, "y": 2}, {"x": "a", "y": 2}]),
            "v[1].x: expected s32",
        ),
    ];
    for (func, v, needle) in cases {
        let err = call(&e, func, json!([v.clone()]))
            .await
            .expect_err(&format!("{func}({v}) should fail"));
        assert!(err.is_usage(), "{func}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(needle),
            "{func}({v}): {msg:?} lacks {needle:?}"
        );
        assert!(msg.contains(&format!("function `{func}`")), "{msg}");
    }
}
