//! A `wasi:cli/run` command for the crash tests: `dictloop DICT START`
//! writes `k{i}` = `v{i}` and increments `counter`, for i = START, START+1,
//! ... until it is killed, and prints `ack {i} {counter}` after both writes
//! returned, that is, once they are durable. Each ack is flushed at once.
use std::io::Write;

use vessel_sdk::Dict;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(start)) = (args.first(), args.get(1)) else {
        eprintln!("usage: dictloop DICT START");
        std::process::exit(2);
    };
    let Ok(start) = start.parse::<u64>() else {
        eprintln!("START must be a whole number");
        std::process::exit(2);
    };
    let dict = match Dict::open(name, true) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("open {name}: {e}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    for i in start.. {
        let key = format!("k{i:08}");
        if let Err(e) = dict.put_raw(&key, format!("v{i}").as_bytes()) {
            eprintln!("put {key}: {e}");
            std::process::exit(1);
        }
        let n = match dict.increment("counter", 1) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("increment: {e}");
                std::process::exit(1);
            }
        };
        if writeln!(out, "ack {i} {n}")
            .and_then(|()| out.flush())
            .is_err()
        {
            std::process::exit(1);
        }
    }
}
