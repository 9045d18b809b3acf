//! The bodies of vessel's fuzz targets, shared by the libFuzzer binaries
//! (`cargo fuzz run NAME`, `fuzz_targets/`) and the stable replay runner
//! (`src/bin/replay.rs`), so both drive the same host code:
//!
//! - [`json_to_val`]: the JSON → component value converter
//!   (`vessel_host::call::from_json`) with an arbitrary WIT type, built as
//!   a real component (only type exports, so it compiles in microseconds)
//!   and an arbitrary JSON value, often shaped like the type. Whatever
//!   converts must convert back (`to_json`) to JSON that converts to the
//!   same value; whatever does not gets an error naming where.
//! - [`manifest`]: the `vessel.toml` parser and checker
//!   (`vessel_host::app::manifest::Manifest::parse`). A manifest it
//!   accepts keeps its documented bounds; one it refuses names the file.
//! - [`stored_metadata`]: the decoders of the embedded store's records
//!   (volume rows, nodes, commit log entries, node keys; dict rows,
//!   entries, leases, counters; the dict log's files). A record that
//!   decodes encodes back to the same bytes; one that does not is a clean
//!   `Corrupt` error (or, in the dict log, the end of the records).
//!
//! A broken property panics, which libFuzzer (or the replay runner)
//! reports as a crash with its input.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::{Result as AResult, Unstructured};
use serde_json::{Map, Number, Value as Json};
use vessel_host::app::manifest::{MAX_CONTAINERS_LIMIT, MAX_MEMORY_MIB, Manifest};
use vessel_host::call::{from_json, to_json, type_name};
use wasmtime::component::Component;
use wasmtime::component::types::{ComponentItem, Type};

/// What `json_to_val` did with its inputs: types built, values converted
/// (and round-tripped), values refused with an error. The replay runner
/// prints them, so a generator that stopped reaching the converter shows.
pub static JSON_STATS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The targets by name, for the replay runner.
pub const TARGETS: [(&str, fn(&[u8])); 3] = [
    ("json_to_val", json_to_val),
    ("manifest", manifest),
    ("stored_metadata", stored_metadata),
];

// ---------------------------------------------------------------------------
// stored_metadata

/// First byte: which record (bit 3: a dict log file; else bit 2: dict,
/// else volume; low two bits: the kind); the rest: its bytes.
pub fn stored_metadata(data: &[u8]) {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    if selector & 8 != 0 {
        if let Err(e) = vessel_host::storage::embedded::wal::check_log(bytes) {
            panic!("dict log: {e}");
        }
        return;
    }
    let kind = selector & 3;
    let checked = if selector & 4 == 0 {
        vessel_host::storage::embedded::volume::check_stored_record(kind, bytes)
    } else {
        vessel_host::storage::embedded::dict::check_stored_record(kind, bytes)
    };
    if let Err(e) = checked {
        panic!("stored record (selector {selector}): {e}");
    }
}

// ---------------------------------------------------------------------------
// manifest

/// The input is the manifest's text (invalid UTF-8 replaced).
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/nonexistent-vessel-fuzz/app/vessel.toml");
    match Manifest::parse(&text, path) {
        Ok(m) => {
            assert!(!m.name.is_empty(), "an app without a name");
            assert!(!m.functions.is_empty(), "an app without functions");
            if let Some(e) = &m.entrypoint {
                assert!(
                    m.functions.contains_key(e),
                    "entrypoint {e} is not a function"
                );
            }
            for (name, f) in &m.functions {
                assert!(!name.is_empty() && !f.export.is_empty(), "{name}");
                assert!((1..=MAX_MEMORY_MIB).contains(&f.memory_mib), "{name}");
                assert!(
                    (1..=MAX_CONTAINERS_LIMIT).contains(&f.max_containers),
                    "{name}"
                );
                assert!(!f.timeout.is_zero(), "{name}: zero timeout");
                assert!(f.fuel != Some(0), "{name}: zero fuel");
                for mount in &f.mounts {
                    assert!(mount.guest.starts_with('/'), "{name}: {}", mount.guest);
                    assert!(
                        !mount.guest.split('/').any(|c| c == ".." || c == "."),
                        "{name}: {}",
                        mount.guest
                    );
                    assert!(
                        f.volumes.contains(&mount.volume),
                        "{name}: a mounted volume is not granted"
                    );
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("vessel.toml"),
                "an error without the file: {msg}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// json_to_val

/// A WIT value type, as the fuzzer builds it.
#[derive(Debug, Clone)]
enum Ty {
    Prim(&'static str),
    List(Box<Ty>),
    Option(Box<Ty>),
    Result(Option<Box<Ty>>, Option<Box<Ty>>),
    Tuple(Vec<Ty>),
    Record(Vec<(String, Ty)>),
    Variant(Vec<(String, Option<Ty>)>),
    Enum(Vec<String>),
    Flags(Vec<String>),
}

const PRIMS: [&str; 13] = [
    "bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "f32", "f64", "char", "string",
];

/// Names of fields and cases; JSON keys come from the same pool (and some
/// that no type uses), so they match often.
const NAMES: [&str; 6] = ["a", "b-c", "d0", "ok", "err", "none"];
const MAX_DEPTH: usize = 5;

fn names(u: &mut Unstructured<'_>) -> AResult<Vec<String>> {
    let n = u.int_in_range(1..=4)?;
    let mut out: Vec<String> = Vec::new();
    for i in 0..n {
        let base = *u.choose(&NAMES)?;
        let name = if out.iter().any(|x| x == base) {
            format!("n{i}")
        } else {
            base.to_owned()
        };
        out.push(name);
    }
    Ok(out)
}

fn gen_ty(u: &mut Unstructured<'_>, depth: usize) -> AResult<Ty> {
    let pick = if depth >= MAX_DEPTH {
        0
    } else {
        u.int_in_range(0..=9)?
    };
    Ok(match pick {
        0..=2 => Ty::Prim(*u.choose(&PRIMS)?),
        3 => Ty::List(Box::new(gen_ty(u, depth + 1)?)),
        4 => Ty::Option(Box::new(gen_ty(u, depth + 1)?)),
        5 => {
            let ok = if u.arbitrary()? {
                Some(Box::new(gen_ty(u, depth + 1)?))
            } else {
                None
            };
            let err = if u.arbitrary()? {
                Some(Box::new(gen_ty(u, depth + 1)?))
            } else {
                None
            };
            Ty::Result(ok, err)
        }
        6 => {
            let n = u.int_in_range(1..=3)?;
            Ty::Tuple(
                (0..n)
                    .map(|_| gen_ty(u, depth + 1))
                    .collect::<AResult<_>>()?,
            )
        }
        7 => Ty::Record(
            names(u)?
                .into_iter()
                .map(|n| Ok((n, gen_ty(u, depth + 1)?)))
                .collect::<AResult<_>>()?,
        ),
        8 => Ty::Variant(
            names(u)?
                .into_iter()
                .map(|n| {
                    let t = if u.arbitrary()? {
                        Some(gen_ty(u, depth + 1)?)
                    } else {
                        None
                    };
                    Ok((n, t))
                })
                .collect::<AResult<_>>()?,
        ),
        _ => {
            if u.arbitrary()? {
                Ty::Enum(names(u)?)
            } else {
                Ty::Flags(names(u)?)
            }
        }
    })
}

/// Emits the type definitions `ty` needs into `defs` and returns how to
/// refer to it. Records, variants, enums and flags must be exported to be
/// used by other exported types, so each gets a definition and an export.
fn render(ty: &Ty, defs: &mut Vec<String>, export: Option<&str>) -> String {
    let quoted = |names: &[String]| {
        names
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let body = match ty {
        Ty::Prim(p) => (*p).to_owned(),
        Ty::List(t) => format!("(list {})", render(t, defs, None)),
        Ty::Option(t) => format!("(option {})", render(t, defs, None)),
        Ty::Result(ok, err) => {
            let ok = ok.as_ref().map(|t| render(t, defs, None));
            let err = err
                .as_ref()
                .map(|t| format!("(error {})", render(t, defs, None)));
            format!(
                "(result {} {})",
                ok.unwrap_or_default(),
                err.unwrap_or_default()
            )
        }
        Ty::Tuple(ts) => {
            let parts: Vec<String> = ts.iter().map(|t| render(t, defs, None)).collect();
            format!("(tuple {})", parts.join(" "))
        }
        Ty::Record(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(n, t)| format!("(field {n:?} {})", render(t, defs, None)))
                .collect();
            format!("(record {})", parts.join(" "))
        }
        Ty::Variant(cases) => {
            let parts: Vec<String> = cases
                .iter()
                .map(|(n, t)| match t {
                    Some(t) => format!("(case {n:?} {})", render(t, defs, None)),
                    None => format!("(case {n:?})"),
                })
                .collect();
            format!("(variant {})", parts.join(" "))
        }
        Ty::Enum(names) => format!("(enum {})", quoted(names)),
        Ty::Flags(names) => format!("(flags {})", quoted(names)),
    };
    let named = matches!(
        ty,
        Ty::Record(_) | Ty::Variant(_) | Ty::Enum(_) | Ty::Flags(_)
    );
    if !named && export.is_none() {
        return body;
    }
    let i = defs.len();
    let name = export.map_or_else(|| format!("t{i}"), str::to_owned);
    defs.push(format!(
        "(type $d{i} {body}) (export $e{i} {name:?} (type $d{i}))"
    ));
    format!("$e{i}")
}

fn engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(wasmtime::Engine::default)
}

/// The exported type `root` of a component holding `ty`.
fn build(ty: &Ty) -> Type {
    let mut defs = Vec::new();
    render(ty, &mut defs, Some("root"));
    let wat = format!("(component {})", defs.join("\n"));
    let component = Component::new(engine(), &wat)
        .unwrap_or_else(|e| panic!("a generated type does not build: {e:?}\n{wat}"));
    let found = component
        .component_type()
        .exports(engine())
        .find_map(|(name, ext)| match ext.ty {
            ComponentItem::Type(t) if name == "root" => Some(t),
            _ => None,
        });
    found.unwrap_or_else(|| panic!("no exported type `root` in\n{wat}"))
}

fn gen_number(u: &mut Unstructured<'_>) -> AResult<Json> {
    Ok(match u.int_in_range(0..=3)? {
        0 => Json::from(u.arbitrary::<i64>()?),
        1 => Json::from(u.arbitrary::<u64>()?),
        2 => Json::from(u.int_in_range(-300i64..=300)?),
        _ => Number::from_f64(u.arbitrary::<f64>()?).map_or(Json::Null, Json::Number),
    })
}

fn gen_string(u: &mut Unstructured<'_>) -> AResult<String> {
    Ok(match u.int_in_range(0..=3)? {
        0 => (*u.choose(&NAMES)?).to_owned(),
        1 => {
            (*u.choose(&["NaN", "inf", "-inf", "AAEC", "18446744073709551616", " 7 "])?).to_owned()
        }
        _ => u.arbitrary::<String>()?,
    })
}

/// Any JSON value.
fn gen_any(u: &mut Unstructured<'_>, depth: usize) -> AResult<Json> {
    let pick = if depth >= MAX_DEPTH + 2 {
        u.int_in_range(0..=3)?
    } else {
        u.int_in_range(0..=5)?
    };
    Ok(match pick {
        0 => Json::Null,
        1 => Json::Bool(u.arbitrary()?),
        2 => gen_number(u)?,
        3 => Json::String(gen_string(u)?),
        4 => {
            let n = u.int_in_range(0..=4)?;
            Json::Array(
                (0..n)
                    .map(|_| gen_any(u, depth + 1))
                    .collect::<AResult<_>>()?,
            )
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut m = Map::new();
            for _ in 0..n {
                m.insert(gen_string(u)?, gen_any(u, depth + 1)?);
            }
            Json::Object(m)
        }
    })
}

/// A JSON value, most often shaped like `ty` (so conversions get deep),
/// sometimes anything at all.
fn gen_json(u: &mut Unstructured<'_>, ty: &Ty, depth: usize) -> AResult<Json> {
    if u.ratio(1, 10)? {
        return gen_any(u, depth);
    }
    Ok(match ty {
        Ty::Prim("bool") => Json::Bool(u.arbitrary()?),
        Ty::Prim("char") => Json::String(u.arbitrary::<char>()?.to_string()),
        Ty::Prim("string") => Json::String(gen_string(u)?),
        Ty::Prim("u64" | "s64") if u.ratio(1, 4)? => {
            Json::String(u.arbitrary::<i128>()?.to_string())
        }
        Ty::Prim("f32" | "f64") if u.ratio(1, 4)? => {
            Json::String((*u.choose(&["NaN", "inf", "-inf", "Infinity"])?).to_owned())
        }
        Ty::Prim(_) => gen_number(u)?,
        Ty::List(t) => {
            if matches!(**t, Ty::Prim("u8")) && u.ratio(1, 3)? {
                Json::String(gen_string(u)?)
            } else {
                let n = u.int_in_range(0..=4)?;
                Json::Array(
                    (0..n)
                        .map(|_| gen_json(u, t, depth + 1))
                        .collect::<AResult<_>>()?,
                )
            }
        }
        Ty::Option(t) => {
            if u.ratio(1, 3)? {
                Json::Null
            } else {
                gen_json(u, t, depth + 1)?
            }
        }
        Ty::Result(ok, err) => {
            let (case, t) = if u.arbitrary()? {
                ("ok", ok)
            } else {
                ("err", err)
            };
            match t {
                Some(t) if !u.ratio(1, 8)? => single(case, gen_json(u, t, depth + 1)?),
                _ if u.arbitrary()? => Json::String(case.to_owned()),
                _ => single(case, Json::Null),
            }
        }
        Ty::Tuple(ts) => {
            let mut items: Vec<Json> = ts
                .iter()
                .map(|t| gen_json(u, t, depth + 1))
                .collect::<AResult<_>>()?;
            if u.ratio(1, 8)? {
                items.pop();
            }
            Json::Array(items)
        }
        Ty::Record(fields) => {
            let mut m = Map::new();
            for (n, t) in fields {
                if !u.ratio(1, 8)? {
                    m.insert(n.clone(), gen_json(u, t, depth + 1)?);
                }
            }
            if u.ratio(1, 8)? {
                m.insert(gen_string(u)?, gen_any(u, depth + 1)?);
            }
            Json::Object(m)
        }
        Ty::Variant(cases) => {
            let (n, t) = u.choose(cases)?;
            match t {
                Some(t) => single(n, gen_json(u, t, depth + 1)?),
                None if u.arbitrary()? => Json::String(n.clone()),
                None => single(n, Json::Null),
            }
        }
        Ty::Enum(names) => Json::String(u.choose(names)?.clone()),
        Ty::Flags(names) => {
            let mut set = Vec::new();
            for n in names {
                if u.arbitrary()? {
                    set.push(Json::String(n.clone()));
                }
            }
            Json::Array(set)
        }
    })
}

fn single(key: &str, value: Json) -> Json {
    let mut m = Map::new();
    m.insert(key.to_owned(), value);
    Json::Object(m)
}

/// The type comes from the first bytes; then the JSON, generated from the
/// rest or, when the next byte says so, parsed from the rest as text.
pub fn json_to_val(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(ty) = gen_ty(&mut u, 0) else {
        return;
    };
    let json = if u.ratio(1, 4).unwrap_or(false) {
        match serde_json::from_slice::<Json>(u.take_rest()) {
            Ok(j) => j,
            Err(_) => return,
        }
    } else {
        gen_json(&mut u, &ty, 0).unwrap_or(Json::Null)
    };
    let wit = build(&ty);
    JSON_STATS[0].fetch_add(1, Ordering::Relaxed);
    let shown = type_name(&wit);
    assert!(!shown.is_empty());
    match from_json(&wit, &json, "arg") {
        Ok(val) => {
            let back = to_json(&val);
            let again = from_json(&wit, &back, "arg").unwrap_or_else(|e| {
                panic!("{json} converted to {val:?}, whose JSON {back} does not convert: {e}")
            });
            assert_eq!(to_json(&again), back, "{shown}: {json} does not round-trip");
            JSON_STATS[1].fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            JSON_STATS[2].fetch_add(1, Ordering::Relaxed);
            assert!(e.path.starts_with("arg"), "{e}");
            assert!(
                !e.message.is_empty(),
                "an error without a message at {}",
                e.path
            );
        }
    }
}
