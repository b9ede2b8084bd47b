//! WORKDIR and relative paths. wasi-libc (C, C++, Rust std, for wasip1
//! modules and wasip2 components) starts every program with its own cwd
//! string at `/` and maps relative and absolute paths alike onto the
//! preopens, so a program resolves relative paths from the step's WORKDIR
//! only once it calls `chdir($PWD)`, as the probe does unless told `nocd`.
//! Checked in build steps and under `kiln run -w`.

use std::fs;

use crate::run::GUESTS;
use crate::util::{Sandbox, workspace};

/// A context with the probe at bin/probe, `/file.txt` and `/work/file.txt`.
fn context(sb: &Sandbox, guest: &str, kilnfile: &str) {
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(guest, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/root/file.txt", "at root\n");
    sb.write("ctx/root/work/file.txt", "in workdir\n");
    sb.write("ctx/Kilnfile", kilnfile);
}

#[test]
fn relative_paths_follow_the_programs_own_cwd() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nCOPY root/ /\nWORKDIR /work\n\
             RUN probe nocd -- pwd -- cat file.txt -- getenv PWD\n\
             RUN probe pwd -- cat file.txt -- cat /file.txt -- write out.txt made -- cat /work/out.txt\n",
        );
        let run = sb
            .kiln(&["build", "--progress", "plain", "-t", "wd", "ctx"])
            .ok();
        let err = &run.stderr;
        // Without chdir: wasi-libc's cwd is `/`, and PWD tells WORKDIR.
        assert!(
            err.contains(" /\n") && err.contains(" /work\n"),
            "{wasi}: {err}"
        );
        // After chdir($PWD): relative paths from WORKDIR, absolute from the root.
        assert_eq!(err.matches(" at root\n").count(), 2, "{wasi}: {err}");
        assert_eq!(err.matches(" in workdir\n").count(), 1, "{wasi}: {err}");
        assert!(err.contains(" made"), "{wasi}: {err}");

        // `kiln run -w` gives a program the same start.
        let out = |args: &[&str]| {
            let mut all = vec!["run", "--rm", "-w", "/work", "wd", "probe"];
            all.extend(args);
            sb.kiln(&all).ok().stdout
        };
        assert_eq!(
            out(&["nocd", "--", "cat", "file.txt"]),
            "at root\n",
            "{wasi}"
        );
        assert_eq!(
            out(&["cat", "file.txt", "--", "cat", "out.txt"]),
            "in workdir\nmade",
            "{wasi}"
        );
    }
}

/// A C program built with wasi-libc (the WASI test suite's `fopen`
/// test opens `file`): the relative path resolves from `/` in any WORKDIR.
#[test]
fn a_c_program_opens_relative_paths_from_the_root() {
    let sb = Sandbox::new();
    let suite = workspace().join("../shared/wasi-testsuite/c");
    let root = sb.path("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    fs::copy(suite.join("fs-tests.dir/file"), root.join("file")).unwrap();
    fs::copy(suite.join("fopen-with-access.wasm"), root.join("t.wasm")).unwrap();
    let mount = format!("type=bind,source={},target=/", root.display());
    sb.kiln(&["run", "--mount", &mount, "-w", "/sub", "scratch", "/t.wasm"])
        .ok();
    fs::rename(root.join("file"), root.join("sub/file")).unwrap();
    sb.kiln(&["run", "--mount", &mount, "-w", "/sub", "scratch", "/t.wasm"])
        .fails(1);
}

/// argv[0] is the name as written, and the image's PATH is in the
/// environment.
#[test]
fn steps_see_argv0_as_written_and_path() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nRUN probe args -- getenv PATH\n\
             ENV PATH=/opt/bin:/bin\nRUN [\"probe\", \"getenv\", \"PATH\"]\nRUN /bin/probe args\n",
        );
        let run = sb
            .kiln(&["build", "--progress", "plain", "-t", "p", "ctx"])
            .ok();
        let err = &run.stderr;
        assert!(err.contains(" probe\n"), "{wasi}: {err}");
        // No PATH in the image, none in the environment (the WASI test
        // suite checks exact environments through `kiln run`).
        assert!(!err.contains("/usr/local/bin"), "{wasi}: {err}");
        assert!(err.contains(" /bin/probe\n"), "{wasi}: {err}");
        assert!(err.contains(" /opt/bin:/bin\n"), "{wasi}: {err}");
        let out = sb
            .kiln(&["run", "--rm", "p", "probe", "args", "--", "getenv", "PATH"])
            .ok()
            .stdout;
        assert_eq!(
            out, "probe\nargs\n--\ngetenv\nPATH\n/opt/bin:/bin\n",
            "{wasi}"
        );
    }
}
