//! Runs a documentation page as a test, so every command on it is
//! exercised exactly as written.
//!
//! The page's fenced blocks run in order in one bash process, started in an
//! empty folder (no checkout of vessel in reach, as for a user), with the
//! `vessel` binary first on PATH and a private data directory:
//! - a block whose info string has `file=PATH` (```` ```python file=app.py ````)
//!   is written to PATH, relative to the shell's current directory;
//! - a ```` ```console ```` block holds commands (`$ ` lines), each followed
//!   by its expected output: stdout and stderr as a terminal shows them. A
//!   line `...` stands for any number of lines, and a line ending in `...`
//!   for one line starting with what precedes it. Every command must exit
//!   with status 0 (show failures as `cmd || echo "exit status $?"`).
//!
//! Other blocks are prose and are not run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use vessel_tests::{js_tools_dir, repo_root, vessel_bin};

enum Block {
    File { path: String, text: String },
    Console(Vec<Step>),
}

struct Step {
    command: String,
    expected: Vec<String>,
}

/// The blocks of `markdown` that the walkthrough runs, in page order.
fn parse(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_start().strip_prefix("```") else {
            continue;
        };
        let mut body = Vec::new();
        for l in lines.by_ref() {
            if l.trim_start().starts_with("```") {
                break;
            }
            body.push(l);
        }
        let mut words = info.split_whitespace();
        let lang = words.next().unwrap_or_default();
        if let Some(path) = words.find_map(|w| w.strip_prefix("file=")) {
            let mut text = body.join("\n");
            text.push('\n');
            blocks.push(Block::File {
                path: path.to_owned(),
                text,
            });
        } else if lang == "console" {
            let mut steps: Vec<Step> = Vec::new();
            for l in body {
                if let Some(cmd) = l.strip_prefix("$ ") {
                    steps.push(Step {
                        command: cmd.to_owned(),
                        expected: Vec::new(),
                    });
                } else if let Some(step) = steps.last_mut() {
                    step.expected.push(l.to_owned());
                } else {
                    panic!("console block starts with output, not a `$ ` command: {l:?}");
                }
            }
            blocks.push(Block::Console(steps));
        }
    }
    blocks
}

/// Whether `actual` fits `expected` (with `...` lines and `...` suffixes).
fn fits(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => (0..=actual.len()).any(|i| fits(rest, &actual[i..])),
        Some((e, rest)) => match actual.split_first() {
            None => false,
            Some((a, more)) => {
                let a = a.trim_end();
                let ok = match e.strip_suffix("...") {
                    Some(prefix) => a.starts_with(prefix),
                    None => a == e.trim_end(),
                };
                ok && fits(rest, more)
            }
        },
    }
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What a walkthrough left behind.
pub struct Walked {
    /// The folder the page ran in (removed on drop).
    pub root: tempfile::TempDir,
    /// The files the page wrote, by their `file=` path.
    pub files: Vec<(String, String)>,
}

/// Runs the page `doc` (relative to the repository root).
pub fn run(doc: &str) -> Walked {
    run_with_env(doc, &[])
}

/// Runs the page `doc` with `env` set in its shell (what the page says
/// the reader provides, such as a database URL).
pub fn run_with_env(doc: &str, env: &[(&str, &str)]) -> Walked {
    walk(doc, env, false)
}

/// Runs the page `doc` in a folder that also holds `vessel`, a link to
/// this repository: for a page that installs something from a checkout
/// (the Python client, which is not on PyPI).
pub fn run_beside_checkout(doc: &str, env: &[(&str, &str)]) -> Walked {
    walk(doc, env, true)
}

fn walk(doc: &str, env: &[(&str, &str)], beside_checkout: bool) -> Walked {
    let page = repo_root().join(doc);
    let markdown = std::fs::read_to_string(&page)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", page.display()));
    let blocks = parse(&markdown);
    let root = tempfile::tempdir().unwrap();
    let results = root.path().join(".results");
    std::fs::create_dir(&results).unwrap();
    if beside_checkout {
        std::os::unix::fs::symlink(repo_root(), root.path().join("vessel")).unwrap();
    }

    let mut script = String::from("exec </dev/null\n");
    let mut steps = Vec::new();
    let mut files = Vec::new();
    for block in &blocks {
        match block {
            Block::File { path, text } => {
                assert!(
                    !text.contains("\n__VESSEL_DOC_EOF__\n"),
                    "{doc}: {path} holds the walkthrough's heredoc marker"
                );
                let _ = write!(
                    script,
                    "mkdir -p \"$(dirname {p})\" && cat > {p} <<'__VESSEL_DOC_EOF__'\n{text}__VESSEL_DOC_EOF__\n",
                    p = quote(path)
                );
                files.push((path.clone(), text.clone()));
            }
            Block::Console(cmds) => {
                for step in cmds {
                    let i = steps.len();
                    let r = quote(&results.join(i.to_string()).display().to_string());
                    let _ = write!(
                        script,
                        "{{\n{}\n}} >{r}.out 2>&1\necho $? >{r}.rc\n",
                        step.command
                    );
                    steps.push(step);
                }
            }
        }
    }
    assert!(!steps.is_empty(), "{doc} has no console commands");

    let bin_dir = vessel_bin().parent().map(Path::to_path_buf).unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let status = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .envs(env.iter().copied())
        .current_dir(root.path())
        .env("PATH", path)
        .env("VESSEL_HOME", root.path().join(".vessel-data"))
        .env("VESSEL_CACHE_DIR", root.path().join(".vessel-cache"))
        // componentize-js as the suite installed it, not `npm ci` per page;
        // the rest as in a user's shell.
        .env("VESSEL_JS_TOOLS", js_tools_dir())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("VESSEL_PY_BUILDS")
        .env_remove("VESSEL_JS_BUILDS")
        .env_remove("RUST_LOG")
        .status()
        .unwrap_or_else(|e| panic!("cannot run bash: {e}"));
    for (i, step) in steps.iter().enumerate() {
        let read = |ext: &str| -> String {
            let p: PathBuf = results.join(format!("{i}.{ext}"));
            std::fs::read_to_string(&p).unwrap_or_else(|e| {
                panic!(
                    "{doc}: `{}` did not run to its end (an earlier command ended the shell?): {}: {e}",
                    step.command,
                    p.display()
                )
            })
        };
        let out = read("out");
        let rc = read("rc");
        let actual: Vec<&str> = out.lines().collect();
        assert!(
            rc.trim() == "0" && fits(&step.expected, &actual),
            "{doc}: `{}` exited with {} and printed\n{out}\n--- the page expects ---\n{}",
            step.command,
            rc.trim(),
            step.expected.join("\n"),
        );
    }
    assert!(status.success(), "{doc}: the walkthrough shell failed");
    Walked { root, files }
}

#[test]
fn matching_rules() {
    let e = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(fits(&e(&["a", "b"]), &["a", "b"]));
    assert!(!fits(&e(&["a", "b"]), &["a", "b", "c"]));
    assert!(!fits(&e(&["a"]), &[]));
    assert!(fits(&e(&["...", "b"]), &["x", "y", "b"]));
    assert!(fits(&e(&["a", "...", "c"]), &["a", "c"]));
    assert!(fits(&e(&["built x in ..."]), &["built x in 3 s"]));
    assert!(!fits(&e(&["built x in ..."]), &["built y in 3 s"]));
    assert!(!fits(&e(&["a", "..."]), &["b"]));
    assert!(fits(&e(&[]), &[]));
}

#[test]
fn parses_files_and_console_blocks() {
    let page = "text\n```python file=dir/app.py\nprint(1)\n```\n```toml\nignored\n```\n\
                ```console\n$ cat dir/app.py\nprint(1)\n$ true\n```\n";
    let blocks = parse(page);
    assert_eq!(blocks.len(), 2);
    match &blocks[0] {
        Block::File { path, text } => {
            assert_eq!(path, "dir/app.py");
            assert_eq!(text, "print(1)\n");
        }
        Block::Console(_) => panic!("expected a file block"),
    }
    match &blocks[1] {
        Block::Console(steps) => {
            assert_eq!(steps.len(), 2);
            assert_eq!(steps[0].command, "cat dir/app.py");
            assert_eq!(steps[0].expected, ["print(1)"]);
            assert!(steps[1].expected.is_empty());
        }
        Block::File { .. } => panic!("expected a console block"),
    }
}
