//! kiln.exe, the Windows build, under Wine (`wine_host.rs`): Windows paths
//! (`C:\...` and `..\`), a store on the Wine drive, the toolbox and hello
//! examples, `kiln run`, secrets from a file and from the environment, a
//! multi-stage build with the cache, OCI exports, Ctrl-C; and every image
//! is the one the Linux binary builds from the same context, to the byte.
//!
//! What Wine cannot stand in for, and so is not proven here: closing a
//! console window (kiln.exe runs headless here, with no window to close:
//! only Ctrl-C, which Wine delivers for SIGINT, is sent); VirtualLock's
//! working-set quota (Wine locks with Linux's mlock, or not at all, with no
//! such quota); NTFS itself (Wine's files are the Linux filesystem's, so
//! case-insensitivity and share modes on a rename over an open file are
//! Wine's imitation of them); paths past 260 characters (Wine's
//! GetFinalPathNameByHandleW has a MAX_PATH buffer, Windows' does not);
//! symlinks (Wine 8 shows a Unix symlink as the file it points to, not as a
//! Windows link, so contexts here hold none). wasmtime's
//! trap handling (a vectored exception handler on Windows) is Wine's real
//! exception dispatch, and it works: `Config::signals_based_traps` stays on.

use std::fs;

use crate::run::GUESTS;
use crate::secrets::{files_containing, forms};
use crate::util::Sandbox;
use crate::wine_host::{Wine, wine};

/// The Linux binary's store, beside kiln.exe's in the same sandbox.
const LINUX_STORE: &str = "linux-store";

/// Runs the Linux kiln in `sb` against [`LINUX_STORE`].
fn linux(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> crate::util::Run {
    let store = sb.path(LINUX_STORE);
    let mut all = vec![("KILN_STORE", store.to_str().unwrap())];
    all.extend_from_slice(env);
    sb.kiln_env(args, &all)
}

fn id(run: crate::util::Run) -> String {
    run.ok().stdout.trim().to_string()
}

#[test]
fn windows_builds_the_examples_into_the_same_images_as_linux() {
    let Some(w) = wine() else { return };
    let sb = w.sandbox();
    let examples = sb.example_files();
    fs::create_dir_all(sb.path("work")).unwrap();

    // toolbox by an absolute C:\ path, hello by a relative ..\ path and a
    // -f with backslashes, from a working directory beside the examples.
    let toolbox = w.windows_path(&examples.join("toolbox"));
    let win_toolbox = id(w.kiln(&sb, &["build", "-q", "-t", "toolbox", &toolbox], &[]));
    let win_hello = id(w.kiln_in(
        &sb,
        "work",
        &[
            "build",
            "-q",
            "-t",
            "hello",
            "-f",
            "..\\examples\\hello\\Kilnfile",
            "..\\examples\\hello",
        ],
        &[],
    ));
    let lin_toolbox = id(linux(
        &sb,
        &["build", "-q", "-t", "toolbox", "examples/toolbox"],
        &[],
    ));
    let lin_hello = id(linux(
        &sb,
        &["build", "-q", "-t", "hello", "examples/hello"],
        &[],
    ));
    assert_eq!(win_toolbox, lin_toolbox, "toolbox: kiln.exe and Linux");
    assert_eq!(win_hello, lin_hello, "hello: kiln.exe and Linux");

    // `kiln run` on Windows runs the image's program.
    let ran = w.kiln(&sb, &["run", "--rm", "hello"], &[]).ok();
    assert_eq!(ran.stdout, "hello from kiln 1.0.0\n");
    let listed = w
        .kiln(&sb, &["run", "--rm", "hello", "ls", "/srv/site"], &[])
        .ok();
    assert!(listed.stdout.contains("index.html"), "{}", listed.stdout);
    // kiln's built-in shell on Windows: a pipeline of programs at once
    // (threads and in-memory pipes), redirections into the step's files.
    let piped = w
        .kiln(
            &sb,
            &[
                "run",
                "--rm",
                "toolbox",
                "sh",
                "-c",
                "seq 1 50000 | sort -rn | head -n 2; yes | head -c 300000 | wc -c; cd /bin && ls | grep -c sort",
            ],
            &[],
        )
        .ok();
    assert_eq!(
        piped.stdout, "50000\n49999\n300000\n1\n",
        "{}",
        piped.stderr
    );

    // An OCI archive written by kiln.exe is the Linux one, byte for byte.
    fs::create_dir_all(sb.path("out")).unwrap();
    let archive = w.windows_path(&sb.path("out/hello-win.tar"));
    w.kiln(&sb, &["export", "hello", "-o", &archive], &[]).ok();
    linux(&sb, &["export", "hello", "-o", "out/hello-linux.tar"], &[]).ok();
    assert!(
        fs::read(sb.path("out/hello-win.tar")).unwrap()
            == fs::read(sb.path("out/hello-linux.tar")).unwrap(),
        "the two archives differ"
    );

    // The store kiln.exe wrote is sound, for itself and for Linux kiln.
    w.kiln(&sb, &["check"], &[]).ok();
    sb.kiln(&["check"]).ok();
}

const TOKEN: &str = "wine_tok_9Xq2_s3cr3t_v4lu3";

/// Two stages, a secret used by one step of the first, files from it in
/// the second; everything a plain Windows checkout might hold (CRLF, a
/// `\` source, a script without an executable bit).
const KILNFILE: &str = "# escape=`\r\n\
    FROM scratch AS tools\r\n\
    COPY bin/probe /bin/probe\r\n\
    RUN --mount=type=secret,id=tok [\"probe\", \"mkdir\", \"/out\", \"--\", \"derive\", \"/run/secrets/tok\", \"/out/tok.info\"]\r\n\
    RUN --mount=type=secret,id=tok,env=TOK [\"probe\", \"derive-env\", \"TOK\", \"/out/env.info\"]\r\n\
    FROM scratch\r\n\
    COPY --from=tools /bin/probe /bin/probe\r\n\
    COPY --from=tools /out/ /info/\r\n\
    COPY scripts\\run.sh /bin/\r\n\
    RUN [\"probe\", \"write\", \"/done\", \"yes\"]\r\n\
    CMD [\"probe\", \"cat\", \"/info/tok.info\"]\r\n";

fn secret_context(sb: &Sandbox, guest: &str) {
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(guest, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/scripts/run.sh", "#!/bin/sh\necho run\n");
    // No path past MAX_PATH: Wine's GetFinalPathNameByHandleW, which cap-std
    // lists directories through, fails there (error 234); Windows' does not.
    sb.write("ctx/Kilnfile", KILNFILE);
    sb.write("secret/tok.txt", TOKEN);
    fs::create_dir_all(sb.path("tmp")).unwrap();
    fs::create_dir_all(sb.path("out")).unwrap();
}

#[test]
fn windows_secrets_multi_stage_cache_and_export_match_linux() {
    let Some(w) = wine() else { return };
    for (wasi, guest) in GUESTS {
        let sb = w.sandbox();
        secret_context(&sb, guest);
        let tmp = w.windows_path(&sb.path("tmp"));
        let tmp_env = [("TMP", tmp.as_str()), ("TEMP", tmp.as_str())];
        let src = format!("id=tok,src={}", w.windows_path(&sb.path("secret/tok.txt")));
        let oci = format!("type=oci,dest={}", w.windows_path(&sb.path("out/win.tar")));
        let build = |extra: &[&str], env: &[(&str, &str)]| {
            let mut args = vec!["build", "--progress", "plain", "-t", "app"];
            args.extend_from_slice(extra);
            args.push("ctx");
            let mut all = tmp_env.to_vec();
            all.extend_from_slice(env);
            w.kiln(&sb, &args, &all).ok()
        };
        // From a file, then from the environment: the second build finds
        // every step in the cache (the secret's value is the same).
        let first = build(&["--secret", &src, "--output", &oci], &[]);
        let second = build(&["--secret", "id=tok,env=TOK"], &[("TOK", TOKEN)]);
        assert!(
            second.stderr.matches(" CACHED").count() >= 3,
            "{wasi}: {}",
            second.stderr
        );
        let shown = w.kiln(&sb, &["run", "--rm", "app"], &[]).ok().stdout;
        assert!(
            shown.starts_with(&format!("{} bytes, fnv ", TOKEN.len())),
            "{wasi}: {shown}"
        );
        let win = w.inspect(&sb, "app");

        // The Linux binary, the same context: the same image and archive.
        let secret_path = sb.path("secret/tok.txt");
        let lin_src = format!("id=tok,src={}", secret_path.display());
        let lin_oci = format!("type=oci,dest={}", sb.path("out/linux.tar").display());
        let lin = id(linux(
            &sb,
            &[
                "build", "-q", "-t", "app", "--secret", &lin_src, "--output", &lin_oci, "ctx",
            ],
            &[],
        ));
        assert_eq!(win["Id"], lin.as_str(), "{wasi}: kiln.exe and Linux");
        assert!(
            fs::read(sb.path("out/win.tar")).unwrap()
                == fs::read(sb.path("out/linux.tar")).unwrap(),
            "{wasi}: the OCI outputs differ"
        );

        // No form of the token anywhere kiln.exe wrote, nor in its output.
        let needles = forms(TOKEN.as_bytes());
        for dir in [
            sb.store(),
            sb.path("tmp"),
            sb.path("out"),
            w.drive_c().join("users"),
        ] {
            assert_eq!(
                files_containing(&dir, &needles),
                Vec::<String>::new(),
                "{wasi}"
            );
        }
        for out in [&first.stdout, &first.stderr, &second.stdout, &second.stderr] {
            assert!(
                needles
                    .iter()
                    .all(|n| !out.as_bytes().windows(n.len()).any(|x| x == n.as_slice())),
                "{wasi}: {out}"
            );
        }
    }
}

/// Ctrl-C (Wine turns SIGINT into CTRL_C_EVENT for a console program)
/// stops a running step that holds a secret in a file it wrote, big enough
/// to be spilled to a temp file: kiln.exe exits 130, its store stays
/// sound, and the secret is on no disk.
#[test]
fn ctrl_c_stops_a_windows_build_cleanly() {
    let Some(w) = wine() else { return };
    let sb = w.sandbox();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::create_dir_all(sb.path("tmp")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write("secret/tok.txt", TOKEN);
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY bin/probe /bin/probe\n\
         RUN --mount=type=secret,id=tok [\"probe\", \"copy\", \"/run/secrets/tok\", \"/big\", \"--\", \"pad\", \"/big\", \"2\", \"--\", \"sleep\", \"60000\"]\n",
    );
    let secret = format!("id=tok,src={}", w.windows_path(&sb.path("secret/tok.txt")));
    let tmp = w.windows_path(&sb.path("tmp"));
    let needles = forms(TOKEN.as_bytes());
    let on_disk = || {
        [sb.store(), sb.path("tmp"), w.drive_c().join("users")]
            .iter()
            .flat_map(|dir| files_containing(dir, &needles))
            .collect::<Vec<_>>()
    };
    // Ctrl-C once the search sees the spilled file (on Windows a
    // delete-on-close file, which Wine keeps under a name until closed):
    // the step is running, and the search would find the secret...
    let run = interrupt(
        w,
        &sb,
        &["build", "--progress", "plain", "--secret", &secret, "ctx"],
        &[("TMP", &tmp), ("TEMP", &tmp)],
        || !on_disk().is_empty(),
    );
    assert_eq!(run.code, 130, "{}", run.stderr);
    // ...and after it, it is gone, and the store is sound.
    assert_eq!(on_disk(), Vec::<String>::new());
    w.kiln(&sb, &["check"], &[]).ok();
}

/// Starts kiln.exe with `args` and `env`, sends it SIGINT as soon as
/// `ready()` says its step is where the test wants it (within two
/// minutes), and waits for it to exit (within one).
fn interrupt(
    w: &Wine,
    sb: &Sandbox,
    args: &[&str],
    env: &[(&str, &str)],
    mut ready: impl FnMut() -> bool,
) -> crate::util::Run {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let mut child = w.spawn_kiln(sb, args, env);
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let said: Vec<String> = rx.try_iter().collect();
            panic!("kiln.exe exited ({status}) first:\n{}", said.join("\n"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let said: Vec<String> = rx.try_iter().collect();
            panic!("the step never got ready:\n{}", said.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = rustix::process::Pid::from_child(&child);
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let said: Vec<String> = rx.try_iter().collect();
            panic!("kiln.exe did not stop on Ctrl-C:\n{}", said.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // What is left of its stderr (wineserver may hold the pipe open after
    // kiln.exe is gone, so no waiting for its end).
    let said: Vec<String> =
        std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(2)).ok()).collect();
    crate::util::Run {
        code: status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: said.join("\n"),
    }
}

/// wasmtime turns a guest's faults into traps with its own exception
/// handler, which on Windows is a vectored exception handler: `unreachable`
/// (an illegal instruction) and a load past the end of memory (an access
/// violation in the guard region) must come back as the same step errors
/// as on Linux, and a runaway step must meet its time limit.
#[test]
fn windows_traps_and_limits_are_the_linux_ones() {
    let Some(w) = wine() else { return };
    let sb = w.sandbox();
    let oob = wat::parse_str(
        "(module (memory 1) (func (export \"_start\") (drop (i32.load (i32.const 0x7ffffff0)))))",
    )
    .unwrap();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::write(sb.path("ctx/bin/oob"), oob).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    for (run, flags, expected) in [
        ("[\"probe\", \"trap\"]", &[][..], "/bin/probe trapped"),
        ("[\"/bin/oob\"]", &[], "out of bounds memory access"),
        (
            "[\"probe\", \"spin\"]",
            &["--step-timeout", "2"],
            "time limit of 2s",
        ),
    ] {
        sb.write(
            "ctx/Kilnfile",
            format!("FROM scratch\nCOPY bin/ /bin/\nRUN {run}\n"),
        );
        let mut args = vec!["build"];
        args.extend_from_slice(flags);
        args.push("ctx");
        let win = w.kiln(&sb, &args, &[]).fails(1).stderr;
        let lin = linux(&sb, &args, &[]).fails(1).stderr;
        for err in [&win, &lin] {
            assert!(err.contains(expected), "{run}: {err}");
        }
    }
}

/// kiln's filesystem is case-sensitive on every host, so an image can hold
/// `/x/A` and `/x/a`. Exported as files into a case-insensitive directory
/// (Windows, and Wine's imitation of it) they would be one file: kiln.exe
/// refuses, naming both, while Linux writes both.
#[test]
fn a_local_export_to_a_case_insensitive_directory_never_merges_names() {
    let Some(w) = wine() else { return };
    let sb = w.sandbox();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY bin/probe /bin/probe\n\
         RUN [\"probe\", \"mkdir\", \"/x\", \"--\", \"write\", \"/x/A\", \"upper\", \"--\", \"write\", \"/x/a\", \"lower\"]\n",
    );
    linux(
        &sb,
        &["build", "-q", "-o", "type=local,dest=out-linux", "ctx"],
        &[],
    )
    .ok();
    assert_eq!(
        fs::read_to_string(sb.path("out-linux/x/A")).unwrap(),
        "upper"
    );
    assert_eq!(
        fs::read_to_string(sb.path("out-linux/x/a")).unwrap(),
        "lower"
    );
    let dest = format!("type=local,dest={}", w.windows_path(&sb.path("out-win")));
    let err = w
        .kiln(&sb, &["build", "-q", "-o", &dest, "ctx"], &[])
        .fails(1)
        .stderr;
    assert!(
        err.contains("is on a case-insensitive filesystem, and the image has both /x/A and /x/a, which it would write as one file"),
        "{err}"
    );
    assert!(!sb.path("out-win/x").exists(), "nothing was written");
}
