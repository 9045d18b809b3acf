//! The app manifest, `vessel.toml`: its format, parsing and the checks that
//! need nothing but the text (names, paths, limits, references between
//! sections). Checks that need the components or the stores happen when
//! the [`Runtime`](super::Runtime) loads the app.
//!
//! ```toml
//! [app]
//! name = "demo"            # default: the manifest's directory name
//! entrypoint = "main"      # the function `vessel run` calls
//!
//! [volumes.my-volume]      # optional declarations of what the app uses
//! create_if_missing = true
//!
//! [dicts.kv]
//! create_if_missing = true
//!
//! [functions.main]
//! component = "demo.wasm"  # relative to this file
//! export = "main"          # default: the function's name
//! mounts = { "/data" = "my-volume" }   # or { volume = "v", read_only = true }
//! dicts = ["kv"]           # opened by name; mounted volumes are granted too
//! volumes = []
//! timeout = 300            # seconds per call
//! memory = 512             # MiB of all memories and tables together
//! disk = 1024              # MiB of disk: scratch plus files written in mounts
//! max_containers = 10      # concurrent containers of this function
//! idle_timeout = 60        # seconds a warm container waits for a call
//! commit_every = 5         # seconds between background commits; 0 = off
//! fuel = 1_000_000_000     # optional instruction budget per call
//! ```
//!
//! Unknown keys are errors: a misspelt `memroy = 64` must not silently give
//! the default.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The export name that marks a command component (`wasi:cli/run`): run with
/// argv and stdio rather than called with JSON.
pub const COMMAND_EXPORT: &str = "wasi:cli/run";

/// Defaults, as in Modal where it has one.
pub const DEFAULT_TIMEOUT: Duration = crate::container::DEFAULT_TIMEOUT;
pub const DEFAULT_MEMORY_MIB: u64 = 512;
/// The container's disk budget (see `ContainerConfig::disk_limit`).
pub const DEFAULT_DISK_MIB: u64 = crate::container::DEFAULT_DISK_LIMIT >> 20;
pub const DEFAULT_MAX_CONTAINERS: usize = 10;
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_COMMIT_EVERY: Duration = Duration::from_secs(5);

/// Bounds on the numbers a manifest may give.
pub const MAX_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;
pub const MAX_MEMORY_MIB: u64 = 64 << 10;
/// 16 TiB: more than any one host's disk, for "as much as the host has".
pub const MAX_DISK_MIB: u64 = 16 << 20;
pub const MAX_CONTAINERS_LIMIT: usize = 1000;
pub const MAX_FUNCTIONS: usize = 1000;

/// A manifest that does not parse or does not make sense. The message names
/// the file and the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    app: RawApp,
    #[serde(default)]
    functions: BTreeMap<String, RawFunction>,
    #[serde(default)]
    volumes: BTreeMap<String, RawDeclared>,
    #[serde(default)]
    dicts: BTreeMap<String, RawDeclared>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<String>,
    entrypoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeclared {
    #[serde(default)]
    create_if_missing: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFunction {
    component: PathBuf,
    export: Option<String>,
    #[serde(default)]
    mounts: BTreeMap<String, RawMount>,
    #[serde(default)]
    dicts: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    timeout: Option<f64>,
    memory: Option<u64>,
    /// Any TOML value, checked here, so that a string or a negative
    /// number gets a message naming the key and the limit.
    disk: Option<toml::Value>,
    max_containers: Option<u64>,
    idle_timeout: Option<f64>,
    commit_every: Option<f64>,
    fuel: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMount {
    Name(String),
    Table(RawMountTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMountTable {
    volume: String,
    read_only: Option<bool>,
    /// A kept version to mount instead of the head (read-only).
    version: Option<u64>,
    /// `last-writer-wins` (the default) or `fail`.
    conflicts: Option<String>,
}

/// A parsed and checked manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from (for messages); components are relative to its
    /// directory.
    pub path: PathBuf,
    pub name: String,
    pub entrypoint: Option<String>,
    pub functions: BTreeMap<String, FunctionSpec>,
    /// Volumes declared in `[volumes]`, with `create_if_missing`.
    pub volumes: BTreeMap<String, bool>,
    /// Dicts declared in `[dicts]`, with `create_if_missing`.
    pub dicts: BTreeMap<String, bool>,
}

/// One function of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionSpec {
    /// The component's path, resolved against the manifest's directory.
    pub component: PathBuf,
    /// The export to call, or [`COMMAND_EXPORT`].
    pub export: String,
    pub mounts: Vec<MountSpec>,
    /// Dicts the function may open by name.
    pub dicts: BTreeSet<String>,
    /// Volumes the function may open by name (mounted ones included).
    pub volumes: BTreeSet<String>,
    pub timeout: Duration,
    pub memory_mib: u64,
    /// The disk budget of each container, in MiB.
    pub disk_mib: u64,
    pub max_containers: usize,
    pub idle_timeout: Duration,
    /// `None`: background commits off.
    pub commit_every: Option<Duration>,
    pub fuel: Option<u64>,
    /// Each call starts with the mounts at their volumes' heads and
    /// commits before it returns, as in a fresh container, even in a warm
    /// one (a forwarded `vessel call`); app functions keep Modal's model
    /// (background commits, the guest reloads).
    pub sync_mounts_each_call: bool,
}

impl FunctionSpec {
    /// Whether this function is a `wasi:cli/run` command.
    pub fn is_command(&self) -> bool {
        self.export == COMMAND_EXPORT
    }
}

/// A volume mounted into a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub guest: String,
    pub volume: String,
    pub read_only: bool,
    /// A kept version mounted instead of the head (always read-only).
    pub version: Option<u64>,
    /// The commits' conflict policy.
    pub conflicts: crate::volume::Conflicts,
}

impl Manifest {
    /// Reads and checks the manifest at `path` (a file, or a directory
    /// holding `vessel.toml`).
    pub fn from_path(path: &Path) -> Result<Manifest, ManifestError> {
        let file = if path.is_dir() {
            path.join("vessel.toml")
        } else {
            path.to_owned()
        };
        let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Read {
            path: file.clone(),
            source,
        })?;
        Manifest::parse(&text, &file)
    }

    /// Parses manifest `text` as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: String, message: String| ManifestError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let name = match raw.app.name {
            Some(n) => {
                check_function_name(&n).map_err(|m| invalid("app.name".into(), m))?;
                n
            }
            // The directory's name, when it makes a valid name.
            None => std::fs::canonicalize(base)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .filter(|n| check_function_name(n).is_ok())
                .unwrap_or_else(|| "app".to_owned()),
        };
        if raw.functions.is_empty() {
            return Err(invalid(
                "functions".into(),
                "the app has no functions; add a [functions.NAME] table with a `component`".into(),
            ));
        }
        if raw.functions.len() > MAX_FUNCTIONS {
            return Err(invalid(
                "functions".into(),
                format!(
                    "{} functions; the limit is {MAX_FUNCTIONS}",
                    raw.functions.len()
                ),
            ));
        }
        for name in raw.volumes.keys() {
            crate::storage::volume::check_volume_name(name)
                .map_err(|e| invalid(format!("volumes.{}", quote(name)), e.to_string()))?;
        }
        for name in raw.dicts.keys() {
            crate::storage::dict::validate_name(name)
                .map_err(|e| invalid(format!("dicts.{}", quote(name)), e.to_string()))?;
        }
        let mut functions = BTreeMap::new();
        for (fname, f) in raw.functions {
            let key = |field: &str| format!("functions.{}.{field}", quote(&fname));
            check_function_name(&fname)
                .map_err(|m| invalid(format!("functions.{}", quote(&fname)), m))?;
            let export = f.export.unwrap_or_else(|| fname.clone());
            if export.is_empty() {
                return Err(invalid(key("export"), "must not be empty".into()));
            }
            let mut mounts = Vec::new();
            let mut volumes: BTreeSet<String> = BTreeSet::new();
            for (guest, m) in f.mounts {
                let mkey = format!("{}.{}", key("mounts"), quote(&guest));
                let (volume, read_only, version, conflicts) = match m {
                    RawMount::Name(v) => (v, false, None, crate::volume::Conflicts::default()),
                    RawMount::Table(t) => {
                        let conflicts = match t.conflicts.as_deref() {
                            None => crate::volume::Conflicts::default(),
                            Some(c) => crate::volume::Conflicts::parse(c)
                                .map_err(|m| invalid(format!("{mkey}.conflicts"), m))?,
                        };
                        if let (Some(v), Some(false)) = (t.version, t.read_only) {
                            return Err(invalid(
                                mkey,
                                format!(
                                    "a mount of version {v} is read-only; drop `read_only = false`"
                                ),
                            ));
                        }
                        let ro = t.read_only.unwrap_or(false) || t.version.is_some();
                        (t.volume, ro, t.version, conflicts)
                    }
                };
                check_guest_path(&guest).map_err(|m| invalid(mkey.clone(), m))?;
                crate::storage::volume::check_volume_name(&volume)
                    .map_err(|e| invalid(mkey.clone(), e.to_string()))?;
                volumes.insert(volume.clone());
                mounts.push(MountSpec {
                    guest,
                    volume,
                    read_only,
                    version,
                    conflicts,
                });
            }
            check_overlaps(&mounts)
                .map_err(|(g, m)| invalid(format!("{}.{}", key("mounts"), quote(&g)), m))?;
            for v in &f.volumes {
                crate::storage::volume::check_volume_name(v)
                    .map_err(|e| invalid(key("volumes"), e.to_string()))?;
                volumes.insert(v.clone());
            }
            let mut dicts = BTreeSet::new();
            for d in &f.dicts {
                crate::storage::dict::validate_name(d)
                    .map_err(|e| invalid(key("dicts"), e.to_string()))?;
                dicts.insert(d.clone());
            }
            let timeout = match f.timeout {
                None => DEFAULT_TIMEOUT,
                Some(t) => seconds(t, false).map_err(|m| invalid(key("timeout"), m))?,
            };
            let memory_mib = f.memory.unwrap_or(DEFAULT_MEMORY_MIB);
            if memory_mib == 0 || memory_mib > MAX_MEMORY_MIB {
                return Err(invalid(
                    key("memory"),
                    format!("must be between 1 and {MAX_MEMORY_MIB} MiB, got {memory_mib}"),
                ));
            }
            let disk_mib = match &f.disk {
                None => DEFAULT_DISK_MIB,
                Some(toml::Value::Integer(n))
                    if u64::try_from(*n).is_ok_and(|n| (1..=MAX_DISK_MIB).contains(&n)) =>
                {
                    n.unsigned_abs()
                }
                Some(v) => {
                    return Err(invalid(
                        key("disk"),
                        format!(
                            "must be a whole number of MiB between 1 and {MAX_DISK_MIB}, got {}",
                            shown(v)
                        ),
                    ));
                }
            };
            let max_containers = match f.max_containers {
                None => DEFAULT_MAX_CONTAINERS,
                Some(n) => usize::try_from(n)
                    .ok()
                    .filter(|n| (1..=MAX_CONTAINERS_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(
                            key("max_containers"),
                            format!("must be between 1 and {MAX_CONTAINERS_LIMIT}, got {n}"),
                        )
                    })?,
            };
            let idle_timeout = match f.idle_timeout {
                None => DEFAULT_IDLE_TIMEOUT,
                Some(t) => seconds(t, true).map_err(|m| invalid(key("idle_timeout"), m))?,
            };
            let commit_every = match f.commit_every {
                None => Some(DEFAULT_COMMIT_EVERY),
                Some(t) => Some(seconds(t, true).map_err(|m| invalid(key("commit_every"), m))?)
                    .filter(|d| !d.is_zero()),
            };
            if f.fuel == Some(0) {
                return Err(invalid(
                    key("fuel"),
                    "must be positive (leave it out for no fuel limit)".into(),
                ));
            }
            let spec = FunctionSpec {
                component: base.join(&f.component),
                export,
                mounts,
                dicts,
                volumes,
                timeout,
                memory_mib,
                disk_mib,
                max_containers,
                idle_timeout,
                commit_every,
                fuel: f.fuel,
                sync_mounts_each_call: false,
            };
            functions.insert(fname, spec);
        }
        if let Some(e) = &raw.app.entrypoint
            && !functions.contains_key(e)
        {
            return Err(invalid(
                "app.entrypoint".into(),
                format!(
                    "no function `{e}`; the app has: {}",
                    functions.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(Manifest {
            path: path.to_owned(),
            name,
            entrypoint: raw.app.entrypoint,
            functions,
            volumes: raw
                .volumes
                .into_iter()
                .map(|(k, v)| (k, v.create_if_missing))
                .collect(),
            dicts: raw
                .dicts
                .into_iter()
                .map(|(k, v)| (k, v.create_if_missing))
                .collect(),
        })
    }

    /// Whether any function sets a fuel budget (the engine must meter fuel).
    pub fn uses_fuel(&self) -> bool {
        self.functions.values().any(|f| f.fuel.is_some())
    }

    /// Whether any function mounts or is granted a volume or dict, that is,
    /// whether the app needs the stores. (A component may still open names
    /// it was not granted; it then gets `access-denied`.)
    pub fn uses_storage(&self) -> bool {
        !self.volumes.is_empty()
            || !self.dicts.is_empty()
            || self
                .functions
                .values()
                .any(|f| !f.volumes.is_empty() || !f.dicts.is_empty())
    }

    /// Declared volumes and dicts that no function mounts or is granted:
    /// nothing in the app can reach them, which is most likely a mistake.
    pub fn unreachable_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for v in self.volumes.keys() {
            if !self.functions.values().any(|f| f.volumes.contains(v)) {
                out.push(format!(
                    "volume `{v}` is declared in [volumes] but no function mounts it or lists it in `volumes`"
                ));
            }
        }
        for d in self.dicts.keys() {
            if !self.functions.values().any(|f| f.dicts.contains(d)) {
                out.push(format!(
                    "dict `{d}` is declared in [dicts] but no function lists it in `dicts`"
                ));
            }
        }
        out
    }
}

/// A TOML key, quoted when it is not a bare key.
fn quote(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

/// Function and app names: 1 to 64 ASCII letters, digits, `-` and `_`,
/// starting with a letter. They appear in CLI arguments and WIT calls.
fn check_function_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err(format!(
            "a name must be 1 to 64 bytes long, got {}",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("`{name}` must start with an ASCII letter"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "`{name}` contains {c:?}; use ASCII letters, digits, `-` and `_`"
        ));
    }
    Ok(())
}

/// A TOML scalar as the manifest wrote it, for messages.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Integer(n) => n.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        other => format!("a {}", other.type_str()),
    }
}

fn seconds(t: f64, zero_ok: bool) -> Result<Duration, String> {
    let d = if t.is_finite() && (0.0..=MAX_TIMEOUT_SECS).contains(&t) {
        Duration::from_secs_f64(t)
    } else {
        Duration::MAX
    };
    // A positive number under a nanosecond would be a zero timeout.
    if d == Duration::MAX || (d.is_zero() && !zero_ok) {
        let low = if zero_ok { "0" } else { "more than 0" };
        return Err(format!(
            "must be a number of seconds, {low} and at most {MAX_TIMEOUT_SECS}, got {t}"
        ));
    }
    Ok(d)
}

fn check_guest_path(guest: &str) -> Result<(), String> {
    if !guest.starts_with('/') {
        return Err("mount paths must be absolute".into());
    }
    if guest.trim_end_matches('/').is_empty() {
        return Err("`/` is the container's scratch directory; mount below it".into());
    }
    if guest.split('/').any(|c| c == ".." || c == ".") {
        return Err("mount paths must not contain `.` or `..`".into());
    }
    if guest.contains('\0') {
        return Err("mount paths must not contain NUL".into());
    }
    Ok(())
}

fn check_overlaps(mounts: &[MountSpec]) -> Result<(), (String, String)> {
    let mut guests: Vec<String> = mounts
        .iter()
        .map(|m| m.guest.trim_end_matches('/').to_owned())
        .collect();
    guests.sort();
    for pair in guests.windows(2) {
        if let [a, b] = pair
            && (a == b || b.starts_with(&format!("{a}/")))
        {
            return Err((b.clone(), format!("overlaps the mount at {a}")));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, Path::new("/apps/demo/vessel.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_manifest_parses_with_defaults() {
        let m = parse(
            r#"
            [app]
            name = "demo"
            entrypoint = "main"
            [volumes.data]
            create_if_missing = true
            [functions.main]
            component = "main.wasm"
            mounts = { "/data" = "data", "/ro" = { volume = "models", read_only = true } }
            dicts = ["kv"]
            timeout = 2.5
            commit_every = 0
            fuel = 1000
            "#,
        )
        .unwrap();
        assert_eq!(m.name, "demo");
        let f = &m.functions["main"];
        assert_eq!(f.component, Path::new("/apps/demo/main.wasm"));
        assert_eq!(f.export, "main");
        assert_eq!(f.mounts.len(), 2);
        assert!(f.volumes.contains("data") && f.volumes.contains("models"));
        assert_eq!(f.timeout, Duration::from_millis(2500));
        assert_eq!(f.commit_every, None);
        assert_eq!(f.max_containers, DEFAULT_MAX_CONTAINERS);
        assert_eq!(f.memory_mib, DEFAULT_MEMORY_MIB);
        assert_eq!(f.disk_mib, 1024);
        assert!(m.uses_fuel());
        assert!(m.unreachable_names().is_empty());
    }

    #[test]
    fn unknown_keys_are_errors_that_point_at_the_key() {
        let e = parse("[functions.f]\ncomponent = \"f.wasm\"\nmemroy = 64\n").unwrap_err();
        assert!(e.contains("memroy") && e.contains("line 3"), "{e}");
        let e = parse("[app]\nentry = \"f\"\n[functions.f]\ncomponent = \"x\"\n").unwrap_err();
        assert!(e.contains("entry"), "{e}");
        let e = parse("[functions.f]\ncomponent = \"x\"\nmounts = { \"/d\" = { volume = \"v\", ro = true } }\n")
            .unwrap_err();
        assert!(e.contains("/d") || e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key_and_the_limit() {
        let cases = [
            ("timeout = 0", "functions.f.timeout", "more than 0"),
            // Positive, but a zero Duration.
            ("timeout = 1e-12", "functions.f.timeout", "more than 0"),
            ("timeout = -1", "functions.f.timeout", "seconds"),
            ("memory = 0", "functions.f.memory", "between 1 and"),
            ("memory = 9999999", "functions.f.memory", "65536"),
            (
                "disk = 0",
                "functions.f.disk",
                "between 1 and 16777216, got 0",
            ),
            ("disk = 99999999", "functions.f.disk", "16777216"),
            (
                "disk = -1",
                "functions.f.disk",
                "MiB between 1 and 16777216, got -1",
            ),
            ("disk = \"1G\"", "functions.f.disk", "got \"1G\""),
            ("disk = 1.5", "functions.f.disk", "whole number"),
            (
                "max_containers = 0",
                "functions.f.max_containers",
                "between 1 and 1000",
            ),
            ("fuel = 0", "functions.f.fuel", "positive"),
            ("idle_timeout = nan", "functions.f.idle_timeout", "seconds"),
            (
                "mounts = { \"data\" = \"v\" }",
                "functions.f.mounts.data",
                "absolute",
            ),
            (
                "mounts = { \"/\" = \"v\" }",
                "functions.f.mounts.\"/\"",
                "scratch",
            ),
            ("mounts = { \"/a/../b\" = \"v\" }", "/a/../b", "`..`"),
            (
                "mounts = { \"/a\" = \"v\", \"/a/b\" = \"w\" }",
                "\"/a/b\"",
                "overlaps",
            ),
            (
                "mounts = { \"/a\" = \"x/y\" }",
                "functions.f.mounts.\"/a\"",
                "/",
            ),
            ("dicts = [\"bad name\"]", "functions.f.dicts", "bad name"),
            ("export = \"\"", "functions.f.export", "empty"),
        ];
        for (line, key, msg) in cases {
            let e = parse(&format!("[functions.f]\ncomponent = \"f.wasm\"\n{line}\n")).unwrap_err();
            assert!(e.contains(key) && e.contains(msg), "{line}: {e}");
        }
    }

    #[test]
    fn app_level_mistakes_are_reported() {
        let e = parse("[app]\nentrypoint = \"nope\"\n[functions.f]\ncomponent = \"f.wasm\"\n")
            .unwrap_err();
        assert!(
            e.contains("app.entrypoint") && e.contains("nope") && e.contains(": f"),
            "{e}"
        );
        let e = parse("[app]\nname = \"x\"\n").unwrap_err();
        assert!(e.contains("no functions"), "{e}");
        let e = parse("[functions.\"9lives\"]\ncomponent = \"f.wasm\"\n").unwrap_err();
        assert!(e.contains("letter"), "{e}");
        let e = parse("[functions.f]\n").unwrap_err();
        assert!(e.contains("component"), "{e}");
        let m = parse(
            "[volumes.lonely]\n[dicts.alone]\n[functions.f]\ncomponent = \"f.wasm\"\ndicts = [\"other\"]\n",
        )
        .unwrap();
        let unreachable = m.unreachable_names().join("\n");
        assert!(
            unreachable.contains("lonely") && unreachable.contains("alone"),
            "{unreachable}"
        );
    }
}
