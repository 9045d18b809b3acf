//! `vessel init`: a new app that builds and runs as it is, in Python,
//! JavaScript or Rust. Each greets by name and counts visits in a dict,
//! through a second function called with `remote`, so a new user sees a
//! dict, a call between functions and the manifest in one small app.

use std::path::{Path, PathBuf};

use super::{Lang, toolkit};

/// Why the app could not be made.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(
        "`{0}` cannot name an app: use lower-case letters, digits and single hyphens, \
         starting with a letter (it names the WIT world and the component)"
    )]
    BadName(String),
    #[error("{0} exists and is not empty: choose a new folder")]
    NotEmpty(PathBuf),
    #[error(
        "{0} exists with other content (an older vessel's SDK, or edited); pass --force to replace it"
    )]
    Differs(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether `name` is a WIT identifier (lower-case words joined by single
/// hyphens), which also makes a valid crate and file name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|word| {
            word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// Makes the app `dir` (its last component names it) and returns the
/// files written, relative to `dir`.
pub fn init(dir: &Path, lang: Lang) -> Result<Vec<PathBuf>, InitError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !valid_name(&name) {
        return Err(InitError::BadName(name));
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InitError::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            if entries.into_iter().next().is_some() {
                return Err(InitError::NotEmpty(dir.to_owned()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let files = files(&name, lang);
    write_files(dir, &files, false)?;
    Ok(files
        .into_iter()
        .map(|(rel, _)| PathBuf::from(rel))
        .collect())
}

/// `crate::wit::write_files` with its errors as [`InitError`]s.
fn write_files(
    dir: &Path,
    files: &[(String, String)],
    force: bool,
) -> Result<Vec<PathBuf>, InitError> {
    crate::wit::write_files(dir, files, force).map_err(|e| match e {
        crate::wit::WitError::Differs(path) => InitError::Differs(path),
        crate::wit::WitError::Io { path, source } => InitError::Io { path, source },
    })
}

/// The Rust SDK's manifest when it lives in an app: the workspace's
/// versions and features written out (checked against the workspace's
/// Cargo.toml by a test).
const RUST_SDK_CARGO: &str = r#"# vessel's Rust guest SDK, written here by `vessel init`.
[package]
name = "vessel-sdk"
version = "VERSION"
edition = "2024"
publish = false

[dependencies]
wit-bindgen = "0.63"
serde = { version = "1", features = ["derive"] }
serde_json = { version = "1", features = ["float_roundtrip", "arbitrary_precision", "preserve_order"] }
"#;

fn files(name: &str, lang: Lang) -> Vec<(String, String)> {
    let fill = |t: &str| {
        t.replace("NAME_SNAKE", &name.replace('-', "_"))
            .replace("NAME", name)
    };
    let mut out: Vec<(String, String)> = Vec::new();
    if lang == Lang::Python {
        // One file: the functions carry @vessel.function and type hints,
        // from which the build derives the world and the manifest.
        out.push((
            ".gitignore".into(),
            ".vessel-build/\n.vessel-sdk/\n__pycache__/\n".into(),
        ));
        out.push(("README.md".into(), fill(PYTHON_README)));
        out.push(("app.py".into(), fill(PYTHON_APP)));
        out.push(("test_app.py".into(), fill(PYTHON_TEST)));
        return out;
    }
    let (component, ignore) = match lang {
        Lang::Rust => (
            fill("target/wasm32-wasip2/release/NAME_SNAKE.wasm"),
            "/target\n*.wasm\n",
        ),
        _ => (format!("{name}.wasm"), "*.wasm\n"),
    };
    out.push((".gitignore".into(), ignore.into()));
    out.push((
        "vessel.toml".into(),
        fill(MANIFEST).replace("COMPONENT", &component),
    ));
    let how = if lang == Lang::Rust {
        "src/lib.rs"
    } else {
        "app.js"
    };
    out.push((
        "README.md".into(),
        fill(README).replace("SOURCE", how).replace(
            "TEST",
            if lang == Lang::Rust {
                "`cargo test` runs the unit test in src/lib.rs on the host.\n"
            } else {
                "`sh test.sh` builds the app and checks what its functions return.\n"
            },
        ),
    ));
    match lang {
        // Returned above.
        Lang::Python => {}
        Lang::JavaScript => {
            out.push(("world.wit".into(), fill(WORLD_WITH_IMPORTS)));
            out.push(("app.js".into(), fill(JS_APP)));
            out.push(("test.sh".into(), JS_TEST.to_owned()));
            // For editors: `./vessel.js` (which the build provides)
            // resolves to these types.
            for (rel, text) in toolkit::under("guest-sdk/js/") {
                if rel.ends_with(".d.ts") {
                    out.push((rel.to_owned(), text.to_owned()));
                }
            }
        }
        Lang::Rust => {
            out.push(("wit/world.wit".into(), fill(WORLD_EXPORTS)));
            out.push(("Cargo.toml".into(), fill(RUST_CARGO)));
            out.push(("src/lib.rs".into(), fill(RUST_APP)));
            for (rel, text) in sdk_files(Lang::Rust) {
                out.push((format!("vessel-sdk/{rel}"), text));
            }
        }
    }
    out
}

/// The SDK of `lang` as a package of its own: Python's `vessel` with its
/// pyproject.toml (pip-installable as `vessel-sdk`), JavaScript's
/// `vessel.js` with its types, Rust's `vessel-sdk` crate with the WIT it
/// reads. Paths are relative to the package's folder.
pub fn sdk_files(lang: Lang) -> Vec<(String, String)> {
    match lang {
        Lang::Python => toolkit::under("guest-sdk/python/")
            .map(|(rel, text)| (rel.to_owned(), text.to_owned()))
            .collect(),
        Lang::JavaScript => toolkit::under("guest-sdk/js/")
            .map(|(rel, text)| (rel.to_owned(), text.to_owned()))
            .collect(),
        Lang::Rust => {
            let mut out = vec![(
                "Cargo.toml".to_owned(),
                RUST_SDK_CARGO.replace("VERSION", env!("CARGO_PKG_VERSION")),
            )];
            for (rel, text) in toolkit::RUST_SDK {
                // In the checkout the SDK reads the WIT beside it at
                // ../wit; here it has its own copy.
                let text = if *rel == "src/lib.rs" {
                    text.replace("path: \"../wit\"", "path: \"wit\"")
                } else {
                    (*text).to_owned()
                };
                out.push(((*rel).to_owned(), text));
            }
            for (rel, text) in crate::wit::FILES {
                out.push((format!("wit/{rel}"), (*text).to_owned()));
            }
            out
        }
    }
}

/// Writes the SDK of `lang` into `dir` (see [`sdk_files`]). A file that is
/// there with other content is an error unless `force`, and then nothing
/// is written. Returns the files written.
pub fn write_sdk(dir: &Path, lang: Lang, force: bool) -> Result<Vec<PathBuf>, InitError> {
    write_files(dir, &sdk_files(lang), force)
}

const MANIFEST: &str = r#"# The app: which functions it has, what each may reach.
[app]
name = "NAME"
entrypoint = "main"

[dicts.visits]
create_if_missing = true

[functions.hello]
component = "COMPONENT"
dicts = ["visits"]

[functions.main]
component = "COMPONENT"
"#;

const README: &str = "# NAME

A vessel app made by `vessel init`. `main` calls `hello`, which counts
visits by name in the `visits` dict.

    vessel run . --name ada      # builds when SOURCE changed, then runs main
    vessel call . hello --name ada
    vessel dict items visits

`vessel build` builds the component alone. TEST";

const WORLD_WITH_IMPORTS: &str = "package local:NAME;

world NAME {
    include vessel:storage/imports@0.1.0;

    /// Greets `name`, counting the visit.
    export hello: func(name: string) -> string;
    /// Prints the greeting for `name` (default: world).
    export main: func(name: option<string>);
}
";

const WORLD_EXPORTS: &str = "package local:NAME;

world NAME {
    /// Greets `name`, counting the visit.
    export hello: func(name: string) -> string;
    /// Prints the greeting for `name` (default: world).
    export main: func(name: option<string>);
}
";

const PYTHON_README: &str = "# NAME

A vessel app in one file, made by `vessel init`: `main` calls `hello`,
which counts visits by name in the `visits` dict. The decorators say what
each function may reach; the type hints are its WIT types.

    vessel run app.py::main --name ada   # builds when app.py changed, then runs main
    vessel call app.py hello --name ada
    vessel dict items visits

`vessel build app.py` builds alone, into .vessel-build/ (the component
and the manifest derived from the decorators).

test_app.py runs the functions on this Python, without wasm:

    vessel sdk python .vessel-sdk
    python3 -m venv .venv && .venv/bin/pip install ./.vessel-sdk pytest
    .venv/bin/pytest
";

const PYTHON_APP: &str = r#""""NAME: a vessel app in one file.

`vessel run app.py::main --name ada` builds it (when app.py changed) and
runs `main`.
"""

from typing import Optional

import vessel


def greeting(name: str, visits: int) -> str:
    return f"hello, {name} (visit {visits})"


@vessel.function(dicts=["visits"])
def hello(name: str) -> str:
    """Greets `name`, counting the visit in the `visits` dict."""
    visits = vessel.Dict.from_name("visits")
    n = visits.get(name, 0) + 1
    visits[name] = n
    return greeting(name, n)


@vessel.function()
def main(name: Optional[str] = None) -> None:
    """Prints the greeting for `name` (default: world), from `hello`
    running in a container of its own."""
    print(vessel.remote("hello", name or "world"))
"#;

const PYTHON_TEST: &str = r#""""The app's functions on this Python, without wasm (see README.md)."""

import vessel
from vessel import testing

import app


def test_hello_counts_visits(tmp_path):
    with testing.local(tmp_path) as env:
        assert app.hello("ada") == "hello, ada (visit 1)"
        assert vessel.remote("hello", "ada") == "hello, ada (visit 2)"
        assert env.dict("visits")["ada"] == 2


def test_main_prints_the_greeting(tmp_path, capsys):
    with testing.local(tmp_path):
        app.main()
    assert capsys.readouterr().out == "hello, world (visit 1)\n"
"#;

const JS_APP: &str = r#"// NAME: a vessel app. `vessel run . --name ada` builds and runs it.
// vessel.d.ts types the SDK for editors and `tsc --checkJs`.
import { Dict, remote } from "./vessel.js";

/**
 * @param {string} name
 * @param {number} visits
 */
export function greeting(name, visits) {
  return `hello, ${name} (visit ${visits})`;
}

/** @param {string} name */
export function hello(name) {
  const visits = Dict.fromName("visits", { createIfMissing: true });
  const n = visits.get(name, 0) + 1;
  visits.set(name, n);
  return greeting(name, n);
}

/** @param {string | undefined} name */
export function main(name) {
  console.log(remote("hello", [name ?? "world"]));
}
"#;

const JS_TEST: &str = r#"#!/bin/sh
# The app's test: builds it, then calls its functions through vessel in a
# data dir of their own, so the test starts from empty dicts.
set -e
cd "$(dirname "$0")"
vessel build
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
call() { VESSEL_HOME="$home" vessel "$@"; }
[ "$(call call . hello --no-build --name ada)" = '"hello, ada (visit 1)"' ]
[ "$(call run . --no-build --name ada)" = "hello, ada (visit 2)" ]
[ "$(call run . --no-build)" = "hello, world (visit 1)" ]
echo "all good"
"#;

const RUST_CARGO: &str = r#"[package]
name = "NAME"
version = "0.1.0"
edition = "2024"

[lib]
crate-type = ["cdylib"]

[dependencies]
wit-bindgen = "0.63"
vessel-sdk = { path = "vessel-sdk" }

[profile.release]
opt-level = "s"
strip = true

# Not part of any enclosing workspace.
[workspace]
"#;

const RUST_APP: &str = r#"//! NAME: a vessel app. `vessel run . --name ada` builds and runs it.
wit_bindgen::generate!({ world: "NAME", path: "wit" });

use vessel_sdk::{Dict, Error};

struct App;

fn greeting(name: &str, visits: i64) -> String {
    format!("hello, {name} (visit {visits})")
}

fn hello(name: &str) -> Result<String, Error> {
    let visits = Dict::from_name("visits", true)?.increment(name, 1)?;
    Ok(greeting(name, visits))
}

impl Guest for App {
    fn hello(name: String) -> String {
        // `fail` ends the call with an error its caller gets as data:
        // `vessel_sdk::Error::Raised`, or the CLI's `raised TYPE: MESSAGE`.
        hello(&name).unwrap_or_else(|e| vessel_sdk::fail("VesselError", &e.to_string()))
    }

    fn main(name: Option<String>) {
        let name = name.unwrap_or_else(|| "world".to_owned());
        let text: String = vessel_sdk::remote("hello", &[name])
            .unwrap_or_else(|e| vessel_sdk::fail("VesselError", &e.to_string()));
        println!("{text}");
    }
}

// Not in host-side unit tests (`cargo test`), where an exported `main`
// would clash with the test harness's.
#[cfg(any(target_arch = "wasm32", not(test)))]
export!(App);

#[cfg(test)]
mod tests {
    #[test]
    fn greets_by_name() {
        assert_eq!(super::greeting("ada", 2), "hello, ada (visit 2)");
    }
}
"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn names_are_wit_identifiers() {
        for good in ["hello", "my-app", "a1-b2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Hello", "1app", "my_app", "a--b", "-a", "a-", "app.py"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_a_folder_with_files() {
        let d = tempfile::tempdir().unwrap();
        let app = d.path().join("hello");
        std::fs::create_dir(&app).unwrap();
        std::fs::write(app.join("keep.txt"), "mine").unwrap();
        let err = init(&app, Lang::Python).unwrap_err().to_string();
        assert!(
            err.ends_with("exists and is not empty: choose a new folder"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(app.join("keep.txt")).unwrap(),
            "mine"
        );
    }

    /// The SDK written into a Rust app asks for what the workspace gives
    /// the SDK in the checkout.
    #[test]
    fn the_rust_sdk_manifest_matches_the_workspace() {
        let workspace: toml::Table = toml::from_str(include_str!("../../../Cargo.toml")).unwrap();
        let deps = &workspace["workspace"]["dependencies"];
        let sdk: toml::Table = toml::from_str(RUST_SDK_CARGO).unwrap();
        let checkout: toml::Table =
            toml::from_str(include_str!("../../../guest-sdk/Cargo.toml")).unwrap();
        let wanted: Vec<&String> = checkout["dependencies"]
            .as_table()
            .unwrap()
            .keys()
            .collect();
        let written: Vec<&String> = sdk["dependencies"].as_table().unwrap().keys().collect();
        assert_eq!(written, wanted);
        for name in wanted {
            assert_eq!(sdk["dependencies"][name], deps[name], "{name}");
        }
        let lib = files("x", Lang::Rust)
            .into_iter()
            .find(|(p, _)| p == "vessel-sdk/src/lib.rs")
            .unwrap();
        assert!(lib.1.contains("path: \"wit\""));
    }
}
