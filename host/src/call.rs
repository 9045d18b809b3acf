//! Typed calls of component exports: finding the export, turning JSON
//! arguments into component values with the export's own WIT types, running
//! it in a container and turning the result back into JSON.

pub mod json;

use crate::error_kind::ErrorKind;

use serde_json::Value as Json;
use wasmtime::component::types::{ComponentFunc, ComponentItem, Type};
use wasmtime::component::{Component, ComponentExportIndex, Val};

use crate::container::ContainerError;
use crate::engine::{EngineError, VesselEngine};
pub use json::{ConvertError, from_json, to_json, type_name};

/// Why a call could not be made or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Load(#[from] EngineError),
    #[error("{component} has no exported function `{name}`; it exports: {available}")]
    NoSuchExport {
        component: String,
        name: String,
        available: String,
    },
    #[error("function `{function}`: {message}")]
    Args { function: String, message: String },
    #[error("function `{function}`: parameter {source}")]
    Convert {
        function: String,
        source: ConvertError,
    },
    #[error("function `{function}`: {source}")]
    Container {
        function: String,
        source: ContainerError,
    },
    #[error("cannot set up the host: {0}")]
    Host(String),
}

impl CallError {
    /// The kind of failure, which every surface maps with one table (see
    /// [`ErrorKind`]): a component that does not load, arguments that do
    /// not fit and a bad mount are `invalid-argument`, an export it does
    /// not have `not-found`, and a call that ran and failed `call-failed`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::Load(_) | CallError::Args { .. } | CallError::Convert { .. } => {
                ErrorKind::InvalidArgument
            }
            CallError::NoSuchExport { .. } => ErrorKind::NotFound,
            CallError::Container {
                source: ContainerError::BadMount { .. },
                ..
            } => ErrorKind::InvalidArgument,
            CallError::Container { .. } => ErrorKind::CallFailed,
            CallError::Host(_) => ErrorKind::Io,
        }
    }

    /// Whether the caller got something wrong (bad component or
    /// arguments) rather than the call failing while it ran.
    pub fn is_usage(&self) -> bool {
        self.kind().is_usage()
    }

    /// What the guest raised, when it ended the call with `fail`.
    pub fn raised(&self) -> Option<&crate::functions::Raised> {
        match self {
            CallError::Container { source, .. } => source.raised(),
            _ => None,
        }
    }
}

/// An export resolved to something callable, with its signature.
#[derive(Debug, Clone)]
pub struct Export {
    /// The name as the user wrote it.
    pub name: String,
    pub index: ComponentExportIndex,
    pub params: Vec<(String, Type)>,
    pub result: Option<Type>,
}

impl Export {
    /// `name(a: s32, b: s32) -> s32`, for messages.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {}", type_name(t)))
            .collect();
        let mut s = format!("{}({})", self.name, params.join(", "));
        if let Some(r) = &self.result {
            s.push_str(" -> ");
            s.push_str(&type_name(r));
        }
        s
    }
}

/// Lists the callable exports: top-level functions by name, and functions of
/// exported interfaces as `interface#function`.
pub fn list_exports(engine: &VesselEngine, component: &Component) -> Vec<String> {
    let mut out = Vec::new();
    let ty = component.component_type();
    for (name, ext) in ty.exports(engine.engine()) {
        match ext.ty {
            ComponentItem::ComponentFunc(_) => out.push(name.to_owned()),
            ComponentItem::ComponentInstance(inst) => {
                for (f, fext) in inst.exports(engine.engine()) {
                    if matches!(fext.ty, ComponentItem::ComponentFunc(_)) {
                        out.push(format!("{name}#{f}"));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Finds the export called `name`: a top-level function (`add`), or a
/// function of an exported interface written `iface#func` or `iface.func`,
/// where `iface` is the full export name (`my:pkg/iface@1.0.0`) or just its
/// interface name (`iface`).
pub fn find_export(
    engine: &VesselEngine,
    component: &Component,
    component_name: &str,
    name: &str,
) -> Result<Export, CallError> {
    let ty = component.component_type();
    let not_found = || {
        let available = list_exports(engine, component);
        CallError::NoSuchExport {
            component: component_name.to_owned(),
            name: name.to_owned(),
            available: if available.is_empty() {
                "no functions".to_owned()
            } else {
                available.join(", ")
            },
        }
    };
    let func_ty: ComponentFunc;
    let index;
    if let Some(ext) = ty.get_export(engine.engine(), name)
        && let ComponentItem::ComponentFunc(f) = ext.ty
    {
        func_ty = f;
        index = component
            .get_export_index(None, name)
            .ok_or_else(not_found)?;
    } else {
        let (iface, func) = name
            .rsplit_once('#')
            .or_else(|| name.rsplit_once('.'))
            .ok_or_else(not_found)?;
        let mut found = None;
        for (export_name, ext) in ty.exports(engine.engine()) {
            let short = export_name.rsplit_once('/').map_or(export_name, |(_, s)| s);
            let short = short.split_once('@').map_or(short, |(s, _)| s);
            if export_name != iface && short != iface {
                continue;
            }
            if let ComponentItem::ComponentInstance(inst) = ext.ty
                && let Some(fext) = inst.get_export(engine.engine(), func)
                && let ComponentItem::ComponentFunc(f) = fext.ty
            {
                found = Some((export_name.to_owned(), f));
                break;
            }
        }
        let (export_name, f) = found.ok_or_else(not_found)?;
        let inst_index = component
            .get_export_index(None, &export_name)
            .ok_or_else(not_found)?;
        index = component
            .get_export_index(Some(&inst_index), func)
            .ok_or_else(not_found)?;
        func_ty = f;
    }
    let params = func_ty.params().map(|(n, t)| (n.to_owned(), t)).collect();
    let result = func_ty.results().next();
    Ok(Export {
        name: name.to_owned(),
        index,
        params,
        result,
    })
}

/// Arguments as given: an optional `--args` document plus `--NAME` flags.
#[derive(Debug, Clone, Default)]
pub struct CallArgs {
    /// A JSON array (positional) or object (by parameter name).
    pub args: Option<Json>,
    /// `--NAME VALUE` flags, already parsed (see [`parse_param_flags`]).
    pub flags: Vec<ParamFlag>,
}

/// One `--NAME [VALUE]` flag of `vessel call`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamFlag {
    pub name: String,
    /// The value: JSON when the text parses as JSON, else the text as a
    /// string; `None` for a bare `--NAME` (true for a bool parameter).
    pub value: Option<Json>,
    /// Written `--no-NAME`: false for a bool parameter.
    pub negated: bool,
    /// The value exactly as written (not `@FILE`), so a string parameter
    /// takes `--name 123` or `--json '[1]'` as the text it is.
    pub text: Option<String>,
}

/// Parses `--NAME VALUE`, `--NAME=VALUE`, bare `--NAME`, `--no-NAME` and
/// `--NAME @FILE` (JSON read from FILE).
pub fn parse_param_flags(tokens: &[String]) -> Result<Vec<ParamFlag>, String> {
    parse_param_flags_in(tokens, None)
}

/// [`parse_param_flags`], reading a relative `@FILE` from `base` instead of
/// the current directory (a command forwarded from another process).
pub fn parse_param_flags_in(
    tokens: &[String],
    base: Option<&std::path::Path>,
) -> Result<Vec<ParamFlag>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(tok) = tokens.get(i) {
        i += 1;
        let Some(body) = tok.strip_prefix("--") else {
            return Err(format!(
                "unexpected argument `{tok}`: parameters are given as --NAME VALUE"
            ));
        };
        if body.is_empty() {
            return Err("unexpected `--`: parameters are given as --NAME VALUE".into());
        }
        let (name, raw) = match body.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => match tokens.get(i) {
                Some(next) if !next.starts_with("--") => {
                    i += 1;
                    (body.to_owned(), Some(next.clone()))
                }
                _ => (body.to_owned(), None),
            },
        };
        let value = match &raw {
            None => None,
            Some(text) => Some(parse_flag_value(&name, text, base)?),
        };
        out.push(ParamFlag {
            name,
            value,
            negated: false,
            text: raw.filter(|t| !t.starts_with('@')),
        });
    }
    Ok(out)
}

fn parse_flag_value(
    name: &str,
    text: &str,
    base: Option<&std::path::Path>,
) -> Result<Json, String> {
    if let Some(file) = text.strip_prefix('@') {
        let path = match base {
            Some(b) => b.join(file),
            None => std::path::PathBuf::from(file),
        };
        let body = std::fs::read_to_string(path)
            .map_err(|e| format!("--{name}: cannot read {file}: {e}"))?;
        return serde_json::from_str(&body)
            .map_err(|e| format!("--{name}: {file} is not valid JSON: {e}"));
    }
    Ok(serde_json::from_str(text).unwrap_or_else(|_| Json::String(text.to_owned())))
}

fn normalize(name: &str) -> String {
    name.replace('_', "-")
}

/// Builds the parameter values for `export` from `args`.
pub fn build_params(export: &Export, args: &CallArgs) -> Result<Vec<Val>, CallError> {
    let function = &export.name;
    let bad = |message: String| CallError::Args {
        function: function.clone(),
        message,
    };
    let expected = || export.signature();
    let mut slots: Vec<Option<Json>> = vec![None; export.params.len()];
    let position = |name: &str| {
        let n = normalize(name);
        export.params.iter().position(|(p, _)| *p == n)
    };
    match &args.args {
        None => {}
        Some(Json::Array(items)) => {
            if items.len() > slots.len() {
                return Err(bad(format!(
                    "takes {} argument(s), got {}; expected {}",
                    slots.len(),
                    items.len(),
                    expected()
                )));
            }
            for (slot, item) in slots.iter_mut().zip(items) {
                *slot = Some(item.clone());
            }
        }
        Some(Json::Object(obj)) => {
            for (k, v) in obj {
                let i = position(k).ok_or_else(|| {
                    bad(format!("unknown parameter `{k}`; expected {}", expected()))
                })?;
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some(v.clone());
                }
            }
        }
        Some(other) => {
            return Err(bad(format!(
                "arguments must be a JSON array (positional) or object (by name), got {}; expected {}",
                json_kind(other),
                expected()
            )));
        }
    }
    for flag in &args.flags {
        // `--no-NAME` negates a bool parameter NAME unless `no-NAME` is a
        // parameter itself.
        let (i, negated) = match position(&flag.name) {
            Some(i) => (i, false),
            None => match flag.name.strip_prefix("no-").and_then(position) {
                Some(i) if flag.value.is_none() => (i, true),
                _ => {
                    return Err(bad(format!(
                        "unknown parameter `--{}`; expected {}",
                        flag.name,
                        expected()
                    )));
                }
            },
        };
        let Some((pname, pty)) = export.params.get(i) else {
            continue;
        };
        let is_text = |t: &Type| matches!(t, Type::String);
        let value = match (&flag.value, pty) {
            (Some(Json::String(v)), _) => Json::String(v.clone()),
            (Some(_), t) if is_text(t) || matches!(t, Type::Option(o) if is_text(&o.ty())) => {
                match &flag.text {
                    Some(text) => Json::String(text.clone()),
                    None => flag.value.clone().unwrap_or(Json::Null),
                }
            }
            (Some(v), _) => v.clone(),
            (None, Type::Bool) => Json::Bool(!negated),
            (None, Type::Option(o)) if matches!(o.ty(), Type::Bool) => Json::Bool(!negated),
            (None, t) => {
                return Err(bad(format!(
                    "parameter `--{pname}` needs a value of type {}",
                    type_name(t)
                )));
            }
        };
        let slot = slots
            .get_mut(i)
            .ok_or_else(|| bad("internal: bad slot".into()))?;
        if slot.is_some() {
            return Err(bad(format!("parameter `{pname}` is given twice")));
        }
        *slot = Some(value);
    }
    let mut vals = Vec::with_capacity(slots.len());
    for ((name, ty), slot) in export.params.iter().zip(slots) {
        let val = match slot {
            Some(json) => from_json(ty, &json, name).map_err(|source| CallError::Convert {
                function: function.clone(),
                source,
            })?,
            None if matches!(ty, Type::Option(_)) => Val::Option(None),
            None => {
                return Err(bad(format!(
                    "missing argument `{name}` of type {}; expected {}",
                    type_name(ty),
                    expected()
                )));
            }
        };
        vals.push(val);
    }
    Ok(vals)
}

fn json_kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Whether `component` imports the dict or volume capabilities (or
/// `wasi:keyvalue`, which is served over dicts), that is,
/// whether it needs the stores at all.
pub fn uses_storage(engine: &VesselEngine, component: &Component) -> bool {
    component
        .component_type()
        .imports(engine.engine())
        .any(|(name, _)| {
            name.starts_with("vessel:storage/dict")
                || name.starts_with("vessel:storage/volume")
                || name.starts_with("wasi:keyvalue/")
        })
}
