//! What the benches share to take and report their figures.

use std::time::Duration;

/// The median of `v` (the upper one of an even count); `v` must not be
/// empty.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2)
        .copied()
        .unwrap_or_else(|| panic!("the median of no timings"))
}

/// The number in environment variable `name`, else `default` (a bench's
/// size or duration, set for a longer run).
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The least, middle and greatest of repeated timings of one figure: what
/// every bench row reports, so a noisy machine shows as a wide spread
/// instead of hiding in one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    pub min: Duration,
    pub median: Duration,
    pub max: Duration,
}

impl Spread {
    /// The spread of `v`, which must not be empty.
    pub fn of(mut v: Vec<Duration>) -> Spread {
        v.sort();
        let (Some(&min), Some(&max)) = (v.first(), v.last()) else {
            panic!("the spread of no timings")
        };
        Spread {
            min,
            median: median(v),
            max,
        }
    }

    /// Times `runs` calls of `f` (given the run's index) after one warm-up
    /// call, not counted, given `usize::MAX`.
    pub fn time(runs: usize, mut f: impl FnMut(usize)) -> Spread {
        f(usize::MAX);
        Spread::of(
            (0..runs)
                .map(|i| {
                    let t = std::time::Instant::now();
                    f(i);
                    t.elapsed()
                })
                .collect(),
        )
    }

    /// `min/median/max ms`, three decimals each.
    pub fn ms(&self) -> String {
        format!(
            "{:.3}/{:.3}/{:.3} ms",
            self.min.as_secs_f64() * 1e3,
            self.median.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }

    /// Each of the three divided by `n` (per-operation figures of timed
    /// loops of `n` operations).
    pub fn per(self, n: u32) -> Spread {
        Spread {
            min: self.min / n,
            median: self.median / n,
            max: self.max / n,
        }
    }
}

/// Where a bench builds its guests: `guests-bench` in the target dir cargo
/// uses for this run (`CARGO_TARGET_DIR`, else the workspace's `target`).
pub fn bench_guest_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap_or_else(|| std::path::Path::new("."))
            .join("target"),
    }
    .join("guests-bench")
}

/// CPU time this process has used, user and system, all threads.
pub fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the call to fill.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Prints one bench row: our figure beside the baseline measured in the
/// same run, with their ratio (of medians).
pub fn row(label: &str, ours: Spread, base_label: &str, base: Spread) {
    println!(
        "{label:<52} {:>26}   {base_label:<44} {:>26}   ratio {:8.3}x",
        ours.ms(),
        base.ms(),
        ours.median.as_secs_f64() / base.median.as_secs_f64().max(1e-12)
    );
}
