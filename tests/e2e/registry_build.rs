//! Builds that use registries: `FROM`, `COPY --from` and bind mounts of
//! images the store lacks, `--pull`, `--push`, `-o type=image|registry`,
//! multi-platform indexes, and a Linux image as a base; all against a real
//! registry on this machine (`registry_server`).

use std::fs;
use std::path::Path;

use crate::linux_image::{LINUX_IMAGE_CMD, LINUX_IMAGE_FILES, make_linux_image};
use crate::registry_server::RegistryServer;
use crate::run::GUESTS;
use crate::util::{Run, Sandbox, tool};

/// kiln with no credentials but this sandbox's (empty) auth file.
fn kiln(sb: &Sandbox, args: &[&str]) -> Run {
    let auth = sb.path("auth.json");
    if !auth.exists() {
        fs::write(&auth, "{}").unwrap();
    }
    sb.kiln_env(args, &[("REGISTRY_AUTH_FILE", auth.to_str().unwrap())])
}

/// A plain-progress build of `ctx` with `extra` args.
fn build(sb: &Sandbox, ctx: &str, extra: &[&str]) -> Run {
    let mut args = vec!["build", "--progress", "plain"];
    args.extend_from_slice(extra);
    args.push(ctx);
    kiln(sb, &args)
}

fn skopeo(args: &[&str]) -> String {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    tool("skopeo", &all)
}

/// The raw manifest (or index) a registry serves for `reference`.
fn raw(reference: &str) -> serde_json::Value {
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let json = &out[..out.rfind('}').unwrap() + 1];
    serde_json::from_str(json).unwrap()
}

/// The sha256 of `bytes`, as `sha256:HEX`.
fn digest_of(reference: &str) -> String {
    let out = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]);
    let json = &out[..out.rfind('}').unwrap() + 1];
    use sha2::Digest;
    let hash = sha2::Sha256::digest(json.as_bytes());
    format!(
        "sha256:{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Builds and pushes an image with one file `/NAME` holding `contents`.
fn push_file_image(server: &RegistryServer, name: &str, file: &str, contents: &str) -> String {
    let sb = Sandbox::new();
    sb.write(&format!("ctx/{file}"), contents);
    sb.write(
        "ctx/Kilnfile",
        format!("FROM scratch\nCOPY {file} /{file}\n"),
    );
    let target = format!("{}/{name}", server.host());
    let out = build(&sb, "ctx", &["-q", "--push", "-t", &target]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    let (pushed, digest) = lines[1].split_once('@').unwrap();
    assert_eq!(pushed, target);
    digest.to_string()
}

/// The files of the image `name` in `sb`'s store, written out to `dir`.
fn files(sb: &Sandbox, image: &str, dir: &str) -> std::path::PathBuf {
    sb.write("view/Kilnfile", format!("FROM {image}\n"));
    let out = sb.path(dir);
    kiln(
        sb,
        &[
            "build",
            "-q",
            "-o",
            &format!("type=local,dest={}", out.display()),
            "view",
        ],
    )
    .ok();
    out
}

fn read(dir: &Path, rel: &str) -> String {
    fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn from_pulls_an_image_the_store_lacks_and_shows_it_under_the_from_step() {
    let server = RegistryServer::plain();
    push_file_image(&server, "base:1", "base.txt", "base\n");
    let sb = Sandbox::new();
    sb.write("ctx/app.txt", "app\n");
    let base = format!("{}/base:1", server.host());
    sb.write(
        "ctx/Kilnfile",
        format!("FROM {base}\nCOPY app.txt /app.txt\n"),
    );
    let run = build(&sb, "ctx", &["-t", "app"]).ok();
    let from = run
        .stderr
        .lines()
        .find(|l| l.ends_with(&format!("[1/2] FROM {base}")))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    let id = from.split(' ').next().unwrap();
    assert!(
        run.stderr.contains(&format!("{id} pulling {base}\n")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("{id} pulled {base}: sha256:")),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("layer: pulled"), "{}", run.stderr);
    // Named by its short form, as `kiln pull` names it.
    let images = kiln(&sb, &["images"]).ok().stdout;
    assert!(
        images.contains(&format!("{}/base", server.host())),
        "{images}"
    );
    let out = files(&sb, "app", "out");
    assert_eq!(read(&out, "base.txt"), "base\n");
    assert_eq!(read(&out, "app.txt"), "app\n");

    // The second build finds it in the store: no pull.
    let again = build(&sb, "ctx", &["-t", "app"]).ok();
    assert!(!again.stderr.contains("pulling"), "{}", again.stderr);
}

#[test]
fn a_digest_the_store_has_never_contacts_the_registry() {
    let server = RegistryServer::plain();
    let digest = push_file_image(&server, "base:1", "base.txt", "base\n");
    let host = server.host();
    let by_digest = format!("{host}/base@{digest}");
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", format!("FROM {by_digest}\nLABEL x=1\n"));
    let first = build(&sb, "ctx", &["-t", "app"]).ok();
    assert!(first.stderr.contains("pulling"), "{}", first.stderr);
    // A digest-only reference stays untagged in the store.
    let images = kiln(&sb, &["images"]).ok().stdout;
    assert!(!images.contains(&format!("{host}/base")), "{images}");

    drop(server);
    for extra in [&[][..], &["--pull"][..]] {
        let mut args = vec!["-t", "app"];
        args.extend_from_slice(extra);
        let run = build(&sb, "ctx", &args).ok();
        assert!(!run.stderr.contains("pulling"), "{}", run.stderr);
    }
    // A tag, with --pull, must ask the (now stopped) registry.
    sb.write("ctx/Kilnfile", format!("FROM {host}/base:1\n"));
    let e = build(&sb, "ctx", &["--pull"]).fails(1).stderr;
    assert!(e.contains("Kilnfile:1:6:"), "{e}");
    assert!(e.contains(&format!("cannot reach {host}")), "{e}");
}

#[test]
fn pull_flag_picks_up_a_newer_push_of_the_same_tag() {
    let server = RegistryServer::plain();
    push_file_image(&server, "base:1", "v.txt", "one\n");
    let sb = Sandbox::new();
    let base = format!("{}/base:1", server.host());
    assert_eq!(read(&files(&sb, &base, "a"), "v.txt"), "one\n");

    push_file_image(&server, "base:1", "v.txt", "two\n");
    // Without --pull the stored (stale) image is used...
    assert_eq!(read(&files(&sb, &base, "b"), "v.txt"), "one\n");
    // ...with it, the registry's current one, which the name then moves to.
    sb.write("ctx/Kilnfile", format!("FROM {base}\n"));
    let out = sb.path("c");
    let run = build(
        &sb,
        "ctx",
        &[
            "--pull",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    )
    .ok();
    assert!(run.stderr.contains("pulling"), "{}", run.stderr);
    assert_eq!(read(&out, "v.txt"), "two\n");
    assert_eq!(read(&files(&sb, &base, "d"), "v.txt"), "two\n");
}

#[test]
fn copy_from_and_bind_mounts_from_pull_images() {
    let server = RegistryServer::plain();
    push_file_image(&server, "data:1", "data.txt", "data\n");
    // A tools image holding the probe guest.
    let tools = Sandbox::new();
    fs::create_dir_all(tools.path("ctx")).unwrap();
    fs::copy(GUESTS[0].1, tools.path("ctx/probe")).unwrap();
    tools.write("ctx/Kilnfile", "FROM scratch\nCOPY probe /probe\n");
    let tools_ref = format!("{}/tools:1", server.host());
    build(&tools, "ctx", &["--push", "-t", &tools_ref]).ok();

    let sb = Sandbox::new();
    sb.write(
        "ctx/Kilnfile",
        format!(
            "FROM scratch\n\
             COPY --from={host}/data:1 /data.txt /copied.txt\n\
             RUN --mount=type=bind,from={tools_ref},target=/t [\"/t/probe\", \"write\", \"/made.txt\", \"made\"]\n",
            host = server.host()
        ),
    );
    let out = sb.path("out");
    let run = build(
        &sb,
        "ctx",
        &["-o", &format!("type=local,dest={}", out.display())],
    )
    .ok();
    assert!(
        run.stderr
            .contains(&format!("pulling {}/data:1", server.host())),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!("pulling {tools_ref}")),
        "{}",
        run.stderr
    );
    assert_eq!(read(&out, "copied.txt"), "data\n");
    assert_eq!(read(&out, "made.txt"), "made");
    assert!(!out.join("t").join("probe").exists());
}

#[test]
fn build_push_then_pull_into_a_fresh_store_gives_the_same_digest() {
    let server = RegistryServer::plain();
    let sb = Sandbox::new();
    sb.write("ctx/a.txt", "a\n");
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    let target = format!("{}/app:1", server.host());
    let other = format!("{}/app:2", server.host());
    let run = build(&sb, "ctx", &["-q", "--push", "-t", &target, "-t", &other]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    let id = lines[0];
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(lines[1], format!("{target}@{id}"));
    assert_eq!(lines[2], format!("{other}@{id}"));
    assert_eq!(digest_of(&target), id);

    let fresh = Sandbox::new();
    kiln(&fresh, &["pull", "-q", &target]).ok();
    assert_eq!(fresh.inspect(&target)["Id"], id);

    // Not quiet: the pushes are still on stdout, the progress on stderr.
    let run = build(&sb, "ctx", &["--push", "-t", &target]).ok();
    assert_eq!(run.stdout.trim(), format!("{target}@{id}"));
    assert!(
        run.stderr.contains(&format!("pushing {target}")),
        "{}",
        run.stderr
    );
}

#[test]
fn output_type_registry_and_type_image_with_push() {
    let server = RegistryServer::plain();
    let host = server.host();
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", "FROM scratch\nLABEL a=b\n");

    let reg = format!("{host}/reg:1");
    let run = build(
        &sb,
        "ctx",
        &["-q", "-o", &format!("type=registry,name={reg}")],
    )
    .ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[1], format!("{reg}@{}", lines[0]));
    assert_eq!(
        raw(&reg)["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );

    let (a, b) = (format!("{host}/img:1"), format!("{host}/img:2"));
    let spec = format!("type=image,\"name={a},{b}\",push=true");
    let run = build(&sb, "ctx", &["-q", "-o", &spec]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            lines[0].to_string(),
            format!("{a}@{}", lines[0]),
            format!("{b}@{}", lines[0])
        ]
    );
    // Named in the store too.
    let images = kiln(&sb, &["images"]).ok().stdout;
    assert!(images.contains(&format!("{host}/img")), "{images}");

    // type=image without push only names.
    let local = format!("{host}/local:1");
    let run = build(
        &sb,
        "ctx",
        &["-q", "-o", &format!("type=image,name={local}")],
    )
    .ok();
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    kiln(&sb, &["inspect", &local]).ok();

    // Bad paths: nothing to push to, a bad spec, a name that is no reference.
    let e = build(&sb, "ctx", &["--push"]).fails(2).stderr;
    assert!(e.contains("--push: no name to push to"), "{e}");
    let e = build(&sb, "ctx", &["-o", "type=image,push=true"])
        .fails(2)
        .stderr;
    assert!(e.contains("no name to push to"), "{e}");
    let e = build(&sb, "ctx", &["-o", "type=registry,push=false"])
        .fails(2)
        .stderr;
    assert!(e.contains("always pushes"), "{e}");
    let e = build(&sb, "ctx", &["-o", "type=image,\"name=a"])
        .fails(2)
        .stderr;
    assert!(e.contains("not closed"), "{e}");
    let e = build(&sb, "ctx", &["--push", "-t", "Bad:Name"])
        .fails(2)
        .stderr;
    assert!(e.contains("-t Bad:Name"), "{e}");
}

#[test]
fn several_platforms_make_an_index_that_is_pushed() {
    let server = RegistryServer::plain();
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/bin/probe")).unwrap();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY bin/ /bin/\nARG TARGETPLATFORM\nRUN probe write /platform.txt $TARGETPLATFORM\nCMD [\"/bin/probe\", \"cat\", \"/platform.txt\"]\n",
    );
    let target = format!("{}/multi:1", server.host());
    let run = build(
        &sb,
        "ctx",
        &[
            "--platform",
            "wasi/wasm,linux/amd64",
            "--push",
            "-t",
            &target,
        ],
    )
    .ok();
    assert!(
        run.stderr.contains("[wasi/wasm 3/3] RUN probe"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[linux/amd64 3/3] RUN probe"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("exporting manifest list"),
        "{}",
        run.stderr
    );
    let digest = run.stdout.trim().split_once('@').unwrap().1.to_string();

    let index = raw(&target);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(platforms, ["wasi/wasm", "linux/amd64"]);
    assert_eq!(digest_of(&target), digest);

    // The store's name is the index; images, history and run pick wasi/wasm.
    let images = kiln(&sb, &["images"]).ok().stdout;
    assert!(
        images.contains(&format!("{}/multi", server.host())),
        "{images}"
    );
    // A size, not N/A (CREATED is N/A: built at the epoch).
    assert!(
        !images.lines().any(|l| l.trim_end().ends_with("N/A")),
        "{images}"
    );
    kiln(&sb, &["history", &target]).ok();
    let out = kiln(&sb, &["run", &target]).ok().stdout;
    assert_eq!(out.trim(), "wasi/wasm");

    // Each platform's image pulls on its own, with its own config.
    let fresh = Sandbox::new();
    kiln(&fresh, &["pull", "--platform", "linux/amd64", &target]).ok();
    let img = fresh.inspect(&target);
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["Architecture"], "amd64");

    // A multi-platform base is pulled once per platform of the build.
    let child = Sandbox::new();
    child.write("ctx/Kilnfile", format!("FROM {target}\nLABEL child=1\n"));
    let run = build(
        &child,
        "ctx",
        &["--platform", "wasi/wasm,linux/amd64", "-t", "child"],
    )
    .ok();
    assert_eq!(
        run.stderr.matches(&format!("pulling {target}")).count(),
        2,
        "{}",
        run.stderr
    );
    let out = kiln(&child, &["run", "child"]).ok().stdout;
    assert_eq!(out.trim(), "wasi/wasm");

    // Several platforms go to the store or a registry only.
    let e = build(
        &sb,
        "ctx",
        &[
            "--platform",
            "wasi/wasm,linux/amd64",
            "-o",
            "type=tar,dest=x.tar",
        ],
    )
    .fails(2)
    .stderr;
    assert!(e.contains("multi-platform build"), "{e}");
    let e = build(&sb, "ctx", &["--platform", "wasi/wasm,wasi/wasm"])
        .fails(2)
        .stderr;
    assert!(e.contains("given twice"), "{e}");
}

#[test]
fn a_linux_image_is_a_base_and_the_result_stays_linux_amd64() {
    let server = RegistryServer::plain();
    let tmp = tempfile::tempdir().unwrap();
    let fixture = make_linux_image(&tmp.path().join("layout"));
    let host = server.host();
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &fixture,
        &format!("docker://{host}/linux/base:1"),
    ]);

    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/tools")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/tools/probe")).unwrap();
    sb.write("ctx/note.txt", "copied\n");
    sb.write(
        "ctx/Kilnfile",
        format!(
            "FROM {host}/linux/base:1\n\
             COPY note.txt /etc/note.txt\n\
             RUN --mount=type=bind,source=tools,target=/tools [\"/tools/probe\", \"write\", \"/made-by-wasm.txt\", \"wasm\"]\n"
        ),
    );
    let out = format!("{host}/linux/out:1");
    build(&sb, "ctx", &["--push", "-t", &out]).ok();

    let layout = tmp.path().join("out");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{out}"),
        &format!("oci:{}:out", layout.display()),
    ]);
    let config: serde_json::Value = serde_json::from_str(&skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:out", layout.display()),
    ]))
    .unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["Cmd"], serde_json::json!(LINUX_IMAGE_CMD));
    let bundle = tmp.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:out", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    for (path, contents) in LINUX_IMAGE_FILES {
        assert_eq!(read(&rootfs, path), *contents);
    }
    assert_eq!(read(&rootfs, "made-by-wasm.txt"), "wasm");
    assert_eq!(read(&rootfs, "etc/note.txt"), "copied\n");
    assert!(!rootfs.join("tools").join("probe").exists());
}

#[test]
fn images_that_cannot_be_pulled_fail_at_their_kilnfile_line() {
    let server = RegistryServer::plain();
    let host = server.host();
    let sb = Sandbox::new();
    sb.write("ctx/Kilnfile", format!("FROM {host}/nope:1\n"));
    let e = build(&sb, "ctx", &[]).fails(1).stderr;
    assert!(e.contains(&format!("ctx/Kilnfile:1:6: no image \"{host}/nope:1\" in the store, and pulling {host}/nope:1: not found on {host}")), "{e}");

    sb.write(
        "ctx/Kilnfile",
        format!("FROM scratch\nCOPY --from={host}/nope:2 /a /b\n"),
    );
    let e = build(&sb, "ctx", &[]).fails(1).stderr;
    assert!(e.contains("ctx/Kilnfile:2:"), "{e}");
    assert!(e.contains(&format!("not found on {host}")), "{e}");

    // A registry that wants credentials: the message names `kiln login`.
    let secure = RegistryServer::tls_with_auth("user", "password");
    let ca = secure.ca_pem().unwrap().to_str().unwrap().to_string();
    let shost = secure.host();
    sb.write("ctx/Kilnfile", format!("ARG X\nFROM {shost}/private:1\n"));
    let e = build(&sb, "ctx", &["--registry-ca", &ca]).fails(1).stderr;
    assert!(e.contains("ctx/Kilnfile:2:6:"), "{e}");
    assert!(e.contains(&format!("run `kiln login {shost}`")), "{e}");

    // A registry nobody answers on.
    drop(server);
    sb.write("ctx/Kilnfile", format!("FROM {host}/gone:1\n"));
    let e = build(&sb, "ctx", &[]).fails(1).stderr;
    assert!(e.contains(&format!("cannot reach {host}")), "{e}");
}
