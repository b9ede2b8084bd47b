//! The performance figures of issue 13, in one run: kiln (the `kiln`
//! binary, release build, process start included) against the tools it is
//! measured against, on data generated here, printed as a table and as
//! Markdown for docs/performance.md (which says what each row measures).
//!
//! - layers: `FROM scratch` + `COPY` of a big random file and of 50,000
//!   small files, cold store, uncompressed/gzip/zstd, against
//!   `tar | [gzip -6 -n | zstd -3 |] sha256sum`; the per-file cost of COPY;
//! - cached rebuilds: a 100,000-file context, a 20-step Kilnfile;
//! - steps: a no-op RUN step's CPU, `tar -czf` over a bind mount against the
//!   wasmtime CLI (time and system calls), yosys against the wasmtime CLI;
//! - buildah, when installed, as another reference.
//!
//! Every row is independent: a failure or a missing tool prints
//! `n/a (why)` and the run goes on. Environment:
//! `KILN_BENCH_RUNS` (runs per figure, default 3, fewer
//! for figures whose runs pass 20 s unless it is set), `KILN_BENCH_ONLY`
//! (only rows whose name contains it, or one of its comma-separated parts), `KILN_BENCH_MIB` (the big file,
//! default 512), `KILN_BENCH_FILES` (small files, default 50000),
//! `KILN_BENCH_CONTEXT_FILES` (default 100000), `KILN_BENCH_BIND_FILES`
//! (default 20000), `KILN_BENCH_WASMTIME` (the wasmtime CLI, else PATH).

#![allow(missing_docs, clippy::print_stdout, clippy::print_stderr)]

#[path = "perf/buildah.rs"]
mod buildah;
#[path = "perf/cached.rs"]
mod cached;
#[path = "perf/env.rs"]
mod env;
#[path = "perf/layers.rs"]
mod layers;
#[path = "perf/steps.rs"]
mod steps;
#[path = "perf/table.rs"]
mod table;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use env::Env;
use table::Row;

/// Rows measured together (they share data or a measurement): the names
/// of the rows it prints, for `KILN_BENCH_ONLY` and for the rows a panic
/// leaves unmeasured.
pub(crate) struct Group {
    pub(crate) names: Vec<String>,
    pub(crate) run: Measure,
}

/// What measures a group's rows.
pub(crate) type Measure = Box<dyn FnOnce(&Env) -> Vec<Row>>;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let started = Instant::now();
    let env = match Env::new() {
        Ok(env) => env,
        Err(e) => panic!("setting up the benchmark: {e}"),
    };
    let groups = [
        layers::big_file(&env),
        layers::small_files(&env),
        cached::context(&env),
        cached::twenty_steps(&env),
        steps::noop_cpu(&env),
        steps::bind_tar(&env),
        steps::yosys(&env),
        buildah::rows(&env),
    ];
    let mut rows = Vec::new();
    for group in groups {
        if !group.names.iter().any(|n| env.wants(n)) {
            continue;
        }
        let names = group.names;
        let run = group.run;
        let got = match catch_unwind(AssertUnwindSafe(|| run(&env))) {
            Ok(got) => got,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panicked".into());
                Vec::from_iter(names.iter().map(|n| Row::failed(n, &why)))
            }
        };
        for name in &names {
            if !env.wants(name) {
                continue;
            }
            match got.iter().find(|r| &r.name == name) {
                Some(row) => {
                    eprintln!("perf: {}", table::plain_line(row));
                    rows.push(row.clone());
                }
                None => rows.push(Row::failed(name, "not measured")),
            }
        }
    }
    println!();
    println!("{}", table::plain(&rows));
    println!("{}", table::markdown(&rows));
    println!(
        "{} runs per figure{}, {} cores; whole run {:.0} s",
        env.runs,
        env.budget_note(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
}
