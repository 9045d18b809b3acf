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
    &[
        "private",
        "blocking",
        "grant",
        "error_kind",
        "metrics",
        "wit",
    ],
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
    &["client", "owner", "build"],
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

/// The module path of a file of host/src: `storage/volume/plan.rs` is
/// `["storage", "volume", "plan"]`, a `mod.rs` its directory's.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The modules (of `known`) a file's code names through `crate::` or
/// `super::` paths, outside comments: the longest known prefix of each.
fn module_refs(
    text: &str,
    me: &[String],
    known: &std::collections::BTreeSet<Vec<String>>,
) -> Vec<Vec<String>> {
    let resolve = |path: Vec<String>| {
        (1..=path.len())
            .rev()
            .map(|i| path[..i].to_vec())
            .find(|p| known.contains(p))
    };
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect()
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let path: Vec<String> = word(&code[at + "crate::".len()..])
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            out.extend(resolve(path));
        }
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            // Only the first `super::` of a run starts a path.
            let starts = at == 0 || !rest[..at].ends_with("::");
            let tail = word(&rest[at..]);
            if starts {
                let ups = tail.matches("super").count();
                let names: Vec<String> = tail
                    .split("::")
                    .filter(|s| !s.is_empty() && *s != "super")
                    .map(str::to_owned)
                    .collect();
                if ups <= me.len() {
                    let mut path = me[..me.len() - ups].to_vec();
                    path.extend(names);
                    out.extend(resolve(path));
                }
            }
            rest = &rest[at + tail.len().max(1)..];
        }
    }
    out
}

/// No two files import each other, directly or around a loop, except the
/// group `bindgen!` forces (`bindings` maps WIT resources to the
/// capability modules' types, and they implement its traits). A module's
/// own children and parent are not counted: they are one unit.
#[test]
fn no_import_cycles_but_the_bindgen_group() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = repo().join("host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mods: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_path(&src, f), f.clone()))
        .filter(|(m, _)| !matches!(m.as_slice(), [x] if x == "lib" || x == "main"))
        .collect();
    let known: BTreeSet<Vec<String>> = mods.keys().cloned().collect();
    let related = |a: &[String], b: &[String]| a.starts_with(b) || b.starts_with(a);
    let edges: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> = mods
        .iter()
        .map(|(m, f)| {
            let text = std::fs::read_to_string(f).unwrap();
            let refs = module_refs(&text, m, &known)
                .into_iter()
                .filter(|r| !related(m, r))
                .collect();
            (m, refs)
        })
        .collect();
    // Modules reachable from each; a cycle is a pair that reach each other.
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let bindgen: BTreeSet<Vec<String>> = [
        "bindings",
        "dict",
        "error",
        "functions",
        "keyvalue",
        "volume",
    ]
    .iter()
    .map(|m| vec![(*m).to_owned()])
    .collect();
    let reached: BTreeMap<&Vec<String>, BTreeSet<Vec<String>>> =
        mods.keys().map(|m| (m, reach(m))).collect();
    let mut cycles = Vec::new();
    for (m, r) in &reached {
        for n in r {
            if *m < n && reached.get(n).is_some_and(|back| back.contains(*m)) {
                if bindgen.contains(*m) && bindgen.contains(n) {
                    continue;
                }
                cycles.push(format!("{} <-> {}", m.join("/"), n.join("/")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}
