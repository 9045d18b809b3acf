//! A guest that holds on to its container for as long as it is let, for
//! the hostile-guest tests of the host's deadline: every export waits in a
//! host call (a sleep, a poll, a lease loop, another function) rather than
//! in wasm code, where the epoch callback cannot reach it.
wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "test:hog/hog",
    generate_all,
});

use std::time::Duration;

use vessel::storage::dict::Dict;
use vessel::storage::functions::{remote, spawn};

struct Component;

/// Five hundred years, in nanoseconds.
const CENTURIES_NS: u64 = 500 * 365 * 24 * 3600 * 1_000_000_000;

impl Guest for Component {
    fn nap(ms: u64) -> u64 {
        std::thread::sleep(Duration::from_millis(ms));
        ms
    }

    fn poll_forever() -> u64 {
        let mut rounds = 0;
        loop {
            let far = wasip2::clocks::monotonic_clock::subscribe_duration(CENTURIES_NS);
            let ready = wasip2::io::poll::poll(&[&far]);
            rounds += ready.len() as u64;
            if rounds == u64::MAX {
                return rounds;
            }
        }
    }

    fn lease_loop(dict: String, key: String, sleep_ms: u64) -> Result<u32, String> {
        const TEN_MINUTES_MS: u64 = 600_000;
        let d = Dict::open(&dict, true).map_err(|e| format!("open {dict}: {e:?}"))?;
        let held = d
            .lock(&key, TEN_MINUTES_MS)
            .map_err(|e| format!("lock {key}: {e:?}"))?
            .ok_or_else(|| format!("{key} is already locked"))?;
        let mut tries = 0u32;
        loop {
            tries = tries.saturating_add(1);
            if d.lock(&key, TEN_MINUTES_MS)
                .map_err(|e| format!("lock {key} again: {e:?}"))?
                .is_some()
            {
                drop(held);
                return Ok(tries);
            }
            std::thread::sleep(Duration::from_millis(sleep_ms));
        }
    }

    fn call_and_wait(function: String, args_json: String, spawn_it: bool) -> Result<String, String> {
        let got = if spawn_it {
            spawn(&function, &args_json).and_then(|call| call.get())
        } else {
            remote(&function, &args_json)
        };
        got.map_err(|e| format!("{e:?}"))
    }

    fn scribble_then_hang(path: String, text: String, how: String) -> Result<(), String> {
        std::fs::write(&path, text).map_err(|e| format!("write {path}: {e}"))?;
        match how.as_str() {
            "nap" => std::thread::sleep(Duration::from_secs(24 * 3600)),
            "spin" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            other => return Err(format!("unknown way to hang: {other}")),
        }
        Ok(())
    }
}

export!(Component);
