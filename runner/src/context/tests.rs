//! Context tests: sandboxing, ignore files, listing, globs.

use std::fs;

use super::*;

fn context() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ctx");
    fs::create_dir_all(root.join("src/nested")).unwrap();
    fs::write(root.join("src/b.rs"), "b").unwrap();
    fs::write(root.join("src/a.rs"), "a").unwrap();
    fs::write(root.join("src/nested/c.rs"), "c").unwrap();
    fs::write(root.join("debug.log"), "log").unwrap();
    fs::write(dir.path().join("outside.txt"), "secret").unwrap();
    (dir, root)
}

#[test]
fn lists_sorted_and_honours_kilnignore_over_dockerignore() {
    let (_d, root) = context();
    fs::write(root.join(".dockerignore"), "src\n").unwrap();
    fs::write(root.join(".kilnignore"), "*.log\n").unwrap();
    let ctx = Context::open(&root).unwrap();
    assert_eq!(ctx.ignore_file(), Some(".kilnignore"));
    assert_eq!(
        ctx.list("").unwrap(),
        vec![".dockerignore", ".kilnignore", "src"]
    );
    assert_eq!(ctx.list("src").unwrap(), vec!["a.rs", "b.rs", "nested"]);
    fs::remove_file(root.join(".kilnignore")).unwrap();
    let ctx = Context::open(&root).unwrap();
    assert_eq!(ctx.ignore_file(), Some(".dockerignore"));
    assert!(ctx.is_excluded("src/a.rs"));
}

#[test]
fn nothing_outside_the_context_is_reachable() {
    let (_d, root) = context();
    let ctx = Context::open(&root).unwrap();
    assert!(ctx.open_file("../outside.txt").is_err());
    assert!(ctx.entry("../outside.txt").is_err());
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("../outside.txt", root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.parent().unwrap().join("outside.txt"), root.join("abs"))
            .unwrap();
        // The link itself is visible (COPY copies it as a link)...
        assert_eq!(
            ctx.entry("escape").unwrap(),
            EntryKind::Symlink("../outside.txt".into())
        );
        // ...but cannot be followed out of the context.
        assert!(ctx.open_file("escape").is_err());
        assert!(ctx.entry_followed("abs").is_err());
        assert!(ctx.opener().unwrap().open("abs").is_err());
    }
}

#[test]
fn reports_portable_metadata() {
    let (_d, root) = context();
    let ctx = Context::open(&root).unwrap();
    assert_eq!(
        ctx.entry("src/a.rs").unwrap(),
        EntryKind::File {
            size: 1,
            executable: false
        }
    );
    assert_eq!(ctx.entry("src").unwrap(), EntryKind::Dir);
    // Executable by contents, whatever the host's bits say.
    for (contents, executable) in [
        (&b"#!/bin/sh\n"[..], true),
        (b"\0asm\x01\0\0\0", true),
        (b"\x7fELF\x02", true),
        (b"#", false),
        (b"", false),
        (b"MZ\x90\0", false),
        (b"plain text", false),
    ] {
        fs::write(root.join("f"), contents).unwrap();
        for mode in [0o644, 0o755] {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(root.join("f"), fs::Permissions::from_mode(mode)).unwrap();
            }
            #[cfg(not(unix))]
            let _ = mode;
            assert_eq!(
                ctx.entry("f").unwrap(),
                EntryKind::File {
                    size: contents.len() as u64,
                    executable
                },
                "{contents:?} with mode {mode:o}"
            );
        }
    }
}

#[test]
fn names_differing_only_in_case_or_normalization_are_refused() {
    let (_d, root) = context();
    fs::write(root.join("src/A.rs"), "A").unwrap();
    let ctx = Context::open(&root).unwrap();
    let err = ctx.list("src").unwrap_err().to_string();
    assert!(
        err.starts_with("the build context has both \"A.rs\" and \"a.rs\" in src: names that differ only in case"),
        "{err}"
    );
    // Other directories are unaffected, and excluding one name settles it.
    assert_eq!(ctx.list("src/nested").unwrap(), vec!["c.rs"]);
    fs::write(root.join(".kilnignore"), "src/A.rs\n").unwrap();
    let ctx = Context::open(&root).unwrap();
    assert_eq!(ctx.list("src").unwrap(), vec!["a.rs", "b.rs", "nested"]);
    // "é" composed (U+00E9) and decomposed (e + U+0301): one name on APFS.
    fs::write(root.join("caf\u{e9}"), "1").unwrap();
    fs::write(root.join("cafe\u{301}"), "2").unwrap();
    let err = ctx.list("").unwrap_err().to_string();
    assert!(err.contains("Unicode normalization"), "{err}");
}

#[test]
fn sources_are_spelled_as_the_context_spells_them() {
    let (_d, root) = context();
    let ctx = Context::open(&root).unwrap();
    ctx.check_spelling("src/nested/c.rs").unwrap();
    ctx.check_spelling("missing/file").unwrap();
    let err = ctx
        .check_spelling("SRC/nested/c.rs")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("\"SRC/nested/c.rs\" is not in the build context, but \"src\" is"),
        "{err}"
    );
    let err = ctx
        .check_spelling("src/Nested/C.rs")
        .unwrap_err()
        .to_string();
    assert!(err.contains("but \"src/nested\" is"), "{err}");
}

#[test]
fn globs_match_within_components() {
    let (_d, root) = context();
    let ctx = Context::open(&root).unwrap();
    assert_eq!(ctx.glob("src/*.rs").unwrap(), vec!["src/a.rs", "src/b.rs"]);
    assert_eq!(ctx.glob("*/nested/?.rs").unwrap(), vec!["src/nested/c.rs"]);
    assert_eq!(ctx.glob("*.log").unwrap(), vec!["debug.log"]);
    assert!(ctx.glob("*.none").unwrap().is_empty());
}

#[test]
fn cleans_sources_like_docker() {
    assert_eq!(clean("/a/./b/../c/"), "a/c");
    assert_eq!(clean("../../x"), "x");
    assert_eq!(clean("."), "");
    // A backslash separates components in a source, as on Windows.
    assert_eq!(source_path("src\\main.rs"), "src/main.rs");
    assert_eq!(source_path(".\\a\\..\\..\\b\\"), "b");
    assert_eq!(source_path("/x/y"), "x/y");
}

#[test]
fn bad_ignore_files_name_the_line() {
    let (_d, root) = context();
    fs::write(root.join(".kilnignore"), "ok\n[bad\n").unwrap();
    let err = Context::open(&root).unwrap_err().to_string();
    assert!(err.starts_with(".kilnignore: line 2"), "{err}");
}

#[test]
fn digests_come_from_the_stat_cache_while_the_identity_holds() {
    let (dir, root) = context();
    let file = root.join("src/a.rs");
    let identity = FileIdentity::of(&fs::metadata(&file).unwrap());
    // A remembered digest and executable bit for exactly this identity are
    // believed (that is the point: the file is not read)...
    let believed = crate::digest::Digest::of(b"what the cache says");
    let cache_file = dir.path().join("stat-cache");
    fs::write(
        &cache_file,
        format!("{} x {} src/a.rs\n", believed.hex(), identity.encode()),
    )
    .unwrap();
    let mut ctx = Context::open(&root).unwrap();
    ctx.use_stat_cache(Arc::new(StatCache::load(cache_file)));
    let believed_entry = EntryKind::File {
        size: 1,
        executable: true,
    };
    assert_eq!(
        ctx.entry_with_digest("src/a.rs", false).unwrap(),
        (believed_entry.clone(), Some(believed))
    );
    assert_eq!(ctx.entry("src/a.rs").unwrap(), believed_entry);
    // ...and any change of the identity means reading the file (the
    // mtime set apart, since a rewrite within one timestamp tick of the
    // creation could keep both times).
    fs::write(&file, "A").unwrap();
    let f = fs::File::options().write(true).open(&file).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1))
        .unwrap();
    drop(f);
    let real = EntryKind::File {
        size: 1,
        executable: false,
    };
    assert_eq!(
        ctx.entry_with_digest("src/a.rs", true).unwrap(),
        (real.clone(), Some(crate::digest::Digest::of(b"A")))
    );
    assert_eq!(ctx.entry("src/a.rs").unwrap(), real);
    assert_eq!(
        ctx.entry_with_digest("src/b.rs", false).unwrap().1,
        Some(crate::digest::Digest::of(b"b"))
    );
    // Directories and symlinks have no digest.
    assert_eq!(
        ctx.entry_with_digest("src", false).unwrap(),
        (EntryKind::Dir, None)
    );
}

#[test]
fn a_hashed_entry_is_remembered_with_its_executable_bit() {
    let (dir, root) = context();
    fs::write(root.join("src/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    // Old enough to be remembered (the change time cannot be set back).
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let cache_file = dir.path().join("stat-cache");
    let cache = Arc::new(StatCache::load(cache_file.clone()));
    let mut ctx = Context::open(&root).unwrap();
    ctx.use_stat_cache(Arc::clone(&cache));
    let (entry, digest) = ctx.entry_with_digest("src/run.sh", false).unwrap();
    assert_eq!(
        entry,
        EntryKind::File {
            size: 18,
            executable: true
        }
    );
    assert_eq!(
        digest,
        Some(crate::digest::Digest::of(b"#!/bin/sh\necho hi\n"))
    );
    // A plain entry() does not hash, so it teaches the cache nothing.
    ctx.entry("src/a.rs").unwrap();
    cache.save(|p, b| fs::write(p, b)).unwrap();
    let text = fs::read_to_string(&cache_file).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(" x ") && text.ends_with(" src/run.sh\n"),
        "{text}"
    );
}

#[test]
fn a_read_files_bytes_are_kept_up_to_the_size_asked() {
    let (dir, root) = context();
    fs::write(root.join("big"), vec![b'x'; 100]).unwrap();
    let mut ctx = Context::open(&root).unwrap();
    let (entry, hashed) = ctx.entry_with_contents("src/a.rs", false, 10).unwrap();
    let hashed = hashed.unwrap();
    assert_eq!(
        entry,
        EntryKind::File {
            size: 1,
            executable: false
        }
    );
    assert_eq!(hashed.digest, crate::digest::Digest::of(b"a"));
    assert_eq!(hashed.bytes.as_deref(), Some(&b"a"[..]));
    // Larger than asked: hashed, not kept.
    let (_, hashed) = ctx.entry_with_contents("big", false, 10).unwrap();
    let hashed = hashed.unwrap();
    assert_eq!(hashed.digest, crate::digest::Digest::of(&[b'x'; 100]));
    assert!(hashed.bytes.is_none());
    // From the stat cache: not read, so nothing to keep.
    let identity = FileIdentity::of(&fs::metadata(root.join("src/a.rs")).unwrap());
    let cache_file = dir.path().join("stat-cache");
    let believed = crate::digest::Digest::of(b"what the cache says");
    fs::write(
        &cache_file,
        format!("{} - {} src/a.rs\n", believed.hex(), identity.encode()),
    )
    .unwrap();
    ctx.use_stat_cache(Arc::new(StatCache::load(cache_file)));
    let (_, hashed) = ctx.entry_with_contents("src/a.rs", false, 10).unwrap();
    let hashed = hashed.unwrap();
    assert_eq!((hashed.digest, hashed.bytes), (believed, None));
}
