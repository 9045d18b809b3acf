//! Modal's dict entrypoint example on vessel:
//!
//! ```text
//! vessel run components/kv                         # cloud: dictionary
//! vessel run components/kv --key k --value v       # k: v
//! vessel run components/kv --key k --no-put        # k: v (still there)
//! ```
wit_bindgen::generate!({ world: "kv", path: "wit" });

use vessel_sdk::Dict;

struct Kv;

impl Guest for Kv {
    fn main(key: Option<String>, value: Option<String>, put: Option<bool>) {
        let key = key.unwrap_or_else(|| "cloud".into());
        let value = value.unwrap_or_else(|| "dictionary".into());
        let line = match run(&key, &value, put.unwrap_or(true)) {
            Ok(v) => format!("{key}: {v}"),
            Err(e) => format!("{key}: error: {e}"),
        };
        println!("{line}");
    }
}

fn run(key: &str, value: &str, put: bool) -> Result<String, vessel_sdk::Error> {
    let kv = Dict::from_name("kv", true)?;
    if put {
        kv.put(key, value)?;
    }
    Ok(kv
        .get::<String>(key)?
        .unwrap_or_else(|| "(missing)".into()))
}

export!(Kv);
