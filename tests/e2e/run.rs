//! RUN steps and `kiln run` with our own guest (`tests/guests`, `probe`),
//! as a core module (wasip1) and as a component (wasip2).

use std::fs;
use std::time::{Duration, Instant};

use crate::util::{Sandbox, layer_tar, tar_entries, tool};

/// The guest builds, by WASI version.
pub const GUESTS: [(&str, &str); 2] =
    [("p1", env!("KILN_GUEST_P1")), ("p2", env!("KILN_GUEST_P2"))];

/// A context with the probe at bin/probe and `kilnfile` as its Kilnfile.
fn context(sb: &Sandbox, guest: &str, kilnfile: &str) {
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(guest, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/Kilnfile", kilnfile);
}

/// Entries of layer `index` of image `name`: (path, type, contents).
fn layer(sb: &Sandbox, name: &str, index: usize) -> Vec<(String, char, String)> {
    let img = sb.inspect(name);
    let l = &img["Manifest"]["layers"][index];
    let tar = layer_tar(
        &sb.store(),
        l["digest"].as_str().unwrap(),
        l["mediaType"].as_str().unwrap(),
    );
    tar_entries(&tar)
        .into_iter()
        .map(|(p, k, _, body)| (p, k, String::from_utf8_lossy(&body).into_owned()))
        .collect()
}

fn names(entries: &[(String, char, String)]) -> Vec<String> {
    entries.iter().map(|e| format!("{} {}", e.1, e.0)).collect()
}

#[test]
fn a_step_layer_holds_exactly_what_it_changed() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        context(
            &sb,
            guest,
            "FROM scratch\n\
             COPY bin/ /bin/\n\
             RUN [\"probe\", \"mkdir\", \"/data/sub\", \"--\", \"write\", \"/data/keep\", \"k\", \"--\", \"write\", \"/data/gone\", \"g\", \"--\", \"write\", \"/data/sub/x\", \"x\", \"--\", \"write\", \"/data/old\", \"1\"]\n\
             RUN probe write /data/old 2 -- rm /data/gone -- mv /data/sub /data/moved -- write /new.txt fresh -- ln-s data/keep /link -- ln /new.txt /hard\n",
        );
        sb.build("ctx", &["-t", "steps", "--platform", "linux/amd64"]);
        let l1 = names(&layer(&sb, "steps", 1));
        assert_eq!(
            l1,
            [
                "d data/",
                "f data/gone",
                "f data/keep",
                "f data/old",
                "d data/sub/",
                "f data/sub/x"
            ],
            "{wasi}"
        );
        let l2 = layer(&sb, "steps", 2);
        assert_eq!(
            names(&l2),
            [
                "d data/",
                "f data/.wh.gone",
                "d data/moved/",
                "f data/moved/x",
                "f data/old",
                "f data/.wh.sub",
                "f hard",
                "l link",
                "h new.txt",
            ],
            "{wasi}"
        );
        assert_eq!(
            l2.iter().find(|e| e.0 == "data/old").unwrap().2,
            "2",
            "{wasi}"
        );
        // umoci applies the whiteouts.
        let bundle = sb.umoci_unpack("steps:latest");
        let root = bundle.join("rootfs");
        assert!(
            !root.join("data/gone").exists() && !root.join("data/sub").exists(),
            "{wasi}"
        );
        assert_eq!(fs::read_to_string(root.join("data/moved/x")).unwrap(), "x");
        assert_eq!(fs::read_to_string(root.join("link")).unwrap(), "k");
        assert_eq!(fs::read_to_string(root.join("hard")).unwrap(), "fresh");
    }
}

#[test]
fn steps_get_argv_env_workdir_and_stream_output() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nARG TOKEN=abc\nENV GREETING=\"hello world\"\nWORKDIR /app\n\
             RUN probe echo \"$GREETING\" '$NOT' -- pwd -- env -- args\n",
        );
        let run = sb.kiln(&["build", "--progress", "plain", "ctx"]).ok();
        let err = &run.stderr;
        assert!(err.contains(" hello world $NOT\n"), "{wasi}: {err}");
        assert!(err.contains(" /app\n"), "{wasi}: {err}");
        assert!(
            err.contains(" GREETING=hello world\n") && err.contains(" TOKEN=abc\n"),
            "{wasi}: {err}"
        );
        // No host environment leaks in.
        assert!(
            !err.contains("HOME=") && !err.contains("KILN_STORE="),
            "{wasi}: {err}"
        );
    }
}

#[test]
fn failing_steps_report_code_and_stderr() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nRUN probe stderr something broke -- exit 3\n",
        );
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        // Rust's wasip2 std exits through wasi:cli/exit, which carries only
        // success or failure: code 3 arrives as 1 (kiln offers exit-with-code,
        // but that std does not call it).
        let code = if wasi == "p1" { 3 } else { 1 };
        assert!(
            err.contains(&format!(
                "RUN probe stderr something broke -- exit 3: /bin/probe exited with code {code}"
            )),
            "{wasi}: {err}"
        );
        assert!(
            err.contains("--- stderr (last lines) ---\nsomething broke"),
            "{wasi}: {err}"
        );
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nRUN probe trap\n",
        );
        let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
        assert!(err.contains("/bin/probe trapped"), "{wasi}: {err}");
        // A failed step publishes nothing.
        assert!(!sb.kiln(&["images"]).ok().stdout.contains("latest"));
    }
}

#[test]
fn each_limit_is_named_when_hit() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        for (kilnfile_run, flags, expected) in [
            (
                "probe alloc 64",
                vec!["--step-memory", "16m"],
                "memory limit of 16",
            ),
            (
                "probe spin",
                vec!["--step-timeout", "1"],
                "time limit of 1s",
            ),
            // Blocked in a host call, not running wasm: stopped all the same.
            (
                "probe sleep 600000",
                vec!["--step-timeout", "1"],
                "time limit of 1s",
            ),
            (
                "probe big /f 4",
                vec!["--step-max-write", "1m"],
                "wrote more than its limit of 1.049MB",
            ),
            (
                "probe many /d 50",
                vec!["--step-max-files", "10"],
                "limit of 10 files",
            ),
            // Refused before it is compiled (or even read).
            (
                "probe noop",
                vec!["--step-max-module", "1k"],
                "over the module size limit of 1.024kB (raise it with --step-max-module)",
            ),
        ] {
            context(
                &sb,
                guest,
                &format!("FROM scratch\nCOPY bin/ /bin/\nRUN {kilnfile_run}\n"),
            );
            let mut args = vec!["build"];
            args.extend(flags.iter().copied());
            args.push("ctx");
            let start = Instant::now();
            let err = sb.kiln(&args).fails(1).stderr;
            assert!(err.contains(expected), "{wasi} {kilnfile_run}: {err}");
            assert!(start.elapsed() < Duration::from_secs(30));
        }
    }
}

#[test]
fn escapes_stay_inside_the_image() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        sb.write("ctx/etc/passwd", "image passwd\n");
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nCOPY etc/ /etc/\nWORKDIR /app\n\
             RUN probe cat ../../../../etc/passwd -- ln-s /etc/passwd /app/abs -- cat /app/abs -- ln-s ../../../../../etc/passwd /app/rel -- cat /app/rel\n",
        );
        let run = sb.kiln(&["build", "--progress", "plain", "ctx"]).ok();
        assert_eq!(
            run.stderr.matches(" image passwd\n").count(),
            3,
            "{wasi}: {}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("root:x:0:0"),
            "{wasi}: the host's passwd leaked"
        );
    }
}

#[test]
fn shell_syntax_uses_the_images_sh_or_the_built_in_one() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        // No /bin/sh in the image: kiln's built-in shell runs the line,
        // each command a program of the image (wasip1 and wasip2 alike).
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nRUN probe echo a && probe echo b > /out.txt\n",
        );
        let run = sb
            .kiln(&[
                "build",
                "--progress",
                "plain",
                "-o",
                "type=local,dest=out",
                "ctx",
            ])
            .ok();
        assert!(run.stderr.contains(" a\n"), "{wasi}: {}", run.stderr);
        assert_eq!(
            std::fs::read_to_string(sb.path("out/out.txt")).unwrap(),
            "b\n",
            "{wasi}"
        );
        // With a wasm /bin/sh in the image, it runs the line.
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/probe /bin/sh\nRUN echo a && echo b\n",
        );
        let run = sb.kiln(&["build", "--progress", "plain", "ctx"]).ok();
        assert!(
            run.stderr.contains(" sh -c echo a && echo b\n"),
            "{wasi}: {}",
            run.stderr
        );
    }
}

#[test]
fn kiln_run_returns_the_programs_exit_code() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        context(
            &sb,
            guest,
            "FROM scratch\nCOPY bin/ /bin/\nENV WHO=kiln\nWORKDIR /w\nCMD [\"probe\", \"echo\", \"default\"]\n",
        );
        sb.build("ctx", &["-t", "runme"]);
        let run = sb.kiln(&["run", "--rm", "runme"]).ok();
        assert_eq!(run.stdout, "default\n", "{wasi}");
        let run = sb
            .kiln(&[
                "run", "--rm", "-e", "EXTRA=1", "runme", "probe", "env", "--", "pwd", "--", "exit",
                "7",
            ])
            // wasip2's std exits with success or failure only (see above).
            .fails(if wasi == "p1" { 7 } else { 1 });
        assert!(
            run.stdout.contains("WHO=kiln\n") && run.stdout.contains("EXTRA=1\n"),
            "{wasi}: {}",
            run.stdout
        );
        assert!(run.stdout.ends_with("/w\n"), "{wasi}: {}", run.stdout);
        // Writes are thrown away.
        sb.kiln(&["run", "runme", "probe", "write", "/w/f", "x"])
            .ok();
        sb.kiln(&["run", "runme", "probe", "cat", "/w/f"]).fails(1);
        let run = sb.kiln(&["run", "runme", "nothing-here"]).fails(127);
        assert!(
            run.stderr.contains("program \"nothing-here\" not found"),
            "{wasi}: {}",
            run.stderr
        );
    }
}

#[test]
fn compiled_code_is_cached_in_the_store() {
    let sb = Sandbox::new();
    context(
        &sb,
        GUESTS[0].1,
        "FROM scratch\nCOPY bin/ /bin/\nRUN probe noop\nRUN probe noop\n",
    );
    sb.build("ctx", &[]);
    let compiled = sb.store().join("kiln/compiled");
    // The artifact as wasmtime wrote it, and its sum.
    let entries: Vec<_> = fs::read_dir(&compiled)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none())
        .collect();
    assert_eq!(entries.len(), 1, "one module, compiled once");
    assert!(entries[0].with_extension("sum").is_file());
    let modified = fs::metadata(&entries[0]).unwrap().modified().unwrap();
    sb.build("ctx", &["--no-cache"]);
    assert_eq!(
        fs::metadata(&entries[0]).unwrap().modified().unwrap(),
        modified,
        "reused, not recompiled"
    );
    // Damaged in place: its identity changed, so it is checked before use,
    // refused, and compiled again.
    let mut bytes = fs::read(&entries[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&entries[0], &bytes).unwrap();
    sb.build("ctx", &["--no-cache"]);
    assert_ne!(fs::read(&entries[0]).unwrap(), bytes, "compiled again");
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_running_step_promptly() {
    let sb = Sandbox::new();
    context(
        &sb,
        GUESTS[0].1,
        "FROM scratch\nCOPY bin/ /bin/\nRUN probe write /f x -- spin\n",
    );
    let mut child = std::process::Command::new(crate::util::kiln_bin())
        .args(["build", "--progress", "plain", "-t", "spun", "ctx"])
        .env("KILN_STORE", sb.store())
        .current_dir(sb.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Give the step time to start spinning.
    std::thread::sleep(Duration::from_millis(1500));
    let start = Instant::now();
    tool("kill", &["-INT", &child.id().to_string()]);
    let status = child.wait().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    assert_eq!(status.code(), Some(130));
    assert!(!sb.kiln(&["images"]).ok().stdout.contains("spun"));
    assert_eq!(
        fs::read_dir(sb.store().join("kiln/tmp")).unwrap().count(),
        0,
        "temp files removed"
    );
}

#[test]
fn mounts_are_seen_by_the_step_and_never_reach_the_layer() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        sb.write("ctx/src/input.txt", "from the context\n");
        sb.write("ctx/src/.env", "API_KEY=hidden\n");
        sb.write("ctx/.kilnignore", "**/.env\n");
        context(
            &sb,
            guest,
            "FROM scratch AS tools\nCOPY bin/ /opt/tools/\n\
             FROM scratch\nCOPY bin/ /bin/\n\
             RUN --mount=type=bind,source=src,target=/src --mount=type=tmpfs,target=/scratch --mount=type=cache,id=c1,target=/cache \
                 --mount=type=bind,from=tools,source=/opt/tools,target=/tools \
                 probe cat /src/input.txt -- exists /src/.env -- write /scratch/t x -- append /cache/count x -- cat /cache/count -- exists /tools/probe -- write /out.txt done\n\
             RUN --mount=type=bind,source=src,target=/src,rw probe write /src/input.txt changed -- cat /src/input.txt\n\
             RUN --mount=type=bind,source=src,target=/src probe write /src/new x\n",
        );
        let run = sb
            .kiln(&["build", "--progress", "plain", "-t", "m", "ctx"])
            .fails(1);
        let err = &run.stderr;
        assert!(err.contains(" from the context\n"), "{wasi}: {err}");
        assert!(
            err.contains(" false\n"),
            "{wasi}: an ignored file is not reachable through a bind: {err}"
        );
        assert!(
            err.contains(" changed\n"),
            "{wasi}: rw binds accept writes: {err}"
        );
        assert!(
            err.contains("probe write /src/new x: ")
                || err.contains("Read-only")
                || err.contains("read-only"),
            "{wasi}: {err}"
        );
        // The context itself is untouched.
        assert_eq!(
            fs::read_to_string(sb.path("ctx/src/input.txt")).unwrap(),
            "from the context\n"
        );
        // Without the failing step: the layer has only /out.txt.
        let kilnfile = fs::read_to_string(sb.path("ctx/Kilnfile")).unwrap();
        let kept: Vec<&str> = kilnfile
            .lines()
            .filter(|l| !l.contains("/src/new"))
            .collect();
        sb.write("ctx/Kilnfile", kept.join("\n") + "\n");
        // (--no-cache: the step must run again to see its cache mount.)
        let run = sb
            .kiln(&[
                "build",
                "--progress",
                "plain",
                "--no-cache",
                "-t",
                "m",
                "ctx",
            ])
            .ok();
        assert!(
            run.stderr.contains(" xxtrue\n"),
            "{wasi}: the cache persists across builds: {}",
            run.stderr
        );
        let entries = names(&layer(&sb, "m", 1));
        assert_eq!(entries, ["f out.txt"], "{wasi}");
        // The rw bind's writes were dropped: that step made no layer.
        assert_eq!(
            sb.inspect("m")["Manifest"]["layers"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "{wasi}"
        );
    }
}

#[test]
fn kiln_run_binds_host_directories() {
    for (wasi, guest) in GUESTS {
        let sb = Sandbox::new();
        let host = sb.path("host");
        fs::create_dir_all(&host).unwrap();
        fs::copy(guest, host.join("tool.wasm")).unwrap();
        fs::write(host.join("in.txt"), "host file").unwrap();
        let mount = format!("type=bind,source={},target=/work,rw", host.display());
        let run = sb
            .kiln(&[
                "run",
                "--rm",
                "--mount",
                &mount,
                "scratch",
                "/work/tool.wasm",
                "cat",
                "/work/in.txt",
                "--",
                "write",
                "/work/out.txt",
                "written",
            ])
            .ok();
        assert_eq!(run.stdout, "host file", "{wasi}");
        assert_eq!(
            fs::read_to_string(host.join("out.txt")).unwrap(),
            "written",
            "{wasi}: rw binds write through"
        );
        let ro = format!("type=bind,source={},target=/work", host.display());
        sb.kiln(&[
            "run",
            "--mount",
            &ro,
            "scratch",
            "/work/tool.wasm",
            "write",
            "/work/x",
            "y",
        ])
        .fails(1);
        assert!(!host.join("x").exists());
    }
}

/// A step writing 1 GiB streams it: kiln's memory stays far below the size.
#[cfg(target_os = "linux")]
#[test]
fn a_gigabyte_is_written_with_bounded_memory() {
    let sb = Sandbox::new();
    context(
        &sb,
        GUESTS[0].1,
        "FROM scratch\nCOPY bin/ /bin/\nRUN probe big /big 1024 -- sum /big\n",
    );
    let mut child = std::process::Command::new(crate::util::kiln_bin())
        .args([
            "build",
            "-q",
            "-t",
            "big",
            "--output",
            "type=image,compression=uncompressed",
            "ctx",
        ])
        .env("KILN_STORE", sb.store())
        .current_dir(sb.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    while child.try_wait().unwrap().is_none() {
        if let Ok(status) = fs::read_to_string(&status_file) {
            for line in status.lines() {
                if let Some(v) = line.strip_prefix("VmHWM:") {
                    peak_kib = peak_kib.max(v.trim().trim_end_matches(" kB").parse().unwrap_or(0));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.wait().unwrap().success());
    let size = sb.inspect("big")["Manifest"]["layers"][1]["size"]
        .as_u64()
        .unwrap();
    assert!(size > 1 << 30, "the layer holds the gigabyte: {size}");
    assert!(
        peak_kib < 512 << 10,
        "peak memory {} MiB for a 1 GiB file",
        peak_kib >> 10
    );
}
