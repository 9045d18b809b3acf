//! Unit tests of the JSON ↔ component value mapping, without running wasm:
//! the types come from a component's import signature, so no guest is
//! built or instantiated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use serde_json::json;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Type};

/// One imported function whose parameters cover the kinds of WIT types.
const SIGNATURE: &str = r#"(component
  (type $point' (record (field "x" s32) (field "y" s32)))
  (import "point" (type $point (eq $point')))
  (type $shape' (variant (case "dot") (case "circle" u32)))
  (import "shape" (type $shape (eq $shape')))
  (type $color' (enum "red" "green"))
  (import "color" (type $color (eq $color')))
  (type $perm' (flags "read" "write"))
  (import "perm" (type $perm (eq $perm')))
  (import "f" (func
    (param "small" u8) (param "big" s64) (param "names" (list string))
    (param "point" $point) (param "shape" $shape) (param "color" $color)
    (param "perm" $perm) (param "maybe" (option u64))
    (param "outcome" (result string (error u32)))
    (param "pair" (tuple bool char)) (param "ratio" float64)))
)"#;

/// The parameter types of `f`, by name.
fn params() -> Vec<(String, Type)> {
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, SIGNATURE).unwrap();
    let ty = component.component_type();
    for (name, item) in ty.imports(&engine) {
        if name == "f" {
            let ComponentItem::ComponentFunc(f) = item.ty else {
                panic!("f is not a function")
            };
            return f.params().map(|(n, t)| (n.to_owned(), t)).collect();
        }
    }
    panic!("no import f")
}

fn ty(name: &str) -> Type {
    params()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t)
        .unwrap()
}

/// JSON in, value, JSON out: the same text for every kind of type.
#[test]
fn every_kind_round_trips() {
    let cases = [
        ("small", json!(255)),
        ("big", json!(-9_223_372_036_854_775_808i64)),
        ("names", json!(["a", "", "ü"])),
        ("point", json!({"x": 1, "y": -2})),
        ("shape", json!("dot")),
        ("shape", json!({"circle": 7})),
        ("color", json!("green")),
        ("perm", json!(["read", "write"])),
        ("maybe", json!(null)),
        ("maybe", json!(5)),
        ("outcome", json!({"ok": "fine"})),
        ("outcome", json!({"err": 3})),
        ("pair", json!([true, "x"])),
        ("ratio", json!(0.5)),
    ];
    for (name, input) in cases {
        let val = from_json(&ty(name), &input, name).unwrap();
        assert_eq!(to_json(&val), input, "{name}");
    }
}

/// A value that does not fit names where it is and what was expected.
#[test]
fn mismatches_name_the_path_and_the_type() {
    let e = from_json(&ty("small"), &json!(256), "small").unwrap_err();
    assert_eq!(e.path, "small");
    assert!(e.message.contains("256"), "{e}");

    let e = from_json(&ty("point"), &json!({"x": 1, "y": "two"}), "point").unwrap_err();
    assert!(e.path.starts_with("point") && e.path.contains('y'), "{e}");
    assert!(e.message.contains("s32"), "{e}");

    let e = from_json(&ty("names"), &json!(["a", 2]), "names").unwrap_err();
    assert!(e.path.contains("[1]"), "{e}");

    let e = from_json(&ty("color"), &json!("blue"), "color").unwrap_err();
    assert!(e.to_string().contains("blue"), "{e}");

    let e = from_json(&ty("pair"), &json!([true]), "pair").unwrap_err();
    assert_eq!(e.path, "pair");
}

/// The rendering used in errors and `--help` reads like WIT.
#[test]
fn type_names_read_like_wit() {
    assert_eq!(type_name(&ty("small")), "u8");
    assert_eq!(type_name(&ty("names")), "list<string>");
    assert_eq!(type_name(&ty("maybe")), "option<u64>");
    assert_eq!(type_name(&ty("pair")), "tuple<bool, char>");
}

/// Floats that JSON cannot hold come out as strings, never as a panic.
#[test]
fn non_finite_floats_do_not_panic() {
    for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let out = to_json(&Val::Float64(f));
        assert!(out.is_string() || out.is_null(), "{out}");
    }
}
