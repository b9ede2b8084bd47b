//! Builds through the binary: every instruction, COPY's rules, ARG scope,
//! stages and outputs.

use std::fs;

use crate::util::{Sandbox, tar_entries};

/// The filesystem of an image, via `--output type=tar`.
fn fs_of(sb: &Sandbox, context: &str, extra: &[&str]) -> Vec<(String, char, u32, Vec<u8>)> {
    let out = sb.path("fs.tar");
    let spec = format!("type=tar,dest={}", out.display());
    let mut args = vec!["--output", spec.as_str()];
    args.extend_from_slice(extra);
    sb.build(context, &args);
    tar_entries(&fs::read(out).unwrap())
}

fn names(entries: &[(String, char, u32, Vec<u8>)]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e.0.trim_end_matches('/').to_string())
        .collect()
}

fn entry<'a>(
    entries: &'a [(String, char, u32, Vec<u8>)],
    name: &str,
) -> &'a (String, char, u32, Vec<u8>) {
    entries
        .iter()
        .find(|e| e.0.trim_end_matches('/') == name)
        .unwrap_or_else(|| panic!("{name} not in {:?}", names(entries)))
}

#[test]
fn every_instruction_lands_in_the_config() {
    let sb = Sandbox::new();
    sb.write(
        "ctx/Kilnfile",
        r#"ARG BASE=scratch
FROM ${BASE}
MAINTAINER kiln tests
ENV PATH=/bin GREETING="hello world"
ENV GREETING=hi OTHER=$GREETING
LABEL a.b=c "quoted key"="v w"
WORKDIR /app
WORKDIR sub
USER 1000:100
EXPOSE 80 53/udp
VOLUME ["/data"]
STOPSIGNAL SIGINT
ENTRYPOINT ["/bin/app.wasm"]
CMD ["--serve"]
"#,
    );
    let id = sb.build("ctx", &["-t", "every:1"]);
    let img = sb.inspect("every:1");
    assert_eq!(img["Id"], id);
    assert_eq!(img["RepoTags"], serde_json::json!(["every:1"]));
    let cfg = &img["Config"];
    assert_eq!(cfg["os"], "wasi");
    assert_eq!(cfg["architecture"], "wasm");
    assert_eq!(cfg["author"], "kiln tests");
    assert_eq!(cfg["created"], "1970-01-01T00:00:00Z");
    let c = &cfg["config"];
    // Values on one ENV line see the environment from before the line.
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/bin", "GREETING=hi", "OTHER=hello world"])
    );
    assert_eq!(
        c["Labels"],
        serde_json::json!({"a.b": "c", "quoted key": "v w"})
    );
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["User"], "1000:100");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"53/udp": {}, "80/tcp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/app.wasm"]));
    assert_eq!(c["Cmd"], serde_json::json!(["--serve"]));
    // WORKDIR made the directories, once each, owned by root.
    let layers = img["Manifest"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
}

#[test]
fn history_reads_like_docker_history() {
    let sb = Sandbox::new();
    sb.write("ctx/a.txt", "a");
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nARG V=2\nENV K=$V\nCOPY --chmod=0600 a.txt /dst/\nCMD [\"x\"]\n",
    );
    sb.build("ctx", &["-t", "hist"]);
    let out = sb.kiln(&["history", "--no-trunc", "hist"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE")
            && lines[0].contains("CREATED BY")
            && lines[0].ends_with("COMMENT"),
        "{out}"
    );
    assert!(lines[1].starts_with("sha256:"), "{out}");
    assert!(lines[1].contains("CMD [\"x\"]"), "{out}");
    assert!(
        lines[2].starts_with("<missing>")
            && lines[2].contains("COPY --chmod=0600 a.txt /dst/ # kiln"),
        "{out}"
    );
    assert!(
        lines[2].contains(" 1B "),
        "the COPY layer holds one byte: {out}"
    );
    assert!(
        lines[3].contains("ENV K=2") && lines[3].contains(" 0B "),
        "{out}"
    );
    assert!(lines[4].contains("ARG V=2"), "{out}");
    assert!(lines[1].contains("kiln.kilnfile.v0"), "{out}");
    // Truncated by default, like docker.
    sb.write(
        "ctx/Kilnfile",
        format!("FROM scratch\nLABEL long={}\n", "x".repeat(80)),
    );
    sb.build("ctx", &["-t", "hist"]);
    let out = sb.kiln(&["history", "hist"]).ok().stdout;
    assert!(out.contains('…') && !out.contains(&"x".repeat(80)), "{out}");
}

#[test]
fn copy_follows_dockers_rules() {
    let sb = Sandbox::new();
    sb.write("ctx/dir/one.txt", "1");
    sb.write("ctx/dir/sub/two.txt", "22");
    sb.write("ctx/file.txt", "f");
    sb.write("ctx/a.md", "a");
    sb.write("ctx/b.md", "b");
    sb.write("ctx/tool.sh", "#!");
    sb.write(
        "ctx/passwd",
        "root:x:0:0::/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n",
    );
    sb.write("ctx/group", "root:x:0:\nstaff:x:50:\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(sb.path("ctx/tool.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::set_permissions(sb.path("ctx/file.txt"), fs::Permissions::from_mode(0o664)).unwrap();
        std::os::unix::fs::symlink("one.txt", sb.path("ctx/dir/link")).unwrap();
    }
    sb.write(
        "ctx/Kilnfile",
        r#"FROM scratch
COPY passwd group /etc/
COPY dir /copied
COPY file.txt /renamed.txt
COPY file.txt /into/
COPY *.md /docs/
COPY tool.sh /bin/
COPY --chmod=700 file.txt /modes/
COPY --chown=app:staff file.txt /owned/
COPY --chown=42 file.txt /owned-num/
WORKDIR /work
COPY file.txt rel/
COPY . /all/
"#,
    );
    let fs = fs_of(&sb, "ctx", &[]);
    let n = names(&fs);
    // A directory source copies its contents, not itself.
    assert_eq!(entry(&fs, "copied/one.txt").3, b"1");
    assert_eq!(entry(&fs, "copied/sub/two.txt").3, b"22");
    assert!(!n.contains(&"copied/dir".to_string()));
    assert_eq!(entry(&fs, "renamed.txt").3, b"f");
    assert_eq!(entry(&fs, "into/file.txt").3, b"f");
    assert!(n.contains(&"docs/a.md".into()) && n.contains(&"docs/b.md".into()));
    assert_eq!(entry(&fs, "work/rel/file.txt").3, b"f");
    assert!(n.contains(&"all/dir/sub/two.txt".into()) && n.contains(&"all/Kilnfile".into()));
    // Modes: normalized from the host, never its umask; --chmod wins.
    assert_eq!(entry(&fs, "renamed.txt").2, 0o644);
    assert_eq!(entry(&fs, "modes/file.txt").2, 0o700);
    assert_eq!(entry(&fs, "copied/sub").2, 0o755);
    #[cfg(unix)]
    {
        assert_eq!(entry(&fs, "bin/tool.sh").2, 0o755);
        let link = entry(&fs, "copied/link");
        assert_eq!(link.1, 'l');
    }
    // Ownership via the image's own passwd/group, or numbers (gid = uid).
    let raw = fs::read(sb.path("fs.tar")).unwrap();
    let mut archive = tar::Archive::new(&raw[..]);
    let owners: Vec<(String, u64, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect();
    assert!(
        owners.contains(&("owned/file.txt".into(), 1234, 50)),
        "{owners:?}"
    );
    assert!(
        owners.contains(&("owned-num/file.txt".into(), 42, 42)),
        "{owners:?}"
    );
    assert!(
        owners.contains(&("owned".into(), 1234, 50))
            || owners.contains(&("owned/".into(), 1234, 50)),
        "{owners:?}"
    );
    assert!(owners.contains(&("renamed.txt".into(), 0, 0)), "{owners:?}");
}

#[test]
fn kilnignore_and_dockerignore_exclude_files() {
    let sb = Sandbox::new();
    sb.write("ctx/keep.txt", "k");
    sb.write("ctx/debug.log", "d");
    sb.write("ctx/secret/key", "s");
    sb.write("ctx/.dockerignore", "keep.txt\n");
    sb.write("ctx/.kilnignore", "*.log\nsecret\n");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY . /c/\n");
    let n = names(&fs_of(&sb, "ctx", &[]));
    assert!(n.contains(&"c/keep.txt".into()), "{n:?}");
    assert!(
        !n.iter()
            .any(|p| p.contains("debug.log") || p.contains("secret")),
        "{n:?}"
    );
    // Without .kilnignore, .dockerignore applies.
    fs::remove_file(sb.path("ctx/.kilnignore")).unwrap();
    let n = names(&fs_of(&sb, "ctx", &[]));
    assert!(
        !n.contains(&"c/keep.txt".into()) && n.contains(&"c/debug.log".into()),
        "{n:?}"
    );
    // Copying an excluded file by name says why it is missing.
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY keep.txt /k\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("excluded from the build context by .dockerignore"),
        "{err}"
    );
}

#[test]
fn args_are_scoped_like_docker() {
    let sb = Sandbox::new();
    sb.write(
        "ctx/Kilnfile",
        r#"ARG GLOBAL=g
ARG UNSET
FROM scratch
ENV BEFORE=[$GLOBAL]
ARG GLOBAL
ENV AFTER=[$GLOBAL]
ARG LOCAL=default
ENV LOCAL_IS=$LOCAL
ENV LOCAL=from-env
ENV SHADOW=$LOCAL
ARG TARGETARCH
ENV ARCH=$TARGETARCH
ENV TYPO=${LOCL}x DEFAULTED=${NOPE:-d}
"#,
    );
    let first = sb
        .kiln(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "args",
            "--build-arg",
            "LOCAL=cli",
            "--build-arg",
            "NOBODY=x",
            "ctx",
        ])
        .ok();
    // BuildKit's UndefinedVar: a global ARG not redeclared in the stage,
    // and a typo (with a suggestion); not a use with a default.
    let warnings: Vec<&str> = first
        .stderr
        .lines()
        .filter(|l| l.contains("UndefinedVar"))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: UndefinedVar: Usage of undefined variable '$GLOBAL' (an ARG declared before FROM: declare it again with `ARG GLOBAL` in the stage to use it here) (ctx/Kilnfile:4)",
            "warning: UndefinedVar: Usage of undefined variable '$LOCL' (did you mean $LOCAL?) (ctx/Kilnfile:13)",
        ],
        "{}",
        first.stderr
    );
    let env = sb.inspect("args")["Config"]["config"]["Env"].clone();
    assert_eq!(
        env,
        serde_json::json!([
            "BEFORE=[]",
            "AFTER=[g]",
            "LOCAL_IS=cli",
            "LOCAL=from-env",
            "SHADOW=from-env",
            "ARCH=wasm",
            "TYPO=x",
            "DEFAULTED=d"
        ])
    );
    let run = sb
        .kiln(&[
            "build",
            "--progress",
            "plain",
            "--build-arg",
            "NOBODY=x",
            "ctx",
        ])
        .ok();
    assert!(
        run.stderr
            .contains("warning: build-arg NOBODY not consumed"),
        "{}",
        run.stderr
    );
}

#[test]
fn from_an_image_in_the_store_and_entrypoint_resets_its_cmd() {
    let sb = Sandbox::new();
    sb.write("base/etc/os-release", "kiln");
    sb.write(
        "base/Kilnfile",
        "FROM scratch\nCOPY etc /etc/\nENV FROM_BASE=1\nCMD [\"base-cmd\"]\n",
    );
    sb.build("base", &["-t", "base:1"]);
    sb.write("app/app.txt", "app");
    sb.write(
        "app/Kilnfile",
        "FROM base:1\nCOPY app.txt /etc/\nENTRYPOINT [\"/bin/app\"]\n",
    );
    sb.build("app", &["-t", "app"]);
    let img = sb.inspect("app");
    assert_eq!(
        img["Config"]["config"]["Env"],
        serde_json::json!(["FROM_BASE=1"])
    );
    assert_eq!(img["Config"]["config"]["Cmd"], serde_json::Value::Null);
    assert_eq!(img["Manifest"]["layers"].as_array().unwrap().len(), 2);
    let out = sb.kiln(&["history", "app"]).ok().stdout;
    assert!(
        out.contains("CMD [\"base-cmd\"]"),
        "history includes the base's: {out}"
    );
    let fs = fs_of(&sb, "app", &[]);
    assert_eq!(entry(&fs, "etc/os-release").3, b"kiln");
    assert_eq!(entry(&fs, "etc/app.txt").3, b"app");
}

#[test]
fn stages_build_only_what_the_target_needs() {
    let sb = Sandbox::new();
    sb.write("ctx/tool.txt", "tool");
    sb.write(
        "ctx/Kilnfile",
        r#"FROM scratch AS tools
COPY tool.txt /opt/tool.txt
FROM scratch AS unused
COPY missing-file /x
FROM tools AS build
ENV STAGE=build
FROM scratch
COPY --from=build /opt/tool.txt /bin/
COPY --from=0 /opt /opt-copy
"#,
    );
    let run = sb
        .kiln(&["build", "--progress", "plain", "-t", "multi", "ctx"])
        .ok();
    assert!(
        run.stderr.contains("[tools 1/2] FROM scratch"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("unused"),
        "the unused stage is not built: {}",
        run.stderr
    );
    let fs = fs_of(&sb, "ctx", &[]);
    assert_eq!(entry(&fs, "bin/tool.txt").3, b"tool");
    assert_eq!(entry(&fs, "opt-copy/tool.txt").3, b"tool");
    sb.kiln(&["build", "--target", "build", "-t", "multi:build", "ctx"])
        .ok();
    let env = sb.inspect("multi:build")["Config"]["config"]["Env"].clone();
    assert_eq!(env, serde_json::json!(["STAGE=build"]));
}

#[test]
fn outputs_write_archives_trees_and_tars() {
    let sb = Sandbox::new();
    sb.write("ctx/a/b.txt", "b");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY a /a\n");
    let archive = sb.path("img.tar");
    sb.build(
        "ctx",
        &[
            "-t",
            "out:1",
            "--output",
            &format!("type=oci,dest={}", archive.display()),
        ],
    );
    let entries = tar_entries(&fs::read(&archive).unwrap());
    let n = names(&entries);
    assert!(
        n.contains(&"oci-layout".into()) && n.contains(&"index.json".into()),
        "{n:?}"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&entry(&entries, "index.json").3).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "out:1"
    );

    let layout = sb.path("layout");
    sb.build(
        "ctx",
        &[
            "--output",
            &format!("type=oci,dest={},tar=false", layout.display()),
        ],
    );
    assert!(layout.join("oci-layout").is_file() && layout.join("index.json").is_file());
    assert!(
        !layout.join("kiln").exists(),
        "a plain layout has no kiln/ directory"
    );

    let local = sb.path("local");
    sb.build(
        "ctx",
        &["--output", &format!("type=local,dest={}", local.display())],
    );
    assert_eq!(fs::read_to_string(local.join("a/b.txt")).unwrap(), "b");

    for (compression, media) in [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("uncompressed", "application/vnd.oci.image.layer.v1.tar"),
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        sb.build(
            "ctx",
            &[
                "-t",
                "c",
                "--output",
                &format!("type=image,compression={compression}"),
            ],
        );
        assert_eq!(sb.inspect("c")["Manifest"]["layers"][0]["mediaType"], media);
    }
}

#[test]
fn platform_flags_set_the_image_platform() {
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\n");
    sb.build("ctx", &["-t", "p", "--platform", "linux/arm64/v8"]);
    let cfg = sb.inspect("p")["Config"].clone();
    assert_eq!(
        (
            cfg["os"].as_str(),
            cfg["architecture"].as_str(),
            cfg["variant"].as_str()
        ),
        (Some("linux"), Some("arm64"), Some("v8"))
    );
    sb.write("ctx/Kilnfile", "FROM --platform=linux/amd64 scratch\n");
    sb.build("ctx", &["-t", "p"]);
    assert_eq!(sb.inspect("p")["Config"]["architecture"], "amd64");
    // A base image of another platform is refused, not silently mixed.
    sb.write("ctx/Kilnfile", "FROM p\n");
    let err = sb
        .kiln(&["build", "--platform", "wasi/wasm", "ctx"])
        .fails(1)
        .stderr;
    assert!(
        err.contains("is linux/amd64, but the build is for wasi/wasm"),
        "{err}"
    );
}

#[test]
fn plain_form_commands_are_split_without_a_shell() {
    let sb = Sandbox::new();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCMD /bin/app.wasm --name \"two words\" 'x y'\n",
    );
    sb.build("ctx", &["-t", "cmd"]);
    assert_eq!(
        sb.inspect("cmd")["Config"]["config"]["Cmd"],
        serde_json::json!(["/bin/app.wasm", "--name", "two words", "x y"])
    );
    // Shell syntax: `/bin/sh -c`, as Docker stores it (kiln's built-in
    // shell runs it where the image has no sh), its syntax checked now.
    sb.write("ctx/Kilnfile", "FROM scratch\nCMD app && other\n");
    sb.build("ctx", &["-t", "cmd"]);
    assert_eq!(
        sb.inspect("cmd")["Config"]["config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "app && other"])
    );
    sb.write("ctx/Kilnfile", "FROM scratch\nCMD app && (other\n");
    let err = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        err.contains("Kilnfile:2:") && err.contains("shell syntax (kiln's built-in shell)"),
        "{err}"
    );
}

#[test]
fn progress_is_buildkit_plain_style() {
    let sb = Sandbox::new();
    sb.write("ctx/f", "x");
    sb.write("ctx/Kilnfile", "FROM scratch\nENV A=1\nCOPY f /f\n");
    let run = sb
        .kiln(&["build", "--progress", "plain", "-t", "prog", "ctx"])
        .ok();
    let err = &run.stderr;
    for expected in [
        "#1 [internal] load build definition from ctx/Kilnfile",
        "#3 [1/2] FROM scratch",
        "#4 [2/2] COPY f /f",
        "#4 DONE ",
        "#5 exporting to image",
        "#5 writing image sha256:",
        "#5 naming to prog:latest done",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        run.stdout.is_empty(),
        "progress goes to stderr: {}",
        run.stdout
    );
    let quiet = sb.kiln(&["build", "-q", "ctx"]).ok();
    assert!(quiet.stderr.is_empty(), "{}", quiet.stderr);
    assert!(
        quiet.stdout.trim().starts_with("sha256:"),
        "{}",
        quiet.stdout
    );
}
