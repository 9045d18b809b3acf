//! Building guests: `vessel build` and the rebuild `vessel run`/`call` do
//! when an app's sources are newer than its component. It finds the
//! toolchain from the folder (Cargo.toml, app.py, package.json), runs it,
//! and puts the component where the app's `vessel.toml` expects it.
//!
//! Python and JavaScript go through the same scripts as a checkout's
//! `scripts/build-python` and `scripts/build-js`, carried in the binary
//! ([`toolkit`]) and unpacked into the data dir's `cache/build/`, which also
//! holds the componentize-py and componentize-js installs they make on
//! first use. Rust goes through cargo ([`rust`]). `vessel init` ([`init`])
//! writes a new app to build.

mod init;
mod rust;
mod toolkit;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

pub use init::{InitError, init, sdk_files, write_sdk};

/// A guest's language, as found from the files in its folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Python,
    JavaScript,
    Rust,
}

impl Lang {
    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "Python",
            Lang::JavaScript => "JavaScript",
            Lang::Rust => "Rust",
        }
    }
}

/// What to build: the guest's folder and language, and for Python and
/// JavaScript the file given (app.py unless another was named).
#[derive(Debug, Clone)]
pub struct Source {
    pub lang: Lang,
    pub dir: PathBuf,
    /// The file named on the command line, if one was.
    pub file: Option<PathBuf>,
}

/// Why a build could not be made. The message names the folder or file
/// and what to change.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{0}: no guest sources found: a guest's folder holds Cargo.toml (Rust), app.py or \
         pyproject.toml (Python), or package.json or app.js (JavaScript)"
    )]
    NoSources(PathBuf),
    #[error(
        "{path}: its functions name {count} components ({names}); build each with \
         `vessel build DIR -o OUT.wasm`"
    )]
    SeveralComponents {
        path: PathBuf,
        count: usize,
        names: String,
    },
    #[error(transparent)]
    Manifest(#[from] crate::app::ManifestError),
    #[error("cannot run {tool}: {source}{hint}")]
    Spawn {
        tool: String,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("{what} failed for {path} (see its output above)")]
    Failed { what: String, path: PathBuf },
    #[error("{0}")]
    Rust(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where builds keep their tools: the data dir's `cache/build`.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub root: PathBuf,
}

impl Toolchain {
    pub fn new(data_dir: &Path) -> Toolchain {
        Toolchain {
            root: data_dir.join("cache").join("build"),
        }
    }
}

/// Finds what `path` (a folder, a guest's main file, a Cargo.toml or a
/// vessel.toml) holds.
pub fn detect(path: &Path) -> Result<Source, BuildError> {
    let (dir, file) = if path.is_dir() {
        (path.to_owned(), None)
    } else {
        let dir = parent_or_dot(path);
        match path.file_name().and_then(|n| n.to_str()) {
            Some("vessel.toml" | "Cargo.toml") => (dir, None),
            _ if path.is_file() => (dir, Some(path.to_owned())),
            _ => {
                return Err(BuildError::Io {
                    path: path.to_owned(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
        }
    };
    let has = |name: &str| dir.join(name).is_file();
    let ext = file
        .as_deref()
        .and_then(|f| f.extension())
        .and_then(|e| e.to_str());
    let lang = match ext {
        Some("py") => Lang::Python,
        Some("js" | "mjs") => Lang::JavaScript,
        Some(_) => return Err(BuildError::NoSources(path.to_owned())),
        None if has("Cargo.toml") => Lang::Rust,
        None if has("app.py") || has("pyproject.toml") => Lang::Python,
        None if has("package.json") || has("app.js") => Lang::JavaScript,
        None => return Err(BuildError::NoSources(path.to_owned())),
    };
    Ok(Source { lang, dir, file })
}

/// The folder beside a one-file app's source where its build goes: the
/// component and the manifest derived from the decorators.
pub const ONE_FILE_DIR: &str = ".vessel-build";

/// Whether `file` is a one-file Python app: a `.py` file with functions
/// marked `@vessel.function`, and no world or vessel.toml beside it.
pub fn is_one_file_app(file: &Path) -> bool {
    if file.extension().is_none_or(|e| e != "py") {
        return false;
    }
    let dir = parent_or_dot(file);
    if dir.join("world.wit").exists()
        || dir.join("wit").is_dir()
        || dir.join("vessel.toml").exists()
    {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    // What scripts/build-python looks for: a line `@function...` or
    // `@NAME.function...`.
    text.lines().any(|l| {
        let l = l.trim_start();
        l.strip_prefix('@').is_some_and(|d| {
            let d = d
                .split_once('.')
                .filter(|(m, _)| m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .map_or(d, |(_, rest)| rest);
            d.strip_prefix("function")
                .is_some_and(|r| r.is_empty() || r.starts_with(['(', ' ', '\t']))
        })
    })
}

/// A one-file app's paths: its source, and the manifest and component its
/// build writes into [`ONE_FILE_DIR`]. `path` is the `.py` file, or a
/// folder whose `app.py` is one.
#[derive(Debug, Clone)]
pub struct OneFile {
    pub source: PathBuf,
    pub manifest: PathBuf,
    pub component: PathBuf,
}

pub fn one_file_app(path: &Path) -> Option<OneFile> {
    let file = if path.is_dir() {
        path.join("app.py")
    } else {
        path.to_owned()
    };
    if !is_one_file_app(&file) {
        return None;
    }
    let stem = file.file_stem()?.to_string_lossy().into_owned();
    let out = parent_or_dot(&file).join(ONE_FILE_DIR);
    Some(OneFile {
        manifest: tidy(&out.join(format!("{stem}.toml"))),
        component: tidy(&out.join(format!("{stem}.wasm"))),
        source: file,
    })
}

fn parent_or_dot(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The component an app's `vessel.toml` in `dir` names for its functions,
/// when there is a manifest and all of them name one.
pub fn manifest_component(dir: &Path) -> Result<Option<PathBuf>, BuildError> {
    let path = dir.join("vessel.toml");
    if !path.is_file() {
        return Ok(None);
    }
    let manifest = crate::app::Manifest::from_path(&path)?;
    let mut components: Vec<PathBuf> = manifest
        .functions
        .values()
        .map(|f| f.component.clone())
        .collect();
    components.sort();
    components.dedup();
    match components.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        several => Err(BuildError::SeveralComponents {
            path,
            count: several.len(),
            names: several
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Where a build of `source` goes when no `-o` is given: the component the
/// app's vessel.toml names; else, for Python and JavaScript, NAME.wasm
/// beside the sources (NAME the main file's stem, or the folder's name);
/// for Rust, where cargo writes it (`None`).
pub fn default_output(source: &Source) -> Result<Option<PathBuf>, BuildError> {
    if source.lang == Lang::Python
        && let Some(one) = one_file_app(source.file.as_deref().unwrap_or(&source.dir))
    {
        return Ok(Some(one.component));
    }
    if let Some(named) = manifest_component(&source.dir)? {
        return Ok(Some(tidy(&named)));
    }
    if source.lang == Lang::Rust {
        return Ok(None);
    }
    let stem = match &source.file {
        Some(f) => f.file_stem().map(|s| s.to_string_lossy().into_owned()),
        None => std::path::absolute(&source.dir)
            .ok()
            .and_then(|d| d.file_name().map(|s| s.to_string_lossy().into_owned())),
    }
    .unwrap_or_else(|| "app".to_owned());
    Ok(Some(tidy(&source.dir.join(format!("{stem}.wasm")))))
}

/// `path` without `.` components, for messages: `./app/./x.wasm` is
/// `app/x.wasm`.
fn tidy(path: &Path) -> PathBuf {
    let tidied: PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if tidied.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        tidied
    }
}

/// Builds `source` into `out` (or its default output) and returns the
/// component's path. The toolchain's own progress goes to stderr.
pub fn build(
    tools: &Toolchain,
    source: &Source,
    out: Option<&Path>,
    world: Option<&str>,
) -> Result<PathBuf, BuildError> {
    let out = match out {
        Some(o) => Some(o.to_owned()),
        None => default_output(source)?,
    };
    if source.lang == Lang::Rust {
        return rust::build(&source.dir, out.as_deref());
    }
    let Some(out) = out else {
        return Err(BuildError::NoSources(source.dir.clone()));
    };
    let kit = toolkit::unpack(&tools.root)?;
    let script = match source.lang {
        Lang::Python => "build-python",
        _ => "build-js",
    };
    let mut cmd = Command::new("bash");
    cmd.arg(kit.join("scripts").join(script))
        .arg(source.file.as_deref().unwrap_or(&source.dir))
        .arg("-o")
        .arg(&out);
    if let Some(w) = world {
        cmd.arg("--world").arg(w);
    }
    // Tools and earlier builds are kept across toolkit versions, in the
    // data dir unless the user points elsewhere.
    for (var, sub) in [
        ("VESSEL_PY_TOOLS", "py-tools"),
        ("VESSEL_JS_TOOLS", "js-tools"),
        ("VESSEL_PY_BUILDS", "py-builds"),
        ("VESSEL_JS_BUILDS", "js-builds"),
    ] {
        if std::env::var_os(var).is_none() {
            cmd.env(var, tools.root.join(sub));
        }
    }
    let status = cmd.status().map_err(|source| BuildError::Spawn {
        tool: "bash".to_owned(),
        source,
        hint: " (Python and JavaScript guests build with bash, Python 3 and Node.js)",
    })?;
    if !status.success() {
        return Err(BuildError::Failed {
            what: format!("the {} build", source.lang.name()),
            path: source.file.clone().unwrap_or_else(|| source.dir.clone()),
        });
    }
    Ok(out)
}

/// Folders a guest's sources are never in.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "__pycache__"];
/// How many entries the staleness walk looks at before it stops looking
/// (a home folder named by mistake must not be walked whole).
const MAX_WALK: usize = 20_000;

/// Whether a file is one a build reads.
fn is_source(name: &str) -> bool {
    let ext = Path::new(name).extension().and_then(|e| e.to_str());
    matches!(ext, Some("py" | "js" | "mjs" | "rs" | "wit"))
        || matches!(
            name,
            "Cargo.toml"
                | "Cargo.lock"
                | "pyproject.toml"
                | "requirements.txt"
                | "package.json"
                | "package-lock.json"
        )
}

/// The newest source file under `dir` and its modification time.
fn newest_source(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut todo = vec![dir.to_owned()];
    let mut seen = 0usize;
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_WALK {
                return newest;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                    todo.push(e.path());
                }
            } else if is_source(&name)
                && let Ok(t) = e.metadata().and_then(|m| m.modified())
                && newest.as_ref().is_none_or(|(_, n)| t > *n)
            {
                newest = Some((e.path(), t));
            }
        }
    }
    newest
}

/// Why the component of the app in `dir` needs building: it is missing,
/// or a source file is newer. `None` when the folder holds no guest
/// sources (a manifest beside built components) or the component is
/// current.
pub fn why_build(source: &Source, component: &Path) -> Option<String> {
    let built = std::fs::metadata(component).and_then(|m| m.modified());
    let Ok(built) = built else {
        return Some(format!("{} does not exist yet", component.display()));
    };
    let (file, changed) = newest_source(&source.dir)?;
    (changed > built).then(|| {
        let shown = file.strip_prefix(&source.dir).unwrap_or(&file);
        format!("{} is newer than {}", shown.display(), component.display())
    })
}

/// A build that `vessel run`/`call` of an app does first.
#[derive(Debug)]
pub struct StaleBuild {
    pub source: Source,
    pub component: PathBuf,
    /// Why: the component is missing, or which source is newer.
    pub reason: String,
}

/// Before `vessel run`/`call` of the app at `app` (its folder or
/// vessel.toml): the build to do when the folder holds the app's sources
/// and the component its functions name is missing or older than them.
/// `None` when there is nothing to build, or nothing to build it from.
pub fn stale_build(app: &Path) -> Option<StaleBuild> {
    if let Some(one) = one_file_app(app) {
        return stale_one_file(&one);
    }
    let dir = if app.is_dir() {
        app.to_owned()
    } else {
        parent_or_dot(app)
    };
    let source = detect(&dir).ok()?;
    // A bad manifest is reported by the load, better than a build would.
    let component = tidy(&manifest_component(&dir).ok()??);
    let reason = why_build(&source, &component)?;
    Some(StaleBuild {
        source,
        component,
        reason,
    })
}

/// [`stale_build`] of a one-file app: also when its derived manifest is
/// missing.
pub fn stale_one_file(one: &OneFile) -> Option<StaleBuild> {
    let source = Source {
        lang: Lang::Python,
        dir: parent_or_dot(&one.source),
        file: Some(one.source.clone()),
    };
    let reason = if one.manifest.exists() {
        why_build(&source, &one.component)?
    } else {
        format!("{} does not exist yet", one.manifest.display())
    };
    Some(StaleBuild {
        source,
        component: one.component.clone(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_folder_says_which_toolchain() {
        let d = tempfile::tempdir().unwrap();
        let err = detect(d.path()).unwrap_err().to_string();
        assert!(err.contains("no guest sources found"), "{err}");
        std::fs::write(d.path().join("app.py"), "").unwrap();
        assert_eq!(detect(d.path()).unwrap().lang, Lang::Python);
        std::fs::write(d.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(d.path()).unwrap().lang, Lang::Rust);
        std::fs::write(d.path().join("other.js"), "").unwrap();
        let js = detect(&d.path().join("other.js")).unwrap();
        assert_eq!(js.lang, Lang::JavaScript);
        assert_eq!(
            default_output(&js).unwrap().unwrap(),
            d.path().join("other.wasm")
        );
    }

    #[test]
    fn a_source_newer_than_the_component_asks_for_a_build() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("app.py"), "").unwrap();
        let source = detect(d.path()).unwrap();
        let wasm = d.path().join("app.wasm");
        let why = why_build(&source, &wasm).unwrap();
        assert!(why.ends_with("app.wasm does not exist yet"), "{why}");
        std::fs::write(&wasm, "").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(60);
        let f = std::fs::File::options().write(true).open(&wasm).unwrap();
        f.set_modified(old).unwrap();
        let why = why_build(&source, &wasm).unwrap();
        assert!(why.starts_with("app.py is newer than"), "{why}");
        let older = old - std::time::Duration::from_secs(60);
        let app = std::fs::File::options()
            .write(true)
            .open(d.path().join("app.py"))
            .unwrap();
        app.set_modified(older).unwrap();
        assert_eq!(why_build(&source, &wasm), None);
        // Dependencies, build outputs and the manifest are not sources.
        std::fs::create_dir(d.path().join("node_modules")).unwrap();
        std::fs::write(d.path().join("node_modules/x.js"), "").unwrap();
        std::fs::write(d.path().join("vessel.toml"), "").unwrap();
        assert_eq!(why_build(&source, &wasm), None);
    }
}
