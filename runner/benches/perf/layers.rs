//! Layers: `FROM scratch` + `COPY . /data/` into a cold store, one build per
//! layer compression (`-o type=image,compression=...`), against tar
//! piped into the same compressor and sha256sum; and the per-file cost of
//! COPY.

use std::path::Path;

use crate::Group;
use crate::env::{Env, R, kiln, need, s, shell};
use crate::table::{Goal, Row, Unit, thousands};

/// A layer compression and its reference pipeline.
struct Compression {
    /// kiln's name (`-o type=image,compression=NAME`).
    name: &'static str,
    /// The compressor of the pipeline: the program, and the stage.
    compressor: Option<(&'static str, &'static str)>,
    /// The pipeline, for the row's name.
    reference: &'static str,
    goal: Goal,
}

const COMPRESSIONS: [Compression; 3] = [
    Compression {
        name: "uncompressed",
        compressor: None,
        reference: "tar | sha256sum",
        goal: Goal::Within(1.1),
    },
    Compression {
        name: "gzip",
        compressor: Some(("gzip", "gzip -6 -n")),
        reference: "tar | gzip -6 -n | sha256sum",
        goal: Goal::Faster,
    },
    Compression {
        name: "zstd",
        compressor: Some(("zstd", "zstd -3 -q")),
        reference: "tar | zstd -3 | sha256sum",
        goal: Goal::Within(1.1),
    },
];

fn row_name(what: &str, c: &Compression) -> String {
    format!("COPY {what} into a layer, {}, vs {}", c.name, c.reference)
}

fn per_file_name(files: usize) -> String {
    format!("COPY per file ({} files, uncompressed)", thousands(files))
}

pub(crate) fn big_file(env: &Env) -> Group {
    let what = format!("{} MiB random file", env.mib);
    Group {
        names: COMPRESSIONS.iter().map(|c| row_name(&what, c)).collect(),
        run: Box::new(move |env: &Env| {
            let tree = env.big_tree();
            compare(env, &what, tree.as_deref()).0
        }),
    }
}

pub(crate) fn small_files(env: &Env) -> Group {
    let what = format!("{} small files", thousands(env.files));
    let mut names: Vec<String> = COMPRESSIONS.iter().map(|c| row_name(&what, c)).collect();
    names.push(per_file_name(env.files));
    Group {
        names,
        run: Box::new(move |env: &Env| {
            let tree = env.small_tree();
            let (mut rows, uncompressed) = compare(env, &what, tree.as_deref());
            let per_file = uncompressed.map(|secs| secs * 1000.0 / env.files as f64);
            rows.push(
                Row::new(
                    &per_file_name(env.files),
                    Unit::MsPerFile,
                    Goal::AtMost(0.085),
                )
                .kiln(per_file),
            );
            rows
        }),
    }
}

/// The three rows for one tree, and kiln's uncompressed time.
fn compare(env: &Env, what: &str, tree: Result<&Path, &String>) -> (Vec<Row>, R<f64>) {
    let mut rows = Vec::new();
    let mut uncompressed = Err("not measured".to_string());
    for c in &COMPRESSIONS {
        let name = row_name(what, c);
        let wanted =
            env.wants(&name) || (c.name == "uncompressed" && env.wants(&per_file_name(env.files)));
        if !wanted {
            continue;
        }
        let row = Row::new(&name, Unit::Secs, c.goal);
        let tree = match tree {
            Ok(t) => t,
            Err(e) => {
                rows.push(row.kiln(Err(e.clone())));
                continue;
            }
        };
        let k = kiln_copy(env, tree, c.name);
        if c.name == "uncompressed" {
            uncompressed = k.clone();
        }
        let reference = reference(env, tree, c.compressor);
        rows.push(row.kiln(k).reference(reference));
    }
    (rows, uncompressed)
}

/// The best of `runs` cold builds (a new store each).
fn kiln_copy(env: &Env, tree: &Path, compression: &str) -> R<f64> {
    let kilnfile = env.kilnfile("copy.Kilnfile", "FROM scratch\nCOPY . /data/\n")?;
    let output = format!("type=image,compression={compression}");
    env.best(|| {
        let store = env.fresh_dir("store-cold")?;
        let t = kiln(
            &store,
            &["build", "-q", "-f", s(&kilnfile), "-o", &output],
            tree,
        );
        std::fs::remove_dir_all(&store).map_err(|e| e.to_string())?;
        t
    })
}

fn reference(env: &Env, tree: &Path, compressor: Option<(&str, &str)>) -> R<f64> {
    need("tar")?;
    need("sha256sum")?;
    let stage = match compressor {
        Some((program, stage)) => {
            need(program)?;
            format!(" | {stage}")
        }
        None => String::new(),
    };
    let script = format!("tar -cf - -C '{}' .{stage} | sha256sum >/dev/null", s(tree));
    env.best(|| shell(&script))
}
