//! A wasi:keyvalue component with no vessel imports: bindings of its own
//! against the vendored wasi:keyvalue@0.2.0-draft2 WIT, as any existing
//! keyvalue component has. One operation per call, reported as text so
//! tests can check the host's answers.
wit_bindgen::generate!({
    path: ["../../../wit/deps/keyvalue", "wit"],
    world: "test:kvprobe/kvprobe",
    generate_all,
});

use wasi::keyvalue::atomics::{self, Cas, CasError};
use wasi::keyvalue::batch;
use wasi::keyvalue::store::{self, Bucket, Error};

struct Component;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show_error(e: &Error) -> String {
    match e {
        Error::NoSuchStore => "error: no-such-store".into(),
        Error::AccessDenied => "error: access-denied".into(),
        Error::Other(m) => format!("error: other: {m}"),
    }
}

/// `k1=v1,k2=v2` as pairs.
fn pairs(arg: &str) -> Vec<(String, Vec<u8>)> {
    arg.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.as_bytes().to_vec()),
            None => (p.to_string(), Vec::new()),
        })
        .collect()
}

/// `k1,k2` as keys.
fn keys(arg: &str) -> Vec<String> {
    arg.split(',')
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect()
}

/// A counter as the host stores it: decimal text; absent is 0.
fn counter(v: Option<Vec<u8>>) -> Result<i64, String> {
    match v {
        None => Ok(0),
        Some(b) => text(&b)
            .parse()
            .map_err(|_| format!("error: not a counter: {:?}", text(&b))),
    }
}

/// Adds one to the counter at `key` with compare-and-swap, retrying on
/// the fresh handle a lost swap returns. Returns how many swaps lost.
fn cas_add_one(b: &Bucket, key: &str) -> Result<u64, String> {
    let mut cas = Cas::new(b, key).map_err(|e| show_error(&e))?;
    let mut lost = 0;
    loop {
        let next = counter(cas.current().map_err(|e| show_error(&e))?)? + 1;
        match atomics::swap(cas, next.to_string().as_bytes()) {
            Ok(()) => return Ok(lost),
            Err(CasError::CasFailed(fresh)) => {
                lost += 1;
                cas = fresh;
            }
            Err(CasError::StoreError(e)) => return Err(show_error(&e)),
        }
    }
}

fn run(name: &str, bucket: &str, key: &str, arg: &str, n: i64) -> Result<String, Error> {
    let b = store::open(bucket)?;
    Ok(match name {
        "open" => "ok".into(),
        "get" => match b.get(key)? {
            Some(v) => format!("some {}", text(&v)),
            None => "none".into(),
        },
        "set" => {
            b.set(key, arg.as_bytes())?;
            "ok".into()
        }
        "delete" => {
            b.delete(key)?;
            "ok".into()
        }
        "exists" => b.exists(key)?.to_string(),
        // One page: `arg` is the cursor ("" for none).
        "list-page" => {
            let page = b.list_keys((!arg.is_empty()).then_some(arg))?;
            format!(
                "ok {} cursor={}",
                page.keys.join(","),
                page.cursor.as_deref().unwrap_or("none")
            )
        }
        // Every key, following the cursor: "ok KEYS PAGES" and whether the
        // keys came sorted without repeats.
        "list-all" => {
            let mut all: Vec<String> = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let page = b.list_keys(cursor.as_deref())?;
                pages += 1;
                all.extend(page.keys);
                match page.cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let ordered = all.windows(2).all(|w| w[0] < w[1]);
            format!("ok {} {pages} ordered={ordered}", all.len())
        }
        // Writes `n` keys `{key}{i:05}` in one set-many.
        "fill" => {
            let kv: Vec<(String, Vec<u8>)> = (0..n)
                .map(|i| (format!("{key}{i:05}"), b"x".to_vec()))
                .collect();
            batch::set_many(&b, &kv)?;
            "ok".into()
        }
        "incr" => format!("ok {}", atomics::increment(&b, key, n)?),
        "incr-loop" => {
            for _ in 0..n {
                atomics::increment(&b, key, 1)?;
            }
            "ok".into()
        }
        // A swap with nothing in between: it must win.
        "cas" => {
            let cas = Cas::new(&b, key)?;
            let was = cas.current()?.map(|v| text(&v));
            match atomics::swap(cas, arg.as_bytes()) {
                Ok(()) => format!("ok was={}", was.as_deref().unwrap_or("none")),
                Err(CasError::CasFailed(_)) => "cas-failed".into(),
                Err(CasError::StoreError(e)) => show_error(&e),
            }
        }
        // Another write lands between `cas.new` and `swap`: the swap must
        // lose and hand back a handle that sees that write; a swap on it
        // then wins.
        "cas-race" => {
            let cas = Cas::new(&b, key)?;
            b.set(key, b"intruder")?;
            match atomics::swap(cas, arg.as_bytes()) {
                Ok(()) => "error: the stale swap won".into(),
                Err(CasError::StoreError(e)) => show_error(&e),
                Err(CasError::CasFailed(fresh)) => {
                    let seen = fresh.current()?.map(|v| text(&v));
                    match atomics::swap(fresh, arg.as_bytes()) {
                        Ok(()) => format!(
                            "lost, fresh handle saw {}, retry won",
                            seen.as_deref().unwrap_or("none")
                        ),
                        Err(CasError::CasFailed(_)) => "error: the retry lost".into(),
                        Err(CasError::StoreError(e)) => show_error(&e),
                    }
                }
            }
        }
        // A value written back unchanged still bumps the version: a handle
        // taken before must lose (versions, not values: no ABA).
        "cas-aba" => {
            let cas = Cas::new(&b, key)?;
            let cur = b.get(key)?.unwrap_or_default();
            b.set(key, &cur)?;
            match atomics::swap(cas, arg.as_bytes()) {
                Ok(()) => "error: the swap won after an ABA write".into(),
                Err(CasError::CasFailed(_)) => "lost".into(),
                Err(CasError::StoreError(e)) => show_error(&e),
            }
        }
        "cas-loop" => {
            let mut lost = 0;
            for _ in 0..n {
                match cas_add_one(&b, key) {
                    Ok(l) => lost += l,
                    Err(e) => return Ok(e),
                }
            }
            format!("ok lost={lost}")
        }
        "set-many" => {
            batch::set_many(&b, &pairs(arg))?;
            "ok".into()
        }
        "get-many" => {
            let got = batch::get_many(&b, &keys(arg))?;
            got.iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={}", text(v)),
                    None => format!("{k}=none"),
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        "delete-many" => {
            batch::delete_many(&b, &keys(arg))?;
            "ok".into()
        }
        // `n` keys at once, to cross the batch limit.
        "get-many-n" => {
            let ks: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            format!("ok {}", batch::get_many(&b, &ks)?.len())
        }
        other => format!("error: unknown operation {other}"),
    })
}

impl Guest for Component {
    fn op(name: String, bucket: String, key: String, arg: String, n: i64) -> String {
        run(&name, &bucket, &key, &arg, n).unwrap_or_else(|e| show_error(&e))
    }
}

export!(Component);
