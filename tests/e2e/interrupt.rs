//! Interrupted builds and hostile secret sources.
//!
//! A kiln killed (SIGKILL) or stopped (SIGTERM, SIGINT, SIGHUP) while the
//! layer of a step that wrote a secret is being written and scanned leaves
//! no file holding the secret, exits with the code shells expect, and the
//! next kiln to open the store finds it sound (`kiln check`) with no temp
//! files left. A FIFO secret
//! source says what kiln waits for and honours Ctrl-C. Secrets in names
//! the leak guard reports are masked in kiln's own messages.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use crate::run::GUESTS;
use crate::secrets::{files_containing, forms};
use crate::util::{Sandbox, kiln_bin};

const TOKEN: &str = "tok_K1ll3d_mid_layer_9f2c";

/// The step copies the token into /big and appends filler: the leak guard
/// only decides at the end of the file, so for a while the layer being
/// written holds the token (uncompressed, so in clear).
const KILNFILE: &str = "FROM scratch\nCOPY bin/probe /bin/probe\n\
    RUN --mount=type=secret,id=tok [\"/bin/probe\", \"copy\", \"/run/secrets/tok\", \"/big\", \"--\", \"pad\", \"/big\", \"400\"]\n";

fn setup(kilnfile: &str) -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/Kilnfile", kilnfile);
    sb.write("tok.txt", TOKEN);
    fs::create_dir_all(sb.path("tmp")).unwrap();
    sb
}

/// Starts a build of `ctx` as a child process (TMPDIR in the sandbox, so
/// it is searched too); stderr lines arrive on the receiver.
fn spawn_build(sb: &Sandbox, secret: &str, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(kiln_bin())
        .args(["build", "--progress", "plain", "--secret", secret])
        .args(extra)
        .arg("ctx")
        .env_remove("SOURCE_DATE_EPOCH")
        .env("KILN_STORE", sb.store())
        .env("TMPDIR", sb.path("tmp"))
        .current_dir(sb.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kiln");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Sizes of the files the process has open in the store's temp area,
/// largest first: the step's spilled output, and while its layer is written,
/// the layer and a copy of the file's contents (named or not).
fn temp_file_sizes(pid: u32, store: &Path) -> Vec<u64> {
    let tmp = store.join("kiln/tmp");
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let mut sizes: Vec<u64> = fds
        .filter_map(|fd| fd.ok())
        .filter(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(&tmp)))
        .filter_map(|fd| fs::metadata(fd.path()).ok().map(|m| m.len()))
        .collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Waits until the layer of the secret step has grown to `mib` MiB: the
/// kill points are places in the layer write, not times.
fn wait_for_layer_write(child: &mut Child, store: &Path, mib: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while temp_file_sizes(child.id(), store)
        .get(1)
        .copied()
        .unwrap_or(0)
        < mib << 20
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "kiln ended before its layer reached {mib} MiB"
        );
        assert!(Instant::now() < deadline, "the layer write never started");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(child: &Child, sig: Signal) {
    let pid = Pid::from_raw(child.id() as i32).unwrap();
    kill_process(pid, sig).unwrap();
}

/// Asserts no file under the sandbox (store, TMPDIR, context) but the
/// token file itself holds the token in any form.
#[track_caller]
fn assert_no_token_on_disk(sb: &Sandbox, when: &str) {
    let hits: Vec<String> = files_containing(sb.dir.path(), &forms(TOKEN.as_bytes()))
        .into_iter()
        .filter(|p| !p.ends_with("tok.txt"))
        .collect();
    assert!(hits.is_empty(), "{when}: the token is on disk in {hits:?}");
}

/// Opens the store with `kiln check`, which finds it sound; then the temp
/// area must be empty (the dead process's files swept, the new process's
/// own removed).
#[track_caller]
fn assert_temp_area_swept(sb: &Sandbox) {
    sb.kiln(&["check"]).ok();
    let left: Vec<PathBuf> = fs::read_dir(sb.store().join("kiln/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left in the temp area: {left:?}");
}

#[test]
fn killed_while_a_secret_layer_is_written_leaves_no_secret_on_disk() {
    let sb = setup(KILNFILE);
    let secret = format!("id=tok,src={}", sb.path("tok.txt").display());
    let output = ["--output", "type=image,compression=uncompressed"];
    for (sig, mib, expect) in [
        (Signal::KILL, 1, None),
        (Signal::KILL, 120, None),
        (Signal::KILL, 300, None),
        (Signal::TERM, 60, Some(143)),
        (Signal::INT, 60, Some(130)),
        (Signal::HUP, 60, Some(129)),
    ] {
        let when = format!("{sig:?} {mib} MiB into the layer write");
        let (mut child, lines) = spawn_build(&sb, &secret, &output);
        wait_for_layer_write(&mut child, &sb.store(), mib);
        signal(&child, sig);
        let status = child.wait().unwrap();
        // Every line: the reader ends at the end of stderr.
        let stderr: Vec<String> = lines.iter().collect();
        match expect {
            None => assert_eq!(status.signal(), Some(9), "{when}: {status:?}"),
            Some(code) => {
                // Stopped mid-layer, long before the leak guard's verdict
                // at the end of the file: the interrupt is the cause.
                assert_eq!(status.code(), Some(code), "{when}: {stderr:#?}");
                assert!(
                    stderr.iter().any(|l| l.contains("cancelled")),
                    "{when}: {stderr:#?}"
                );
            }
        }
        assert!(
            stderr.iter().all(|l| !l.contains(TOKEN)),
            "{when}: {stderr:#?}"
        );
        assert_no_token_on_disk(&sb, &when);
        assert_temp_area_swept(&sb);
    }
    // The store is sound: without the token the same build runs to the end.
    fs::write(sb.path("empty.txt"), "").unwrap();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY bin/probe /bin/probe\nRUN [\"/bin/probe\", \"pad\", \"/big\", \"1\"]\n",
    );
    sb.kiln(&["build", "-q", "-t", "after", "ctx"]).ok();
}

#[test]
fn an_interrupt_stops_a_running_step_with_the_signals_exit_code() {
    // A step asleep in a call into kiln stops there; one that computes
    // without calling out (its code has no epoch checks) is let go after
    // a grace period: one signal does it, promptly, either way.
    for (program, sig, code) in [
        ("\"sleep\", \"60000\"", Signal::TERM, 143),
        ("\"spin\"", Signal::INT, 130),
    ] {
        let sb = setup(&format!(
            "FROM scratch\nCOPY bin/probe /bin/probe\n\
             RUN --mount=type=secret,id=tok [\"/bin/probe\", \"echo\", \"started\", \"--\", {program}]\n"
        ));
        let secret = format!("id=tok,src={}", sb.path("tok.txt").display());
        let (mut child, lines) = spawn_build(&sb, &secret, &[]);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the step never started");
            if line.ends_with("started") {
                break;
            }
        }
        let signalled = Instant::now();
        signal(&child, sig);
        let status = child.wait().unwrap();
        let took = signalled.elapsed();
        let stderr: Vec<String> = lines.iter().collect();
        assert_eq!(status.code(), Some(code), "{program} {stderr:#?}");
        assert!(took < Duration::from_secs(20), "{program}: {took:?}");
        assert!(
            stderr.iter().any(|l| l.contains("cancelled")),
            "{stderr:#?}"
        );
        assert_no_token_on_disk(&sb, program);
        assert_temp_area_swept(&sb);
    }
}

#[test]
fn a_fifo_secret_says_what_kiln_waits_for_and_honours_ctrl_c() {
    let sb = setup(
        "FROM scratch\nCOPY bin/probe /bin/probe\n\
         RUN --mount=type=secret,id=tok [\"/bin/probe\", \"derive\", \"/run/secrets/tok\", \"/info\"]\n",
    );
    let fifo = sb.path("tok.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let secret = format!("id=tok,src={}", fifo.display());

    // Nobody writes: kiln says so, and Ctrl-C ends the wait.
    let (mut child, lines) = spawn_build(&sb, &secret, &[]);
    let said = lines
        .recv_timeout(Duration::from_secs(60))
        .expect("kiln said nothing while waiting");
    assert!(
        said.contains("waiting for") && said.contains("tok.fifo"),
        "{said}"
    );
    signal(&child, Signal::INT);
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.iter().collect();
    assert_eq!(status.code(), Some(130), "{rest:#?}");
    assert!(rest.iter().any(|l| l.contains("cancelled")), "{rest:#?}");

    // A writer that comes late: the build waits for it and uses the value.
    let (mut child, lines) = spawn_build(&sb, &secret, &["-t", "fifo"]);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let mut f = fs::OpenOptions::new().write(true).open(fifo).unwrap();
            f.write_all(TOKEN.as_bytes()).unwrap();
        })
    };
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let stderr: Vec<String> = lines.iter().collect();
    assert!(status.success(), "{stderr:#?}");
    assert_no_token_on_disk(&sb, "after a FIFO secret");
}

#[test]
fn secrets_in_names_are_masked_in_kilns_own_messages() {
    let sb = setup(
        "FROM scratch\nCOPY bin/probe /bin/probe\n\
         RUN --mount=type=secret,id=tok [\"/bin/probe\", \"name-from\", \"/run/secrets/tok\", \"/out\"]\n",
    );
    let secret = format!("id=tok,src={}", sb.path("tok.txt").display());
    // The guard refuses the layer at the first name it meets (`/out/link`,
    // whose target holds the token, sorts first).
    let refused = sb
        .kiln(&["build", "--progress", "plain", "--secret", &secret, "ctx"])
        .fails(1);
    assert!(
        refused.stderr.contains("/out/link contains secret \"tok\""),
        "{}",
        refused.stderr
    );
    // Warn mode names the file and the symlink whose target holds it.
    let warned = sb
        .kiln(&[
            "build",
            "--progress",
            "plain",
            "--secret-scan",
            "warn",
            "--secret",
            &secret,
            "ctx",
        ])
        .ok();
    assert!(
        warned.stderr.contains("/out/**** contains secret"),
        "{}",
        warned.stderr
    );
    assert!(
        warned.stderr.contains("/out/link contains secret"),
        "{}",
        warned.stderr
    );
    for out in [&refused, &warned] {
        for form in forms(TOKEN.as_bytes()) {
            let form = String::from_utf8(form).unwrap();
            assert!(!out.stderr.contains(&form), "{}", out.stderr);
            assert!(!out.stdout.contains(&form), "{}", out.stdout);
        }
    }
}
