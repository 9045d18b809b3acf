//! A dataset kept as a real SQLite database file on a volume.
//!
//! `ingest` opens `/data/dataset.db` on the mounted `dataset` volume,
//! creates the tables if needed, appends rows in one transaction, closes the
//! database and commits the volume. `query` and `sql` reload the volume and
//! read the latest committed database. SQLite is compiled from C (rusqlite's
//! `bundled` feature) with Zig's C compiler; see the README.
//!
//! A volume merges commits file by file and the last commit of a file wins,
//! so two containers writing `dataset.db` at once would lose one batch.
//! Writers therefore take turns through a lease on the `dataset-locks` dict,
//! and each batch records the lease's fencing token.
wit_bindgen::generate!({ world: "dataset", path: "wit" });

use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use vessel_sdk::{Dict, Lease, Volume};

const MOUNT: &str = "/data";
const DB: &str = "/data/dataset.db";
const JOURNAL: &str = "/data/dataset.db-journal";
const LOCKS: &str = "dataset-locks";
const LOCK_KEY: &str = "dataset.db";
/// Longer than `ingest`'s timeout in vessel.toml (60 s): a writer that is
/// killed still holds the lease when its container's final commit lands.
const LEASE_MS: u64 = 120_000;
/// How long `ingest` waits for other writers before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(50);
/// SQLite's Unix VFS without file locking. WASI has no fcntl locks, and
/// locks could not reach other containers anyway: each one writes its own
/// copy of the file until it commits. The dict lease is the lock.
const VFS: &str = "unix-none";

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS batches (
        id INTEGER PRIMARY KEY,  -- the writer lease's fencing token
        rows INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS measurements (
        batch INTEGER NOT NULL REFERENCES batches(id),
        category TEXT NOT NULL,
        value REAL NOT NULL
    );
    CREATE INDEX IF NOT EXISTS measurements_by_category ON measurements(category);
";

struct Dataset;

fn sql_err(e: rusqlite::Error) -> String {
    format!("dataset.db: {e}")
}

/// A read error, explained when it comes from a hot journal: a read-only
/// reader cannot roll back a transaction that an ingest left unfinished.
fn read_err(e: rusqlite::Error) -> String {
    if std::fs::exists(JOURNAL).unwrap_or(false) {
        format!(
            "dataset.db: an interrupted ingest left a hot journal, which the next ingest rolls back ({e})"
        )
    } else {
        sql_err(e)
    }
}

/// Opens the database: read-write (creating it) for `ingest`, read-only
/// otherwise.
fn open(write: bool) -> Result<Connection, String> {
    let flags = if write {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
    } else {
        OpenFlags::SQLITE_OPEN_READ_ONLY
    };
    let db = Connection::open_with_flags_and_vfs(DB, flags, VFS).map_err(sql_err)?;
    // Sorts and indexes build in memory, not in temporary files.
    db.pragma_update(None, "temp_store", "MEMORY")
        .map_err(sql_err)?;
    if write {
        // A rollback journal (WAL needs shared memory, which WASI lacks):
        // `dataset.db-journal` exists only during a transaction, so a
        // container killed mid-transaction publishes a hot journal with the
        // file and the next writer rolls the batch back.
        let mode: String = db
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .map_err(sql_err)?;
        if mode != "delete" {
            return Err(format!("dataset.db: journal mode is {mode}, not delete"));
        }
        db.execute_batch(SCHEMA).map_err(sql_err)?;
    }
    Ok(db)
}

fn exists() -> Result<bool, String> {
    std::fs::exists(DB).map_err(|e| format!("{DB}: {e}"))
}

fn mounted() -> Result<Volume, String> {
    Volume::mounted(MOUNT).map_err(|e| format!("volume at {MOUNT}: {e}"))
}

/// Waits (up to `LOCK_WAIT`) for the writer lease.
fn writer_lease() -> Result<Lease, String> {
    let locks = Dict::open(LOCKS, true).map_err(|e| format!("dict {LOCKS}: {e}"))?;
    let start = Instant::now();
    loop {
        match locks.lock(LOCK_KEY, LEASE_MS) {
            Ok(Some(lease)) => return Ok(lease),
            Ok(None) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                return Err(format!(
                    "another writer held dataset.db for over {} s",
                    LOCK_WAIT.as_secs()
                ));
            }
            Err(e) => return Err(format!("dict {LOCKS}: {e}")),
        }
    }
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Appends one batch as batch `token` and closes the database. On an
/// error the transaction is rolled back and the database closed too.
fn write_batch(token: u64, rows: &[Row]) -> Result<IngestInfo, String> {
    let batch = i64::try_from(token).map_err(|_| format!("fencing token {token} too large"))?;
    let mut db = open(true)?;
    let tx = db.transaction().map_err(sql_err)?;
    let last: Option<i64> = tx
        .query_row("SELECT max(id) FROM batches", [], |r| r.get(0))
        .map_err(sql_err)?;
    if let Some(last) = last.filter(|&last| last >= batch) {
        // Written under a later lease: ours has expired, or the file was
        // written under another data directory's dict.
        return Err(format!(
            "stale writer: dataset.db has batch {last}, newer than this writer's lease ({batch})"
        ));
    }
    tx.execute(
        "INSERT INTO batches (id, rows) VALUES (?1, ?2)",
        (batch, rows.len() as i64),
    )
    .map_err(sql_err)?;
    {
        let mut insert = tx
            .prepare("INSERT INTO measurements (batch, category, value) VALUES (?1, ?2, ?3)")
            .map_err(sql_err)?;
        for row in rows {
            insert
                .execute((batch, &row.category, row.value))
                .map_err(sql_err)?;
        }
    }
    let (total_rows, total_batches): (i64, i64) = tx
        .query_row(
            "SELECT (SELECT count(*) FROM measurements), (SELECT count(*) FROM batches)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(sql_err)?;
    tx.commit().map_err(sql_err)?;
    // Closed, so the volume commit takes the whole file.
    db.close().map_err(|(_, e)| sql_err(e))?;
    Ok(IngestInfo {
        inserted: rows.len() as u64,
        batch: token,
        total_rows: count(total_rows),
        total_batches: count(total_batches),
        version: 0,
    })
}

/// Reloads, writes the batch and commits, all under the writer lease.
fn write_and_commit(volume: &Volume, lease: &Lease, rows: &[Row]) -> Result<IngestInfo, String> {
    // Start from the latest committed database, not this container's
    // snapshot (another container may have committed since it started).
    volume
        .reload()
        .map_err(|e| format!("reload of {MOUNT}: {e}"))?;
    let written = write_batch(lease.token(), rows);
    // Commit now, after a failure too (the file is then as it was), while
    // the lease keeps other writers out: a copy of dataset.db left
    // uncommitted here would be committed later (at this container's next
    // reload, or when it is retired) over newer batches.
    lease
        .renew(LEASE_MS)
        .map_err(|e| format!("lost the writer lease: {e}"))?;
    let version = volume
        .commit()
        .map_err(|e| format!("commit of {MOUNT}: {e}"))?
        .version;
    let mut info = written?;
    info.version = version;
    Ok(info)
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(i) => Cell::Integer(i),
        ValueRef::Real(f) => Cell::Real(f),
        ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Cell::Blob(b.to_vec()),
    }
}

impl Guest for Dataset {
    fn ingest(rows: Vec<Row>) -> Result<IngestInfo, String> {
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| !r.value.is_finite()) {
            return Err(format!(
                "rows[{i}].value: {} is not a finite number",
                row.value
            ));
        }
        let volume = mounted()?;
        let lease = writer_lease()?;
        let outcome = write_and_commit(&volume, &lease, &rows);
        let released = lease.release().map_err(|e| format!("release: {e}"));
        let info = outcome?;
        released?;
        Ok(info)
    }

    fn query(category: Option<String>) -> Result<Vec<CategoryStats>, String> {
        mounted()?
            .reload()
            .map_err(|e| format!("reload of {MOUNT}: {e}"))?;
        if !exists()? {
            return Ok(Vec::new());
        }
        let db = open(false)?;
        let mut stmt = db
            .prepare(
                "SELECT category, count(*), sum(value), avg(value) FROM measurements
                 WHERE ?1 IS NULL OR category = ?1
                 GROUP BY category ORDER BY category",
            )
            .map_err(read_err)?;
        stmt.query_map([&category], |r| {
            Ok(CategoryStats {
                category: r.get(0)?,
                count: count(r.get(1)?),
                total: r.get(2)?,
                mean: r.get(3)?,
            })
        })
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
    }

    fn sql(statement: String) -> Result<Table, String> {
        mounted()?
            .reload()
            .map_err(|e| format!("reload of {MOUNT}: {e}"))?;
        if !exists()? {
            return Err("no dataset.db yet: ingest some rows first".into());
        }
        let db = open(false)?;
        let mut stmt = db.prepare(&statement).map_err(read_err)?;
        if !stmt.readonly() {
            return Err("only read-only statements are allowed".into());
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let width = columns.len();
        let mut rows = Vec::new();
        let mut cursor = stmt.query([]).map_err(read_err)?;
        while let Some(row) = cursor.next().map_err(read_err)? {
            let cells = (0..width)
                .map(|i| row.get_ref(i).map(cell))
                .collect::<Result<Vec<_>, _>>()
                .map_err(read_err)?;
            rows.push(cells);
        }
        Ok(Table { columns, rows })
    }

    fn main() {
        if let Err(e) = demo() {
            println!("error: {e}");
        }
    }
}

/// `{"ok": T}` or `{"err": message}`, as a remote call returns a `result`.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Outcome<T> {
    Ok(T),
    Err(String),
}

impl<T> Outcome<T> {
    fn into_result(self) -> Result<T, String> {
        match self {
            Outcome::Ok(v) => Ok(v),
            Outcome::Err(e) => Err(e),
        }
    }
}

#[derive(Serialize)]
struct RowArg {
    category: &'static str,
    value: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Ingested {
    inserted: u64,
    total_rows: u64,
    total_batches: u64,
    version: u64,
}

#[derive(Deserialize)]
struct Stats {
    category: String,
    count: u64,
    total: f64,
    mean: f64,
}

fn query_remote() -> Result<Vec<Stats>, String> {
    let none: Option<String> = None;
    vessel_sdk::remote::<_, Outcome<Vec<Stats>>>("query", &[none])
        .map_err(|e| format!("query: {e}"))?
        .into_result()
}

fn demo() -> Result<(), String> {
    let before: u64 = query_remote()?.iter().map(|s| s.count).sum();
    println!("rows before: {before}");

    let row = |category, value| RowArg { category, value };
    let batches = vec![
        vec![row("apples", 1.5), row("pears", 2.0), row("plums", 0.25)],
        vec![row("apples", 2.5), row("pears", 4.0), row("plums", 0.5)],
        vec![row("apples", 3.5), row("pears", 6.0), row("plums", 0.75)],
    ];
    let n = batches.len();
    // Each batch is one `ingest` call in its own container, all at once;
    // the writer lease puts them in turn.
    let results: Vec<Outcome<Ingested>> =
        vessel_sdk::map("ingest", batches).map_err(|e| format!("ingest: {e}"))?;
    let ingested = results
        .into_iter()
        .map(Outcome::into_result)
        .collect::<Result<Vec<_>, _>>()?;
    let inserted: u64 = ingested.iter().map(|i| i.inserted).sum();
    println!("ingested {inserted} rows in {n} concurrent batches");
    if let Some(last) = ingested.iter().max_by_key(|i| i.version) {
        println!(
            "dataset.db: {} rows in {} batches (volume version {})",
            last.total_rows, last.total_batches, last.version
        );
    }
    // The query container is still warm from the first query: its snapshot
    // predates the batches, and `query` reloads to see them.
    for s in query_remote()? {
        println!(
            "{}: {} rows, total {}, mean {}",
            s.category, s.count, s.total, s.mean
        );
    }
    Ok(())
}

export!(Dataset);
