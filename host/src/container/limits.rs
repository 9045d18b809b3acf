//! One memory budget per container: every linear memory and every table of
//! every core instance in the container's store counts against a single
//! budget (`--memory`, a function's `memory`), and the numbers of core
//! instances, memories and tables are capped.
//!
//! wasmtime asks the store's [`ResourceLimiter`] before it creates or grows
//! a memory or a table, one at a time and with that one's sizes only; a
//! limit checked per memory lets a component whose core module declares 8
//! memories hold 8 times its limit. [`Limiter`] keeps the running sum
//! instead. Nothing in a store is ever freed before the store goes, so the
//! sum only grows.
//!
//! The counts matter apart from bytes: each memory reserves gigabytes of
//! the host's address space however small it is, and each instance and
//! table costs host memory of its own.

use wasmtime::ResourceLimiter;

/// The bytes one table element counts for: wasmtime keeps a `funcref` or
/// `externref` table as an array of pointers (8 bytes on 64-bit hosts).
pub const TABLE_ELEMENT_BYTES: usize = 8;

/// Default most core instances in one container. What the guests the
/// tests build need (measured: instantiating each under lower caps): a
/// Python guest (componentize-py 0.25.1) 14, a JavaScript guest
/// (componentize-js) 4, a Rust guest 3 (1 without WASI). A hundred leaves
/// room for bigger toolchains; each instance costs host memory outside
/// the budget.
pub const DEFAULT_MAX_INSTANCES: usize = 100;

/// Default most linear memories in one container. Every guest the tests
/// build has 1, Python and JavaScript included. Each memory reserves 4 GiB
/// of the host's address space however small it is, so a container may
/// reserve at most 32 GiB.
pub const DEFAULT_MAX_MEMORIES: usize = 8;

/// Default most tables in one container (the guests the tests build have
/// 1 or 2). Their elements count against the byte budget; the count bounds
/// what each table costs besides.
pub const DEFAULT_MAX_TABLES: usize = 32;

/// The caps a [`Limiter`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caps {
    /// Most bytes of all memories and tables together.
    pub bytes: usize,
    pub instances: usize,
    pub memories: usize,
    pub tables: usize,
}

/// What a refused growth asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The bytes of all memories and tables the growth would have made.
    pub wanted: usize,
}

/// The store's resource limiter: the budget and the counts, and the last
/// refusal since the call began, so a trap that follows can say the guest
/// ran out of memory. A refusal is not a trap by itself: `memory.grow`
/// and `table.grow` return -1 and a guest may cope.
#[derive(Debug)]
pub(crate) struct Limiter {
    caps: Caps,
    /// Bytes granted so far to all memories and tables of the store.
    used: usize,
    pub refused: Option<Refusal>,
}

impl Limiter {
    pub fn new(caps: Caps) -> Self {
        Limiter {
            caps,
            used: 0,
            refused: None,
        }
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Bytes of memories and tables the store holds (as granted: a growth
    /// the host then failed to allocate stays counted).
    pub fn used(&self) -> usize {
        self.used
    }

    /// Grants a memory or table growth from `current` to `desired` units
    /// of `unit` bytes each if the budget has room. Growth past the
    /// declared `maximum` is refused without a charge: wasmtime refuses it
    /// only after asking. What can still fail after a grant is the host's
    /// allocation, and the grant then stays charged (see
    /// `memory_grow_failed`).
    fn grow(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
        unit: usize,
    ) -> bool {
        if maximum.is_some_and(|max| desired > max) {
            return false;
        }
        let more = desired.saturating_sub(current).saturating_mul(unit);
        let total = self.used.saturating_add(more);
        if total > self.caps.bytes {
            self.refused = Some(Refusal { wanted: total });
            return false;
        }
        self.used = total;
        true
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired, maximum, 1))
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // No refund: wasmtime also reports growth that never asked the
        // limiter (past what the memory's index type can address), and a
        // refund then would free bytes another memory holds. Counting a
        // failed allocation errs on the side of the host.
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired, maximum, TABLE_ELEMENT_BYTES))
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // As for memories: no refund.
        Ok(())
    }

    fn instances(&self) -> usize {
        self.caps.instances
    }

    fn tables(&self) -> usize {
        self.caps.tables
    }

    fn memories(&self) -> usize {
        self.caps.memories
    }
}

/// A count cap that stopped an instantiation: wasmtime's error says
/// `resource limit exceeded: memory count too high at 17`.
pub(crate) fn count_exceeded(e: &wasmtime::Error, caps: Caps) -> Option<(&'static str, usize)> {
    let text = format!("{e:#}");
    let rest = text.split("resource limit exceeded: ").nth(1)?;
    [
        ("instance", "core instances", caps.instances),
        ("memory", "memories", caps.memories),
        ("table", "tables", caps.tables),
    ]
    .into_iter()
    .find(|(desc, _, _)| rest.starts_with(&format!("{desc} count too high")))
    .map(|(_, what, limit)| (what, limit))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limiter(bytes: usize) -> Limiter {
        Limiter::new(Caps {
            bytes,
            instances: 10,
            memories: 10,
            tables: 10,
        })
    }

    #[test]
    fn memories_and_tables_share_one_budget() {
        let mut l = limiter(100 << 20);
        // Two memories made at 40 MiB each: 80 MiB.
        assert!(l.memory_growing(0, 40 << 20, None).unwrap());
        assert!(l.memory_growing(0, 40 << 20, None).unwrap());
        // Either growing by 30 MiB would make 110.
        assert!(!l.memory_growing(40 << 20, 70 << 20, None).unwrap());
        assert_eq!(l.refused, Some(Refusal { wanted: 110 << 20 }));
        assert_eq!(l.used(), 80 << 20);
        // A table of 2 Mi elements is 16 MiB: past the 20 left.
        assert!(l.table_growing(0, 1 << 20, None).unwrap());
        assert_eq!(l.used(), (80 << 20) + (8 << 20));
        assert!(!l.table_growing(1 << 20, 3 << 20, None).unwrap());
        // What is left still grows a memory.
        assert!(l.memory_growing(40 << 20, 52 << 20, None).unwrap());
        assert_eq!(l.used(), 100 << 20);
        assert!(!l.memory_growing(0, 64 << 10, None).unwrap());
    }

    #[test]
    fn growth_past_a_declared_maximum_is_refused_without_a_charge() {
        let mut l = limiter(100 << 20);
        assert!(l.memory_growing(0, 1 << 20, Some(2 << 20)).unwrap());
        assert!(!l.memory_growing(1 << 20, 3 << 20, Some(2 << 20)).unwrap());
        assert!(!l.table_growing(0, 11, Some(10)).unwrap());
        assert_eq!(l.used(), 1 << 20);
        assert_eq!(l.refused, None);
        // A failure reported afterwards refunds nothing.
        l.memory_grow_failed(wasmtime::Error::msg("x")).unwrap();
        assert_eq!(l.used(), 1 << 20);
    }

    #[test]
    fn sizes_that_overflow_are_refused() {
        let mut l = limiter(usize::MAX - 1);
        assert!(!l.table_growing(0, usize::MAX, None).unwrap());
        assert!(!l.memory_growing(0, usize::MAX, None).unwrap());
        assert_eq!(l.used(), 0);
    }

    #[test]
    fn count_errors_name_the_cap() {
        let caps = limiter(1).caps();
        let e = wasmtime::Error::msg("resource limit exceeded: memory count too high at 11");
        assert_eq!(count_exceeded(&e, caps), Some(("memories", 10)));
        let e = wasmtime::Error::msg("resource limit exceeded: instance count too high at 11")
            .context("instantiating");
        assert_eq!(count_exceeded(&e, caps), Some(("core instances", 10)));
        assert_eq!(count_exceeded(&wasmtime::Error::msg("other"), caps), None);
    }
}
