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
