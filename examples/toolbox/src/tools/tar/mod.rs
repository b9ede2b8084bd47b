//! `tar`: creates (`-c`), extracts (`-x`) and lists (`-t`) archives, plain
//! or gzip (`-z`; gzip is recognized by itself when reading), to and from
//! a file or stdin/stdout (`-f -`, the default). Flags are GNU tar's,
//! including the old style without a dash (`tar czf out.tgz dir`).
//!
//! `create.rs` writes archives (sorted, streaming, no host user names);
//! `extract.rs` reads them, for `-x` and `-t`, refusing `..` and writing
//! symlinks last so an archive cannot write through a link it made.

mod create;
mod extract;

use crate::cli::{Io, Result, usage};
use crate::opts::{self, Flag};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "tar",
    usage: "-c|-x|-t [-f ARCHIVE] [-C DIR] [-v] [-z] [FILE]...",
    about: "Create, extract or list a tar archive (gzip with -z).",
    flags: FLAGS,
    run,
};

const FLAGS: &[Flag] = &[
    Flag::new(
        "c",
        "c",
        "create",
        "create an archive of each FILE (directories recursively)",
    ),
    Flag::new(
        "x",
        "x",
        "extract",
        "extract the archive (only the FILEs named, if any)",
    ),
    Flag::new("t", "t", "list", "list the archive's members"),
    Flag::new(
        "f",
        "f",
        "file",
        "the archive; - is stdin/stdout (the default)",
    )
    .takes("ARCHIVE"),
    Flag::new(
        "C",
        "C",
        "directory",
        "work in DIR: read FILEs from it, or extract into it",
    )
    .takes("DIR"),
    Flag::new(
        "v",
        "v",
        "verbose",
        "print each member's name (with -t: mode, owner, size, time)",
    ),
    Flag::new(
        "z",
        "z",
        "gzip",
        "compress with gzip (reading recognizes gzip without it)",
    ),
    Flag::new(
        "strip",
        "",
        "strip-components",
        "with -x: drop the first N parts of each name",
    )
    .takes("N"),
    Flag::new(
        "p",
        "p",
        "preserve-permissions",
        "accepted: modes are restored wherever the platform has them (not under WASI)",
    ),
];

/// What the command line asks for, validated.
struct Request {
    archive: String,
    directory: Option<String>,
    members: Vec<String>,
    verbose: bool,
    gzip: bool,
    strip: usize,
}

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(FLAGS, &old_style(args))?;
    let modes: Vec<&str> = ["c", "x", "t"]
        .into_iter()
        .filter(|m| parsed.has(m))
        .collect();
    let mode = match modes[..] {
        [one] => one,
        [] => return Err(usage("you must give one of -c, -x or -t")),
        _ => return Err(usage("you may not give more than one of -c, -x and -t")),
    };
    let strip = match parsed.value("strip") {
        None => 0,
        Some(n) => n
            .parse()
            .map_err(|_| usage(format!("--strip-components: invalid number '{n}'")))?,
    };
    if strip > 0 && mode != "x" {
        return Err(usage("--strip-components only applies with -x"));
    }
    let request = Request {
        archive: parsed.value("f").unwrap_or("-").to_string(),
        directory: parsed.value("C").map(str::to_string),
        members: parsed.operands.clone(),
        verbose: parsed.has("v"),
        gzip: parsed.has("z"),
        strip,
    };
    match mode {
        "c" => create::create(&request, io),
        _ => extract::extract(&request, mode == "t", io),
    }
}

/// GNU tar's old style: a first argument without a dash is a cluster of
/// flags whose values follow in order (`cf out.tar dir` is
/// `-c -f out.tar dir`).
fn old_style(args: &[String]) -> Vec<String> {
    let Some(first) = args.first() else {
        return Vec::new();
    };
    let is_cluster = !first.is_empty()
        && !first.starts_with('-')
        && first
            .chars()
            .all(|c| FLAGS.iter().any(|f| f.shorts.contains(c)));
    if !is_cluster {
        return args.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = args[1..].iter();
    for c in first.chars() {
        out.push(format!("-{c}"));
        let takes_value = FLAGS
            .iter()
            .any(|f| f.shorts.contains(c) && f.value.is_some());
        if takes_value && let Some(v) = rest.next() {
            out.push(v.clone());
        }
    }
    out.extend(rest.cloned());
    out
}

#[cfg(test)]
mod tests;
