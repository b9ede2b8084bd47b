//! What a rebuild of unchanged inputs reads and writes: context files come
//! from the stat cache (by size, times and inode), a layer blob is read
//! whole at its first reuse only, and the image index is not rewritten;
//! and none of it hides a change.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cache::{build, outcome};
use crate::util::Sandbox;

/// An hour ago: a time no build of this test sets by itself.
fn an_hour_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(3600)
}

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// The one file a directory of the store holds.
fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

fn copy_ran(sb: &Sandbox) -> bool {
    let run = build(sb, &["-t", "t", "ctx"]);
    let steps = outcome(&run);
    assert_eq!(steps.len(), 1, "{}", run.stderr);
    steps.into_values().next().unwrap()
}

fn exported(sb: &Sandbox, name: &str) -> String {
    let out = sb.path(name);
    sb.kiln(&[
        "build",
        "-q",
        "-o",
        &format!("type=local,dest={}", out.display()),
        "ctx",
    ])
    .ok();
    fs::read_to_string(out.join("a.txt")).unwrap()
}

#[test]
fn an_edit_that_keeps_size_and_mtime_is_still_seen() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    let a = sb.write("ctx/a.txt", "one\n");
    let old = an_hour_ago();
    set_mtime(&a, old);
    // Identities are remembered only once a file's last change (its
    // ctime here) is older than any filesystem's timestamp tick.
    std::thread::sleep(Duration::from_millis(3200));
    assert!(copy_ran(&sb));
    let cache = only_file(&sb.store().join("kiln/contexts"));
    let text = fs::read_to_string(&cache).unwrap();
    assert!(
        text.lines().any(|l| l.ends_with(" a.txt")),
        "a.txt is in the stat cache:\n{text}"
    );
    assert!(!copy_ran(&sb), "unchanged: CACHED");

    // Same size, same mtime, other bytes: the change time gives it away.
    fs::write(&a, "two\n").unwrap();
    set_mtime(&a, old);
    assert!(copy_ran(&sb), "the edit reruns the COPY");
    assert_eq!(exported(&sb, "out"), "two\n");
}

#[test]
fn a_cached_rebuild_rewrites_no_index_and_reads_a_blob_once() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    sb.write("ctx/a.txt", "layer\n");
    assert!(copy_ran(&sb));
    let index = sb.store().join("index.json");
    let written = fs::metadata(&index).unwrap().modified().unwrap();
    // The first reuse reads the blob whole and notes it.
    assert!(!copy_ran(&sb));
    let note = only_file(&sb.store().join("kiln/verified"));
    assert!(!copy_ran(&sb));
    assert_eq!(
        fs::metadata(&index).unwrap().modified().unwrap(),
        written,
        "the same image under the same name: index.json untouched"
    );

    // Damage that changes the file's identity is read whole again and
    // found: the step runs again and heals the blob.
    let blob = sb
        .store()
        .join("blobs/sha256")
        .join(note.file_name().unwrap());
    let mut bytes = fs::read(&blob).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    fs::write(&blob, bytes).unwrap();
    let run = build(&sb, &["-t", "t", "ctx"]);
    assert!(
        run.stderr.contains("the cached layer is unusable"),
        "{}",
        run.stderr
    );
    assert!(outcome(&run).values().all(|ran| *ran));
    assert!(!copy_ran(&sb), "healed, then CACHED again");
    assert_eq!(exported(&sb, "out"), "layer\n");
}
