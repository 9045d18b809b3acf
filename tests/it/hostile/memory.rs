//! Memory: one budget per container over every linear memory and table of
//! every core instance (`memory`, `--memory`), and caps on the numbers of
//! memories, tables and core instances.
//!
//! The guests are components in the text format, made here: a core module
//! with many memories or tables, and a component with many core instances.
//! On a host that limits each memory and table on its own, 8 memories of
//! 56 MiB all grow under a 64 MiB limit, 16 tables of 1 Mi elements all
//! grow beside a memory, and 16 memories, 33 tables or 101 instances
//! instantiate.

use std::path::{Path, PathBuf};

use serde_json::json;
use vessel_host::container::{
    Container, ContainerConfig, DEFAULT_MAX_INSTANCES, DEFAULT_MAX_MEMORIES, DEFAULT_MAX_TABLES,
    TABLE_ELEMENT_BYTES, linker,
};
use vessel_host::engine::{EngineConfig, VesselEngine};
use vessel_tests::{Vessel, guest, guest_dir};

use vessel_tests::harness::{BYSTANDER, Bystander, Host};

/// 56 MiB in wasm pages.
const PAGES_56_MIB: u32 = 56 * 16;

/// A component whose core module declares `n` memories (none to start
/// with) and exports `grow-each(pages) -> u32`: grows each memory by
/// `pages` and returns how many grew.
fn memories_wat(n: usize) -> String {
    let mut mems = String::new();
    let mut grows = String::new();
    for i in 0..n {
        mems.push_str(&format!("(memory $m{i} 0)\n"));
        grows.push_str(&format!(
            "(if (i32.ne (memory.grow $m{i} (local.get $pages)) (i32.const -1))
               (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))\n"
        ));
    }
    format!(
        r#"(component
          (core module $m
            {mems}
            (func (export "grow-each") (param $pages i32) (result i32) (local $ok i32)
              {grows}
              local.get $ok))
          (core instance $i (instantiate $m))
          (func (export "grow-each") (param "pages" u32) (result u32)
            (canon lift (core func $i "grow-each"))))"#
    )
}

/// A component whose core module has one memory and `n` funcref tables
/// (all empty), and exports `grow-tables(elements) -> u32` (how many
/// tables grew by `elements`) and `grow-memory(pages) -> s32` (what
/// `memory.grow` returned).
fn tables_wat(n: usize) -> String {
    let mut tables = String::new();
    let mut grows = String::new();
    for i in 0..n {
        tables.push_str(&format!("(table $t{i} 0 funcref)\n"));
        grows.push_str(&format!(
            "(if (i32.ne (table.grow $t{i} (ref.null func) (local.get $n)) (i32.const -1))
               (then (local.set $ok (i32.add (local.get $ok) (i32.const 1)))))\n"
        ));
    }
    format!(
        r#"(component
          (core module $m
            (memory 0)
            {tables}
            (func (export "grow-tables") (param $n i32) (result i32) (local $ok i32)
              {grows}
              local.get $ok)
            (func (export "grow-memory") (param $pages i32) (result i32)
              (memory.grow (local.get $pages))))
          (core instance $i (instantiate $m))
          (func (export "grow-tables") (param "elements" u32) (result u32)
            (canon lift (core func $i "grow-tables")))
          (func (export "grow-memory") (param "pages" u32) (result s32)
            (canon lift (core func $i "grow-memory"))))"#
    )
}

/// A component that instantiates a tiny core module `n` times and
/// exports `seven() -> u32` from the first instance.
fn instances_wat(n: usize) -> String {
    let instances: String = (0..n)
        .map(|i| format!("(core instance $i{i} (instantiate $m))\n"))
        .collect();
    format!(
        r#"(component
          (core module $m (func (export "f") (result i32) i32.const 7))
          {instances}
          (func (export "seven") (result u32) (canon lift (core func $i0 "f"))))"#
    )
}

fn write(dir: &Path, name: &str, wat: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, wat).unwrap();
    p
}

/// An app of the components above, each under a 64 MiB budget, beside the
/// bystander.
fn load(host: &Host) -> vessel_host::app::App {
    let dir = host.home.path();
    let eight = write(dir, "eight.wat", &memories_wat(8));
    let sixteen = write(dir, "sixteen.wat", &memories_wat(DEFAULT_MAX_MEMORIES * 2));
    let tables = write(dir, "tables.wat", &tables_wat(16));
    let many_tables = write(dir, "many-tables.wat", &tables_wat(DEFAULT_MAX_TABLES + 1));
    let at_cap = write(dir, "at-cap.wat", &instances_wat(DEFAULT_MAX_INSTANCES));
    let past_cap = write(
        dir,
        "past-cap.wat",
        &instances_wat(DEFAULT_MAX_INSTANCES + 1),
    );
    let manifest = format!(
        r#"
[app]
name = "memory"

[functions.eight]
component = "{}"
export = "grow-each"
memory = 64
idle_timeout = 0

[functions.sixteen]
component = "{}"
export = "grow-each"
memory = 64

[functions.tables]
component = "{}"
export = "grow-tables"
memory = 64

[functions.many-tables]
component = "{}"
export = "grow-tables"

[functions.at-cap]
component = "{}"
export = "seven"

[functions.past-cap]
component = "{}"
export = "seven"
{BYSTANDER}"#,
        eight.display(),
        sixteen.display(),
        tables.display(),
        many_tables.display(),
        at_cap.display(),
        past_cap.display(),
    );
    host.load(&manifest, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_memories_share_one_budget() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    // Every call gets a new container (idle_timeout = 0).
    let eight = app.function("eight").unwrap();
    // 8 × 56 MiB under 64 MiB: the first grows, the other seven get -1.
    assert_eq!(eight.call(json!([PAGES_56_MIB])).await.unwrap(), json!(1));
    // 8 × 8 MiB fit exactly; a page more each, and the last does not.
    assert_eq!(eight.call(json!([128])).await.unwrap(), json!(8));
    assert_eq!(eight.call(json!([129])).await.unwrap(), json!(7));
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_memories_are_refused_by_the_memory_cap() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let e = app
        .function("sixteen")
        .unwrap()
        .call(json!([PAGES_56_MIB]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "needs more than {DEFAULT_MAX_MEMORIES} memories in one container"
        )),
        "{e}"
    );
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn table_growth_counts_against_the_budget() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let tables = app.function("tables").unwrap();
    // 16 tables of 1 Mi elements are 16 × 8 MiB: 8 fit in 64 MiB.
    let per_table: usize = (64 << 20) / TABLE_ELEMENT_BYTES / 8;
    assert_eq!(per_table, 1 << 20);
    assert_eq!(
        tables.call(json!([per_table])).await.unwrap(),
        json!(8),
        "tables of {per_table} elements"
    );
    // Past the budget, one table of 100 Mi elements (800 MiB) gets -1 too.
    assert_eq!(tables.call(json!([100 << 20])).await.unwrap(), json!(0));
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_many_tables_are_refused_by_the_table_cap() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    let e = app
        .function("many-tables")
        .unwrap()
        .call(json!([1]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "needs more than {DEFAULT_MAX_TABLES} tables in one container"
        )),
        "{e}"
    );
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tables_and_memory_share_one_budget() {
    // Functions of an app do not share containers, so the test drives one
    // container directly: 8 tables of 8 MiB fill its budget, and its memory
    // cannot grow. The app's container of the same component, beside it,
    // has a budget of its own.
    let host = Host::new();
    let tables = write(host.home.path(), "tables.wat", &tables_wat(16));
    let manifest = format!(
        "[app]\nname = \"tables\"\n\n[functions.grow-memory]\ncomponent = \"{}\"\nmemory = 64\n{BYSTANDER}",
        tables.display()
    );
    let app = host.load(&manifest, &[]);
    let b = Bystander::start(&app);
    let config = ContainerConfig {
        memory_limit: 64 << 20,
        ..ContainerConfig::default()
    };
    let mut g = host.start_path(&tables, config).await;
    assert_eq!(g.call("grow-tables", json!([1 << 20])).await, json!(8));
    assert_eq!(g.c.memory_used(), 64 << 20);
    assert_eq!(g.call("grow-memory", json!([1])).await, json!(-1));
    // And the app's own containers answer as ever.
    let f = app.function("grow-memory").unwrap();
    assert_eq!(f.call(json!([1])).await.unwrap(), json!(0));
    b.finish().await;
    app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_instances_are_refused_by_the_instance_cap() {
    let host = Host::new();
    let app = load(&host);
    let b = Bystander::start(&app);
    assert_eq!(
        app.function("at-cap")
            .unwrap()
            .call(json!([]))
            .await
            .unwrap(),
        json!(7)
    );
    let e = app
        .function("past-cap")
        .unwrap()
        .call(json!([]))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!(
            "needs more than {DEFAULT_MAX_INSTANCES} core instances in one container"
        )),
        "{e}"
    );
    b.finish().await;
    app.shutdown().await.unwrap();
}

/// The issue's reproduction through the real binary: `--memory 64` is one
/// budget for all 8 memories.
#[test]
fn vessel_call_with_eight_memories_grows_one() {
    let v = Vessel::new();
    let dir = tempfile::tempdir().unwrap();
    let eight = write(dir.path(), "eight.wat", &memories_wat(8));
    let eight = eight.display().to_string();
    let pages = PAGES_56_MIB.to_string();
    let out = v.run(&[
        "call",
        &eight,
        "grow-each",
        "--pages",
        &pages,
        "--memory",
        "64",
    ]);
    assert_eq!(out.ok().trim(), "1");
    let many = write(
        dir.path(),
        "many.wat",
        &instances_wat(DEFAULT_MAX_INSTANCES + 1),
    );
    v.run(&["call", &many.display().to_string(), "seven"])
        .fails(1, &["more than 100 core instances"]);
}

/// Every guest the suite builds instantiates under the default caps, and
/// how many instances, memories and tables each needs (the least caps it
/// instantiates under). Slow (a hundred instantiations of a Python guest);
/// run it with `--ignored`. `VESSEL_MEASURE_WASM` adds components built
/// elsewhere (colon-separated paths), such as the Python and JavaScript
/// probes that scripts/build-python and scripts/build-js make.
#[tokio::test]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn measure_what_each_guest_needs() {
    let engine = VesselEngine::new(EngineConfig::default()).unwrap();
    let l = linker(&engine).unwrap();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(guest_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    if let Ok(more) = std::env::var("VESSEL_MEASURE_WASM") {
        paths.extend(more.split(':').filter(|s| !s.is_empty()).map(PathBuf::from));
    }
    paths.sort();
    assert!(paths.contains(&guest("add")));
    for path in paths {
        let (component, _) = engine.load(&path).unwrap();
        let fits = async |config: &ContainerConfig| {
            let mut c = Container::new(&engine, config).unwrap();
            c.instantiate(&l, &component).await.map(|_| c.memory_used())
        };
        let defaults = ContainerConfig::default();
        let bytes = fits(&defaults)
            .await
            .unwrap_or_else(|e| panic!("{} does not fit the defaults: {e}", path.display()));
        let mut least = [0usize; 3];
        for (kind, n) in least.iter_mut().enumerate() {
            let mut config = defaults.clone();
            loop {
                match kind {
                    0 => config.max_instances = *n,
                    1 => config.max_memories = *n,
                    _ => config.max_tables = *n,
                }
                if fits(&config).await.is_ok() {
                    break;
                }
                *n += 1;
            }
        }
        let [instances, memories, tables] = least;
        assert!(instances <= DEFAULT_MAX_INSTANCES && memories <= DEFAULT_MAX_MEMORIES);
        assert!(tables <= DEFAULT_MAX_TABLES);
        println!(
            "{}: {instances} instances, {memories} memories, {tables} tables, \
             {bytes} bytes of memories and tables after instantiation",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
    }
}
