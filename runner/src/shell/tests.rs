//! Unit tests over [`FakeHost`]: external commands, streams, files,
//! statuses, and what dash cannot be compared on.

use super::fake::{FakeHost, run_in};

fn host() -> FakeHost {
    let mut h = FakeHost::new();
    // `cat`: stdin, or the files named, to stdout.
    h.cmd("cat", |argv, input, out, err| {
        if argv.len() == 1 {
            let _ = out.write_all(input);
            return 0;
        }
        let _ = writeln!(err, "cat: files are not supported by the fake");
        1
    });
    h.cmd("upper", |_, input, out, _| {
        let _ = out.write_all(String::from_utf8_lossy(input).to_uppercase().as_bytes());
        0
    });
    h.cmd("fail", |argv, _, _, err| {
        let _ = writeln!(err, "failing");
        argv.get(1).and_then(|a| a.parse().ok()).unwrap_or(1)
    });
    h.cmd("args", |argv, _, out, _| {
        for a in &argv[1..] {
            let _ = writeln!(out, "[{a}]");
        }
        0
    });
    h
}

fn run(script: &str) -> (i32, String, String) {
    run_in(&mut host(), script, &[])
}

#[test]
fn and_or_not_and_sequence() {
    assert_eq!(
        run("true && echo a; false || echo b; ! false && echo c").1,
        "a\nb\nc\n"
    );
    assert_eq!(run("false; true").0, 0);
    assert_eq!(run("true; false").0, 1);
    assert_eq!(run("! true").0, 1);
}

#[test]
fn external_commands_get_argv_env_and_cwd() {
    let mut h = host();
    let (s, out, _) = run_in(&mut h, "export A=1; B=2 args x 'y z'; C=3", &[]);
    assert_eq!((s, out.as_str()), (0, "[x]\n[y z]\n"));
    let (argv, env, cwd) = &h.ran[0];
    assert_eq!(argv, &["args", "x", "y z"]);
    assert!(env.contains(&("A".into(), "1".into())));
    assert!(env.contains(&("B".into(), "2".into())));
    assert!(env.contains(&("PATH".into(), "/bin".into())));
    assert_eq!(cwd, "/w");
}

#[test]
fn not_found_is_127_and_names_path() {
    let (s, _, err) = run("nosuch arg");
    assert_eq!(s, 127);
    assert!(err.contains("PATH /bin"), "{err}");
    assert_eq!(run("fail 126").0, 126);
}

#[test]
fn pipelines_buffer_between_stages() {
    assert_eq!(run("echo hello | upper | cat").1, "HELLO\n");
    assert_eq!(run("fail 3 | true").0, 0);
    assert_eq!(run("set -o pipefail; fail 3 2>/dev/null | true").0, 3);
    assert_eq!(
        run("set -o pipefail; fail 3 2>/dev/null | fail 4 2>/dev/null | true").0,
        4
    );
    assert_eq!(
        run("set -o pipefail; set +o pipefail; fail 3 2>/dev/null | true").0,
        0
    );
    // Each stage is a subshell.
    assert_eq!(run("x=1; echo 2 | read x; echo $x").1, "1\n");
}

#[test]
fn set_e_with_pipefail_stops() {
    let (s, out, _) = run("set -eo pipefail; fail 2>/dev/null | cat; echo no");
    assert_eq!((s, out.as_str()), (1, ""));
}

#[test]
fn redirections_to_files() {
    let mut h = host();
    let (s, _, _) = run_in(
        &mut h,
        "echo a > f; echo b >> f; fail 2> e; { echo out; echo err >&2; } > both 2>&1; echo x >/dev/null",
        &[],
    );
    assert_eq!(s, 0);
    assert_eq!(h.text("/w/f"), "a\nb\n");
    assert_eq!(h.text("/w/e"), "failing\n");
    assert_eq!(h.text("/w/both"), "out\nerr\n");
    let (_, out, _) = run_in(&mut h, "upper < f", &[]);
    assert_eq!(out, "A\nB\n");
    let (s, _, err) = run_in(&mut h, "echo x > /nodir/f; echo $?", &[]);
    assert_eq!(s, 0);
    assert!(err.contains("cannot create"), "{err}");
    let (s, _, err) = run_in(&mut h, "cat < missing", &[]);
    assert_eq!(s, 1);
    assert!(err.contains("missing"), "{err}");
}

#[test]
fn stderr_order_with_dup() {
    let (_, out, err) = run("fail 2>&1 | upper; echo x 1>&2");
    assert_eq!(out, "FAILING\n");
    assert_eq!(err, "x\n");
}

#[test]
fn here_documents() {
    let (_, out, _) =
        run("x=v; upper <<EOF\na $x\nEOF\nupper <<'E'\n$x\nE\ncat <<-T\n\t\ttabs\n\tT");
    assert_eq!(out, "A V\n$X\ntabs\n");
}

#[test]
fn parameters() {
    let (_, out, _) = run_in(
        &mut host(),
        "echo $# \"$1\" ${2} $$; echo \"$@\"; args \"$@\"",
        &["a b", "c"],
    );
    assert_eq!(out, "2 a b c 1\na b c\n[a b]\n[c]\n");
    let (s, _, err) = run("echo ${U:?is missing}; echo no");
    assert_eq!(s, 2);
    assert!(err.contains("U: is missing"), "{err}");
    let (s, _, err) = run("set -u; echo $nope; echo no");
    assert_eq!(s, 2);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn command_substitution_and_arithmetic() {
    assert_eq!(run("echo \"$(echo a | upper)\" `echo b`").1, "A b\n");
    assert_eq!(run("x=$(fail 5 2>/dev/null); echo $?").1, "5\n");
    assert_eq!(
        run("echo $(( (2+3) * 4 )) $((1 << 4)) $((5 > 3 ? 1 : 0))").1,
        "20 16 1\n"
    );
    // In `sh` mode, `((` is two subshells, as in dash.
    assert_eq!(run("i=1; ((i=2)); echo $i").1, "1\n");
}

#[test]
fn cd_and_subshells() {
    let mut h = host();
    h.mkdirs("/w/src");
    let (_, out, _) = run_in(
        &mut h,
        "cd src && pwd; (cd /; pwd); pwd; cd nowhere; echo $?",
        &[],
    );
    assert_eq!(out, "/w/src\n/\n/w/src\n2\n");
    assert_eq!(h.ran.len(), 0);
    let (_, _, _) = run_in(&mut h, "cd src && args", &[]);
    assert_eq!(h.ran[0].2, "/w/src");
}

#[test]
fn globbing_against_the_host() {
    let mut h = host();
    h.file("/w/a.js", "");
    h.file("/w/b.js", "");
    h.file("/w/.hidden.js", "");
    h.file("/w/lib/c.js", "");
    let (_, out, _) = run_in(&mut h, "echo *.js lib/*.js /w/l*/ '*.js' x*", &[]);
    assert_eq!(out, "a.js b.js lib/c.js /w/lib/ *.js x*\n");
    let (_, out, _) = run_in(&mut h, "set -f; echo *.js", &[]);
    assert_eq!(out, "*.js\n");
}

#[test]
fn set_e_cases() {
    assert_eq!(
        run("set -e; fail 2>/dev/null; echo no"),
        (1, String::new(), String::new())
    );
    assert_eq!(run("set -e; fail 2>/dev/null || true; echo ok").1, "ok\n");
    assert_eq!(
        run("set -e; if fail 2>/dev/null; then :; fi; echo ok").1,
        "ok\n"
    );
    assert_eq!(
        run("set -e; f() { fail 4 2>/dev/null; echo no; }; f; echo no").0,
        4
    );
    assert_eq!(run("set -e; set +e; false; echo ok").1, "ok\n");
    assert_eq!(run("set -e; (fail 2>/dev/null; echo no); echo no").0, 1);
}

#[test]
fn xtrace_goes_through_the_host() {
    let mut h = host();
    let (_, out, err) = run_in(&mut h, "set -x; A=1 args 'a b' c; echo hi", &[]);
    assert_eq!(out, "[a b]\n[c]\nhi\n");
    assert_eq!(h.traces, vec!["+ A=1 args 'a b' c", "+ echo hi"]);
    assert_eq!(err, "+ A=1 args 'a b' c\n+ echo hi\n");
}

#[test]
fn functions_return_and_locals() {
    let (_, out, _) =
        run("f() { [ \"$1\" = x ] && return 0; return 9; }; f x; echo $?; f y; echo $?");
    assert_eq!(out, "0\n9\n");
    assert_eq!(run("g() { echo \"$@\" | upper; }; g a b").1, "A B\n");
}

#[test]
fn loops_break_continue() {
    let (_, out, _) = run(
        "for i in 1 2 3; do for j in a b; do [ $j = b ] && continue 2; [ $i = 3 ] && break 2; echo $i$j; done; done",
    );
    assert_eq!(out, "1a\n2a\n");
}

#[test]
fn printf_and_echo() {
    assert_eq!(run("printf '%s=%x %%\\n' a 255").1, "a=ff %\n");
    assert_eq!(run("echo -n a; echo 'b\\tc'").1, "ab\tc\n");
    assert_eq!(run("printf '%d\\n' abc").0, 1);
}

#[test]
fn syntax_errors_have_positions() {
    let e = super::parse("echo ok\nif true; then\n").unwrap_err();
    assert!(e.message.contains("syntax error"), "{e}");
    let e = super::parse("echo a\nsleep 1 &\n").unwrap_err();
    assert!(e.message.contains("background"), "{e}");
    assert_eq!(e.pos.line, 2);
    let e = super::parse("echo a; echo ${x/a/b}").unwrap_err();
    assert!(e.message.contains("not supported"), "{e}");
    assert_eq!(e.pos.line, 1);
}

#[test]
fn case_and_test() {
    assert_eq!(
        run("case a.tar.gz in *.zip) echo z;; *.tar.*) echo t;; esac").1,
        "t\n"
    );
    assert_eq!(run("case x in y) echo y;; esac; echo $?").1, "0\n");
    assert_eq!(
        run("[ a = a ] && [ 3 -gt 2 ] && [ -z '' ] && [ -n x ] && echo ok").1,
        "ok\n"
    );
    assert_eq!(run("[ a = b").0, 2);
    assert_eq!(run("test \\( a = a \\) -o x = y && echo ok").1, "ok\n");
}
