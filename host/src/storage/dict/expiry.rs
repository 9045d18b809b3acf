//! The expiry rule every dict backend applies, written once.
//!
//! An entry without a TTL expires after the idle period without a read or a
//! write. So that a read need not write, it refreshes the stored access
//! time only once that is older than `idle / TOUCH_FRACTION`; so that no
//! entry expires early, the deadline is `access + idle + idle /
//! TOUCH_FRACTION`. An entry with a TTL expires at its own deadline, and
//! reads never move it.

/// A read refreshes the access time once it is older than idle / this.
pub const TOUCH_FRACTION: u64 = 32;

/// The slack added to the idle period (see the module docs).
pub fn slack(idle: u64) -> u64 {
    idle / TOUCH_FRACTION
}

/// Whether an entry last used at `access`, with TTL deadline `deadline`
/// (0: none), has expired at `now`.
pub fn expired(access: u64, deadline: u64, now: u64, idle: u64) -> bool {
    if deadline != 0 {
        now >= deadline
    } else {
        now >= access.saturating_add(idle).saturating_add(slack(idle))
    }
}

/// Whether a read at `now` must refresh the stored access time.
pub fn needs_touch(access: u64, deadline: u64, now: u64, idle: u64) -> bool {
    deadline == 0 && now.saturating_sub(access) >= slack(idle).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_entry_lives_its_period_plus_the_slack() {
        let idle = 3200;
        assert!(!expired(1000, 0, 1000 + idle + 99, idle));
        assert!(expired(1000, 0, 1000 + idle + 100, idle));
        assert!(!needs_touch(1000, 0, 1099, idle));
        assert!(needs_touch(1000, 0, 1100, idle));
    }

    #[test]
    fn a_ttl_is_its_own_deadline_and_reads_never_touch_it() {
        assert!(!expired(0, 500, 499, 10));
        assert!(expired(0, 500, 500, 10));
        assert!(!needs_touch(0, 500, 1_000_000, 10));
        // A zero idle period still touches at most once per ms.
        assert!(!needs_touch(5, 0, 5, 0));
    }
}
