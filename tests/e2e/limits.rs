//! Limits that hold for the whole step: `--step-max-write` and
//! `--step-max-files` over every mount, tmpfs mounts that live in memory
//! only under a default size, and host handles bounded so that a step can
//! read more image files than kiln may open.

use std::fs;
use std::process::Command;

use crate::run::GUESTS;
use crate::util::{Run, Sandbox, kiln_bin};

/// A context with the probe at bin/probe, `src/` and `kilnfile` as its Kilnfile.
fn context(sb: &Sandbox, guest: &str, kilnfile: &str) {
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(guest, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/src/keep", "kept\n");
    sb.write("ctx/Kilnfile", kilnfile);
}

#[test]
fn write_and_file_limits_cover_every_mount() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        for (i, (where_, mount)) in [
            ("the root", String::new()),
            (
                "a tmpfs without size",
                "--mount=type=tmpfs,target=/t".into(),
            ),
            ("a cache", "--mount=type=cache,id=c{i},target=/t".into()),
            (
                "a rw context bind",
                "--mount=type=bind,source=src,target=/t,rw".into(),
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mount = mount.replace("{i}", &i.to_string());
            for (op, flags, expected) in [
                (
                    "big /t/f 4",
                    ["--step-max-write", "1m"],
                    "wrote more than its limit of 1.049MB (raise it with --step-max-write)",
                ),
                (
                    "many /t/d 50",
                    ["--step-max-files", "10"],
                    "created more than its limit of 10 files (raise it with --step-max-files)",
                ),
            ] {
                context(
                    &sb,
                    guest,
                    &format!("FROM scratch\nCOPY bin/ /bin/\nRUN {mount} probe mkdir /t -- {op}\n"),
                );
                let err = sb
                    .kiln(&["build", flags[0], flags[1], "ctx"])
                    .fails(1)
                    .stderr;
                assert!(err.contains(expected), "{wasi}, {op} into {where_}: {err}");
            }
        }
        // The context is untouched by the rw bind's writes.
        assert!(!sb.path("ctx/src/f").exists() && !sb.path("ctx/src/d").exists());
    }
}

#[test]
fn a_tmpfs_without_size_holds_at_most_the_default() {
    let (wasi, guest) = GUESTS[0];
    let sb = Sandbox::new();
    let mib = kiln::vfs::DEFAULT_TMPFS_SIZE >> 20;
    context(
        &sb,
        guest,
        &format!(
            "FROM scratch\nCOPY bin/ /bin/\nRUN --mount=type=tmpfs,target=/t probe big /t/f {}\n",
            mib + 1
        ),
    );
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("exited with code 1") && err.to_lowercase().contains("no space"),
        "{wasi}: {err}"
    );
    let docs = fs::read_to_string(crate::util::workspace().join("docs/kilnfile.md")).unwrap();
    assert!(
        docs.contains(&format!("without it the cap is {mib} MiB")),
        "docs/kilnfile.md states the default tmpfs size"
    );
}

/// 4 KiB of what `probe big` writes: a byte ramp.
#[cfg(target_os = "linux")]
fn pattern() -> Vec<u8> {
    (0..4096u32).map(|j| (31 + j) as u8).collect()
}

#[cfg(target_os = "linux")]
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs a build of `ctx` and, until it ends, reads every file the kiln
/// process holds open under `store`; returns whether any held `needle`.
#[cfg(target_os = "linux")]
fn open_files_hold(sb: &Sandbox, needle: &[u8]) -> bool {
    let mut child = Command::new(kiln_bin())
        .args(["build", "ctx"])
        .env("KILN_STORE", sb.store())
        .current_dir(sb.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let fds = format!("/proc/{}/fd", child.id());
    let store = sb.store();
    let mut seen = false;
    while child.try_wait().unwrap().is_none() {
        for fd in fs::read_dir(&fds).into_iter().flatten().flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            if target.starts_with(&store)
                && let Ok(bytes) = fs::read(fd.path())
            {
                seen |= contains(&bytes, needle);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    seen
}

#[cfg(target_os = "linux")]
fn store_files_hold(dir: &std::path::Path, needle: &[u8]) -> bool {
    fs::read_dir(dir).unwrap().flatten().any(|e| {
        let path = e.path();
        if e.file_type().unwrap().is_dir() {
            store_files_hold(&path, needle)
        } else {
            fs::read(&path).is_ok_and(|b| contains(&b, needle))
        }
    })
}

#[cfg(target_os = "linux")]
#[test]
fn tmpfs_bytes_never_reach_the_disk() {
    let (_, guest) = GUESTS[0];
    let sb = Sandbox::new();
    // The check can see a step's bytes in the store: a large file the step
    // writes to its root spills to a temp file there.
    context(
        &sb,
        guest,
        "FROM scratch\nCOPY bin/ /bin/\nRUN probe big /f 2 -- sleep 2000 -- rm /f\n",
    );
    assert!(open_files_hold(&sb, &pattern()));
    // A tmpfs keeps them in memory.
    context(
        &sb,
        guest,
        "FROM scratch\nCOPY bin/ /bin/\nRUN --mount=type=tmpfs,target=/t probe big /t/f 2 -- sleep 2000 -- sum /t/f\n",
    );
    assert!(!open_files_hold(&sb, &pattern()));
    assert!(!store_files_hold(&sb.store(), &pattern()));
}

/// Runs kiln with `args` under `ulimit -n {limit}`.
fn kiln_with_open_file_limit(sb: &Sandbox, limit: u32, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(kiln_bin())
        .args(args)
        .env_remove("SOURCE_DATE_EPOCH")
        .env("KILN_STORE", sb.store())
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An image `data` with the probe and `count` files of distinct contents
/// in `/data`.
fn image_with_files(sb: &Sandbox, guest: &str, count: usize) {
    for i in 0..count {
        sb.write(&format!("ctx/data/f{i}"), format!("{i}\n"));
    }
    context(
        sb,
        guest,
        "FROM scratch\nCOPY bin/ /bin/\nCOPY data/ /data/\n",
    );
    sb.build("ctx", &["-t", "data"]);
}

/// A step that reads each of `count` image files with `ops` (probe
/// operations on `/data`), in a kiln allowed 256 open files.
fn reads_more_image_files_than_kiln_may_open(count: usize, ops: &[&str]) {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        image_with_files(&sb, guest, count);
        let run = ops
            .iter()
            .map(|op| format!("{op} /data"))
            .collect::<Vec<_>>()
            .join(" -- ");
        sb.write("step/Kilnfile", format!("FROM data\nRUN probe {run}\n"));
        let out =
            kiln_with_open_file_limit(&sb, 256, &["build", "--progress", "plain", "step"]).ok();
        let bytes: usize = (0..count).map(|i| format!("{i}\n").len()).sum();
        assert_eq!(
            out.stderr
                .matches(&format!(" {count} files {bytes} bytes\n"))
                .count(),
            ops.len(),
            "{wasi}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_step_reads_more_image_files_than_kiln_may_open() {
    // One after another, and all held open at once.
    reads_more_image_files_than_kiln_may_open(3_000, &["read-all", "open-all"]);
}

#[test]
fn a_step_holds_more_bound_files_open_than_kiln_may_open() {
    let (wasi, guest) = GUESTS[0];
    let sb = Sandbox::new();
    let count = 3_000;
    for i in 0..count {
        sb.write(&format!("ctx/src/many/f{i}"), format!("{i}\n"));
    }
    context(
        &sb,
        guest,
        "FROM scratch\nCOPY bin/ /bin/\nRUN --mount=type=bind,source=src/many,target=/m probe open-all /m -- read-all /m\n",
    );
    let out = kiln_with_open_file_limit(&sb, 256, &["build", "--progress", "plain", "ctx"]).ok();
    let bytes: usize = (0..count).map(|i| format!("{i}\n").len()).sum();
    assert_eq!(
        out.stderr
            .matches(&format!(" {count} files {bytes} bytes\n"))
            .count(),
        2,
        "{wasi}: {}",
        out.stderr
    );
}

#[test]
fn a_step_writes_more_large_files_than_kiln_may_open() {
    let (wasi, guest) = GUESTS[0];
    let sb = Sandbox::new();
    // 400 files past the in-memory size, at an open-file limit of 256.
    context(
        &sb,
        guest,
        "FROM scratch\nCOPY bin/ /bin/\nRUN probe fill /out 400 300\nRUN probe sum /out/f0 -- sum /out/f399\n",
    );
    let out = kiln_with_open_file_limit(&sb, 256, &["build", "--progress", "plain", "ctx"]).ok();
    for i in [0usize, 399] {
        let data: Vec<u8> = (0..300usize << 10).map(|j| (i + j) as u8).collect();
        let sum = data
            .iter()
            .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
        assert!(
            out.stderr.contains(&format!(" {} {sum:x}\n", data.len())),
            "{wasi}: f{i}: {}",
            out.stderr
        );
    }
}

/// A walk of 100,000 image files (slow: run with `--ignored`).
#[test]
#[ignore = "slow: 100,000 files"]
fn a_step_walks_100_000_image_files_at_ulimit_256() {
    reads_more_image_files_than_kiln_may_open(100_000, &["read-all"]);
}
