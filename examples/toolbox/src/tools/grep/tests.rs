use std::fs;

use crate::tools::{arg, run_for_test};

fn grep(args: &[&str], stdin: &str) -> (i32, String) {
    let (code, out, err) = run_for_test("grep", args, stdin.as_bytes());
    assert_eq!(err, "", "{args:?}");
    (code, out)
}

const TEXT: &str = "foo\nbar\nFoo bar\nfood\n";

#[test]
fn selects_matching_lines_and_exits_0_or_1() {
    assert_eq!(grep(&["foo"], TEXT), (0, "foo\nfood\n".into()));
    assert_eq!(grep(&["nothing"], TEXT), (1, String::new()));
    assert_eq!(
        grep(&["-i", "foo"], TEXT),
        (0, "foo\nFoo bar\nfood\n".into())
    );
    assert_eq!(grep(&["-v", "foo"], TEXT), (0, "bar\nFoo bar\n".into()));
    assert_eq!(grep(&["-w", "foo"], TEXT), (0, "foo\n".into()));
    assert_eq!(grep(&["-x", "-i", "foo"], TEXT), (0, "foo\n".into()));
    assert_eq!(grep(&["-n", "bar"], TEXT), (0, "2:bar\n3:Foo bar\n".into()));
    assert_eq!(grep(&["-c", "o"], TEXT), (0, "3\n".into()));
    assert_eq!(grep(&["-c", "z"], TEXT), (1, "0\n".into()));
    assert_eq!(grep(&["-q", "bar"], TEXT), (0, String::new()));
    assert_eq!(grep(&["-m1", "foo"], TEXT), (0, "foo\n".into()));
    assert_eq!(grep(&["", "-"], "a\n\n"), (0, "a\n\n".into()));
}

#[test]
fn several_patterns_and_only_matching() {
    assert_eq!(
        grep(&["-e", "^b", "-e", "d$"], TEXT),
        (0, "bar\nfood\n".into())
    );
    assert_eq!(grep(&["^b\nd$"], TEXT), (0, "bar\nfood\n".into()));
    assert_eq!(grep(&["-o", "o*"], "foo\nxoy\n"), (0, "oo\no\n".into()));
    assert_eq!(
        grep(&["-ow", "foo"], "foo foo food\n"),
        (0, "foo\nfoo\n".into())
    );
    assert_eq!(grep(&["-on", "b."], TEXT), (0, "2:ba\n3:ba\n".into()));
}

#[test]
fn basic_extended_and_fixed_syntax() {
    assert_eq!(grep(&["a+b"], "a+b\naab\n"), (0, "a+b\n".into()));
    assert_eq!(grep(&["-o", r"a\+b"], "a+b\naab\n"), (0, "aab\n".into()));
    assert_eq!(
        grep(&["-E", "-o", "a+b"], "a+b\naab\n"),
        (0, "aab\n".into())
    );
    assert_eq!(grep(&[r"\(ab\)\{2\}"], "ab\nabab\n"), (0, "abab\n".into()));
    assert_eq!(
        grep(&["-E", "(ab){2}|^x"], "ab\nabab\nxy\n"),
        (0, "abab\nxy\n".into())
    );
    assert_eq!(grep(&["-E", "-x", "a|ab"], "ab\nabc\n"), (0, "ab\n".into()));
    assert_eq!(grep(&["x{1}"], "x{1}\nx\n"), (0, "x{1}\n".into()));
    assert_eq!(grep(&["-F", "a.*"], "a.*b\nabc\n"), (0, "a.*b\n".into()));
    assert_eq!(
        grep(&["[[:digit:]]\\+$"], "v1.2\nx\n"),
        (0, "v1.2\n".into())
    );
    assert_eq!(grep(&["-E", "a{,2}x"], "x\n"), (0, "x\n".into()));
}

#[test]
fn file_names_counts_and_lists_like_gnu() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f1"), "foo\nbar\n").unwrap();
    fs::write(dir.path().join("f2"), "baz\n").unwrap();
    let (f1, f2) = (arg(dir.path(), "f1"), arg(dir.path(), "f2"));
    assert_eq!(
        grep(&["ba", &f1, &f2], "").1,
        format!("{f1}:bar\n{f2}:baz\n")
    );
    assert_eq!(grep(&["-h", "ba", &f1, &f2], "").1, "bar\nbaz\n");
    assert_eq!(grep(&["-H", "ba", &f1], "").1, format!("{f1}:bar\n"));
    assert_eq!(
        grep(&["-Hn", "ba", "-"], "x\nba\n").1,
        "(standard input):2:ba\n"
    );
    assert_eq!(
        grep(&["-c", "o", &f1, &f2], "").1,
        format!("{f1}:1\n{f2}:0\n")
    );
    assert_eq!(grep(&["-l", "a", &f1, &f2], "").1, format!("{f1}\n{f2}\n"));
    assert_eq!(grep(&["-L", "foo", &f1, &f2], ""), (0, format!("{f2}\n")));
    assert_eq!(grep(&["-l", "foo"], "foo\n").1, "(standard input)\n");
}

#[test]
fn unreadable_files_mean_2_unless_q_found_a_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f1"), "foo\n").unwrap();
    let (f1, missing) = (arg(dir.path(), "f1"), arg(dir.path(), "missing"));
    let gone = format!("grep: {missing}: No such file or directory\n");
    let (code, out, err) = run_for_test("grep", &["foo", &missing, &f1], b"");
    assert_eq!((code, out, err), (2, format!("{f1}:foo\n"), gone.clone()));
    let (code, out, err) = run_for_test("grep", &["-q", "foo", &missing, &f1], b"");
    assert_eq!((code, out, err), (0, String::new(), gone));
    let (code, out, err) = run_for_test("grep", &["-s", "foo", &missing, &f1], b"");
    assert_eq!((code, out, err), (2, format!("{f1}:foo\n"), String::new()));
}

#[test]
fn usage_errors_exit_2() {
    for (args, message) in [
        (&[][..], "no PATTERN given"),
        (&[r"\(a\)\1"], r"\(a\)\1: back-references are not supported"),
        (&["[a"], "[a: unmatched ["),
        (&["-r", "x"], "option -r is not supported"),
        (&["-z", "x"], "unknown option -z"),
    ] {
        let (code, _, err) = run_for_test("grep", args, b"");
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.starts_with(&format!("grep: {message}")), "{err}");
    }
}

#[test]
fn non_utf8_lines_are_printed_as_they_are() {
    let (code, out, _) = crate::tools::run_for_test_bytes("grep", &["b"], b"a\xffb\nc\n");
    assert_eq!((code, out), (0, b"a\xffb\n".to_vec()));
}
