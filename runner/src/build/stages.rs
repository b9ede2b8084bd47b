//! Stages as a graph: each is built once, on whichever thread needs it
//! first, and the stages the target needs are started in parallel.
//!
//! A stage's dependencies are the stages its `FROM`, `COPY --from` and
//! `RUN --mount=...,from=` name. Those written literally are known before
//! anything runs ([`Build::static_deps`]): [`Build::build_target`] starts a
//! worker per core (`--jobs`) that takes the needed stages in dependency
//! order, the target last; a worker that reaches a stage whose dependency
//! is still building waits for it. A reference that only an expansion
//! reveals (`COPY --from=$STAGE`) is built by the worker that meets it.
//!
//! [`Build::stage_result`] is the one way to a stage's result: it returns a
//! finished one, waits for one another thread is building, or builds it.
//! A stage that needs itself (through a chain on one thread) is an error,
//! as is a literal cycle, found before anything runs.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::{Build, BuildError, StageResult};
use crate::frontend::{InstructionKind, Span};

/// Where a stage is.
pub(super) enum Slot {
    /// A thread is building it.
    Building,
    /// Built.
    Done(Box<StageResult>),
    /// Its build failed (the error is reported by the thread that built it).
    Failed,
}

thread_local! {
    /// The stages this thread is building, innermost last (cycle checks).
    static CHAIN: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Build<'_> {
    /// The result of stage `index`, built once per build.
    pub(super) fn stage_result(&self, index: usize) -> Result<StageResult, BuildError> {
        let mut slots = self.stages.lock().expect("stages lock");
        loop {
            match slots.get(&index) {
                Some(Slot::Done(r)) => return Ok((**r).clone()),
                Some(Slot::Failed) => {
                    return Err(BuildError::DependencyFailed(self.stage_label(index)));
                }
                Some(Slot::Building) => {
                    if CHAIN.with(|c| c.borrow().contains(&index)) {
                        return Err(self.cycle(index));
                    }
                    slots = self.stage_done.wait(slots).expect("stages lock");
                }
                None => break,
            }
        }
        slots.insert(index, Slot::Building);
        drop(slots);
        CHAIN.with(|c| c.borrow_mut().push(index));
        let result = self.build_stage(index);
        CHAIN.with(|c| c.borrow_mut().pop());
        let mut slots = self.stages.lock().expect("stages lock");
        slots.insert(
            index,
            match &result {
                Ok(r) => Slot::Done(Box::new(r.clone())),
                Err(_) => Slot::Failed,
            },
        );
        drop(slots);
        self.stage_done.notify_all();
        result
    }

    /// The stage's name, or `stage-N`.
    pub(super) fn stage_label(&self, index: usize) -> String {
        self.kilnfile.stages[index]
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"))
    }

    fn cycle(&self, index: usize) -> BuildError {
        BuildError::Usage(format!(
            "stage {:?} depends on itself",
            self.stage_label(index)
        ))
    }

    /// A cycle closed by the reference at `span` in stage `from` to stage
    /// `to`: an error at that reference.
    fn cycle_at(&self, from: usize, to: usize, span: &Span) -> BuildError {
        self.kilnfile
            .error(
                span.clone(),
                format!(
                    "stage {:?} depends on itself: this reference in stage {:?} closes the cycle",
                    self.stage_label(to),
                    self.stage_label(from)
                ),
            )
            .into()
    }

    /// The stages each stage names literally (see the module docs), each
    /// with the span of (the first) reference to it.
    pub(super) fn static_deps(&self) -> Vec<BTreeMap<usize, Span>> {
        let kf = self.kilnfile;
        let global = |name: &str| {
            self.global_args
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_deref())
        };
        kf.stages
            .iter()
            .map(|stage| {
                let mut deps = BTreeMap::new();
                // FROM may use global ARGs; only earlier named stages count.
                if let Ok(image) = kf.expand(&stage.from.image, &global)
                    && let Some(s) = kf.stage(&image)
                    && s.index < stage.index
                    && s.name.is_some()
                {
                    deps.insert(s.index, stage.from.image.span.clone());
                }
                let mut named = |raw: &str, span: &Span| {
                    if raw.contains('$') {
                        return;
                    }
                    if let Some(s) = kf.stage(raw).filter(|s| s.index != stage.index) {
                        deps.entry(s.index).or_insert_with(|| span.clone());
                    }
                };
                for inst in &stage.instructions {
                    match &inst.kind {
                        InstructionKind::Copy(c) => {
                            if let Some(from) = &c.from {
                                named(&from.raw, &from.span);
                            }
                        }
                        InstructionKind::Run(r) => {
                            for m in &r.mounts {
                                if let Some(from) =
                                    m.parsed.as_ref().and_then(|p| p.from.as_deref())
                                {
                                    named(from, &m.spec.span);
                                }
                            }
                        }
                        _ => {}
                    }
                }
                deps
            })
            .collect()
    }

    /// Builds `target` and the stages it needs, each as soon as a worker is
    /// free: up to `--jobs` workers (one per core by default) take them in
    /// dependency order, the target last.
    pub(super) fn build_target(&self, target: usize) -> Result<StageResult, BuildError> {
        let deps = self.static_deps();
        // The needed stages in dependency order (depth first, post-order).
        let mut order = Vec::new();
        let mut state = vec![0u8; deps.len()]; // 0 new, 1 on the path, 2 done
        let mut stack = vec![(target, false)];
        while let Some((s, leaving)) = stack.pop() {
            if leaving {
                state[s] = 2;
                order.push(s);
                continue;
            }
            match state[s] {
                2 => continue,
                1 => return Err(self.cycle(s)),
                _ => {}
            }
            state[s] = 1;
            stack.push((s, true));
            for (d, span) in deps[s].iter().rev() {
                if state[*d] == 1 {
                    return Err(self.cycle_at(s, *d, span));
                }
                if state[*d] == 0 {
                    stack.push((*d, false));
                }
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = self.opts.jobs.unwrap_or(cores).min(order.len());
        if workers <= 1 {
            return self.stage_result(target);
        }
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let (result, errors) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut errors = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= order.len() || failed.load(Ordering::Relaxed) {
                                break;
                            }
                            if let Err(e) = self.stage_result(order[i]) {
                                failed.store(true, Ordering::Relaxed);
                                errors.push(e);
                            }
                        }
                        errors
                    })
                })
                .collect();
            let mut errors = Vec::new();
            for h in handles {
                errors.extend(h.join().expect("a stage worker panicked"));
            }
            // Built by a worker (the target is last in `order`), unless a
            // failure stopped them first.
            let result = if errors.is_empty() {
                self.stage_result(target)
            } else {
                Err(BuildError::DependencyFailed(self.stage_label(target)))
            };
            (result, errors)
        });
        // The error worth showing is the one that started it, not a stage
        // that gave up because a dependency failed.
        match result {
            Ok(r) if errors.is_empty() => Ok(r),
            Ok(_) | Err(BuildError::DependencyFailed(_)) => Err(errors
                .into_iter()
                .find(|e| !matches!(e, BuildError::DependencyFailed(_)))
                .unwrap_or_else(|| BuildError::DependencyFailed(self.stage_label(target)))),
            Err(e) => Err(e),
        }
    }
}
