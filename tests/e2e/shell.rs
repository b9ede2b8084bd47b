//! Shell-form RUN, CMD and `kiln run IMAGE sh -c` in an image without a
//! `/bin/sh`: kiln's built-in shell runs them, each command a program of
//! the toolbox. The files a Dockerfile-style Kilnfile makes are compared
//! with what the host's POSIX `sh` (dash on Debian) makes from the same
//! scripts; errors point into the Kilnfile; limits and secret masking hold
//! for the whole script.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::secrets::{files_containing, forms};
use crate::util::Sandbox;

/// Scripts as a Dockerfile has them, one RUN each, run in order in
/// WORKDIR /w over a copy of `data()`; each writes into `out/`. Only
/// builtins and tools both the toolbox and coreutils have, with the same
/// output.
const SCRIPTS: &[&str] = &[
    "mkdir -p out && echo hi > out/redirect.txt && echo again >> out/redirect.txt",
    "cd sub && cat a.txt b.txt > ../out/cd.txt && cd .. && echo \"back in $PWD\" >> out/cd.txt",
    "for f in sub/*.txt; do echo \"== $f\"; cat \"$f\"; done > out/loop.txt",
    "cat sub/a.txt | cat | cat > out/pipe.txt",
    "false || echo 'or ran' > out/or.txt; true && echo 'and ran' >> out/or.txt; ! true || echo no >> out/or.txt",
    "i=0; while [ $i -lt 5 ]; do i=$((i + 1)); echo \"line $i\"; done > out/while.txt",
    "v=src/main.rs; case \"$v\" in *.c) echo c;; *.rs) echo rust;; *) echo other;; esac > out/case.txt",
    "x=$(cat sub/a.txt); y=; echo \"${x%.}|${#x}|${y:-default}|${v-unset}\" > out/expand.txt",
    "mkdir -p out/tree/a/b && touch out/tree/a/b/f out/tree/a/g && ls out/tree/a > out/ls.txt",
    "f() { echo \"in f: $1 $#\"; return 3; }; f one two > out/func.txt; echo \"status $?\" >> out/func.txt",
    "set -e; if false; then :; fi; ! false; false || true; echo survived > out/sete.txt",
    "printf '%s=%d\\n' a 1 b 2 > out/printf.txt; printf '%5s|%-3s|\\n' x y >> out/printf.txt",
    "echo 'one two  three' | { read a b; echo \"$b|$a\"; } > out/read.txt",
    "cat sub/missing.txt 2>/dev/null || echo 'missing handled' > out/err.txt",
    "for f in nomatch*; do echo \"$f\"; done > out/noglob.txt; echo sub/*.txt >> out/noglob.txt",
    "cp sub/a.txt out/copy.txt && mv out/copy.txt out/moved.txt && rm -f out/redirect.txt.bak && [ -f out/moved.txt ] && echo moved >> out/moved.txt",
    "while read line; do echo \"read: $line\"; done < sub/b.txt > out/readloop.txt",
    "echo \"$(echo nested $(echo deep))\" > out/subst.txt; echo `echo backticks` >> out/subst.txt",
    // Pipelines of programs (run at once by kiln) and the text tools.
    "seq 1 1000 | grep 7 | wc -l > out/pipes.txt; printf 'b\\na\\nb\\n' | sort | uniq -c >> out/pipes.txt; \
     echo 'a,b,c' | cut -d, -f2 | tr a-z A-Z >> out/pipes.txt; yes | head -n 2 >> out/pipes.txt; \
     seq 1 5 | sort -rn | head -n 2 | tail -n 1 >> out/pipes.txt; cat sub/b.txt | grep -v beta | wc -c >> out/pipes.txt; \
     cat sub/missing.txt 2>&1 | wc -l >> out/pipes.txt; cat sub/missing.txt 2>/dev/null | wc -c >> out/pipes.txt",
];

/// A `RUN <<EOF` here-document: the body is the script.
const HEREDOC: &str = "set -e\ncount=0\nfor f in sub/*.txt; do\n  count=$((count + 1))\ndone\necho \"files: $count\" > out/heredoc.txt\ncat <<END >> out/heredoc.txt\nexpanded $count\nEND\n";

fn data(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("sub/a.txt"), "alpha.").unwrap();
    fs::write(dir.join("sub/b.txt"), "beta\ngamma\n").unwrap();
}

/// Every file under `dir`, by relative path, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn shell_form_runs_make_the_files_a_posix_shell_makes() {
    let sb = Sandbox::new();
    sb.examples();
    data(&sb.path("ctx/data"));
    let mut kilnfile = String::from("FROM toolbox\nWORKDIR /w\nCOPY data/ ./\n");
    for s in SCRIPTS {
        kilnfile.push_str(&format!("RUN {s}\n"));
    }
    kilnfile.push_str(&format!("RUN <<EOF\n{HEREDOC}EOF\n"));
    sb.write("ctx/Kilnfile", &kilnfile);
    let run = sb
        .kiln(&[
            "build",
            "--progress",
            "plain",
            "-o",
            "type=local,dest=export",
            "ctx",
        ])
        .ok();
    assert!(run.stderr.contains("RUN cd sub && cat"), "{}", run.stderr);

    // The same scripts, in order, by the host's sh over the same files.
    let host = sb.path("host/w");
    data(&host);
    for s in SCRIPTS.iter().chain([&HEREDOC]) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(s)
            .current_dir(&host)
            .env("PWD", "/w")
            .output()
            .unwrap();
        assert!(out.status.success(), "host sh: {s}: {out:?}");
    }
    let ours = tree(&sb.path("export/w/out"));
    let theirs = tree(&host.join("out"));
    // PWD differs between the two (the host runs in a temp directory):
    // the scripts print it once, in cd.txt.
    let fix = |files: Vec<(String, Vec<u8>)>, pwd: &str| -> Vec<(String, String)> {
        files
            .into_iter()
            .map(|(n, b)| (n, String::from_utf8(b).unwrap().replace(pwd, "/w")))
            .collect()
    };
    let ours = fix(ours, "/w");
    let theirs = fix(theirs, host.to_str().unwrap());
    assert_eq!(ours.len(), 22, "{ours:#?}");
    for ((name, a), (tname, b)) in ours.iter().zip(&theirs) {
        assert_eq!((name, a), (tname, b), "kiln's shell vs the host's sh");
    }
    assert_eq!(ours, theirs);
    // What a few of them say, so a shell that broke both ways is seen too.
    let get = |n: &str| &ours.iter().find(|(k, _)| k == n).unwrap().1;
    assert_eq!(get("cd.txt"), "alpha.beta\ngamma\nback in /w\n");
    assert_eq!(get("expand.txt"), "alpha|6|default|unset\n");
    assert_eq!(get("heredoc.txt"), "files: 2\nexpanded 2\n");
    assert_eq!(get("readloop.txt"), "read: beta\nread: gamma\n");
    assert_eq!(
        get("pipes.txt"),
        "271\n      1 a\n      2 b\nB\ny\ny\n4\n6\n1\n0\n"
    );
}

#[test]
fn shell_errors_point_into_the_kilnfile_and_fail_with_the_status() {
    let sb = Sandbox::new();
    sb.examples();
    let build = |kilnfile: &str| {
        sb.write("ctx/Kilnfile", kilnfile);
        sb.kiln(&["build", "--progress", "plain", "ctx"])
    };
    // A syntax error: the line and the column inside the RUN.
    let err = build("FROM toolbox\nRUN echo a && if then fi\n")
        .fails(1)
        .stderr;
    assert!(
        err.contains("ctx/Kilnfile:2:23: shell syntax (kiln's built-in shell): syntax error near unexpected `fi`"),
        "{err}"
    );
    let err = build("FROM toolbox\nRUN <<EOF\necho ok\necho 'unterminated\nEOF\n")
        .fails(1)
        .stderr;
    assert!(
        err.contains(
            "ctx/Kilnfile:4:6: shell syntax (kiln's built-in shell): unterminated single quote"
        ),
        "{err}"
    );
    // A failing command: the script's status, the command's stderr.
    let err = build("FROM toolbox\nRUN cat /nope && echo NEVER\n")
        .fails(1)
        .stderr;
    assert!(
        err.contains("sh (kiln's built-in shell) exited with code 1")
            && err.contains("cat: /nope: No such file or directory")
            && err.matches("NEVER").count() == err.matches("echo NEVER").count(),
        "{err}"
    );
    // Not found: 127 and the PATH searched.
    let err = build("FROM toolbox\nRUN true && make all\n")
        .fails(1)
        .stderr;
    assert!(
        err.contains("sh: make: not found in PATH /usr/local/bin:/usr/bin:/bin")
            && err.contains("exited with code 127"),
        "{err}"
    );
    // `set -e` stops at the first failure, `exit` sets the status.
    let err = build("FROM toolbox\nRUN set -e; false; echo NEVER\n")
        .fails(1)
        .stderr;
    assert!(
        err.contains("exited with code 1")
            && err.matches("NEVER").count() == err.matches("echo NEVER").count(),
        "{err}"
    );
    let err = build("FROM toolbox\nRUN echo x; exit 42\n").fails(1).stderr;
    assert!(err.contains("exited with code 42"), "{err}");
    // The step's time limit is the whole script's, builtins included.
    sb.write("ctx/Kilnfile", "FROM toolbox\nRUN while :; do :; done\n");
    let err = sb
        .kiln(&["build", "--step-timeout", "2", "ctx"])
        .fails(1)
        .stderr;
    assert!(err.contains("time limit of 2s"), "{err}");
}

#[test]
fn set_x_traces_go_through_the_secret_masking() {
    let sb = Sandbox::new();
    sb.examples();
    let secret = "s3cr3t-shell-token-5d1f";
    sb.write("token.txt", secret);
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nWORKDIR /w\n\
         RUN --mount=type=secret,id=tok,env=TOK set -x; t=\"$TOK\"; echo \"token is $t\" > /dev/null; \
         echo \"len ${#t}\" > len.txt; t2=$(echo \"$t\" | cat); [ \"$t2\" = \"$t\" ] && echo same > same.txt\n",
    );
    let tmp = sb.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let run = sb
        .kiln_env(
            &[
                "build",
                "--progress",
                "plain",
                "--secret",
                "id=tok,src=token.txt",
                "-o",
                "type=local,dest=export",
                "ctx",
            ],
            &[("TMPDIR", tmp.to_str().unwrap())],
        )
        .ok();
    let log = format!("{}{}", run.stdout, run.stderr);
    assert!(
        log.contains("+ t=****")
            && log.contains("+ echo 'token is ****'")
            && log.contains("+ t2=****"),
        "{log}"
    );
    assert!(!log.contains(secret), "{log}");
    assert_eq!(
        fs::read_to_string(sb.path("export/w/len.txt")).unwrap(),
        format!("len {}\n", secret.len())
    );
    let needles = forms(secret.as_bytes());
    for dir in [sb.store(), sb.path("export"), tmp] {
        let hits = files_containing(&dir, &needles);
        assert!(hits.is_empty(), "the secret is in {hits:?}");
    }
}

#[test]
fn kiln_run_and_shell_form_cmd_use_the_built_in_shell() {
    let sb = Sandbox::new();
    sb.examples();
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nWORKDIR /w\nRUN echo made > made.txt\nCMD echo \"cmd in $PWD\" && cat made.txt\n",
    );
    sb.kiln(&["build", "-q", "-t", "sh-img", "ctx"]).ok();
    let config = sb.inspect("sh-img");
    assert_eq!(
        config["Config"]["config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo \"cmd in $PWD\" && cat made.txt"]),
        "{config}"
    );
    let out = sb.kiln(&["run", "--rm", "sh-img"]).ok().stdout;
    assert_eq!(out, "cmd in /w\nmade\n");
    let out = sb
        .kiln(&[
            "run",
            "--rm",
            "sh-img",
            "sh",
            "-c",
            "echo \"$0 $1 $#\"; ls | cat",
            "zero",
            "one",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "zero one 1\nmade.txt\n");
    // The exit status is the script's; stdin reaches the commands.
    sb.kiln(&["run", "--rm", "sh-img", "sh", "-c", "exit 7"])
        .fails(7);
    let mut child = Command::new(crate::util::kiln_bin())
        .env("KILN_STORE", sb.store())
        .args(["run", "--rm", "sh-img", "sh", "-c", "cat | cat; echo end"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from stdin\nend\n");
    // Options the built-in shell lacks are refused by name.
    let err = sb
        .kiln(&["run", "--rm", "sh-img", "sh", "-i", "-c", "true"])
        .fails(2)
        .stderr;
    assert!(
        err.contains("sh: -i: kiln's built-in shell has no such option"),
        "{err}"
    );
}

#[test]
fn a_shell_instruction_chooses_the_shell() {
    let sb = Sandbox::new();
    sb.examples();
    // `-e` from SHELL: the first failure ends the line, with the built-in
    // shell standing in for the image's missing /bin/sh.
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nSHELL [\"/bin/sh\", \"-e\", \"-c\"]\nRUN false; echo NEVER\n",
    );
    let err = sb
        .kiln(&["build", "--progress", "plain", "ctx"])
        .fails(1)
        .stderr;
    assert!(
        err.contains("sh (kiln's built-in shell) exited with code 1")
            && err.matches("NEVER").count() == err.matches("echo NEVER").count(),
        "{err}"
    );
    // Every shell-form line goes through the chosen shell, and the image's
    // history and CMD say so.
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nSHELL [\"sh\", \"-o\", \"pipefail\", \"-c\"]\nRUN echo one > /one.txt\nCMD echo hi\n",
    );
    sb.kiln(&["build", "-q", "-t", "shelled", "ctx"]).ok();
    let img = sb.inspect("shelled");
    assert_eq!(
        img["Config"]["config"]["Cmd"],
        serde_json::json!(["sh", "-o", "pipefail", "-c", "echo hi"]),
        "{img}"
    );
    let out = sb.kiln(&["run", "--rm", "shelled"]).ok().stdout;
    assert_eq!(out, "hi\n");
    // A shell the image lacks: not found, naming it.
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nSHELL [\"/bin/bash\", \"-c\"]\nRUN echo hi\n",
    );
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(err.contains("program \"/bin/bash\" not found"), "{err}");
    sb.write("ctx/Kilnfile", "FROM toolbox\nSHELL []\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("ctx/Kilnfile:2:1: SHELL instruction requires at least one argument"),
        "{err}"
    );
}

#[test]
fn a_pipeline_of_programs_streams_with_backpressure() {
    let sb = Sandbox::new();
    sb.examples();
    let sh = |script: &str| sb.kiln(&["run", "--rm", "toolbox", "sh", "-c", script]);
    // 300 MB through two pipes: more than a buffered stage may hold (256
    // MiB), so only programs running at once, each pipe bounded, get
    // every byte through.
    let out = sh("yes | head -c 300000000 | wc -c").ok();
    assert_eq!(out.stdout, "300000000\n", "{}", out.stderr);
    // The reader ends first: the writer gets a broken pipe and stops
    // quietly; the pipeline's status is the last program's.
    let out = sh("yes | head -n 3; echo \"status $?\"").ok();
    assert_eq!(out.stdout, "y\ny\ny\nstatus 0\n");
    assert_eq!(out.stderr, "");
    // Each program's stderr reaches the shell's; pipefail and not found.
    let out = sh("cat /nope | wc -l; set -o pipefail; nope | cat; echo \"status $?\"").ok();
    assert_eq!(out.stdout, "0\nstatus 127\n");
    assert!(
        out.stderr.contains("cat: /nope: No such file or directory")
            && out.stderr.contains("sh: nope: not found in PATH"),
        "{}",
        out.stderr
    );
    // A stage's errors into the pipe or away; the last one's anywhere.
    let out = sh(
        "cat /nope 2>&1 | grep -c 'No such'; cat /nope 2>/dev/null | wc -c; cat /nope | cat 2>&1",
    )
    .ok();
    assert_eq!(out.stdout, "1\n0\n");
    assert_eq!(out.stderr, "cat: /nope: No such file or directory\n");
    // The last program's output redirected; the programs share the
    // step's files (written by one, read by the next command).
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nWORKDIR /w\nRUN seq 1 20000 | sort -rn | head -n 3 > top.txt && cat top.txt | wc -l > n.txt\n",
    );
    sb.kiln(&["build", "-o", "type=local,dest=export", "ctx"])
        .ok();
    assert_eq!(
        fs::read_to_string(sb.path("export/w/top.txt")).unwrap(),
        "20000\n19999\n19998\n"
    );
    assert_eq!(
        fs::read_to_string(sb.path("export/w/n.txt")).unwrap(),
        "3\n"
    );
}
