//! A guest that floods its host with output: gibibytes of stdout or
//! stderr, large results, and naps for spawn storms (the serve tests of
//! issue #17).
wit_bindgen::generate!({ world: "noisy", path: "wit" });

use std::io::Write;

struct Component;

impl Guest for Component {
    fn flood(mib: u32, to_stderr: bool) -> u64 {
        let chunk = vec![b'x'; 64 << 10];
        let mut written = 0u64;
        for _ in 0..u64::from(mib) * 16 {
            let r = if to_stderr {
                std::io::stderr().write_all(&chunk)
            } else {
                std::io::stdout().write_all(&chunk)
            };
            if r.is_err() {
                break;
            }
            written += chunk.len() as u64;
        }
        let _ = std::io::stdout().flush();
        written
    }

    fn nap(x: u32, ms: u32) -> u32 {
        std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
        x
    }

    fn big_result(kib: u32) -> String {
        "y".repeat(kib as usize * 1024)
    }

    fn say(text: String, times: u32) {
        for _ in 0..times {
            println!("{text}");
        }
        eprintln!("{text} (stderr)");
    }
}

export!(Component);
