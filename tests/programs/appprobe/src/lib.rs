//! Functions for the app tests: warm reuse, calls between functions,
//! failures in callees, grants.
wit_bindgen::generate!({ world: "appprobe", path: "wit" });

use std::sync::atomic::{AtomicU32, Ordering};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Component;

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

impl Guest for Component {
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn count() -> u32 {
        CALLS.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count_read(path: String) -> String {
        let n = CALLS.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!("count-read call {n}");
        match std::fs::read_to_string(&path) {
            Ok(text) => format!("{n} {text}"),
            Err(err) => format!("{n} {err}"),
        }
    }

    fn slow_square(x: u32, ms: Option<u64>) -> u32 {
        std::thread::sleep(std::time::Duration::from_millis(ms.unwrap_or(0)));
        x.wrapping_mul(x)
    }

    fn call(function: String, arguments: String) -> Result<String, String> {
        vessel_sdk::remote_json(&function, &arguments).map_err(|err| match err {
            vessel_sdk::Error::Raised(ref r) => format!(
                "raised type={} message={} traceback={:?} ({err})",
                r.type_name, r.message, r.traceback
            ),
            other => e(other),
        })
    }

    fn fan_out(function: String, inputs: Vec<String>) -> Vec<String> {
        let calls: Vec<_> = inputs
            .iter()
            .map(|args| vessel_sdk::spawn_json(&function, args))
            .collect();
        calls
            .into_iter()
            .map(|c| match c.and_then(|c| c.get_json()) {
                Ok(json) => format!("ok:{json}"),
                Err(err) => format!("err:{err}"),
            })
            .collect()
    }

    fn map_square(xs: Vec<u32>) -> Result<Vec<u32>, String> {
        vessel_sdk::map("square", xs).map_err(e)
    }

    fn get_twice(function: String, arguments: String) -> Vec<String> {
        let call = match vessel_sdk::spawn_json(&function, &arguments) {
            Ok(c) => c,
            Err(err) => return vec![format!("spawn:{err}")],
        };
        (0..2)
            .map(|_| match call.get_json() {
                Ok(json) => format!("ok:{json}"),
                Err(err) => format!("err:{err}"),
            })
            .collect()
    }

    fn recurse(function: String, depth: u32) -> Result<u32, String> {
        if depth == 0 {
            return Ok(0);
        }
        let args = serde_json::json!([function, depth - 1]).to_string();
        let out: serde_json::Value =
            serde_json::from_str(&vessel_sdk::remote_json(&function, &args).map_err(e)?)
                .map_err(e)?;
        // result<u32, string> arrives as {"ok": n} or {"err": text}.
        match (out.get("ok").and_then(|v| v.as_u64()), out.get("err")) {
            (Some(d), _) => Ok(u32::try_from(d).unwrap_or(u32::MAX).saturating_add(1)),
            (None, Some(err)) => Err(err.as_str().unwrap_or("?").to_owned()),
            (None, None) => Err(format!("unexpected result {out}")),
        }
    }

    fn spin() {
        let mut x = 0u64;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    fn bomb() -> u32 {
        let mut hold: Vec<Vec<u8>> = Vec::new();
        loop {
            hold.push(vec![1u8; 16 << 20]);
            std::hint::black_box(&hold);
        }
    }

    fn boom(msg: String) {
        panic!("{msg}");
    }

    fn fail_with(type_name: String, message: String) {
        vessel_sdk::fail(&type_name, &message)
    }

    fn open_dict(name: String) -> Result<(), String> {
        vessel_sdk::Dict::open(&name, true).map(|_| ()).map_err(e)
    }

    fn open_volume(name: String) -> Result<(), String> {
        vessel_sdk::Volume::from_name(&name, true)
            .map(|_| ())
            .map_err(e)
    }

    fn put_text(path: String, text: String) -> Result<(), String> {
        std::fs::write(path, text).map_err(e)
    }

    fn put_then_call(
        path: String,
        text: String,
        function: String,
        arguments: String,
    ) -> Result<String, String> {
        std::fs::write(path, text).map_err(e)?;
        vessel_sdk::remote_json(&function, &arguments).map_err(e)
    }

    fn wait_for_file(mount: String, path: String, timeout_ms: u64) -> Result<String, String> {
        let volume = vessel_sdk::Volume::mounted(&mount).map_err(e)?;
        let start = std::time::Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Ok(text);
            }
            if start.elapsed().as_millis() > u128::from(timeout_ms) {
                return Err(format!("{path} did not appear in {timeout_ms} ms"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            volume.reload().map_err(e)?;
        }
    }

    fn get_text(path: String) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(e)
    }
}

export!(Component);
