//! The memory limit of one step, over everything the step allocates in wasm:
//! every linear memory and every table of every instance, summed.
//!
//! wasmtime enables multi-memory, and a component is many core instances,
//! so a limit per memory is no limit: eight memories of 100 MiB each pass a
//! 128 MiB check that looks at one memory at a time. [`Limiter`] keeps a
//! running total in bytes over the whole `Store` (nothing a step allocates
//! is freed before the step ends, so the total only grows) and refuses a
//! growth that would take it past [`Limiter::max_memory`]. Table elements
//! count at [`TABLE_ELEMENT_BYTES`] each. The number of instances, memories
//! and tables is capped by small constants, reported as their own
//! [`super::Limit`]s. Read `mod.rs` for how a refusal becomes an outcome.
//!
//! The programs of a shell pipeline run at once, one `Store` each: their
//! limiters share one pool ([`Limiter::sharing`]), so together they stay
//! within the step's limit; a program's bytes go back to the pool when it
//! ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes one table element is counted as: wasmtime stores each element
/// (a function or GC reference) in a pointer-sized slot.
pub const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

/// Most core instances one step may create. A Rust wasip2 command is about
/// five (the program, the preview1 adapter, shims); a dynamically linked
/// component (one instance per shared library) a few dozen. Each instance
/// costs host memory outside the memory limit (its context, its tables of
/// imports), so the count is what bounds that cost. wasmtime's default is
/// 10,000.
pub const MAX_INSTANCES: usize = 256;

/// Most linear memories one step may create. Programs have one each; a
/// composition of components one per component. Each memory reserves
/// wasmtime's address-space reservation (4 GiB plus guard pages on 64-bit
/// hosts) whatever its size, so the count is what bounds address space.
pub const MAX_MEMORIES: usize = 64;

/// Most tables one step may create: about one per instance (the indirect
/// call table), with room for modules that use a few. Their elements count
/// against the memory limit; the count bounds the per-table overhead.
pub const MAX_TABLES: usize = 512;

/// The resource limiter of one step's `Store`. See the module docs.
#[derive(Debug)]
pub struct Limiter {
    max_memory: usize,
    /// Bytes granted to this store.
    used: usize,
    /// Bytes granted to every store sharing the limit, this one included.
    pool: Arc<AtomicUsize>,
    hit: bool,
}

impl Limiter {
    /// A limiter that lets the step's memories and tables reach
    /// `max_memory` bytes in all.
    pub fn new(max_memory: usize) -> Limiter {
        Limiter::sharing(max_memory, Arc::default())
    }

    /// A limiter counting against `pool` with every other limiter on it:
    /// the stores together stay within `max_memory`.
    pub fn sharing(max_memory: usize, pool: Arc<AtomicUsize>) -> Limiter {
        Limiter {
            max_memory,
            used: 0,
            pool,
            hit: false,
        }
    }

    /// Sets the limit (the step's, when the store starts).
    pub fn set_max_memory(&mut self, max_memory: usize) {
        self.max_memory = max_memory;
    }

    /// The limit, bytes.
    pub fn max_memory(&self) -> usize {
        self.max_memory
    }

    /// Bytes of memories and tables granted so far.
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether a growth was refused because of the limit: a failed
    /// allocation is then reported as "the step hit its memory limit"
    /// rather than as a bare trap.
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Counts `bytes` up front (shared memories at their maximum, which
    /// wasmtime grows without asking the limiter); false if that is past
    /// the limit.
    pub fn reserve(&mut self, bytes: usize) -> bool {
        self.grow(0, bytes, None)
    }

    /// Grants `current -> desired` bytes if the total stays within the limit.
    fn grow(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> bool {
        // Past the memory's or table's own maximum the growth fails anyway
        // (and wasm sees -1): not the step's limit, and nothing to count.
        if maximum.is_some_and(|max| desired > max) {
            return false;
        }
        let delta = desired.saturating_sub(current);
        let granted = self
            .pool
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |total| {
                total.checked_add(delta).filter(|t| *t <= self.max_memory)
            });
        if granted.is_err() {
            self.hit = true;
            return false;
        }
        // A growth granted here that wasmtime then fails to make (the OS
        // refusing memory) stays counted: the count errs on the side of
        // the limit.
        self.used += delta;
        true
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        // The store is gone, and its memories with it.
        self.pool.fetch_sub(self.used, Ordering::SeqCst);
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired, maximum))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let bytes = |n: usize| n.saturating_mul(TABLE_ELEMENT_BYTES);
        let maximum = maximum.map(bytes);
        Ok(self.grow(bytes(current), bytes(desired), maximum))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}

/// Which cap a wasmtime instantiation error reports, if it is one.
///
/// wasmtime enforces the counts itself (before any memory is made) and
/// reports them only as a message, "resource limit exceeded: instance count
/// too high at N"; the test `instance_memory_and_table_caps_are_reported`
/// pins the wording, so a wasmtime upgrade that changes it fails there.
pub(super) fn cap_hit(error: &wasmtime::Error) -> Option<super::Limit> {
    let text = format!("{error:?}");
    let (_, rest) = text.split_once("resource limit exceeded: ")?;
    if rest.starts_with("instance count") {
        Some(super::Limit::Instances(MAX_INSTANCES))
    } else if rest.starts_with("memory count") {
        Some(super::Limit::Memories(MAX_MEMORIES))
    } else if rest.starts_with("table count") {
        Some(super::Limit::Tables(MAX_TABLES))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter as _;

    #[test]
    fn the_limit_covers_the_sum_of_memories_and_tables() {
        let mut l = Limiter::new(100 << 20);
        assert!(l.memory_growing(0, 60 << 20, None).unwrap());
        // A second memory of 60 MiB is within a per-memory limit of 100 MiB
        // but not within the step's.
        assert!(!l.memory_growing(0, 60 << 20, None).unwrap());
        assert!(l.hit());
        assert_eq!(l.used(), 60 << 20);
        // Table elements count too.
        let elements = (40 << 20) / TABLE_ELEMENT_BYTES;
        assert!(l.table_growing(0, elements, None).unwrap());
        assert!(!l.table_growing(elements, elements + 1, None).unwrap());
    }

    #[test]
    fn stores_sharing_a_pool_share_the_limit_until_one_ends() {
        let pool = Arc::new(AtomicUsize::new(0));
        let mut a = Limiter::sharing(100 << 20, Arc::clone(&pool));
        let mut b = Limiter::sharing(100 << 20, Arc::clone(&pool));
        assert!(a.memory_growing(0, 60 << 20, None).unwrap());
        assert!(!b.memory_growing(0, 60 << 20, None).unwrap());
        assert!(b.hit() && !a.hit());
        drop(a);
        assert!(b.memory_growing(0, 60 << 20, None).unwrap());
        assert_eq!(pool.load(Ordering::SeqCst), 60 << 20);
    }

    #[test]
    fn growth_past_a_declared_maximum_is_not_counted() {
        let mut l = Limiter::new(1 << 20);
        assert!(!l.memory_growing(0, 2 << 20, Some(1 << 20)).unwrap());
        assert!(!l.hit());
        assert_eq!(l.used(), 0);
    }
}
