//! `vessel build` and `vessel init`: guests built and started with the
//! binary alone (the work is in `crate::build`).

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::Failure;
use crate::build::{BuildError, Lang, Toolchain};

#[derive(Debug, Args)]
pub struct BuildCmd {
    /// The guest: its folder (default: the current one), its main file
    /// (`app.py`, `app.js`) or its Cargo.toml. The toolchain follows from
    /// what is there: Cargo.toml (Rust), app.py or pyproject.toml
    /// (Python), package.json or app.js (JavaScript).
    #[arg(value_name = "DIR|FILE", default_value = ".")]
    pub source: PathBuf,
    /// Where to write the component [default: the one the folder's
    /// vessel.toml names; else NAME.wasm beside the sources, or, for Rust,
    /// where cargo writes it].
    #[arg(short, long, value_name = "OUT.wasm")]
    pub output: Option<PathBuf>,
    /// The world to build, when the WIT has several (Python, JavaScript).
    #[arg(long, value_name = "WORLD")]
    pub world: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LangArg {
    Python,
    Js,
    Rust,
}

#[derive(Debug, Args)]
pub struct SdkCmd {
    /// Which SDK: python (the `vessel` package, pip-installable as
    /// vessel-sdk, with `vessel.testing`), js (vessel.js and vessel.d.ts)
    /// or rust (the vessel-sdk crate).
    #[arg(value_enum)]
    pub lang: LangArg,
    /// Where to write it.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace files in DIR that differ from this vessel's.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InitCmd {
    /// The new app's folder; its name names the app (lower-case letters,
    /// digits and hyphens).
    #[arg(value_name = "NAME")]
    pub dir: PathBuf,
    /// The guest language.
    #[arg(long, value_enum, default_value = "python")]
    pub lang: LangArg,
}

fn failure(e: BuildError) -> Failure {
    match e {
        BuildError::NoSources(_)
        | BuildError::SeveralComponents { .. }
        | BuildError::Manifest(_) => Failure::usage(e),
        e => Failure::runtime(e),
    }
}

pub fn build(tools: &Toolchain, cmd: &BuildCmd) -> Result<u8, Failure> {
    let source = crate::build::detect(&cmd.source).map_err(failure)?;
    crate::build::build(tools, &source, cmd.output.as_deref(), cmd.world.as_deref())
        .map_err(failure)?;
    Ok(0)
}

fn lang(arg: LangArg) -> Lang {
    match arg {
        LangArg::Python => Lang::Python,
        LangArg::Js => Lang::JavaScript,
        LangArg::Rust => Lang::Rust,
    }
}

pub fn sdk(cmd: &SdkCmd) -> Result<u8, Failure> {
    let lang = lang(cmd.lang);
    let written = crate::build::write_sdk(&cmd.dir, lang, cmd.force).map_err(|e| match e {
        crate::build::InitError::Io { .. } => Failure::runtime(e),
        e => Failure::usage(e),
    })?;
    let total = crate::build::sdk_files(lang).len();
    println!(
        "Wrote the {} SDK to {} ({} file(s) written, {} already current).",
        lang.name(),
        cmd.dir.display(),
        written.len(),
        total - written.len()
    );
    if lang == Lang::Python {
        println!("Install it with: pip install {}", cmd.dir.display());
    }
    Ok(0)
}

pub fn init(cmd: &InitCmd) -> Result<u8, Failure> {
    let lang = lang(cmd.lang);
    let written = crate::build::init(&cmd.dir, lang).map_err(|e| match e {
        crate::build::InitError::Io { .. } => Failure::runtime(e),
        e => Failure::usage(e),
    })?;
    let shown: Vec<String> = written
        .iter()
        .filter(|p| !p.starts_with("vessel-sdk"))
        .map(|p| p.display().to_string())
        .collect();
    let sdk = if lang == Lang::Rust {
        " and vessel-sdk/ (the Rust SDK)"
    } else {
        ""
    };
    println!(
        "Made a {} app in {}: {}{sdk}.",
        lang.name(),
        cmd.dir.display(),
        shown.join(", ")
    );
    println!("Next: cd {} && vessel run . --name ada", cmd.dir.display());
    Ok(0)
}

/// What `vessel run`/`call` runs for `target`: a one-file app's manifest
/// (built first unless `no_build`), or `target` itself, built first when
/// it is an app whose sources are newer than its component.
pub fn prepare(tools: &Toolchain, target: &Path, no_build: bool) -> Result<PathBuf, Failure> {
    let one = crate::build::one_file_app(target);
    if one.is_none() && target.is_dir() && !target.join("vessel.toml").exists() {
        let why = if target.join("app.py").is_file() {
            "and its app.py marks no function with @vessel.function"
        } else {
            "and no one-file app.py"
        };
        return Err(Failure::usage(format!(
            "{} holds no vessel.toml {why}: mark the functions to export with \
             @vessel.function, or write the manifest (`vessel init` makes an example)",
            target.display()
        )));
    }
    if !no_build {
        let stale = match &one {
            Some(one) => crate::build::stale_one_file(one),
            None if crate::owner::is_app(target) => crate::build::stale_build(target),
            None => None,
        };
        if let Some(stale) = stale {
            build_stale(tools, &stale)?;
        }
    }
    Ok(one.map_or_else(|| target.to_owned(), |o| o.manifest))
}

/// Builds an app's component before `vessel run`/`call`, saying why.
fn build_stale(tools: &Toolchain, stale: &crate::build::StaleBuild) -> Result<(), Failure> {
    eprintln!(
        "building {} first: {} (--no-build skips this)",
        stale.component.display(),
        stale.reason
    );
    crate::build::build(tools, &stale.source, Some(&stale.component), None).map_err(failure)?;
    Ok(())
}

/// `vessel run FILE::FUNCTION`: the app FILE belongs to (`app.py::main`,
/// `src/lib.rs::main`), with that function as its entrypoint. `None` for
/// anything else.
pub fn split_target(target: &Path) -> Option<(PathBuf, String)> {
    let text = target.to_str()?;
    let (file, function) = text.rsplit_once("::")?;
    if function.is_empty() || function.contains('/') {
        return None;
    }
    // A one-file app is its file; otherwise the app is the nearest folder
    // above FILE with a vessel.toml (`src/lib.rs::main` in a Rust app),
    // else FILE's own folder.
    if crate::build::is_one_file_app(Path::new(file)) {
        return Some((PathBuf::from(file), function.to_owned()));
    }
    let parent = Path::new(file).parent().unwrap_or(Path::new(""));
    let dir = parent
        .ancestors()
        .find(|d| d.join("vessel.toml").is_file())
        .unwrap_or(parent);
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir.to_owned()
    };
    Some((dir, function.to_owned()))
}
