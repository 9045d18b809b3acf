//! Exercises vessel's `Dict` through the SDK, one operation per call, and
//! reports what happened as text so tests can check the host's answers.
wit_bindgen::generate!({ world: "dictprobe", path: "wit" });

use vessel_sdk::{Dict, Error};

struct Component;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(name: &str, dict: &str, key: &str, arg: &str, n: i64) -> Result<String, Error> {
    if name == "open" {
        let d = Dict::open(dict, arg == "create")?;
        return Ok(format!("ok {}", d.name()));
    }
    let d = Dict::open(dict, true)?;
    Ok(match name {
        "put" => format!("ok v{}", d.put_raw(key, arg.as_bytes())?),
        "put-json" => format!("ok v{}", d.put(key, arg)?),
        "get" => match d.get_raw(key)? {
            Some(v) => format!("some {} v{}", text(&v.value), v.version),
            None => "none".into(),
        },
        // Typed read with a default, as `d.get(key, default)` in Modal.
        "get-or" => d.get::<String>(key)?.unwrap_or_else(|| arg.to_string()),
        "if-absent" => {
            if d.put_if_absent(key, arg)? {
                "wrote".into()
            } else {
                "skipped".into()
            }
        }
        "cas" => format!("ok v{}", d.put_if_version(key, arg.as_bytes(), n as u64)?),
        "ttl" => format!("ok v{}", d.put_with_ttl(key, arg.as_bytes(), n as u64)?),
        "incr" => format!("ok {}", d.increment(key, n)?),
        "incr-loop" => {
            for _ in 0..n {
                d.increment(key, 1)?;
            }
            "ok".into()
        }
        // Read-modify-write with compare-and-swap, retried until it lands.
        "cas-loop" => {
            for _ in 0..n {
                loop {
                    let won = match d.get_raw(key)? {
                        None => d.put_if_absent(key, &1)?,
                        Some(v) => {
                            let cur: i64 = serde_json_lite(&v.value);
                            match d.put_if_version(key, (cur + 1).to_string().as_bytes(), v.version) {
                                Ok(_) => true,
                                Err(Error::PreconditionFailed) => false,
                                Err(e) => return Err(e),
                            }
                        }
                    };
                    if won {
                        break;
                    }
                }
            }
            "ok".into()
        }
        "pop" => match d.pop_raw(key)? {
            Some(v) => format!("some {} v{}", text(&v.value), v.version),
            None => "none".into(),
        },
        "contains" => format!("{}", d.contains(key)?),
        "len" => format!("{}", d.len()?),
        "clear" => {
            d.clear()?;
            "ok".into()
        }
        "update" => {
            let entries: Vec<(String, Vec<u8>)> = (0..n)
                .map(|i| (format!("{key}{i:05}"), i.to_string().into_bytes()))
                .collect();
            d.update_raw(&entries)?;
            "ok".into()
        }
        "big-value" => format!("ok v{}", d.put_raw(key, &vec![7u8; n as usize])?),
        "long-key" => format!("ok v{}", d.put_raw(&"k".repeat(n as usize), b"x")?),
        "get-many" => {
            let keys: Vec<String> = arg.split(',').map(str::to_string).collect();
            let got = d.get_many_raw(&keys)?;
            got.iter()
                .map(|v| v.as_ref().map(|v| text(&v.value)).unwrap_or_else(|| "-".into()))
                .collect::<Vec<_>>()
                .join(",")
        }
        // All keys under `arg`, `n` per page, checking the pages.
        "scan" => {
            let mut keys: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let (items, next) = d.scan(arg, cursor.as_deref(), n as u32, false)?;
                if items.len() > n as usize {
                    return Ok(format!("page of {} over limit {n}", items.len()));
                }
                pages += 1;
                keys.extend(items.into_iter().map(|i| i.key));
                match next {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            format!("{pages} pages: {}", keys.join(","))
        }
        "lock" => {
            let Some(a) = d.lock(key, 60_000)? else {
                return Ok("busy".into());
            };
            if d.lock(key, 60_000)?.is_some() {
                return Ok("error: locked twice".into());
            }
            let t1 = a.token();
            a.renew(60_000)?;
            a.release()?;
            let Some(b) = d.lock(key, 60_000)? else {
                return Ok("error: not free after release".into());
            };
            let t2 = b.token();
            // Dropping the handle releases the lease.
            drop(b);
            let Some(c) = d.lock(key, 60_000)? else {
                return Ok("error: not free after drop".into());
            };
            let t3 = c.token();
            c.release()?;
            if t1 < t2 && t2 < t3 {
                format!("ok {t1}<{t2}<{t3}")
            } else {
                format!("error: tokens {t1} {t2} {t3}")
            }
        }
        "hold" => match d.lock(key, n as u64)? {
            // Keep the lease past this call: leak the handle on purpose.
            Some(l) => {
                let t = l.token();
                std::mem::forget(l);
                format!("ok {t}")
            }
            None => "busy".into(),
        },
        "limits" => {
            let l = d.limits();
            format!(
                "{} {} {} {} {}",
                l.max_key_bytes,
                l.max_value_bytes,
                l.max_update_entries,
                l.max_scan_limit,
                l.idle_expiry_seconds
            )
        }
        other => format!("unknown op {other}"),
    })
}

/// Parses a decimal counter (JSON number text) without pulling in serde_json.
fn serde_json_lite(b: &[u8]) -> i64 {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Guest for Component {
    fn op(name: String, dict: String, key: String, arg: String, n: i64) -> String {
        match run(&name, &dict, &key, &arg, n) {
            Ok(s) => s,
            Err(e) => format!("error: {e}"),
        }
    }
}

export!(Component);
