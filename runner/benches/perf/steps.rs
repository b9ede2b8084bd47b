//! RUN steps: what a no-op step costs in CPU, and real work in a step
//! against the same module under the wasmtime CLI (`tar -czf` over a bind
//! mount, with its system calls; yosys).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Group;
use crate::env::{Env, R, kiln, kiln_cmd, need, s, small_tree, timed};
use crate::table::{Goal, Row, Unit, thousands};

const NOOP_STEPS: usize = 50;

fn noop_name() -> String {
    format!("no-op RUN step, CPU (user+sys, {NOOP_STEPS} steps, --no-cache)")
}

pub(crate) fn noop_cpu(_env: &Env) -> Group {
    Group {
        names: vec![noop_name()],
        run: Box::new(|env: &Env| {
            vec![Row::new(&noop_name(), Unit::MsPerStep, Goal::Under(1.0)).kiln(noop(env))]
        }),
    }
}

/// (CPU of a build with 50 no-op steps - CPU of the same build without
/// them) / 50, the least CPU of `runs` builds of each.
fn noop(env: &Env) -> R<f64> {
    let store = env.warm_store()?;
    let ctx = env.fresh_dir("noop")?;
    let base = "FROM toolbox\nLABEL bench=noop\n";
    let mut steps = String::from(base);
    for i in 0..NOOP_STEPS {
        steps.push_str(&format!("RUN [\"/bin/true\", \"{i}\"]\n"));
    }
    let cpu = |text: &str| -> R<f64> {
        let kilnfile = env.kilnfile("noop.Kilnfile", text)?;
        let args = ["build", "-q", "--no-cache", "-f", s(&kilnfile)];
        kiln(&store, &args, &ctx)?;
        let mut least = f64::MAX;
        for _ in 0..env.runs {
            let before = children_cpu()?;
            kiln(&store, &args, &ctx)?;
            least = least.min(children_cpu()? - before);
        }
        Ok(least)
    };
    let without = cpu(base)?;
    let with = cpu(&steps)?;
    Ok((with - without) * 1000.0 / NOOP_STEPS as f64)
}

/// User + system CPU seconds of the children waited for so far.
#[cfg(unix)]
#[allow(unsafe_code)]
fn children_cpu() -> R<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the rusage it points to, which is zeroed
    // (a valid rusage) in any case.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(format!("getrusage: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: zeroed, then filled by getrusage.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(secs(usage.ru_utime) + secs(usage.ru_stime))
}

#[cfg(not(unix))]
fn children_cpu() -> R<f64> {
    Err("getrusage: Unix only".into())
}

/// `wasmtime run` with its compile cache on, in the temp directory; the
/// CLI is `KILN_BENCH_WASMTIME`, else `wasmtime` on PATH.
fn wasmtime_run(env: &Env) -> R<Command> {
    let cli = match std::env::var_os("KILN_BENCH_WASMTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => need("wasmtime").map_err(|_| "wasmtime CLI not found")?,
    };
    let config = env.kilnfile(
        "wasmtime-cache.toml",
        &format!(
            "[cache]\ndirectory = \"{}\"\n",
            s(&env.path("wasmtime-cache"))
        ),
    )?;
    let mut cmd = Command::new(cli);
    cmd.args(["run", "-C", "cache=y", "-C"])
        .arg(format!("cache-config={}", s(&config)));
    Ok(cmd)
}

fn bind_names(files: usize) -> [String; 2] {
    let what = format!(
        "toolbox tar -czf of {} bind-mounted files",
        thousands(files)
    );
    [
        format!("{what}, vs wasmtime run --dir"),
        format!("{what}, system calls (strace -f -c)"),
    ]
}

pub(crate) fn bind_tar(env: &Env) -> Group {
    Group {
        names: bind_names(env.bind_files).into(),
        run: Box::new(|env: &Env| {
            let [time, calls] = bind_names(env.bind_files);
            let time = Row::new(&time, Unit::Secs, Goal::Within(1.05));
            let calls = Row::new(&calls, Unit::Calls, Goal::Within(1.5));
            match BindTar::new(env) {
                Ok(b) => vec![
                    time.kiln(b.kiln_time()).reference(b.wasmtime_time()),
                    calls.kiln(b.kiln_calls()).reference(b.wasmtime_calls()),
                ],
                Err(e) => vec![time.kiln(Err(e.clone())), calls.kiln(Err(e))],
            }
        }),
    }
}

/// The same archive made by a kiln step (the tree bind-mounted from the
/// context, the archive into a cache mount) and by the wasmtime CLI (both
/// host directories preopened).
struct BindTar<'a> {
    env: &'a Env,
    store: PathBuf,
    ctx: PathBuf,
    kilnfile: PathBuf,
    toolbox: PathBuf,
    out: PathBuf,
}

const TAR: [&str; 5] = ["-czf", "/out/src.tgz", "-C", "/src", "."];

impl BindTar<'_> {
    fn new(env: &Env) -> R<BindTar<'_>> {
        let store = env.warm_store()?;
        let ctx = env.fresh_dir("bind")?;
        small_tree(&ctx.join("src"), env.bind_files, 100, 8 << 10, 4)?;
        let kilnfile = env.kilnfile(
            "bind.Kilnfile",
            &format!(
                "FROM toolbox\nRUN --mount=type=bind,source=src,target=/src \
                 --mount=type=cache,id=bench-out,target=/out [\"/bin/tar\", \"{}\"]\n",
                TAR.join("\", \"")
            ),
        )?;
        Ok(BindTar {
            env,
            store,
            ctx,
            kilnfile,
            toolbox: env.toolbox_wasm()?,
            out: env.fresh_dir("bind-out")?,
        })
    }

    fn kiln_args(&self) -> Vec<&str> {
        vec!["build", "-q", "--no-cache", "-f", s(&self.kilnfile)]
    }

    /// The first run compiles the module into the store.
    fn kiln_time(&self) -> R<f64> {
        let args = self.kiln_args();
        kiln(&self.store, &args, &self.ctx)?;
        self.env.best(|| kiln(&self.store, &args, &self.ctx))
    }

    fn wasmtime_cmd(&self) -> R<Command> {
        let mut cmd = wasmtime_run(self.env)?;
        cmd.arg("--dir")
            .arg(format!("{}::/src", s(&self.ctx.join("src"))))
            .arg("--dir")
            .arg(format!("{}::/out", s(&self.out)))
            .arg(&self.toolbox)
            .arg("tar")
            .args(TAR);
        Ok(cmd)
    }

    fn wasmtime_time(&self) -> R<f64> {
        timed(&mut self.wasmtime_cmd()?)?;
        self.env.best(|| timed(&mut self.wasmtime_cmd()?))
    }

    fn kiln_calls(&self) -> R<f64> {
        let mut cmd = kiln_cmd(&self.store);
        cmd.args(self.kiln_args()).arg(&self.ctx);
        strace_calls(self.env, cmd, "kiln")
    }

    fn wasmtime_calls(&self) -> R<f64> {
        strace_calls(self.env, self.wasmtime_cmd()?, "wasmtime")
    }
}

/// The system calls `cmd` and its threads make: the total of
/// `strace -f -c`.
fn strace_calls(env: &Env, cmd: Command, name: &str) -> R<f64> {
    let strace = need("strace")?;
    let report = env.path(&format!("strace-{name}.txt"));
    let mut traced = Command::new(strace);
    traced.args(["-f", "-c", "-o", s(&report), "--"]);
    traced.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            traced.env(k, v);
        }
    }
    timed(&mut traced)?;
    let text = std::fs::read_to_string(&report).map_err(|e| e.to_string())?;
    // `100.00  0.123456  1  12345  67 total`: calls is the fourth field.
    let total = text
        .lines()
        .find(|l| l.trim_end().ends_with(" total"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|c| c.parse::<f64>().ok());
    total.ok_or_else(|| format!("no total in strace's report {}", report.display()))
}

const YOSYS: &str = "yosys synth_ice40 of examples/fpga (warm), vs wasmtime run -C cache=y";
const YOSYS_START: &str = "step start, 68 MB module (yosys -V, warm), vs wasmtime run";

pub(crate) fn yosys(_env: &Env) -> Group {
    Group {
        names: vec![YOSYS.into(), YOSYS_START.into()],
        run: Box::new(|env: &Env| {
            let synth = Row::new(YOSYS, Unit::Secs, Goal::Within(1.1));
            let start = Row::new(YOSYS_START, Unit::Secs, Goal::None);
            let synth_args = [
                "-q",
                "-p",
                "synth_ice40 -top top -json /work/top.json",
                "/work/top.v",
            ];
            match Yosys::new(env) {
                Ok(y) => vec![
                    synth
                        .kiln(y.kiln(&synth_args, "--mount=type=tmpfs,target=/tmp "))
                        .reference(y.wasmtime(&synth_args)),
                    start
                        .kiln(y.kiln(&["-V"], ""))
                        .reference(y.wasmtime(&["-V"])),
                ],
                Err(e) => vec![synth.kiln(Err(e.clone())), start.kiln(Err(e))],
            }
        }),
    }
}

/// YoWASP's yosys (examples/fpga/tools, from examples/fpga/fetch.sh) in
/// an image `yosys-base` with its data at /share and the design at /work,
/// and the same files in host directories for the wasmtime CLI.
struct Yosys<'a> {
    env: &'a Env,
    store: PathBuf,
    fpga: PathBuf,
    work: PathBuf,
    tmp: PathBuf,
}

impl Yosys<'_> {
    fn new(env: &Env) -> R<Yosys<'_>> {
        let fpga = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fpga");
        if !fpga.join("tools/bin/yosys.wasm").is_file() {
            return Err("no examples/fpga/tools: run examples/fpga/fetch.sh".into());
        }
        let store = env.fresh_dir("store-fpga")?;
        let kilnfile = env.kilnfile(
            "yosys-base.Kilnfile",
            "FROM scratch\nCOPY tools/bin/yosys.wasm /usr/local/bin/\n\
             COPY tools/share/yosys/ /share/\nCOPY top.v /work/\n\
             ENV PATH=/usr/local/bin\nWORKDIR /work\n",
        )?;
        kiln(
            &store,
            &["build", "-q", "-t", "yosys-base", "-f", s(&kilnfile)],
            &fpga,
        )?;
        let work = env.fresh_dir("yosys-work")?;
        std::fs::copy(fpga.join("top.v"), work.join("top.v")).map_err(|e| e.to_string())?;
        Ok(Yosys {
            env,
            store,
            fpga,
            work,
            tmp: env.fresh_dir("yosys-tmp")?,
        })
    }

    /// The step `RUN MOUNTS["yosys", ARGS]` built with --no-cache: one
    /// warm-up build (the module compiled into the store), then the best.
    fn kiln(&self, args: &[&str], mounts: &str) -> R<f64> {
        let ctx = self.env.fresh_dir("yosys-ctx")?;
        let kilnfile = self.env.kilnfile(
            "yosys.Kilnfile",
            &format!(
                "FROM yosys-base\nRUN {mounts}[\"yosys\", \"{}\"]\n",
                args.join("\", \"")
            ),
        )?;
        let build = ["build", "-q", "--no-cache", "-f", s(&kilnfile)];
        kiln(&self.store, &build, &ctx)?;
        self.env.best(|| kiln(&self.store, &build, &ctx))
    }

    /// The same under the wasmtime CLI with its compile cache (in the temp
    /// directory), after a warm-up run.
    fn wasmtime(&self, args: &[&str]) -> R<f64> {
        let cmd = || -> R<Command> {
            let mut cmd = wasmtime_run(self.env)?;
            cmd.arg("--dir")
                .arg(format!(
                    "{}::/share",
                    s(&self.fpga.join("tools/share/yosys"))
                ))
                .arg("--dir")
                .arg(format!("{}::/work", s(&self.work)))
                .arg("--dir")
                .arg(format!("{}::/tmp", s(&self.tmp)))
                .arg(self.fpga.join("tools/bin/yosys.wasm"))
                .args(args);
            Ok(cmd)
        };
        timed(&mut cmd()?)?;
        self.env.best(|| timed(&mut cmd()?))
    }
}
