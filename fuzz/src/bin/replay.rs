//! Runs the fuzz targets without libFuzzer, on stable Rust: every input of
//! the checked-in corpus, then inputs mutated from it by a seeded
//! (deterministic) generator, for a time or run budget. A panic is a
//! finding: the input is saved under `artifacts/TARGET/` and the run fails.
//!
//! `cargo run --release --bin replay -- [--seconds N] [--runs N] [TARGET...]`
//!
//! `scripts/fuzz` uses `cargo fuzz` (coverage-guided) where it can build,
//! and this otherwise; both run the same target code (`vessel_fuzz`).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A xorshift generator: the same seed gives the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One mutation of `input` (or of a splice with `other`).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                if let Some(b) = out.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                if let Some(b) = out.get_mut(i) {
                    *b = rng.next() as u8;
                }
            }
            2 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            4 => {
                let cut = rng.below(out.len() + 1);
                out.truncate(cut);
            }
            5 if !other.is_empty() => {
                let at = rng.below(out.len() + 1);
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                let piece: Vec<u8> = other.iter().skip(from).take(len).copied().collect();
                out.splice(at..at, piece);
            }
            _ => {
                // Interesting values: lengths and counts at their edges.
                let edge: [u8; 8] = match rng.below(4) {
                    0 => [0xff; 8],
                    1 => [0; 8],
                    2 => [0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                    _ => [0, 0, 0, 1, 0, 0, 0, 0],
                };
                let at = rng.below(out.len() + 1);
                let n = 1 + rng.below(8);
                out.splice(at..at, edge.iter().take(n).copied());
            }
        }
    }
    out
}

fn corpus(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect()
}

/// Runs `target` on `input`; a panic is saved and reported.
fn run_one(name: &str, target: fn(&[u8]), input: &[u8], root: &Path) -> Result<(), String> {
    let outcome = std::panic::catch_unwind(|| target(input));
    if outcome.is_ok() {
        return Ok(());
    }
    let dir = root.join("artifacts").join(name);
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("crash-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    Err(format!("{name}: crash, input saved to {}", path.display()))
}

fn main() {
    let mut seconds = 30u64;
    let mut runs = u64::MAX;
    let mut only: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|v| v.parse().ok()).unwrap_or(seconds),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            other => only.push(other.to_owned()),
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut failed = false;
    for (i, (name, target)) in vessel_fuzz::TARGETS.into_iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let seeds = corpus(&root.join("corpus").join(name));
        if seeds.is_empty() {
            eprintln!("{name}: no corpus in fuzz/corpus/{name}");
            failed = true;
            continue;
        }
        let start = Instant::now();
        let mut done = 0u64;
        let mut result = Ok(());
        for (_, input) in &seeds {
            result = result.and_then(|()| run_one(name, target, input, &root));
            done += 1;
        }
        let mut rng = Rng(0x5eed_0000_0000_0001 ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9));
        let budget = Duration::from_secs(seconds);
        while result.is_ok() && done < runs && start.elapsed() < budget {
            let a = &seeds[rng.below(seeds.len())].1;
            let b = &seeds[rng.below(seeds.len())].1;
            let input = mutate(&mut rng, a, b);
            result = run_one(name, target, &input, &root);
            done += 1;
        }
        let detail = if name == "json_to_val" {
            let [built, converted, refused] = vessel_fuzz::JSON_STATS
                .each_ref()
                .map(|a| a.load(Ordering::Relaxed));
            format!(
                " ({built} types built, {converted} values converted and back, {refused} refused)"
            )
        } else {
            String::new()
        };
        match result {
            Ok(()) => println!(
                "{name}: {done} runs ({} corpus inputs) in {:.1} s, no crash{detail}",
                seeds.len(),
                start.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
