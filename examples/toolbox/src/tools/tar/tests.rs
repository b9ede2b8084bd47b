//! `tar` on a host: round trips, the flags, and the archives it refuses.

use std::fs;
use std::path::Path;

use crate::tools::{arg, run_for_test, run_for_test_bytes};

fn tree(root: &Path) {
    fs::create_dir_all(root.join("src/sub/empty")).unwrap();
    fs::write(root.join("src/a.txt"), "alpha\n").unwrap();
    fs::write(root.join("src/sub/b.bin"), vec![7u8; 200_000]).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("../a.txt", root.join("src/sub/link")).unwrap();
}

fn ok(tool_args: &[&str]) -> String {
    let (code, out, err) = run_for_test("tar", tool_args, b"");
    assert_eq!((code, err.as_str()), (0, ""), "tar {tool_args:?}: {out}");
    out
}

#[test]
fn gzip_round_trip_through_a_file_keeps_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let out = arg(dir.path(), "out.tgz");
    ok(&["-czf", &out, "-C", &arg(dir.path(), "src"), "."]);
    let bytes = fs::read(&out).unwrap();
    assert_eq!(bytes[..2], [0x1f, 0x8b], "gzip");
    let listed = ok(&["-tf", &out]);
    let mut expected = vec!["./", "a.txt", "sub/", "sub/b.bin", "sub/empty/"];
    if cfg!(unix) {
        expected.push("sub/link");
    }
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        expected,
        "sorted, gzip recognized without -z"
    );
    let dst = arg(dir.path(), "dst");
    fs::create_dir(&dst).unwrap();
    ok(&["-xzf", &out, "-C", &dst]);
    let dst = Path::new(&dst);
    assert_eq!(fs::read_to_string(dst.join("a.txt")).unwrap(), "alpha\n");
    assert_eq!(fs::read(dst.join("sub/b.bin")).unwrap(), vec![7u8; 200_000]);
    assert!(dst.join("sub/empty").is_dir());
    #[cfg(unix)]
    assert_eq!(
        fs::read_link(dst.join("sub/link")).unwrap(),
        Path::new("../a.txt")
    );
}

#[test]
fn old_style_flags_stdout_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let src = arg(dir.path(), "src");
    let (code, archive, err) = run_for_test_bytes("tar", &["cvC", &src, "a.txt", "sub/empty"], b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err, "a.txt\nsub/empty\n",
        "-v goes to stderr when the archive is stdout"
    );
    let (code, listed, _) = run_for_test("tar", &["-t"], &archive);
    assert_eq!((code, listed.as_str()), (0, "a.txt\nsub/empty/\n"));
    let dst = arg(dir.path(), "dst");
    fs::create_dir(&dst).unwrap();
    let (code, out, err) = run_for_test("tar", &["xvf", "-", "-C", &dst], &archive);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "a.txt\nsub/empty/\n");
    assert_eq!(
        fs::read_to_string(Path::new(&dst).join("a.txt")).unwrap(),
        "alpha\n"
    );
}

#[test]
fn verbose_listing_shows_mode_owner_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let f = fs::File::options()
        .write(true)
        .open(dir.path().join("src/a.txt"))
        .unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        .unwrap();
    let out = arg(dir.path(), "out.tar");
    ok(&["-cf", &out, "-C", &arg(dir.path(), "src"), "a.txt"]);
    let listed = ok(&["-tvf", &out]);
    assert!(listed.starts_with("-rw"), "{listed}");
    assert!(
        listed.ends_with("        6 2023-11-14 22:13 a.txt\n"),
        "{listed}"
    );
}

#[test]
fn extracts_only_named_members_and_strips_components() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let out = arg(dir.path(), "out.tar");
    ok(&["-cf", &out, "-C", dir.path().to_str().unwrap(), "src"]);
    let dst = arg(dir.path(), "dst");
    fs::create_dir(&dst).unwrap();
    ok(&["-xf", &out, "-C", &dst, "--strip-components=1", "src/sub"]);
    let dst = Path::new(&dst);
    assert!(dst.join("sub/b.bin").is_file() && dst.join("sub/empty").is_dir());
    assert!(!dst.join("a.txt").exists() && !dst.join("src").exists());
    let (code, _, err) = run_for_test(
        "tar",
        &["-xf", &out, "-C", dst.to_str().unwrap(), "src/nope"],
        b"",
    );
    assert_eq!(code, 1);
    assert_eq!(err, "tar: src/nope: not found in archive\n");
}

#[test]
fn leading_slashes_are_dropped_and_the_archive_is_not_archived_into_itself() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let src = arg(dir.path(), "src");
    let out = arg(dir.path(), "src/self.tar");
    let (code, _, err) = run_for_test("tar", &["-cf", &out, &src], b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removing leading '/'"), "{err}");
    assert!(
        err.contains("self.tar: file is the archive; not dumped"),
        "{err}"
    );
    let listed = ok(&["-tf", &out]);
    let first = listed.lines().next().unwrap();
    assert!(
        !first.starts_with('/') && first.ends_with("src/"),
        "{listed}"
    );
}

/// A tar with one member whose name is written raw into the header (the
/// tar crate's builder refuses such names, as it should).
fn raw_member(name: &str, kind: tar::EntryType, link: &str, body: &[u8]) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_entry_type(kind);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    if !link.is_empty() {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&header, body).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn rejects_tar_path_traversal() {
    let dir = tempfile::tempdir().unwrap();
    let dst = arg(dir.path(), "dst");
    fs::create_dir(&dst).unwrap();
    let evil = raw_member("../evil", tar::EntryType::Regular, "", b"x");
    let (code, _, err) = run_for_test("tar", &["-x", "-C", &dst], &evil);
    assert_eq!(code, 1);
    assert_eq!(err, "tar: ../evil: member name contains '..'; skipped\n");
    assert!(!dir.path().join("evil").exists());
    // An absolute name lands inside the target directory.
    let abs = raw_member("/abs", tar::EntryType::Regular, "", b"y");
    assert_eq!(run_for_test("tar", &["-x", "-C", &dst], &abs).0, 0);
    assert_eq!(
        fs::read_to_string(Path::new(&dst).join("abs")).unwrap(),
        "y"
    );
}

#[cfg(unix)]
#[test]
fn rejects_writing_through_a_symlink_the_archive_made() {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let dst = arg(dir.path(), "dst");
    fs::create_dir(&dst).unwrap();
    let mut archive = raw_member(
        "link",
        tar::EntryType::Symlink,
        outside.to_str().unwrap(),
        b"",
    );
    archive.truncate(archive.len() - 1024); // drop the end-of-archive blocks
    archive.extend(raw_member("link/pwned", tar::EntryType::Regular, "", b"p"));
    let (code, _, err) = run_for_test("tar", &["-x", "-C", &dst], &archive);
    assert_eq!(code, 1);
    assert!(err.contains("cannot overwrite directory"), "{err}");
    assert!(!outside.join("pwned").exists());
}

#[test]
fn usage_errors() {
    for (args, message) in [
        (vec!["-f", "x"], "you must give one of -c, -x or -t"),
        (
            vec!["-cx", "a"],
            "you may not give more than one of -c, -x and -t",
        ),
        (vec!["-c"], "refusing to create an empty archive"),
        (
            vec!["-t", "--strip-components=1"],
            "--strip-components only applies with -x",
        ),
        (vec!["-xo"], "unknown option -o; supported: -c/--create"),
    ] {
        let (code, _, err) = run_for_test("tar", &args, b"");
        assert_eq!(code, 2, "{args:?}");
        assert!(err.starts_with(&format!("tar: {message}")), "{err}");
    }
    let (code, _, err) = run_for_test("tar", &["-t"], b"this is not a tar archive, just some text that is long enough to fill a header block, or not");
    assert_eq!(code, 1);
    assert!(err.contains("cannot read the archive"), "{err}");
    let (code, _, err) = run_for_test("tar", &["-tf", "/no/such.tar"], b"");
    assert_eq!(code, 1);
    assert!(err.contains("cannot open '/no/such.tar'"), "{err}");
}
