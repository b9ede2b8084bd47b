//! `wasi:io/poll`: wasmtime-wasi's, made to notice Ctrl-C while it blocks.
//!
//! A guest that sleeps (`poll` on a clock) or waits on several pollables
//! runs no wasm, so the epoch check that stops a cancelled step never runs.
//! Here each blocking wait also waits on a [`CANCEL_CHECK`] timer; when
//! only the timer fired, the wait goes on, unless the step was cancelled.
//! Then the wait returns as if its first pollable were ready: the guest
//! runs again and the engine's epoch check stops it at once, reporting the
//! step as cancelled. The same happens when the step's time is up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::clocks::{WasiClocksCtx, WasiClocksCtxView};
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::bindings::sync::io::poll;

/// How often a blocked wait looks at the step's cancel flag: how long
/// Ctrl-C may take to stop a sleeping guest.
pub const CANCEL_CHECK: Duration = Duration::from_millis(50);

/// What kiln's `wasi:io/poll` host works on.
pub(super) struct PollView<'a> {
    pub(super) table: &'a mut ResourceTable,
    pub(super) clocks: &'a mut WasiClocksCtx,
    pub(super) cancel: &'a AtomicBool,
    pub(super) deadline: Option<std::time::Instant>,
}

/// [`HasData`] for `wasi:io/poll`.
pub(super) struct Poll;

impl HasData for Poll {
    type Data<'a> = PollView<'a>;
}

impl PollView<'_> {
    /// Waits until one of `reps` is ready (their indices) or the step is
    /// cancelled (`[0]`).
    fn wait(&mut self, reps: &[u32]) -> wasmtime::Result<Vec<u32>> {
        if reps.is_empty() {
            // wasmtime-wasi's own error for an empty list.
            return poll::Host::poll(self.table, Vec::new());
        }
        let tick_ns = u64::try_from(CANCEL_CHECK.as_nanos()).unwrap_or(u64::MAX);
        loop {
            let tick = monotonic_clock::Host::subscribe_duration(
                &mut WasiClocksCtxView {
                    ctx: self.clocks,
                    table: self.table,
                },
                tick_ns,
            )?;
            let mut list: Vec<Resource<DynPollable>> =
                reps.iter().map(|&r| Resource::new_borrow(r)).collect();
            list.push(Resource::new_borrow(tick.rep()));
            let ready = poll::Host::poll(self.table, list);
            poll::HostPollable::drop(self.table, tick)?;
            let mut ready = ready?;
            ready.retain(|&i| (i as usize) < reps.len());
            if !ready.is_empty() {
                return Ok(ready);
            }
            let out_of_time = self
                .deadline
                .is_some_and(|d| std::time::Instant::now() >= d);
            if self.cancel.load(Ordering::Relaxed) || out_of_time {
                return Ok(vec![0]);
            }
        }
    }
}

impl poll::Host for PollView<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        let reps: Vec<u32> = pollables.iter().map(Resource::rep).collect();
        self.wait(&reps)
    }
}

impl poll::HostPollable for PollView<'_> {
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        self.wait(&[pollable.rep()]).map(drop)
    }

    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        poll::HostPollable::ready(self.table, pollable)
    }

    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        poll::HostPollable::drop(self.table, pollable)
    }
}
