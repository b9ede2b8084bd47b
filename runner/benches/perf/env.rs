//! What the rows share: settings from the environment, the temp directory
//! under the target directory, the generated trees, the toolbox image, and
//! running and timing processes.

use std::cell::OnceCell;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) type R<T> = Result<T, String>;

/// How long the runs of one figure may take when `KILN_BENCH_RUNS` is not
/// set: keeps a default run near 10 minutes on 2 cores.
const FIGURE_BUDGET: Duration = Duration::from_secs(20);

pub(crate) struct Env {
    pub(crate) runs: usize,
    /// `KILN_BENCH_RUNS` is set: every figure takes that many runs.
    runs_given: bool,
    pub(crate) mib: u64,
    pub(crate) files: usize,
    pub(crate) context_files: usize,
    pub(crate) bind_files: usize,
    only: Option<String>,
    /// Where kiln and cargo put their builds.
    target: PathBuf,
    /// Removed when the run ends.
    tmp: tempfile::TempDir,
    big: OnceCell<R<PathBuf>>,
    small: OnceCell<R<PathBuf>>,
    toolbox_wasm: OnceCell<R<PathBuf>>,
    warm_store: OnceCell<R<PathBuf>>,
}

fn var<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Env {
    pub(crate) fn new() -> R<Env> {
        // .../target/release/kiln: the target directory, wherever
        // CARGO_TARGET_DIR put it.
        let target = Path::new(env!("CARGO_BIN_EXE_kiln"))
            .parent()
            .and_then(Path::parent)
            .ok_or("no target directory above the kiln binary")?
            .to_path_buf();
        let tmp = tempfile::Builder::new()
            .prefix("perf-bench-")
            .tempdir_in(&target)
            .map_err(|e| format!("temp dir in {}: {e}", target.display()))?;
        Ok(Env {
            runs: var("KILN_BENCH_RUNS", 3usize).max(1),
            runs_given: std::env::var_os("KILN_BENCH_RUNS").is_some(),
            mib: var("KILN_BENCH_MIB", 512u64).max(1),
            files: var("KILN_BENCH_FILES", 50_000usize).max(1),
            context_files: var("KILN_BENCH_CONTEXT_FILES", 100_000usize).max(1),
            bind_files: var("KILN_BENCH_BIND_FILES", 20_000usize).max(1),
            only: std::env::var("KILN_BENCH_ONLY")
                .ok()
                .filter(|s| !s.is_empty()),
            target,
            tmp,
            big: OnceCell::new(),
            small: OnceCell::new(),
            toolbox_wasm: OnceCell::new(),
            warm_store: OnceCell::new(),
        })
    }

    /// The best (smallest) of `runs` results of `f` in seconds. Unless
    /// `KILN_BENCH_RUNS` asks for a number of runs, a figure stops after
    /// `FIGURE_BUDGET` of runs (the slowest take one or two).
    pub(crate) fn best(&self, mut f: impl FnMut() -> R<Duration>) -> R<f64> {
        let mut best = None::<Duration>;
        let mut spent = Duration::ZERO;
        for _ in 0..self.runs {
            let d = f()?;
            best = Some(best.map_or(d, |b| b.min(d)));
            spent += d;
            if !self.runs_given && spent > FIGURE_BUDGET {
                break;
            }
        }
        best.map(|d| d.as_secs_f64()).ok_or("no run".into())
    }

    /// How `best` limits the runs, for the summary line.
    pub(crate) fn budget_note(&self) -> String {
        if self.runs_given {
            String::new()
        } else {
            format!(" (fewer when they pass {} s)", FIGURE_BUDGET.as_secs())
        }
    }

    /// Whether `KILN_BENCH_ONLY` lets this row run: its name contains
    /// the text, or one of its comma-separated parts.
    pub(crate) fn wants(&self, row: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.split(',').any(|part| row.contains(part)))
    }

    /// A path in the temp directory.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A new empty directory in the temp directory (emptied if it exists).
    pub(crate) fn fresh_dir(&self, name: &str) -> R<PathBuf> {
        let dir = self.path(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| format!("emptying {name}: {e}"))?;
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {name}: {e}"))?;
        Ok(dir)
    }

    /// Writes a Kilnfile into the temp directory, outside every context.
    pub(crate) fn kilnfile(&self, name: &str, text: &str) -> R<PathBuf> {
        let path = self.path(name);
        std::fs::write(&path, text).map_err(|e| format!("writing {name}: {e}"))?;
        Ok(path)
    }

    /// A directory holding one file of `mib` MiB of random bytes.
    pub(crate) fn big_tree(&self) -> R<PathBuf> {
        self.big
            .get_or_init(|| {
                let dir = self.fresh_dir("big")?;
                random_file(&dir.join("random.bin"), self.mib << 20, 1)?;
                Ok(dir)
            })
            .clone()
    }

    /// `files` small files (100 B to 8 KiB of text) in nested directories.
    pub(crate) fn small_tree(&self) -> R<PathBuf> {
        self.small
            .get_or_init(|| {
                let dir = self.fresh_dir("small")?;
                small_tree(&dir, self.files, 100, 8 << 10, 2)?;
                Ok(dir)
            })
            .clone()
    }

    /// The toolbox program, built for wasm32-wasip1 (like
    /// examples/build.sh, into the target directory's bench-guests).
    pub(crate) fn toolbox_wasm(&self) -> R<PathBuf> {
        self.toolbox_wasm
            .get_or_init(|| {
                let dir = self.target.join("bench-guests");
                let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
                let status = Command::new(env!("CARGO"))
                    .args(["build", "--quiet", "--release", "--target"])
                    .args(["wasm32-wasip1", "-p", "kiln-toolbox", "--manifest-path"])
                    .arg(manifest)
                    .arg("--target-dir")
                    .arg(&dir)
                    .status()
                    .map_err(|e| format!("cargo: {e}"))?;
                if !status.success() {
                    return Err("building the toolbox (rustup target add wasm32-wasip1)".into());
                }
                Ok(dir.join("wasm32-wasip1/release/toolbox.wasm"))
            })
            .clone()
    }

    /// A store holding the `toolbox` image (examples/toolbox's Kilnfile),
    /// shared by the rows that build FROM it.
    pub(crate) fn warm_store(&self) -> R<PathBuf> {
        self.warm_store
            .get_or_init(|| {
                let wasm = self.toolbox_wasm()?;
                let ctx = self.fresh_dir("toolbox-ctx")?;
                std::fs::create_dir(ctx.join("bin")).map_err(|e| e.to_string())?;
                std::fs::copy(&wasm, ctx.join("bin/toolbox.wasm")).map_err(|e| e.to_string())?;
                let kilnfile =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/toolbox/Kilnfile");
                std::fs::copy(kilnfile, ctx.join("Kilnfile")).map_err(|e| e.to_string())?;
                let store = self.path("store-warm");
                kiln(&store, &["build", "-q", "-t", "toolbox"], &ctx)?;
                Ok(store)
            })
            .clone()
    }
}

/// Runs `kiln ARGS CONTEXT` with `KILN_STORE=store`, output captured; the
/// wall time, or the error with kiln's last words.
pub(crate) fn kiln(store: &Path, args: &[&str], context: &Path) -> R<Duration> {
    let mut cmd = kiln_cmd(store);
    cmd.args(args).arg(context);
    timed(&mut cmd)
}

pub(crate) fn kiln_cmd(store: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.env("KILN_STORE", store);
    cmd
}

/// Runs `cmd` (stdout discarded, stderr kept for the error) and times it.
pub(crate) fn timed(cmd: &mut Command) -> R<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
    let elapsed = start.elapsed();
    if out.status.success() {
        Ok(elapsed)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        Err(format!(
            "{} exited {}: {}",
            Path::new(cmd.get_program())
                .file_name()
                .unwrap_or(OsStr::new("?"))
                .to_string_lossy(),
            out.status.code().unwrap_or(-1),
            last.unwrap_or("").trim()
        ))
    }
}

/// `bash -c SCRIPT` with pipefail, timed.
pub(crate) fn shell(script: &str) -> R<Duration> {
    timed(Command::new("bash").args(["-o", "pipefail", "-c", script]))
}

/// The median of `runs` results of `f`.
pub(crate) fn median(runs: usize, mut f: impl FnMut() -> R<Duration>) -> R<f64> {
    let mut v = (0..runs).map(|_| f()).collect::<R<Vec<Duration>>>()?;
    v.sort();
    v.get(v.len() / 2)
        .map(|d| d.as_secs_f64())
        .ok_or("no run".into())
}

/// The program's path, if it is on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A tool the row needs, or why the row cannot run.
pub(crate) fn need(name: &str) -> R<PathBuf> {
    which(name).ok_or_else(|| format!("{name} not installed"))
}

/// splitmix64: fast, seeded, good enough for incompressible bytes.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Lines of lowercase letters: text that compresses about 2:1.
    fn text(&mut self, buf: &mut [u8]) {
        for (i, chunk) in buf.chunks_mut(8).enumerate() {
            let v = self.next().to_le_bytes();
            for (c, b) in chunk.iter_mut().zip(v) {
                *c = b'a' + b % 26;
            }
            if i % 8 == 7 {
                chunk[chunk.len() - 1] = b'\n';
            }
        }
    }
}

/// `bytes` random bytes into `path`.
pub(crate) fn random_file(path: &Path, bytes: u64, seed: u64) -> R<()> {
    let mut rng = Rng::new(seed);
    let f = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = std::io::BufWriter::new(f);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill(&mut buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    w.flush().map_err(|e| e.to_string())
}

/// `n` text files of `min..max` bytes under `dir`, 50 to a directory,
/// 20 directories to a parent: `d000/s00/f000000.txt`.
pub(crate) fn small_tree(dir: &Path, n: usize, min: usize, max: usize, seed: u64) -> R<()> {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; max];
    for i in 0..n {
        let sub = dir.join(format!("d{:03}/s{:02}", i / 1000, (i / 50) % 20));
        if i % 50 == 0 {
            std::fs::create_dir_all(&sub).map_err(|e| format!("{}: {e}", sub.display()))?;
        }
        let len = min + (rng.next() as usize) % (max - min + 1);
        rng.text(&mut buf[..len]);
        let path = sub.join(format!("f{i:06}.txt"));
        std::fs::write(&path, &buf[..len]).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// A path as a `&str` for a command line (the temp paths are UTF-8).
pub(crate) fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}
