//! buildah as another reference, when it is installed (never installed
//! here): one RUN step, a cached 20-step rebuild and the small-file COPY,
//! each next to kiln's figure for the same build. buildah's steps need a
//! base image with `true` and `touch`: `KILN_BENCH_BUILDAH_FROM` (default
//! docker.io/library/busybox:1.36), pulled once before timing.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Group;
use crate::env::{Env, R, kiln, median, need, s, timed};
use crate::table::{Goal, Row, Unit, thousands};

const RUN: &str = "buildah: one RUN step (--no-cache), vs buildah build";
const TWENTY: &str = "buildah: cached rebuild, 20 RUN steps (median), vs buildah build --layers";

fn copy_name(files: usize) -> String {
    format!(
        "buildah: COPY {} small files (cold), vs buildah build",
        thousands(files)
    )
}

pub(crate) fn rows(env: &Env) -> Group {
    Group {
        names: vec![RUN.into(), TWENTY.into(), copy_name(env.files)],
        run: Box::new(|env: &Env| {
            let run = Row::new(RUN, Unit::Secs, Goal::None);
            let twenty = Row::new(TWENTY, Unit::Millis, Goal::None);
            let copy = Row::new(&copy_name(env.files), Unit::Secs, Goal::None);
            let buildah = match need("buildah") {
                Ok(b) => b,
                Err(e) => {
                    return vec![
                        run.kiln(Err(e.clone())),
                        twenty.kiln(Err(e.clone())),
                        copy.kiln(Err(e)),
                    ];
                }
            };
            let b = Buildah { env, buildah };
            let mut rows = Vec::new();
            if env.wants(RUN) {
                rows.push(run.kiln(b.kiln_run()).reference(b.run()));
            }
            if env.wants(TWENTY) {
                let twenty_files = twenty_files();
                rows.push(
                    twenty
                        .kiln(b.kiln_twenty(&twenty_files))
                        .reference(b.twenty(&twenty_files)),
                );
            }
            if env.wants(&copy.name) {
                rows.push(copy.kiln(b.kiln_copy()).reference(b.copy()));
            }
            rows
        }),
    }
}

/// (the Kilnfile's text, the Containerfile's text) of the 20-step build.
fn twenty_files() -> (String, String) {
    let mut kilnfile = String::from("FROM toolbox\n");
    let mut containerfile = format!("FROM {}\n", base());
    for i in 0..20 {
        kilnfile.push_str(&format!("RUN [\"/bin/touch\", \"/f{i}\"]\n"));
        containerfile.push_str(&format!("RUN [\"touch\", \"/f{i}\"]\n"));
    }
    (kilnfile, containerfile)
}

fn base() -> String {
    std::env::var("KILN_BENCH_BUILDAH_FROM")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "docker.io/library/busybox:1.36".into())
}

struct Buildah<'a> {
    env: &'a Env,
    buildah: PathBuf,
}

impl Buildah<'_> {
    /// `buildah --root R --runroot RR ARGS`, storage in the temp directory.
    fn cmd(&self, root: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.buildah);
        cmd.arg("--root")
            .arg(self.env.path(&format!("buildah-{root}")))
            .arg("--runroot")
            .arg(self.env.path(&format!("buildah-{root}-run")))
            .args(args);
        cmd
    }

    /// `buildah build ARGS -f FILE CTX` in storage `root`.
    fn build(&self, root: &str, args: &[&str], file: &Path, ctx: &Path) -> R<std::time::Duration> {
        let mut cmd = self.cmd(root, &["build", "-q"]);
        cmd.args(args).arg("-f").arg(file).arg(ctx);
        timed(&mut cmd)
    }

    fn pulled(&self) -> R<()> {
        timed(&mut self.cmd("main", &["pull", "-q", &base()])).map(|_| ())
    }

    fn run(&self) -> R<f64> {
        self.pulled()?;
        let ctx = self.env.fresh_dir("buildah-ctx")?;
        let file = self.env.kilnfile(
            "run.Containerfile",
            &format!("FROM {}\nRUN [\"true\"]\n", base()),
        )?;
        self.env
            .best(|| self.build("main", &["--no-cache", "--layers"], &file, &ctx))
    }

    fn kiln_run(&self) -> R<f64> {
        let store = self.env.warm_store()?;
        let ctx = self.env.fresh_dir("buildah-kiln-ctx")?;
        let kilnfile = self
            .env
            .kilnfile("run.Kilnfile", "FROM toolbox\nRUN [\"/bin/true\"]\n")?;
        let args = ["build", "-q", "--no-cache", "-f", s(&kilnfile)];
        kiln(&store, &args, &ctx)?;
        self.env.best(|| kiln(&store, &args, &ctx))
    }

    fn twenty(&self, files: &(String, String)) -> R<f64> {
        self.pulled()?;
        let ctx = self.env.fresh_dir("buildah-ctx")?;
        let file = self.env.kilnfile("twenty.Containerfile", &files.1)?;
        self.build("main", &["--layers"], &file, &ctx)?;
        let runs = (self.env.runs * 5).max(11);
        Ok(median(runs, || self.build("main", &["--layers"], &file, &ctx))? * 1000.0)
    }

    fn kiln_twenty(&self, files: &(String, String)) -> R<f64> {
        let store = self.env.warm_store()?;
        let ctx = self.env.fresh_dir("buildah-kiln-ctx")?;
        let kilnfile = self.env.kilnfile("twenty-b.Kilnfile", &files.0)?;
        let args = ["build", "-q", "-f", s(&kilnfile)];
        kiln(&store, &args, &ctx)?;
        let runs = (self.env.runs * 5).max(11);
        Ok(median(runs, || kiln(&store, &args, &ctx))? * 1000.0)
    }

    /// A cold build: new storage each run.
    fn copy(&self) -> R<f64> {
        let tree = self.env.small_tree()?;
        let file = self
            .env
            .kilnfile("copy.Containerfile", "FROM scratch\nCOPY . /data/\n")?;
        self.env.best(|| {
            let t = self.build("cold", &["--layers"], &file, &tree);
            let _ = timed(&mut self.cmd("cold", &["rmi", "--all", "--force"]));
            t
        })
    }

    fn kiln_copy(&self) -> R<f64> {
        let tree = self.env.small_tree()?;
        let kilnfile = self
            .env
            .kilnfile("copy-b.Kilnfile", "FROM scratch\nCOPY . /data/\n")?;
        self.env.best(|| {
            let store = self.env.fresh_dir("store-cold")?;
            let t = kiln(
                &store,
                &[
                    "build",
                    "-q",
                    "-f",
                    s(&kilnfile),
                    "-o",
                    "type=image,compression=uncompressed",
                ],
                &tree,
            );
            std::fs::remove_dir_all(&store).map_err(|e| e.to_string())?;
            t
        })
    }
}
