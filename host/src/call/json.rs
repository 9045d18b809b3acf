//! JSON to component values and back, driven by the export's own WIT types.
//!
//! The mapping (also in the README):
//! - `bool` ↔ true/false; integers ↔ numbers, range-checked (u64 and s64
//!   exact); floats ↔ numbers, with `"NaN"`, `"inf"`, `"-inf"` as strings;
//!   `char` ↔ a one-character string; `string` ↔ string.
//! - `list<T>` ↔ array; `list<u8>` also accepts a base64 string on input.
//! - `record` ↔ object keyed by WIT field names (a missing `option` field is
//!   `none`); `tuple` ↔ array.
//! - `variant` ↔ `{"case": payload}`, or `"case"` for a case without payload;
//!   `enum` ↔ `"case"`; `flags` ↔ array of the set flag names.
//! - `option<T>` ↔ `null` or the value; `result` ↔ `{"ok": v}` / `{"err": e}`
//!   (`null` payload for a side without a type).
//! - `map<K, V>` ↔ object when K is `string`, else an array of `[k, v]` pairs.

use base64::Engine as _;
use serde_json::{Map as JsonMap, Number, Value as Json};
use wasmtime::component::Val;
use wasmtime::component::types::Type;

/// A JSON value that does not fit the WIT type at `path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConvertError {
    /// Where in the argument: `a`, `a.numbers[3]`, ...
    pub path: String,
    pub message: String,
}

/// Converts `json` to a value of type `ty`; `path` names it in errors.
pub fn from_json(ty: &Type, json: &Json, path: &str) -> Result<Val, ConvertError> {
    let mut p = path.to_owned();
    convert(ty, json, &mut p)
}

fn mismatch(ty: &Type, json: &Json, path: &str) -> ConvertError {
    ConvertError {
        path: path.to_owned(),
        message: format!("expected {}, got {}", type_name(ty), describe(json)),
    }
}

fn err(path: &str, message: impl Into<String>) -> ConvertError {
    ConvertError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// A short description of a JSON value for error messages.
fn describe(json: &Json) -> String {
    let text = json.to_string();
    if text.chars().count() > 40 {
        let cut: String = text.chars().take(37).collect();
        format!("{cut}...")
    } else {
        text
    }
}

fn with_segment<T>(
    path: &mut String,
    seg: impl std::fmt::Display,
    f: impl FnOnce(&mut String) -> Result<T, ConvertError>,
) -> Result<T, ConvertError> {
    let len = path.len();
    use std::fmt::Write;
    let _ = write!(path, "{seg}");
    let out = f(path);
    path.truncate(len);
    out
}

fn int_from_json<T: TryFrom<i128>>(ty: &Type, json: &Json, path: &str) -> Result<T, ConvertError> {
    let wide: i128 = match json {
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                i128::from(u)
            } else if let Some(i) = n.as_i64() {
                i128::from(i)
            } else {
                return Err(mismatch(ty, json, path));
            }
        }
        // 64-bit integers may arrive as strings from clients that cannot
        // hold them exactly (JavaScript).
        Json::String(s) if matches!(ty, Type::U64 | Type::S64) => s
            .trim()
            .parse::<i128>()
            .map_err(|_| mismatch(ty, json, path))?,
        _ => return Err(mismatch(ty, json, path)),
    };
    T::try_from(wide).map_err(|_| {
        err(
            path,
            format!("{wide} is out of range for {}", type_name(ty)),
        )
    })
}

fn float_from_json(ty: &Type, json: &Json, path: &str) -> Result<f64, ConvertError> {
    match json {
        Json::Number(n) => n.as_f64().ok_or_else(|| mismatch(ty, json, path)),
        Json::String(s) => match s.as_str() {
            "NaN" | "nan" => Ok(f64::NAN),
            "inf" | "+inf" | "Infinity" => Ok(f64::INFINITY),
            "-inf" | "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(mismatch(ty, json, path)),
        },
        _ => Err(mismatch(ty, json, path)),
    }
}

fn convert(ty: &Type, json: &Json, path: &mut String) -> Result<Val, ConvertError> {
    Ok(match ty {
        Type::Bool => Val::Bool(json.as_bool().ok_or_else(|| mismatch(ty, json, path))?),
        Type::S8 => Val::S8(int_from_json(ty, json, path)?),
        Type::U8 => Val::U8(int_from_json(ty, json, path)?),
        Type::S16 => Val::S16(int_from_json(ty, json, path)?),
        Type::U16 => Val::U16(int_from_json(ty, json, path)?),
        Type::S32 => Val::S32(int_from_json(ty, json, path)?),
        Type::U32 => Val::U32(int_from_json(ty, json, path)?),
        Type::S64 => Val::S64(int_from_json(ty, json, path)?),
        Type::U64 => Val::U64(int_from_json(ty, json, path)?),
        #[allow(clippy::cast_possible_truncation)]
        Type::Float32 => Val::Float32(float_from_json(ty, json, path)? as f32),
        Type::Float64 => Val::Float64(float_from_json(ty, json, path)?),
        Type::Char => {
            let s = json.as_str().ok_or_else(|| mismatch(ty, json, path))?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => {
                    return Err(err(
                        path,
                        format!(
                            "expected char (a one-character string), got {}",
                            describe(json)
                        ),
                    ));
                }
            }
        }
        Type::String => Val::String(
            json.as_str()
                .ok_or_else(|| mismatch(ty, json, path))?
                .to_owned(),
        ),
        Type::List(list) => {
            let elem = list.ty();
            if let (Type::U8, Json::String(s)) = (&elem, json) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|e| {
                        err(
                            path,
                            format!("expected list<u8> (an array of bytes or a base64 string); the string is not base64: {e}"),
                        )
                    })?;
                return Ok(Val::List(bytes.into_iter().map(Val::U8).collect()));
            }
            let items = json.as_array().ok_or_else(|| mismatch(ty, json, path))?;
            Val::List(convert_items(&elem, items, path)?)
        }
        Type::FixedLengthList(list) => {
            let items = json.as_array().ok_or_else(|| mismatch(ty, json, path))?;
            let want = usize::try_from(list.len()).unwrap_or(usize::MAX);
            if items.len() != want {
                return Err(err(
                    path,
                    format!("expected {} elements, got {}", want, items.len()),
                ));
            }
            Val::FixedLengthList(convert_items(&list.ty(), items, path)?)
        }
        Type::Map(map) => {
            let (key_ty, value_ty) = (map.key(), map.value());
            let mut pairs = Vec::new();
            match json {
                Json::Object(obj) if matches!(key_ty, Type::String) => {
                    for (k, v) in obj {
                        let value =
                            with_segment(path, format_args!(".{k}"), |p| convert(&value_ty, v, p))?;
                        pairs.push((Val::String(k.clone()), value));
                    }
                }
                Json::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let pair = with_segment(path, format_args!("[{i}]"), |p| {
                            match item.as_array().map(Vec::as_slice) {
                                Some([k, v]) => Ok((
                                    with_segment(p, "[0]", |p| convert(&key_ty, k, p))?,
                                    with_segment(p, "[1]", |p| convert(&value_ty, v, p))?,
                                )),
                                _ => Err(err(
                                    p,
                                    format!("expected a [key, value] pair, got {}", describe(item)),
                                )),
                            }
                        })?;
                        pairs.push(pair);
                    }
                }
                _ => return Err(mismatch(ty, json, path)),
            }
            Val::Map(pairs)
        }
        Type::Record(record) => {
            let obj = json.as_object().ok_or_else(|| mismatch(ty, json, path))?;
            let mut fields = Vec::with_capacity(record.fields().len());
            for field in record.fields() {
                let value = match obj.get(field.name) {
                    Some(v) => with_segment(path, format_args!(".{}", field.name), |p| {
                        convert(&field.ty, v, p)
                    })?,
                    None if matches!(field.ty, Type::Option(_)) => Val::Option(None),
                    None => {
                        return Err(err(
                            path,
                            format!(
                                "missing field `{}` of type {}",
                                field.name,
                                type_name(&field.ty)
                            ),
                        ));
                    }
                };
                fields.push((field.name.to_owned(), value));
            }
            if let Some(unknown) = obj
                .keys()
                .find(|k| !record.fields().any(|f| f.name == k.as_str()))
            {
                let known: Vec<&str> = record.fields().map(|f| f.name).collect();
                return Err(err(
                    path,
                    format!("unknown field `{unknown}` (fields: {})", known.join(", ")),
                ));
            }
            Val::Record(fields)
        }
        Type::Tuple(tuple) => {
            let items = json.as_array().ok_or_else(|| mismatch(ty, json, path))?;
            if items.len() != tuple.types().len() {
                return Err(err(
                    path,
                    format!(
                        "expected {} (an array of {} elements), got {} elements",
                        type_name(ty),
                        tuple.types().len(),
                        items.len()
                    ),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (t, v)) in tuple.types().zip(items).enumerate() {
                out.push(with_segment(path, format_args!("[{i}]"), |p| {
                    convert(&t, v, p)
                })?);
            }
            Val::Tuple(out)
        }
        Type::Variant(variant) => {
            let (name, payload) = single_case(ty, json, path)?;
            let Some(case) = variant.cases().find(|c| c.name == name) else {
                let names: Vec<&str> = variant.cases().map(|c| c.name).collect();
                return Err(err(
                    path,
                    format!("unknown case `{name}` (cases: {})", names.join(", ")),
                ));
            };
            let value = match (&case.ty, payload) {
                (None, None | Some(Json::Null)) => None,
                (None, Some(p)) => {
                    return Err(err(
                        path,
                        format!("case `{name}` has no payload, got {}", describe(p)),
                    ));
                }
                (Some(t), Some(p)) => Some(Box::new(with_segment(
                    path,
                    format_args!(".{name}"),
                    |path| convert(t, p, path),
                )?)),
                (Some(t), None) => {
                    return Err(err(
                        path,
                        format!(
                            "case `{name}` needs a payload of type {}: write {{\"{name}\": ...}}",
                            type_name(t)
                        ),
                    ));
                }
            };
            Val::Variant(name.to_owned(), value)
        }
        Type::Enum(e) => {
            let s = json.as_str().ok_or_else(|| mismatch(ty, json, path))?;
            if !e.names().any(|n| n == s) {
                let names: Vec<&str> = e.names().collect();
                return Err(err(
                    path,
                    format!("unknown enum case `{s}` (cases: {})", names.join(", ")),
                ));
            }
            Val::Enum(s.to_owned())
        }
        Type::Option(opt) => match json {
            Json::Null => Val::Option(None),
            v => Val::Option(Some(Box::new(convert(&opt.ty(), v, path)?))),
        },
        Type::Result(result) => {
            let (name, payload) = single_case(ty, json, path)?;
            let side = match name {
                "ok" => result.ok(),
                "err" => result.err(),
                other => {
                    return Err(err(
                        path,
                        format!("expected {{\"ok\": ...}} or {{\"err\": ...}}, got case `{other}`"),
                    ));
                }
            };
            let value = match (side, payload) {
                (None, None | Some(Json::Null)) => None,
                (None, Some(p)) => {
                    return Err(err(
                        path,
                        format!("`{name}` has no payload here, got {}", describe(p)),
                    ));
                }
                (Some(t), Some(p)) => Some(Box::new(with_segment(
                    path,
                    format_args!(".{name}"),
                    |path| convert(&t, p, path),
                )?)),
                (Some(t), None) => {
                    return Err(err(
                        path,
                        format!("`{name}` needs a payload of type {}", type_name(&t)),
                    ));
                }
            };
            Val::Result(if name == "ok" { Ok(value) } else { Err(value) })
        }
        Type::Flags(flags) => {
            let items = json.as_array().ok_or_else(|| mismatch(ty, json, path))?;
            let mut set = Vec::with_capacity(items.len());
            for item in items {
                let s = item.as_str().ok_or_else(|| mismatch(ty, json, path))?;
                if !flags.names().any(|n| n == s) {
                    let names: Vec<&str> = flags.names().collect();
                    return Err(err(
                        path,
                        format!("unknown flag `{s}` (flags: {})", names.join(", ")),
                    ));
                }
                if !set.iter().any(|x: &String| x == s) {
                    set.push(s.to_owned());
                }
            }
            Val::Flags(set)
        }
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => {
            return Err(err(
                path,
                format!("a value of type {} cannot be passed as JSON", type_name(ty)),
            ));
        }
    })
}

fn convert_items(elem: &Type, items: &[Json], path: &mut String) -> Result<Vec<Val>, ConvertError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        out.push(with_segment(path, format_args!("[{i}]"), |p| {
            convert(elem, item, p)
        })?);
    }
    Ok(out)
}

/// Reads a `"case"` string or a one-key `{"case": payload}` object.
fn single_case<'j>(
    ty: &Type,
    json: &'j Json,
    path: &str,
) -> Result<(&'j str, Option<&'j Json>), ConvertError> {
    match json {
        Json::String(s) => Ok((s.as_str(), None)),
        Json::Object(obj) if obj.len() == 1 => {
            let mut it = obj.iter();
            match it.next() {
                Some((k, v)) => Ok((k.as_str(), Some(v))),
                None => Err(mismatch(ty, json, path)),
            }
        }
        _ => Err(err(
            path,
            format!(
                "expected {} as {{\"case\": payload}} or \"case\", got {}",
                type_name(ty),
                describe(json)
            ),
        )),
    }
}

fn float_to_json(f: f64, shortest: String) -> Json {
    if f.is_nan() {
        Json::String("NaN".into())
    } else if f.is_infinite() {
        Json::String(if f > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        // Parse the shortest decimal form so an f32 prints as `0.1`, not as
        // the f64 widening `0.10000000149011612`.
        shortest
            .parse::<Number>()
            .map(Json::Number)
            .unwrap_or(Json::Null)
    }
}

/// Converts a component value to JSON, the inverse of [`from_json`].
pub fn to_json(val: &Val) -> Json {
    match val {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(n) => Json::from(*n),
        Val::U8(n) => Json::from(*n),
        Val::S16(n) => Json::from(*n),
        Val::U16(n) => Json::from(*n),
        Val::S32(n) => Json::from(*n),
        Val::U32(n) => Json::from(*n),
        Val::S64(n) => Json::from(*n),
        Val::U64(n) => Json::from(*n),
        Val::Float32(f) => float_to_json(f64::from(*f), format!("{f:?}")),
        Val::Float64(f) => float_to_json(*f, format!("{f:?}")),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Val::Map(pairs) => {
            if pairs.iter().all(|(k, _)| matches!(k, Val::String(_))) {
                let mut obj = JsonMap::new();
                for (k, v) in pairs {
                    if let Val::String(k) = k {
                        obj.insert(k.clone(), to_json(v));
                    }
                }
                Json::Object(obj)
            } else {
                Json::Array(
                    pairs
                        .iter()
                        .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                )
            }
        }
        Val::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(name, v)| (name.clone(), to_json(v)))
                .collect(),
        ),
        Val::Variant(name, payload) => match payload {
            None => Json::String(name.clone()),
            Some(p) => single(name, to_json(p)),
        },
        Val::Enum(name) => Json::String(name.clone()),
        Val::Option(None) => Json::Null,
        Val::Option(Some(v)) => to_json(v),
        Val::Result(r) => {
            let (name, payload) = match r {
                Ok(p) => ("ok", p),
                Err(p) => ("err", p),
            };
            single(name, payload.as_deref().map_or(Json::Null, to_json))
        }
        Val::Flags(names) => Json::Array(names.iter().map(|n| Json::String(n.clone())).collect()),
        Val::Resource(_) => Json::String("<resource>".into()),
        Val::Future(_) => Json::String("<future>".into()),
        Val::Stream(_) => Json::String("<stream>".into()),
        Val::ErrorContext(_) => Json::String("<error-context>".into()),
    }
}

fn single(key: &str, value: Json) -> Json {
    let mut obj = JsonMap::new();
    obj.insert(key.to_owned(), value);
    Json::Object(obj)
}

/// A WIT-like rendering of a type, for error messages and `--help`.
pub fn type_name(ty: &Type) -> String {
    let mut out = String::new();
    write_type(ty, &mut out, 0);
    out
}

fn write_type(ty: &Type, out: &mut String, depth: usize) {
    // Deeply nested types are elided rather than printed in full.
    if depth > 4 || out.len() > 200 {
        out.push_str("...");
        return;
    }
    let d = depth + 1;
    match ty {
        Type::Bool => out.push_str("bool"),
        Type::S8 => out.push_str("s8"),
        Type::U8 => out.push_str("u8"),
        Type::S16 => out.push_str("s16"),
        Type::U16 => out.push_str("u16"),
        Type::S32 => out.push_str("s32"),
        Type::U32 => out.push_str("u32"),
        Type::S64 => out.push_str("s64"),
        Type::U64 => out.push_str("u64"),
        Type::Float32 => out.push_str("f32"),
        Type::Float64 => out.push_str("f64"),
        Type::Char => out.push_str("char"),
        Type::String => out.push_str("string"),
        Type::List(l) => {
            out.push_str("list<");
            write_type(&l.ty(), out, d);
            out.push('>');
        }
        Type::FixedLengthList(l) => {
            out.push_str("list<");
            write_type(&l.ty(), out, d);
            out.push_str(&format!(", {}>", l.len()));
        }
        Type::Map(m) => {
            out.push_str("map<");
            write_type(&m.key(), out, d);
            out.push_str(", ");
            write_type(&m.value(), out, d);
            out.push('>');
        }
        Type::Record(r) => {
            out.push_str("record { ");
            for (i, f) in r.fields().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(f.name);
                out.push_str(": ");
                write_type(&f.ty, out, d);
            }
            out.push_str(" }");
        }
        Type::Tuple(t) => {
            out.push_str("tuple<");
            for (i, t) in t.types().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_type(&t, out, d);
            }
            out.push('>');
        }
        Type::Variant(v) => {
            out.push_str("variant { ");
            for (i, c) in v.cases().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(c.name);
                if let Some(t) = &c.ty {
                    out.push('(');
                    write_type(t, out, d);
                    out.push(')');
                }
            }
            out.push_str(" }");
        }
        Type::Enum(e) => {
            out.push_str("enum { ");
            out.push_str(&e.names().collect::<Vec<_>>().join(", "));
            out.push_str(" }");
        }
        Type::Option(o) => {
            out.push_str("option<");
            write_type(&o.ty(), out, d);
            out.push('>');
        }
        Type::Result(r) => {
            out.push_str("result<");
            match r.ok() {
                Some(t) => write_type(&t, out, d),
                None => out.push('_'),
            }
            if let Some(t) = r.err() {
                out.push_str(", ");
                write_type(&t, out, d);
            }
            out.push('>');
        }
        Type::Flags(f) => {
            out.push_str("flags { ");
            out.push_str(&f.names().collect::<Vec<_>>().join(", "));
            out.push_str(" }");
        }
        Type::Own(_) => out.push_str("own<resource>"),
        Type::Borrow(_) => out.push_str("borrow<resource>"),
        Type::Future(_) => out.push_str("future"),
        Type::Stream(_) => out.push_str("stream"),
        Type::ErrorContext => out.push_str("error-context"),
    }
}

#[cfg(test)]
mod tests;
