//! The same checkout gives the same image on Linux, macOS and Windows:
//! on Linux, contexts as the other hosts would present them. Executable
//! bits (Windows has none), CRLF Kilnfiles (git's autocrlf), `\` in COPY
//! sources (Windows' separator), names that differ only in case (one file
//! on Windows and macOS), sources spelled in another case (found anyway by
//! a case-insensitive filesystem), and symlink targets written with `\`.
//! `wine.rs` builds such a context with kiln.exe itself.

use std::fs;

use crate::util::{Sandbox, layer_tar, tar_entries};

/// Files, modes and types of the last layer of image `name`.
fn last_layer(sb: &Sandbox, name: &str) -> Vec<(String, char, u32, Vec<u8>)> {
    let img = sb.inspect(name);
    let layers = img["Manifest"]["layers"].as_array().unwrap();
    let l = layers.last().unwrap();
    tar_entries(&layer_tar(
        &sb.store(),
        l["digest"].as_str().unwrap(),
        l["mediaType"].as_str().unwrap(),
    ))
}

#[cfg(unix)]
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
#[cfg(unix)]
fn executable_comes_from_contents_not_the_hosts_bits() {
    let sb = Sandbox::new();
    let files: [(&str, &[u8]); 4] = [
        ("run.sh", b"#!/bin/sh\necho hi\n"),
        ("tool.wasm", b"\0asm\x01\0\0\0"),
        ("prog", b"\x7fELF\x02\x01\x01"),
        ("notes.txt", b"not a program\n"),
    ];
    for ctx in ["a", "b"] {
        for (name, body) in files {
            sb.write(&format!("{ctx}/{name}"), body);
        }
        sb.write(&format!("{ctx}/Kilnfile"), "FROM scratch\nCOPY . /app/\n");
    }
    // `a` as a Linux checkout marks programs; `b` as Windows (no bits at
    // all, here every file 0644) or a careless chmod (every file 0755).
    chmod(&sb.path("a/run.sh"), 0o755);
    chmod(&sb.path("a/prog"), 0o755);
    for (name, _) in files {
        chmod(&sb.path(&format!("b/{name}")), 0o644);
    }
    chmod(&sb.path("b/notes.txt"), 0o755);
    let a = sb.build("a", &["-t", "a"]);
    assert_eq!(sb.build("b", &["-t", "b"]), a);
    let modes: Vec<(String, u32)> = last_layer(&sb, "a")
        .into_iter()
        .filter(|e| e.1 == 'f')
        .map(|e| (e.0, e.2))
        .collect();
    assert!(modes.contains(&("app/run.sh".into(), 0o755)), "{modes:?}");
    assert!(
        modes.contains(&("app/tool.wasm".into(), 0o755)),
        "{modes:?}"
    );
    assert!(modes.contains(&("app/prog".into(), 0o755)), "{modes:?}");
    assert!(
        modes.contains(&("app/notes.txt".into(), 0o644)),
        "{modes:?}"
    );
}

#[test]
fn crlf_kilnfiles_build_the_same_image_as_lf() {
    let sb = Sandbox::new();
    let lf = "FROM scratch\nARG V=1\nENV A=b \\\n    C=d\nCOPY f.txt /f/\nCOPY <<EOF /etc/motd\nhello $V\nEOF\nLABEL k=\"v w\"\nCMD [\"x\"]\n";
    for (ctx, text) in [("lf", lf.to_string()), ("crlf", lf.replace('\n', "\r\n"))] {
        sb.write(&format!("{ctx}/f.txt"), "f");
        sb.write(&format!("{ctx}/Kilnfile"), text);
    }
    let id = sb.build("lf", &["-t", "lf"]);
    assert_eq!(sb.build("crlf", &["-t", "crlf"]), id);
    let motd = last_layer(&sb, "crlf");
    let motd = motd.iter().find(|e| e.0 == "etc/motd").unwrap();
    assert_eq!(motd.3, b"hello 1\n", "no CR in the here-document");
}

#[test]
fn backslashes_in_copy_sources_separate_components_on_every_host() {
    let sb = Sandbox::new();
    let forms = [
        ("slash", "FROM scratch\nCOPY src/main.rs src/lib/ /app/\n"),
        (
            "json",
            "# escape=`\nFROM scratch\nCOPY [\"src\\\\main.rs\", \"src\\\\lib\\\\\", \"/app/\"]\n",
        ),
        (
            "escape",
            "# escape=`\nFROM scratch\nCOPY src\\main.rs .\\src\\lib\\ /app/\n",
        ),
    ];
    for (ctx, kilnfile) in forms {
        sb.write(&format!("{ctx}/src/main.rs"), "fn main() {}\n");
        sb.write(&format!("{ctx}/src/lib/a.rs"), "a\n");
        sb.write(&format!("{ctx}/Kilnfile"), kilnfile);
    }
    // The same layers (the history says the sources as written).
    let layers = |name: &str| sb.inspect(name)["Config"]["rootfs"].clone();
    for (ctx, _) in forms {
        sb.build(ctx, &["-t", ctx]);
    }
    assert_eq!(layers("json"), layers("slash"), "JSON form");
    assert_eq!(layers("escape"), layers("slash"), "escape=` form");
    let names: Vec<String> = last_layer(&sb, "slash").into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["app/", "app/a.rs", "app/main.rs"]);
}

#[test]
fn names_that_differ_only_in_case_are_refused() {
    let sb = Sandbox::new();
    sb.write("ctx/docs/README.md", "upper");
    sb.write("ctx/docs/readme.md", "lower");
    sb.write("ctx/other.txt", "x");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY docs/ /docs/\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains(
            "the build context has both \"README.md\" and \"readme.md\" in docs: names that differ only in case (or in Unicode normalization) are one file on Windows and macOS, so this context cannot give the same image on every host; rename one, or exclude it in .kilnignore"
        ),
        "{err}"
    );
    // A build that does not read that directory is fine, and so is one
    // whose ignore file leaves one of the names out.
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY other.txt /\n");
    sb.build("ctx", &[]);
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY docs/ /docs/\n");
    sb.write("ctx/.kilnignore", "docs/readme.md\n");
    sb.build("ctx", &[]);
}

#[test]
fn sources_spelled_in_another_case_are_refused() {
    let sb = Sandbox::new();
    sb.write("ctx/Docs/Guide.md", "g");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY docs/guide.md /\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains(
            "\"docs/guide.md\" is not in the build context, but \"Docs\" is: names are case-sensitive on every host"
        ),
        "{err}"
    );
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY Docs/guide.md /\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(err.contains("but \"Docs/Guide.md\" is"), "{err}");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY Docs/Guide.md /\n");
    sb.build("ctx", &[]);
}

/// Windows writes a symlink's target with `\`; kiln reads it as `/` on
/// every host, so the link in the image is the same.
#[test]
#[cfg(unix)]
fn symlink_targets_read_the_same_with_either_separator() {
    let sb = Sandbox::new();
    for (ctx, target) in [("unix", "lib/real.txt"), ("windows", "lib\\real.txt")] {
        sb.write(&format!("{ctx}/lib/real.txt"), "real");
        std::os::unix::fs::symlink(target, sb.path(&format!("{ctx}/link"))).unwrap();
        sb.write(&format!("{ctx}/Kilnfile"), "FROM scratch\nCOPY . /app/\n");
    }
    let id = sb.build("unix", &["-t", "links"]);
    assert_eq!(sb.build("windows", &[]), id);
    let link = last_layer(&sb, "links")
        .into_iter()
        .find(|e| e.0 == "app/link")
        .unwrap();
    assert_eq!(link.1, 'l');
}
