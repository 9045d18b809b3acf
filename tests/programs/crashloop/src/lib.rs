//! Write loops for the crash tests and the load test/benchmark: volume
//! writers committing from many containers, dict writers cycling put,
//! update and increment, and load workers. See wit/world.wit for what each
//! writes; the tests recompute the same contents (the `written` crate)
//! to check them.
wit_bindgen::generate!({ world: "crashloop", path: "wit" });

use std::io::Write;
use std::time::{Duration, Instant};

use vessel_sdk::{Dict, Volume};
use written::content;

struct Component;

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// Prints one line and flushes it, as one write (whole lines reach the
/// host's stdout together, so lines of concurrent writers never mix).
fn say(line: String) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .map_err(e)
}

/// Spawns `function(w, starts[w])` for every w and waits: the writers only
/// come back with an error.
fn run_writers(function: &str, starts: &[u64]) -> Result<(), String> {
    let mut calls = Vec::new();
    for (w, start) in starts.iter().enumerate() {
        let args = format!("[{w}, {start}]");
        calls.push(vessel_sdk::spawn_json(function, &args).map_err(e)?);
    }
    for (w, call) in calls.into_iter().enumerate() {
        let msg = match call.get_json() {
            Ok(json) => format!("{function} {w} returned {json}"),
            Err(err) => format!("{function} {w}: {err}"),
        };
        say(format!("error {msg}"))?;
        return Err(msg);
    }
    Ok(())
}

fn vol_writer(w: u32, start: u64) -> Result<(), String> {
    let vol = Volume::mounted("/data").map_err(e)?;
    let dir = format!("/data/w{w}");
    // The mount shows the latest committed version, and only this writer
    // writes under w{w}/: its last landed commit.
    let cur = std::fs::read_to_string(format!("{dir}/cur")).ok();
    let want = start.checked_sub(1).map(|j| j.to_string());
    if cur != want {
        return Err(format!(
            "the mount shows w{w}/cur = {cur:?}, the harness expects {want:?}"
        ));
    }
    std::fs::create_dir_all(&dir).map_err(e)?;
    let mut last_version = vol.version();
    for i in start.. {
        std::fs::write(format!("{dir}/slot{}", i % 8), content(1, w, i)).map_err(e)?;
        if let Some(prev) = i.checked_sub(1) {
            std::fs::remove_file(format!("{dir}/tmp{prev}"))
                .map_err(|err| format!("removing w{w}/tmp{prev}: {err}"))?;
        }
        std::fs::write(format!("{dir}/tmp{i}"), i.to_string()).map_err(e)?;
        std::fs::write(format!("{dir}/cur"), i.to_string()).map_err(e)?;
        let info = vol.commit().map_err(|err| format!("commit {i}: {err}"))?;
        if info.version <= last_version {
            return Err(format!(
                "commit {i} made version {} after {last_version}",
                info.version
            ));
        }
        last_version = info.version;
        say(format!("vol {w} {i} {}", info.version))?;
    }
    Ok(())
}

fn dict_writer(w: u32, start: u64) -> Result<(), String> {
    let dict = Dict::open("crashdict", true).map_err(e)?;
    for op in start.. {
        let i = op / 3;
        match op % 3 {
            0 => {
                dict.put_raw(&format!("p{w}/{:02}", i % 16), &content(2, w, i))
                    .map_err(|err| format!("put {op}: {err}"))?;
                say(format!("dict {w} {op}"))?;
            }
            1 => {
                let tag = format!("i{i}").into_bytes();
                let entries = vec![
                    (format!("u{w}/a"), tag.clone()),
                    (format!("u{w}/b"), tag),
                    (format!("u{w}/c{}", i % 4), content(2, w, i)),
                ];
                dict.update_raw(&entries)
                    .map_err(|err| format!("update {op}: {err}"))?;
                say(format!("dict {w} {op}"))?;
            }
            _ => {
                let n = dict
                    .increment(&format!("c{w}"), 1)
                    .map_err(|err| format!("increment {op}: {err}"))?;
                say(format!("dict {w} {op} {n}"))?;
            }
        }
    }
    Ok(())
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

fn load_worker(w: u32, millis: u64) -> Result<WorkerReport, String> {
    let dict = Dict::open("load", true).map_err(e)?;
    let vol = Volume::mounted("/data").map_err(e)?;
    let dir = format!("/data/w{w}");
    std::fs::create_dir_all(&dir).map_err(e)?;
    let mut r = WorkerReport {
        worker: w,
        iterations: 0,
        increments: 0,
        commits: 0,
        last_version: 0,
        errors: Vec::new(),
        dict_us: Vec::new(),
        commit_us: Vec::new(),
    };
    let end = Instant::now() + Duration::from_millis(millis);
    let mut i = 0u64;
    while Instant::now() < end {
        let mut ok = true;
        let t = Instant::now();
        match dict.increment("hits", 1) {
            Ok(_) => {
                r.increments += 1;
                r.dict_us.push(micros(t.elapsed()));
            }
            Err(err) => {
                ok = false;
                r.errors.push(format!("increment {i}: {err}"));
            }
        }
        let t = Instant::now();
        match dict.put_raw(&format!("w{w}"), i.to_string().as_bytes()) {
            Ok(_) => r.dict_us.push(micros(t.elapsed())),
            Err(err) => {
                ok = false;
                r.errors.push(format!("put {i}: {err}"));
            }
        }
        let t = Instant::now();
        let committed = std::fs::write(format!("{dir}/f{}", i % 4), content(3, w, i))
            .map_err(e)
            .and_then(|()| vol.commit().map_err(e));
        match committed {
            Ok(info) => {
                r.commits += 1;
                r.last_version = info.version;
                r.commit_us.push(micros(t.elapsed()));
            }
            Err(err) => {
                ok = false;
                r.errors.push(format!("commit {i}: {err}"));
            }
        }
        if ok {
            r.iterations += 1;
        }
        i += 1;
    }
    Ok(r)
}

impl Guest for Component {
    fn vol_main(starts: Vec<u64>) -> Result<(), String> {
        run_writers("vol-writer", &starts)
    }

    fn vol_writer(w: u32, start: u64) -> Result<(), String> {
        vol_writer(w, start).inspect_err(|msg| {
            let _ = say(format!("error vol-writer {w}: {msg}"));
        })
    }

    fn dict_main(starts: Vec<u64>) -> Result<(), String> {
        run_writers("dict-writer", &starts)
    }

    fn dict_writer(w: u32, start: u64) -> Result<(), String> {
        dict_writer(w, start).inspect_err(|msg| {
            let _ = say(format!("error dict-writer {w}: {msg}"));
        })
    }

    fn load_main(workers: u32, millis: u64) -> Vec<String> {
        let calls: Vec<_> = (0..workers)
            .map(|w| vessel_sdk::spawn_json("load-worker", &format!("[{w}, {millis}]")))
            .collect();
        calls
            .into_iter()
            .map(|c| match c.and_then(|c| c.get_json()) {
                Ok(json) => format!("ok:{json}"),
                Err(err) => format!("err:{err}"),
            })
            .collect()
    }

    fn load_worker(w: u32, millis: u64) -> WorkerReport {
        load_worker(w, millis).unwrap_or_else(|msg| WorkerReport {
            worker: w,
            iterations: 0,
            increments: 0,
            commits: 0,
            last_version: 0,
            errors: vec![msg],
            dict_us: Vec::new(),
            commit_us: Vec::new(),
        })
    }
}

export!(Component);
