//! The shape ARCHITECTURE.md promises, checked on the source itself: each
//! module of vessel-host imports only modules in layers below its own (the
//! one allowed cycle is the `bindgen!` group, which shares a layer), and no
//! source file grows past 800 lines unless its header says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// vessel-host's top-level modules, lowest layer first. Modules on one line
/// share a layer and may import each other: `bindings`' `with:` mappings
/// name the capability modules' types, and those modules implement the
/// generated traits.
const LAYERS: &[&[&str]] = &[
    &["private", "blocking", "grant", "error_kind"],
    &["storage"],
    &[
        "error",
        "bindings",
        "volume",
        "dict",
        "keyvalue",
        "functions",
    ],
    &["engine"],
    &["container"],
    &["call"],
    &["app", "service"],
    &["server"],
    &["client", "owner"],
    &["cli"],
    &["lib", "main"],
];

/// What a file's header says when it is long on purpose.
const LONG_ON_PURPOSE: &str = "over 800 lines";
const MAX_LINES: usize = 800;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            if !matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("target" | "node_modules" | ".git")
            ) {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of host/src belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_owned()
}

/// The top-level modules a file names as `crate::NAME`, outside comments.
fn imports(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push(name);
            }
            rest = after;
        }
    }
    out
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, names)| names.iter().map(move |n| (*n, i)))
        .collect();
    let src = repo().join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(&mine) = layer.get(module.as_str()) else {
            wrong.push(format!(
                "{}: module `{module}` is in no layer of this test (and of ARCHITECTURE.md)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for name in imports(&text) {
            match layer.get(name.as_str()) {
                Some(&theirs) if theirs > mine => wrong.push(format!(
                    "{}: `{module}` (layer {mine}) imports crate::{name} (layer {theirs})",
                    file.display()
                )),
                Some(_) => {}
                None => wrong.push(format!(
                    "{}: imports crate::{name}, which is in no layer",
                    file.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_source_file_is_over_800_lines_unless_it_says_why() {
    let root = repo();
    let mut files = Vec::new();
    for dir in ["host", "guest-sdk", "tests", "fuzz"] {
        rust_files(&root.join(dir), &mut files);
    }
    let mut long = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        let header: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
        if lines > MAX_LINES && !header.contains(LONG_ON_PURPOSE) {
            long.push(format!(
                "{}: {lines} lines",
                file.strip_prefix(&root).unwrap().display()
            ));
        }
    }
    assert!(
        long.is_empty(),
        "split these by concern, or say in the header why one file ({LONG_ON_PURPOSE}):\n{}",
        long.join("\n")
    );
}
