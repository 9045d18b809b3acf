//! Time as the stores see it, injectable so tests can move it by hand.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> u64;

    /// A time no earlier than [`now_ms`](Clock::now_ms) would return now,
    /// read more cheaply than it. Expiry and refresh-due only become true
    /// as time passes, so a read that finds an entry neither expired nor
    /// due a refresh at this bound knows the same holds now, and never
    /// needs the precise clock (a `get` is a few hundred nanoseconds, and
    /// the precise clock was a tenth of it).
    fn now_ms_upper_bound(&self) -> u64 {
        self.now_ms()
    }
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }

    fn now_ms_upper_bound(&self) -> u64 {
        coarse::upper_bound_ms().unwrap_or_else(|| self.now_ms())
    }
}

/// Linux's `CLOCK_REALTIME_COARSE`: the wall time as of the last timer
/// tick, read without touching the clock hardware. It trails the precise
/// clock by at most a tick (1 to 10 ms), so adding [`MARGIN_MS`] to it
/// gives a time that is surely not before the precise one.
#[cfg(target_os = "linux")]
mod coarse {
    use std::sync::OnceLock;

    /// Far more than a tick: a read within this of an expiry or a refresh
    /// takes the precise clock, which costs nothing worth counting.
    const MARGIN_MS: u64 = 50;
    /// A resolution over this (no kernel has one) turns the bound off.
    const MAX_RESOLUTION_NS: i64 = 10_000_000;

    fn read(
        f: unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> libc::c_int,
    ) -> Option<libc::timespec> {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the call.
        let rc = unsafe { f(libc::CLOCK_REALTIME_COARSE, &mut ts) };
        (rc == 0).then_some(ts)
    }

    /// Whether this kernel has the coarse clock at a tick-sized resolution;
    /// asked once.
    fn usable() -> bool {
        static USABLE: OnceLock<bool> = OnceLock::new();
        *USABLE.get_or_init(|| {
            read(libc::clock_getres)
                .is_some_and(|r| r.tv_sec == 0 && r.tv_nsec <= MAX_RESOLUTION_NS)
        })
    }

    pub(super) fn upper_bound_ms() -> Option<u64> {
        if !usable() {
            return None;
        }
        let ts = read(libc::clock_gettime)?;
        let secs = u64::try_from(ts.tv_sec).ok()?;
        let ms = u64::try_from(ts.tv_nsec).ok()? / 1_000_000;
        secs.checked_mul(1000)?
            .checked_add(ms)?
            .checked_add(MARGIN_MS)
    }
}

#[cfg(not(target_os = "linux"))]
mod coarse {
    pub(super) fn upper_bound_ms() -> Option<u64> {
        None
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(start_ms)))
    }
    pub fn advance_ms(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set_ms(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_bound_is_never_before_the_clock_and_close_to_it() {
        let c = SystemClock;
        for _ in 0..10_000 {
            let before = c.now_ms();
            let bound = c.now_ms_upper_bound();
            let after = c.now_ms();
            assert!(
                bound >= before,
                "bound {bound} is before the clock {before}"
            );
            assert!(
                bound <= after + 50,
                "bound {bound} is far past the clock {after}"
            );
        }
    }

    #[test]
    fn a_manual_clock_bounds_itself() {
        let c = ManualClock::new(5);
        assert_eq!(c.now_ms_upper_bound(), 5);
    }
}
