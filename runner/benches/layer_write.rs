//! Layer-writing throughput against the same-codec shell pipeline.
//!
//! Generates a few hundred MiB of files (text-like and random data, sizes
//! from 1 KiB to 8 MiB), then times, on the same files with a warm page cache:
//! - `tar -cf - . | gzip -6 -n | sha256sum` (three processes, so up to three
//!   cores, where kiln uses one thread);
//! - kiln writing one gzip layer from those files, the way COPY does it
//!   (read each file once, copy it into the store's content area, tar,
//!   hash the tar, compress, hash the blob, write the blob).
//!
//! Prints MiB/s for each and the ratio kiln / shell (target >= 0.9).
//! `KILN_BENCH_MIB` sets the data size (default 320), `KILN_BENCH_RUNS`
//! the number of timed runs (default 3; the best of each is reported).

#![allow(missing_docs, clippy::print_stdout)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kiln::context::ContextOpener;
use kiln::layer::{Compression, Content, LayerOptions, PendingChanges, write_layer};
use kiln::snapshot::{Change, ImagePath, Meta, Node};
use kiln::store::Store;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const WORDS: [&str; 24] = [
    "kiln", "layer", "image", "build", "secret", "wasm", "module", "store", "digest", "tar",
    "gzip", "stage", "copy", "run", "mount", "snapshot", "the", "of", "and", "to", "{", "}", "fn",
    "let",
];

fn generate(dir: &Path, total: u64) -> (u64, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written = 0u64;
    let mut files = 0usize;
    while written < total {
        let size = match rng.next() % 10 {
            0..=5 => 1024 + rng.next() % (64 << 10),
            6..=8 => (256 << 10) + rng.next() % (2 << 20),
            _ => (4 << 20) + rng.next() % (4 << 20),
        };
        let random = rng.next().is_multiple_of(4);
        let mut data = Vec::with_capacity(size as usize);
        while (data.len() as u64) < size {
            if random {
                data.extend_from_slice(&rng.next().to_le_bytes());
            } else {
                data.extend_from_slice(
                    WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes(),
                );
                data.push(if rng.next().is_multiple_of(9) {
                    b'\n'
                } else {
                    b' '
                });
            }
        }
        data.truncate(size as usize);
        let sub = dir.join(format!("d{:02}", files % 16));
        fs::create_dir_all(&sub).unwrap();
        fs::write(sub.join(format!("f{files:05}.dat")), &data).unwrap();
        written += size;
        files += 1;
    }
    (written, files)
}

fn shell_pipeline(dir: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; tar -cf - . | gzip -6 -n | sha256sum > /dev/null")
        .current_dir(dir)
        .status()
        .expect("bash");
    assert!(status.success(), "shell pipeline failed");
    start.elapsed()
}

fn kiln_layer(dir: &Path, store_dir: &Path, compression: Compression) -> Duration {
    let _ = fs::remove_dir_all(store_dir);
    let store = Store::open(store_dir).unwrap();
    let ctx = kiln::context::Context::open(dir).unwrap();
    let opener: Arc<ContextOpener> = Arc::new(ctx.opener().unwrap());
    let start = Instant::now();
    let mut changes = PendingChanges::new();
    let mut stack = vec![String::new()];
    while let Some(d) = stack.pop() {
        for name in ctx.list(&d).unwrap() {
            let rel = kiln::context::join(&d, &name);
            let path = ImagePath::parse(&rel).unwrap();
            match ctx.entry(&rel).unwrap() {
                kiln::context::EntryKind::Dir => {
                    changes.insert(path, Change::Put(Node::Dir(Meta::root(0o755, 0))));
                    stack.push(rel);
                }
                kiln::context::EntryKind::File { size, .. } => {
                    let opener = Arc::clone(&opener);
                    let rel2 = rel.clone();
                    let content = Content::Reader {
                        size,
                        open: std::sync::Arc::new(move || opener.open(&rel2)),
                        origin: rel,
                        digest: None,
                    };
                    changes.insert(path, Change::Put(Node::File(Meta::root(0o644, 0), content)));
                }
                _ => {}
            }
        }
    }
    let opts = LayerOptions {
        compression,
        clamp_mtime: None,
        guard: None,
        cancel: None,
        threads: 0,
    };
    write_layer(&store, changes, &opts).unwrap();
    start.elapsed()
}

fn best(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mib: u64 = std::env::var("KILN_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(320);
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (bytes, files) = generate(&data, mib << 20);
    let mb = bytes as f64 / (1u64 << 20) as f64;
    println!("layer_write: {files} files, {mb:.0} MiB, best of {runs} runs");

    // Warm the page cache for both sides.
    shell_pipeline(&data);
    let shell = best(runs, || shell_pipeline(&data));
    let store = tmp.path().join("store");
    let gzip = best(runs, || kiln_layer(&data, &store, Compression::Gzip));
    let zstd = best(runs, || kiln_layer(&data, &store, Compression::Zstd));
    let plain = best(runs, || {
        kiln_layer(&data, &store, Compression::Uncompressed)
    });

    let rate = |d: Duration| mb / d.as_secs_f64();
    println!(
        "  shell  tar | gzip -6 | sha256sum   {:8.1} MiB/s",
        rate(shell)
    );
    println!(
        "  kiln   layer, gzip                 {:8.1} MiB/s",
        rate(gzip)
    );
    println!(
        "  kiln   layer, zstd                 {:8.1} MiB/s",
        rate(zstd)
    );
    println!(
        "  kiln   layer, uncompressed         {:8.1} MiB/s",
        rate(plain)
    );
    println!(
        "  ratio  kiln gzip / shell gzip      {:8.2}x (target >= 0.90)",
        shell.as_secs_f64() / gzip.as_secs_f64()
    );
}
