//! Differential tests: each script is run by dash (`/bin/sh` on Debian,
//! in a temporary directory) and by our shell over a [`FakeHost`] holding
//! the same files; stdout and the exit status must agree. (The dash here
//! has no `set -o pipefail`: that is in `tests.rs`.)

use super::fake::{FakeHost, run_in};

/// Files both shells start with, relative to the working directory.
const FILES: &[(&str, &str)] = &[
    ("a.txt", "one\ntwo\nthree\n"),
    ("b.txt", ""),
    ("c.md", "# c\n"),
    ("sub/x.txt", "x\n"),
];

const SCRIPTS: &[&str] = &[
    "set -e; false || true; echo ok",
    "set -e; if false; then :; fi; echo ok",
    "set -e; false; echo not",
    "set -e; f() { false; echo in-f; }; f; echo after",
    "set -e; f() { false; echo in-f; }; f || echo rescued",
    "set -e; ! false; echo ok",
    "set -e; ! true; echo still",
    "set -e; false && true; echo ok",
    "set -e; while false; do :; done; echo ok",
    "set -e; (false); echo not",
    "set -e; x=$(false); echo not",
    "false | true; echo $?",
    "true && echo a || echo b; false && echo c || echo d",
    "! true; echo $?",
    "echo 'single $x' \"double $HOME\" back\\ slash",
    "x='a  b'; echo $x; echo \"$x\"",
    "set -- 'a b' c; for i in \"$@\"; do echo \"[$i]\"; done",
    "set -- 'a b' c; for i in $*; do echo \"[$i]\"; done",
    "set -- 'a b' c; for i in \"$*\"; do echo \"[$i]\"; done",
    "set -- a b c; echo $# $1 $3; shift; echo $# $1",
    "f() { echo \"$#:$1\"; }; f; f ''; set -- x; f \"$@\"",
    "unset u; echo \"${u:-def}\" \"${u-def2}\" \"${u:+alt}\"; u=; echo \"${u:-d}\" \"[${u-d}]\" \"[${u:+a}]\"",
    "echo ${v:=set}; echo $v",
    "p=/usr/lib/x.tar.gz; echo ${p#*/} ${p##*/} ${p%.*} ${p%%.*} ${#p}",
    "echo $(echo hi) `echo there` \"$(printf 'a\\nb\\n\\n')\"",
    "echo $((1 + 2 * 3)) $((10 / 3)) $((7 % 3)); i=0; while [ $i -lt 3 ]; do i=$((i+1)); done; echo $i",
    "cat_() { while read -r l; do echo \"<$l>\"; done; }; cat_ < a.txt",
    "while read -r l; do echo \"$l\"; done <<EOF\nline $HOME\n  two\nEOF",
    "while read -r l; do echo \"$l\"; done <<'EOF'\nline $HOME\nEOF",
    "while read -r l; do echo \"$l\"; done <<-EOF\n\tindented\n\tEOF",
    "for f in *.txt; do echo $f; done; echo sub/*; echo *.none",
    "echo [ab].txt ?.md",
    "case abc in a*) echo A;; *) echo other;; esac; case x.c in *.h|*.c) echo C;; esac",
    "case '*' in \\*) echo star;; esac; case foo in [!f]*) echo no;; [f]*) echo yes;; esac",
    "if [ -f a.txt ]; then echo file; fi; if [ -d sub ]; then echo dir; fi; [ -s b.txt ] || echo empty",
    "test 1 -eq 1 -a x = x && echo both; [ ! -e nope ] && echo none",
    "echo out > o.txt; echo more >> o.txt; while read -r l; do echo \"got $l\"; done < o.txt",
    "echo err 1>&2; echo visible",
    "{ echo to-null; } >/dev/null; echo shown",
    "(cd sub && pwd | sed_ 2>/dev/null; echo $?); x=1; (x=2); echo $x",
    "f() { return 3; echo no; }; f; echo $?",
    "f() { local v=in; echo $v; }; v=out; f; echo $v",
    "printf '%s-%d|%5s|%-3s|%03d\\n' a 42 r l 7; printf '%s\\n' x y z",
    "IFS=:; set -- a:b::c; for i in $*; do echo \"[$i]\"; done",
    "x=abc; case $x in (a|b) echo no;; (abc) echo yes;; esac",
    "for i in 1 2 3; do if [ $i = 2 ]; then continue; fi; echo $i; done; for i in 1 2; do break; done; echo $i",
    "exit 4",
    "echo a; (exit 7); echo $?",
    "until [ \"$n\" = xxx ]; do n=\"${n}x\"; done; echo $n",
    "eval 'echo evaluated $((2+2))'",
    "echo ${#}; set -u; echo ${unset_var:-fine}",
];

fn dash(script: &str) -> Option<(i32, String)> {
    let dir = tempfile::tempdir().ok()?;
    for (p, c) in FILES {
        let path = dir.path().join(p);
        std::fs::create_dir_all(path.parent()?).ok()?;
        std::fs::write(&path, c).ok()?;
    }
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir.path())
        .env_clear()
        .env("HOME", "/home")
        .env("PATH", "/nonexistent")
        .output()
        .ok()?;
    Some((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn ours(script: &str) -> (i32, String, String) {
    let mut host = FakeHost::new();
    for (p, c) in FILES {
        host.file(&format!("/w/{p}"), c);
    }
    run_in(&mut host, script, &[])
}

#[test]
fn same_as_dash() {
    if !std::path::Path::new("/bin/sh").exists() {
        return;
    }
    let mut failures = Vec::new();
    for script in SCRIPTS {
        let Some((status, stdout)) = dash(script) else {
            continue;
        };
        let (s, o, e) = ours(script);
        if (s, o.as_str()) != (status, stdout.as_str()) {
            failures.push(format!(
                "script: {script:?}\n  dash: {status} {stdout:?}\n  ours: {s} {o:?} stderr {e:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} differ:\n{}",
        failures.len(),
        SCRIPTS.len(),
        failures.join("\n")
    );
}
