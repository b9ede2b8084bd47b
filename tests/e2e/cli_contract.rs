//! The contract a script relies on: stdout carries only data, exit codes
//! mean one thing each, and files written for the user get their umask.

use std::fs;
use std::process::Command;

use crate::util::{Sandbox, kiln_bin};

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("ctx/hello.txt", "hello\n");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY hello.txt /\n");
    sb
}

#[test]
fn exit_codes_are_one_contract() {
    let sb = sandbox();
    // 0: success.
    sb.kiln(&["build", "-q", "ctx"]).ok();
    // 1: the build or a step failed.
    sb.write("bad/Kilnfile", "FROM scratch\nCOPY missing.txt /\n");
    sb.kiln(&["build", "-q", "bad"]).fails(1);
    sb.kiln(&["history", "no-such-image"]).fails(1);
    // 2: usage, whatever the flag or spec.
    for (args, says) in [
        (&["build", "--no-such-flag", "ctx"][..], "--no-such-flag"),
        (
            &["build", "-f", "nope/Kilnfile", "ctx"][..],
            "-f nope/Kilnfile: no such file",
        ),
        (&["build", "empty-dir-missing"][..], "is not a directory"),
        (
            &["build", "-o", "type=oci,dest=", "ctx"][..],
            "dest= is empty",
        ),
        (
            &["build", "-o", "type=tar,dest=", "ctx"][..],
            "dest= is empty",
        ),
        (
            &["build", "--secret", "id=a,src=x,id=b", "ctx"][..],
            "id is given twice",
        ),
        (&["build", "--no-cache=maybe", "ctx"][..], "maybe"),
    ] {
        let run = sb.kiln(args).fails(2);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
    fs::create_dir_all(sb.path("no-kilnfile")).unwrap();
    let run = sb.kiln(&["build", "no-kilnfile"]).fails(2);
    assert!(run.stderr.contains("no Kilnfile"), "{}", run.stderr);
}

#[test]
fn a_tar_on_stdout_is_followed_by_nothing() {
    let sb = sandbox();
    for output in ["-", "type=oci,dest=-", "type=docker,dest=-"] {
        let out = Command::new(kiln_bin())
            .args(["build", "-q", "-o", output, "ctx"])
            .env("KILN_STORE", sb.store())
            .current_dir(sb.dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{output}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let id = stderr.trim();
        assert!(
            id.starts_with("sha256:"),
            "{output}: the id goes to stderr: {stderr}"
        );
        // The archive reads whole, and what follows its last entry is the
        // tar's end: zero blocks, no id.
        let mut archive = tar::Archive::new(&out.stdout[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert!(!names.is_empty(), "{output}");
        assert!(
            out.stdout.len().is_multiple_of(512),
            "{output}: {} bytes",
            out.stdout.len()
        );
        assert!(
            out.stdout[out.stdout.len() - 1024..]
                .iter()
                .all(|b| *b == 0),
            "{output}: bytes after the archive"
        );
        assert!(
            !out.stdout.ends_with(format!("{id}\n").as_bytes()),
            "{output}"
        );
    }
}

#[test]
fn iidfile_and_metadata_file_say_what_was_built() {
    let sb = sandbox();
    let id = sb.build(
        "ctx",
        &[
            "-t",
            "hello:1",
            "--iidfile",
            "iid",
            "--metadata-file",
            "meta.json",
        ],
    );
    assert_eq!(fs::read_to_string(sb.path("iid")).unwrap(), id);
    let meta: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(sb.path("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["containerimage.digest"], id.as_str());
    assert_eq!(meta["image.name"], "hello:1");
    assert!(
        meta["containerimage.config.digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{meta}"
    );
}

#[cfg(unix)]
#[test]
fn exported_files_get_the_users_umask() {
    use std::os::unix::fs::PermissionsExt;
    let sb = sandbox();
    // What a new file of this user gets (0666 less the umask).
    let probe = sb.write("probe", "");
    let want = fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    sb.kiln(&[
        "build",
        "-q",
        "-t",
        "hello",
        "-o",
        "type=oci,dest=img.tar",
        "ctx",
    ])
    .ok();
    sb.kiln(&["build", "-q", "-o", "type=tar,dest=fs.tar", "ctx"])
        .ok();
    sb.kiln(&["build", "-q", "-o", "type=oci,dest=layout,tar=false", "ctx"])
        .ok();
    sb.kiln(&["save", "-o", "saved.tar", "hello"]).ok();
    let mut files = vec![
        sb.path("saved.tar"),
        sb.path("img.tar"),
        sb.path("fs.tar"),
        sb.path("layout/index.json"),
    ];
    for blob in fs::read_dir(sb.path("layout/blobs/sha256")).unwrap() {
        files.push(blob.unwrap().path());
    }
    for f in files {
        let mode = fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want, "{}: {mode:o}, want {want:o}", f.display());
    }
}
