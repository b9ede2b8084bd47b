//! Bad input gets a clear error, the right exit code, and loses nothing.

use std::fs;

use crate::util::{Sandbox, tool};

#[test]
fn kilnfile_errors_point_at_file_line_and_column() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\nENV A=1\n  COPPY a /b\n");
    let run = sb.kiln(&["build", "ctx"]).fails(1);
    assert!(
        run.stderr.contains(
            "error: ctx/Kilnfile:3:3: unknown instruction \"COPPY\"; expected one of FROM"
        ),
        "{}",
        run.stderr
    );
    // The line is shown with a caret under the problem.
    assert!(
        run.stderr.contains("3 |   COPPY a /b\n  |   ^^^^^"),
        "{}",
        run.stderr
    );

    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nRUN --mount=type=secret,id=t,colour=red tool\n",
    );
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("ctx/Kilnfile:2:30: unknown --mount key \"colour\""),
        "{err}"
    );

    sb.write("ctx/Kilnfile", "FROM scratch\nWORKDIR ${X:?must be set}\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(err.contains("ctx/Kilnfile:2:9: X: must be set"), "{err}");
}

#[test]
fn bad_flags_are_usage_errors_with_exit_code_2() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\n");
    for (args, expected) in [
        (
            vec!["build", "--frobnicate", "ctx"],
            "unexpected argument '--frobnicate'",
        ),
        (
            vec!["build", "--progress", "loud", "ctx"],
            "invalid value 'loud'",
        ),
        (
            vec!["build", "--platform", "amd64", "ctx"],
            "--platform: invalid platform \"amd64\": expected OS/ARCH",
        ),
        (
            vec!["build", "--output", "type=zip,dest=x", "ctx"],
            "--output type=zip,dest=x: unknown output type",
        ),
        (
            vec!["build", "-t", "Bad:Name", "ctx"],
            "-t Bad:Name: invalid image name",
        ),
        (
            vec!["build", "--build-arg", "=v", "ctx"],
            "--build-arg \"=v\": expected KEY=VALUE",
        ),
        (
            vec!["build", "--build-arg", "SOURCE_DATE_EPOCH=yesterday", "ctx"],
            "SOURCE_DATE_EPOCH=yesterday",
        ),
        (
            vec!["build", "--secret", "id=x,colour=red", "ctx"],
            "--secret id=x,colour=red: unknown key",
        ),
        (
            vec!["build", "--target", "nope", "ctx"],
            "--target \"nope\": no such stage",
        ),
        (
            vec!["build", "no-such-dir"],
            "the build context no-such-dir is not a directory",
        ),
        (vec!["frob"], "unrecognized subcommand 'frob'"),
    ] {
        let run = sb.kiln(&args).fails(2);
        assert!(run.stderr.contains(expected), "{args:?}: {}", run.stderr);
    }
    let run = sb
        .kiln_env(&["build", "ctx"], &[("SOURCE_DATE_EPOCH", "-5")])
        .fails(2);
    assert!(
        run.stderr
            .contains("SOURCE_DATE_EPOCH=-5 in the environment"),
        "{}",
        run.stderr
    );
}

#[test]
fn copy_errors_name_the_source() {
    let sb = Sandbox::new();
    sb.write("ctx/a.txt", "a");
    sb.write("outside.txt", "host secret");
    for (kilnfile, expected) in [
        (
            "FROM scratch\nCOPY missing.txt /x\n",
            "ctx/Kilnfile:2:6: \"missing.txt\" is not in the build context",
        ),
        (
            "FROM scratch\nCOPY *.none /x/\n",
            "no files in the build context match \"*.none\"",
        ),
        (
            "FROM scratch\nCOPY a.txt Kilnfile /dir\n",
            "needs a directory destination ending in /",
        ),
        (
            "FROM scratch\nCOPY --chown=nobody a.txt /x\n",
            "unable to find \"nobody\"",
        ),
        (
            "FROM scratch\nCOPY --from=nowhere /a /b\n",
            "--from=nowhere: not an earlier stage",
        ),
        (
            "FROM scratch\nCOPY a.txt /f\nCOPY a.txt /f/g\n",
            "ctx/Kilnfile:3:12: /f is not a directory",
        ),
        // `..` stops at the context root: the host file is not reachable.
        (
            "FROM scratch\nCOPY ../outside.txt /x\n",
            "\"outside.txt\" is not in the build context",
        ),
    ] {
        sb.write("ctx/Kilnfile", kilnfile);
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        assert!(err.contains(expected), "{kilnfile}: {err}");
    }
}

#[cfg(unix)]
#[test]
fn symlinks_cannot_reach_outside_the_context() {
    let sb = Sandbox::new();
    sb.write("outside.txt", "host secret");
    fs::create_dir_all(sb.path("ctx")).unwrap();
    std::os::unix::fs::symlink("../outside.txt", sb.path("ctx/rel-escape")).unwrap();
    std::os::unix::fs::symlink(sb.path("outside.txt"), sb.path("ctx/abs-escape")).unwrap();
    for link in ["rel-escape", "abs-escape"] {
        sb.write("ctx/Kilnfile", format!("FROM scratch\nCOPY {link} /x\n"));
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        assert!(
            err.contains("leads outside the build context"),
            "{link}: {err}"
        );
    }
    // Inside a copied directory, links are copied as links, never followed.
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY . /c/\n");
    let out = sb.path("fs.tar");
    sb.build(
        "ctx",
        &["--output", &format!("type=tar,dest={}", out.display())],
    );
    let bytes = fs::read(out).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("host secret"));
}

#[test]
fn missing_images_and_unsupported_steps_explain_themselves() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM alpine:3.20\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("ctx/Kilnfile:1:6: no image \"alpine:3.20\" in the store"),
        "{err}"
    );
    // Not in the store, so kiln asks docker.io (which the tests never reach).
    assert!(err.contains("cannot reach docker.io"), "{err}");
    sb.write("ctx/Kilnfile", "FROM scratch\nRUN tool --flag\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains(
            "[2/2] RUN tool --flag: program \"tool\" not found in PATH /usr/local/bin:/usr/bin:/bin (looked for tool and tool.wasm in each directory"
        ),
        "{err}"
    );
    // Native programs and scripts say what they are.
    for (bytes, what) in [
        (
            &b"\x7fELF\x02\x01\x01\0rest"[..],
            "a native Linux program (ELF)",
        ),
        (&b"MZ\x90\0rest"[..], "a native Windows program (PE)"),
        (
            &b"\xcf\xfa\xed\xferest"[..],
            "a native macOS program (Mach-O)",
        ),
        (&b"#!/bin/sh\necho hi\n"[..], "a script (#!)"),
    ] {
        sb.write("ctx/bin/tool", bytes);
        sb.write("ctx/Kilnfile", "FROM scratch\nCOPY bin/ /bin/\nRUN tool\n");
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        assert!(
            err.contains(&format!(
                "cannot load /bin/tool: it is {what}, and kiln runs only WebAssembly programs"
            )),
            "{what}: {err}"
        );
        assert!(err.contains("docs/writing-steps.md"), "{err}");
    }
    let run = sb.kiln(&["history", "nope"]).fails(1);
    assert!(
        run.stderr.contains("error: no image \"nope\" in the store"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint: `kiln images`"), "{}", run.stderr);
}

#[test]
fn a_failed_build_leaves_the_store_consistent() {
    let sb = Sandbox::new();
    sb.write("ctx/big.bin", vec![7u8; 3 << 20]);
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY big.bin /big.bin\nCOPY missing /m\n",
    );
    sb.kiln(&["build", "-t", "broken", "ctx"]).fails(1);
    // Nothing is tagged, nothing half-written is left, and the store still
    // works and validates.
    assert!(!sb.kiln(&["images"]).ok().stdout.contains("broken"));
    assert_eq!(
        fs::read_dir(sb.store().join("kiln/tmp")).unwrap().count(),
        0
    );
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY big.bin /big.bin\n");
    sb.build("ctx", &["-t", "fixed"]);
    let out = tool(
        "oci-image-tool",
        &[
            "validate",
            "--type",
            "image",
            "--ref",
            "name=fixed:latest",
            sb.store().to_str().unwrap(),
        ],
    );
    assert!(out.contains("Validation succeeded"), "{out}");
}

/// Linux: the test watches the build's progress in `/proc`.
#[cfg(target_os = "linux")]
#[test]
fn a_killed_build_leaves_the_store_consistent() {
    let sb = Sandbox::new();
    // Enough data that the build is still writing when it is killed.
    for i in 0..8 {
        let data: Vec<u8> = (0..(16u32 << 20))
            .map(|n| (n.wrapping_mul(2_654_435_761) >> (i + 3)) as u8)
            .collect();
        sb.write(&format!("ctx/big{i}.bin"), data);
    }
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY . /data/\n");
    let mut child = std::process::Command::new(crate::util::kiln_bin())
        .args(["build", "-q", "-t", "killed", "ctx"])
        .env("KILN_STORE", sb.store())
        .current_dir(sb.dir.path())
        .spawn()
        .unwrap();
    // Wait until it is writing the layer (more than a file's worth of
    // bytes written, into files that have no name yet), then kill it hard.
    // Not earlier: a process killed while it creates its temp session
    // leaves a lock file that only ages out (see store/tmp.rs).
    let tmp = sb.store().join("kiln/tmp");
    let io_file = format!("/proc/{}/io", child.id());
    let written = || {
        let io = fs::read_to_string(&io_file).unwrap_or_default();
        io.lines()
            .find_map(|l| l.strip_prefix("wchar: "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let start = std::time::Instant::now();
    while written() < 24 << 20 {
        assert!(
            start.elapsed().as_secs() < 60,
            "the build never started writing"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("the build finished before it could be interrupted; make the context bigger");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing was published: no tag, and every blob present verifies.
    assert!(!sb.kiln(&["images"]).ok().stdout.contains("killed"));
    for blob in fs::read_dir(sb.store().join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap();
        let bytes = fs::read(blob.path()).unwrap();
        let name = blob.file_name().to_string_lossy().into_owned();
        assert_eq!(
            kiln::digest::Digest::of(&bytes).hex(),
            name,
            "a torn blob under a real name"
        );
    }
    // prune clears the leftovers; the same build then succeeds.
    sb.kiln(&["prune"]).ok();
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    sb.build("ctx", &["-t", "killed"]);
}

#[test]
fn stage_cycles_and_oversized_kilnfiles_say_where_and_how_big() {
    let sb = Sandbox::new();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch AS a\nCOPY --from=b /x /x\nFROM scratch AS b\nCOPY --from=a /y /y\n",
    );
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("ctx/Kilnfile:2:13: stage \"b\" depends on itself: this reference in stage \"a\" closes the cycle"),
        "{err}"
    );
    let big = format!("FROM scratch\n#{}\n", "x".repeat(5 << 20));
    sb.write("ctx/Kilnfile", &big);
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains(&format!(
            "it is 5.243MB ({} bytes); a Kilnfile may be at most 4.194MB (4194304 bytes)",
            big.len()
        )),
        "{err}"
    );
}

#[test]
fn nested_mounts_and_links_out_of_a_mount_say_what_is_wrong() {
    let sb = Sandbox::new();
    sb.write("ctx/A/a", "a");
    sb.write("ctx/B/b", "b");
    for (mounts, says) in [
        (
            "--mount=type=bind,source=A,target=/ --mount=type=bind,source=B,target=/x",
            "cannot mount at /x: /x would be inside the mount at /, and kiln does not mount inside another mount yet",
        ),
        (
            "--mount=type=bind,source=B,target=/m/x --mount=type=bind,source=A,target=/m",
            "cannot mount at /m: /m/x would be inside the mount at /m",
        ),
        (
            "--mount=type=bind,source=A,target=/m --mount=type=tmpfs,target=/m",
            "cannot mount at /m: another mount of this step is there",
        ),
    ] {
        sb.write("ctx/Kilnfile", format!("FROM scratch\nRUN {mounts} prog\n"));
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        assert!(err.contains(says), "{mounts}: {err}");
        assert!(!err.contains("Xdev"), "{err}");
    }
    #[cfg(unix)]
    {
        std::fs::create_dir_all(sb.path("ctx/tools")).unwrap();
        std::os::unix::fs::symlink("../outside.wasm", sb.path("ctx/tools/prog")).unwrap();
        sb.write("ctx/outside.wasm", "\0asm");
        sb.write(
            "ctx/Kilnfile",
            "FROM scratch\nRUN --mount=type=bind,source=tools,target=/tools /tools/prog\n",
        );
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        assert!(
            err.contains("/tools/prog is a symbolic link to ../outside.wasm, which leads to no file in the step's filesystem"),
            "{err}"
        );
        assert!(
            err.contains("cannot reach outside the mount's source"),
            "{err}"
        );
    }
}
