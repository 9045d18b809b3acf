//! The guest side of the dict benchmark (tests/benches/dict.rs): `dict.get`
//! in a loop inside one call (one hot key, or a sequence over a key set), so the per-get cost excludes the call's own;
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

    fn get_keys(dict: String, keys: Vec<u32>, read: bool) -> Result<u64, String> {
        let d = Dict::open(&dict, false).map_err(|e| e.to_string())?;
        let mut bytes = 0u64;
        let mut name = String::with_capacity(8);
        for i in keys {
            name.clear();
            std::fmt::Write::write_fmt(&mut name, format_args!("k{i:06}"))
                .map_err(|e| e.to_string())?;
            if !read {
                bytes += std::hint::black_box(name.len()) as u64;
                continue;
            }
            match d.get_raw(&name).map_err(|e| e.to_string())? {
                Some(v) => bytes += v.value.len() as u64,
                None => return Err(format!("{name} is missing")),
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
