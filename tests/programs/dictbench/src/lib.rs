//! The guest side of the dict benchmark (tests/benches/dict.rs): `dict.get`
//! in a loop inside one call, so the per-get cost excludes the call's own;
//! and durable `dict.put`s, each timed by the guest.
wit_bindgen::generate!({ world: "dictbench", path: "wit" });

use vessel_sdk::Dict;

struct Component;

impl Guest for Component {
    fn get_loop(dict: String, key: String, n: u32) -> Result<u64, String> {
        let d = Dict::open(&dict, false).map_err(|e| e.to_string())?;
        let mut bytes = 0u64;
        for _ in 0..n {
            match d.get_raw(&key).map_err(|e| e.to_string())? {
                Some(v) => bytes += v.value.len() as u64,
                None => return Err(format!("{key} is missing")),
            }
        }
        Ok(bytes)
    }

    fn put_loop(dict: String, prefix: String, n: u32, len: u32) -> Result<Vec<u64>, String> {
        let d = Dict::open(&dict, false).map_err(|e| e.to_string())?;
        let value = vec![7u8; len as usize];
        let mut took = Vec::with_capacity(n as usize);
        for i in 0..n {
            let key = format!("{prefix}{i}");
            let t = std::time::Instant::now();
            d.put_raw(&key, &value).map_err(|e| e.to_string())?;
            took.push(t.elapsed().as_nanos() as u64);
        }
        Ok(took)
    }
}

export!(Component);
