//! Build benchmarks, end to end through the `kiln` binary (process start
//! included), printing figures rather than asserting them:
//!
//! - the cached rebuild of a 20-step Kilnfile (target: <= 50 ms on a
//!   2-core machine): median of `KILN_BENCH_RUNS` rebuilds (default 20),
//!   next to the cold build;
//! - two independent stages of CPU-bound work (`probe burn`, 400 ms each)
//!   and a final stage that copies from both: `--jobs 1` against the
//!   default (one job per core), so the ratio is the parallel speed-up.

#![allow(missing_docs, clippy::print_stdout)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn kiln(store: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_STORE", store)
        .output()
        .expect("running kiln");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let probe = common::build_probe();
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");

    // 20 layer steps: COPYs of context files and RUNs of the probe.
    let ctx = tmp.path().join("twenty");
    std::fs::create_dir_all(ctx.join("bin")).unwrap();
    std::fs::create_dir_all(ctx.join("src")).unwrap();
    std::fs::copy(&probe, ctx.join("bin/probe")).unwrap();
    let mut kilnfile = String::from("FROM scratch\nCOPY bin/ /bin/\nWORKDIR /work\n");
    for i in 0..9 {
        std::fs::write(ctx.join(format!("src/f{i}.txt")), format!("file {i}\n")).unwrap();
        kilnfile.push_str(&format!("COPY src/f{i}.txt ./\n"));
        kilnfile.push_str(&format!(
            "RUN [\"probe\", \"write\", \"/work/out{i}\", \"{i}\"]\n"
        ));
    }
    std::fs::write(ctx.join("Kilnfile"), kilnfile).unwrap();
    let ctx_arg = ctx.to_str().unwrap();
    let cold = kiln(&store, &["build", "-q", "-t", "twenty", ctx_arg]);
    let mut warm = Vec::new();
    for _ in 0..runs {
        warm.push(kiln(&store, &["build", "-q", "-t", "twenty", ctx_arg]));
    }
    let warm = median(warm);
    println!(
        "cached rebuild, 20 layer steps: median {} of {runs} (cold build {}); target <= 50 ms",
        ms(warm),
        ms(cold)
    );

    // Two independent stages of CPU work, then one that needs both.
    let par = tmp.path().join("parallel");
    std::fs::create_dir_all(par.join("bin")).unwrap();
    std::fs::copy(&probe, par.join("bin/probe")).unwrap();
    std::fs::write(
        par.join("Kilnfile"),
        "FROM scratch AS a\nCOPY bin/ /bin/\nRUN [\"probe\", \"burn\", \"400\", \"--\", \"write\", \"/a\", \"a\"]\n\n\
         FROM scratch AS b\nCOPY bin/ /bin/\nRUN [\"probe\", \"burn\", \"400\", \"--\", \"write\", \"/b\", \"b\"]\n\n\
         FROM scratch\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    )
    .unwrap();
    let par_arg = par.to_str().unwrap();
    // Warm the compile cache first, so both sides only run the steps.
    kiln(&store, &["build", "-q", "--no-cache", par_arg]);
    let mut serial = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..5 {
        serial.push(kiln(
            &store,
            &["build", "-q", "--no-cache", "--jobs", "1", par_arg],
        ));
        parallel.push(kiln(&store, &["build", "-q", "--no-cache", par_arg]));
    }
    let (serial, parallel) = (median(serial), median(parallel));
    println!(
        "two independent 400 ms stages: --jobs 1 {}, default {} ({} cores): speed-up {:.2}x",
        ms(serial),
        ms(parallel),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        serial.as_secs_f64() / parallel.as_secs_f64()
    );
}
