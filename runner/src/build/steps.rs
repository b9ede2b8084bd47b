//! Step numbering and timing shared by all stages (and by the builds of
//! a multi-platform build, whose steps are numbered on from each other).

use std::time::Instant;

use super::{Event, Progress};

/// Step numbering and timing shared by all stages.
pub(super) struct Steps<'p> {
    progress: &'p dyn Progress,
    next_id: std::sync::atomic::AtomicUsize,
    /// Steps whose result came from the cache.
    cached: std::sync::Mutex<std::collections::BTreeSet<usize>>,
}

impl<'p> Steps<'p> {
    pub(super) fn new(progress: &'p dyn Progress) -> Steps<'p> {
        Steps {
            progress,
            next_id: std::sync::atomic::AtomicUsize::new(1),
            cached: Default::default(),
        }
    }

    /// Numbers the next step `id` (steps continue from another build).
    pub(super) fn skip_to(&self, id: usize) {
        self.next_id.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    /// The number of the last step started.
    pub(super) fn last(&self) -> usize {
        self.next_id.load(std::sync::atomic::Ordering::Relaxed) - 1
    }

    /// Runs `f` as a numbered step, reporting start, end and failure.
    pub(super) fn run<T, E>(
        &self,
        name: &str,
        f: impl FnOnce(usize) -> Result<T, E>,
    ) -> Result<T, E> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.progress.event(Event::Start { id, name });
        let start = Instant::now();
        let out = f(id);
        let elapsed = start.elapsed();
        let cached = self.cached.lock().expect("steps lock").remove(&id);
        match &out {
            Ok(_) if cached => self.progress.event(Event::Cached { id }),
            Ok(_) => self.progress.event(Event::Done { id, elapsed }),
            Err(_) => self.progress.event(Event::Failed { id, elapsed }),
        }
        out
    }

    /// Marks step `id` as answered from the cache.
    pub(super) fn mark_cached(&self, id: usize) {
        self.cached.lock().expect("steps lock").insert(id);
    }

    pub(super) fn log(&self, id: usize, text: &str) {
        self.progress.event(Event::Log { id, text });
    }

    pub(super) fn warn(&self, text: &str) {
        self.progress.event(Event::Warning(text));
    }
}
