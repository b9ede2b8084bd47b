//! The step's [`Clocks`] as wasmtime-wasi clocks, so a component reads the
//! same time the VFS stamps on files.

use std::time::{Duration, Instant};

use wasmtime_wasi::{HostMonotonicClock, HostWallClock};

use crate::wasi::Clocks;

/// `wasi:clocks/wall-clock`: the step's wall clock.
pub(super) struct WallClock(crate::vfs::Clock);

impl WallClock {
    pub(super) fn new(clocks: &Clocks) -> WallClock {
        WallClock(clocks.wall.clone())
    }
}

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        // Before the epoch cannot be said; it reads as the epoch.
        Duration::from_nanos(u64::try_from((self.0)()).unwrap_or(0))
    }
}

/// `wasi:clocks/monotonic-clock`: nanoseconds since the step started.
pub(super) struct MonotonicClock(Instant);

impl MonotonicClock {
    pub(super) fn new(clocks: &Clocks) -> MonotonicClock {
        MonotonicClock(clocks.start)
    }
}

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
