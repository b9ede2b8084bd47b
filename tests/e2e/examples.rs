//! The examples, built in a sandbox the way their READMEs say (after what
//! examples/build.sh does, see `Sandbox::examples`), and the images checked
//! for what the READMEs promise.

use std::fs;

use crate::secrets::{files_containing, forms};
use crate::util::{Sandbox, workspace};

/// The examples these tests cover; a new one needs a test here.
const TESTED: &[&str] = &["fpga", "hello", "npm-token", "plugin-step", "toolbox"];

#[test]
fn every_example_has_a_readme_and_a_test() {
    let mut found = Vec::new();
    for entry in fs::read_dir(workspace().join("examples")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Kilnfile").is_file() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            assert!(dir.join("README.md").is_file(), "{name} has no README.md");
            found.push(name);
        }
    }
    found.sort();
    assert_eq!(found, TESTED);
}

#[test]
fn the_toolbox_image_has_every_tool_and_they_work() {
    let sb = Sandbox::new();
    sb.examples();
    let tools = [
        "basename",
        "cat",
        "cp",
        "cut",
        "dirname",
        "echo",
        "env",
        "false",
        "grep",
        "head",
        "ln",
        "ls",
        "mkdir",
        "mv",
        "rm",
        "seq",
        "sha256sum",
        "sleep",
        "sort",
        "tail",
        "tar",
        "touch",
        "tr",
        "true",
        "uniq",
        "wc",
        "yes",
    ];
    // The default command lists the tools; each is a /bin entry.
    let listed = sb.kiln(&["run", "--rm", "toolbox"]).ok().stdout;
    assert_eq!(listed.lines().collect::<Vec<_>>(), tools);
    let bin = sb
        .kiln(&["run", "--rm", "toolbox", "ls", "/bin"])
        .ok()
        .stdout;
    for tool in tools.iter().chain(&["toolbox.wasm"]) {
        assert!(bin.lines().any(|l| l == *tool), "/bin/{tool}: {bin}");
    }

    // A build that uses the tools the way a Kilnfile would.
    sb.write("ctx/data/a.txt", "alpha\n");
    sb.write("ctx/data/sub/b.txt", "beta\n");
    sb.write(
        "ctx/Kilnfile",
        "FROM toolbox\nWORKDIR /w\nCOPY data/ src/\n\
         RUN mkdir -p out/deep/er\n\
         RUN cp -r src out/copy\n\
         RUN tar -czf out/src.tgz src\n\
         RUN mkdir unpacked\n\
         RUN tar -xzf out/src.tgz -C unpacked\n\
         RUN mv out/copy/a.txt out/moved.txt\n\
         RUN rm -r out/deep\n\
         RUN touch out/empty\n\
         RUN ln -s moved.txt out/link\n\
         RUN true\n",
    );
    sb.build("ctx", &["-t", "tools"]);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "tools"];
        all.extend_from_slice(args);
        sb.kiln(&all)
    };
    assert_eq!(
        run(&["cat", "unpacked/src/sub/b.txt", "out/link"])
            .ok()
            .stdout,
        "beta\nalpha\n"
    );
    let listing = run(&["ls", "out"]).ok().stdout;
    assert_eq!(listing, "copy\nempty\nlink\nmoved.txt\nsrc.tgz\n");
    // sha256 of "alpha\n".
    assert_eq!(
        run(&["sha256sum", "src/a.txt"]).ok().stdout,
        format!("{}  src/a.txt\n", sha256_hex(b"alpha\n"))
    );
    assert_eq!(run(&["echo", "-n", "a", "b"]).ok().stdout, "a b");
    assert!(
        run(&["env"])
            .ok()
            .stdout
            .contains("PATH=/usr/local/bin:/usr/bin:/bin")
    );

    // Failures: exit codes and messages a user can act on.
    run(&["false"]).fails(1);
    let missing = run(&["cat", "nope"]).fails(1).stderr;
    assert!(
        missing.contains("cat: nope: No such file or directory"),
        "{missing}"
    );
    let bad_flag = run(&["ls", "--bogus"]).fails(2).stderr;
    assert!(
        bad_flag.contains("ls: unrecognized option '--bogus'") || bad_flag.contains("--bogus"),
        "{bad_flag}"
    );
    let no_shell = sb
        .kiln(&["run", "--rm", "toolbox", "toolbox", "sh"])
        .fails(2)
        .stderr;
    assert!(
        no_shell.contains("kiln's built-in shell runs shell-form RUN"),
        "{no_shell}"
    );
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn hello_builds_runs_and_has_its_history() {
    let sb = Sandbox::new();
    sb.examples();
    let id = sb.build("examples/hello", &["-t", "hello"]);
    assert_eq!(
        sb.build("examples/hello", &[]),
        id,
        "a rebuild gives the same image"
    );
    let history = sb.kiln(&["history", "hello"]).ok().stdout;
    for line in [
        "COPY site/ ./ # kiln",
        "WORKDIR /srv/site",
        "ENV SITE_ROOT=/srv/site",
        "RUN tar -czf /srv/site.tgz .",
        "USER 1000:1000",
    ] {
        assert!(history.contains(line), "{line}: {history}");
    }
    let motd = sb.kiln(&["run", "--rm", "hello"]).ok().stdout;
    assert_eq!(motd, "hello from kiln 1.0.0\n");
    let archived = sb
        .kiln(&["run", "--rm", "hello", "tar", "-tzf", "/srv/site.tgz"])
        .ok()
        .stdout;
    // Member names are normalized: `./index.html` is stored as `index.html`.
    for name in ["index.html", "about.html", "css/site.css"] {
        assert!(archived.lines().any(|l| l == name), "{name}: {archived}");
    }
}

#[test]
fn npm_token_builds_both_ways_and_the_token_is_nowhere() {
    let sb = Sandbox::new();
    sb.examples();
    let token_file = sb.path("examples/npm-token/npm_token.txt");
    let token = fs::read_to_string(&token_file).unwrap().trim().to_string();
    let tmp = sb.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let tmp = tmp.to_str().unwrap();
    let mut outputs = String::new();
    let mut kiln = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec![("TMPDIR", tmp)];
        all.extend_from_slice(env);
        let run = sb.kiln_env(args, &all);
        outputs.push_str(&run.stdout);
        outputs.push_str(&run.stderr);
        run
    };

    let from_file = kiln(
        &[
            "build",
            "-q",
            "--secret",
            "id=npm_token,src=examples/npm-token/npm_token.txt",
            "-t",
            "npm-app",
            "examples/npm-token",
        ],
        &[],
    )
    .ok()
    .stdout;
    let from_env = kiln(
        &[
            "build",
            "-q",
            "--secret",
            "id=npm_token,env=NPM_TOKEN",
            "-t",
            "npm-app",
            "--output",
            "type=local,dest=out",
            "examples/npm-token",
        ],
        &[("NPM_TOKEN", &token)],
    )
    .ok()
    .stdout;
    assert_eq!(from_file, from_env, "the token shapes no byte of the image");

    let history = kiln(&["history", "--no-trunc", "npm-app"], &[]).ok().stdout;
    assert!(
        history.contains("RUN --mount=type=secret,id=npm_token"),
        "{history}"
    );
    let installed = kiln(&["run", "--rm", "npm-app"], &[]).ok().stdout;
    assert!(
        installed.starts_with("kiln-greeting@0.2.1 sha256:"),
        "{installed}"
    );
    assert!(
        installed.contains("\nleft-pad@1.3.0 sha256:"),
        "{installed}"
    );
    let modules = kiln(&["run", "--rm", "npm-app", "ls", "/app/node_modules"], &[])
        .ok()
        .stdout;
    assert!(
        modules.contains("left-pad\n") && modules.contains("kiln-greeting\n"),
        "{modules}"
    );
    assert!(
        sb.path("out/app/node_modules/left-pad/package.json")
            .is_file()
    );
    let cat = kiln(
        &["run", "--rm", "npm-app", "cat", "/run/secrets/npm_token"],
        &[],
    )
    .fails(1)
    .stderr;
    assert!(
        cat.contains("/run/secrets/npm_token: No such file or directory"),
        "{cat}"
    );
    assert!(!sb.path("out/run").exists());

    // Without the token, or with a wrong one, the step fails and says why.
    let none = kiln(&["build", "-q", "examples/npm-token"], &[])
        .fails(1)
        .stderr;
    assert!(none.contains("--secret id=npm_token"), "{none}");
    sb.write("wrong.txt", "npm_wrong_token");
    let wrong = kiln(
        &[
            "build",
            "-q",
            "--secret",
            "id=npm_token,src=wrong.txt",
            "examples/npm-token",
        ],
        &[],
    )
    .fails(1)
    .stderr;
    assert!(wrong.contains("refused the token"), "{wrong}");

    // The token is in no file kiln wrote and in none of its output.
    let needles = forms(token.as_bytes());
    let hits: Vec<String> = files_containing(sb.dir.path(), &needles)
        .into_iter()
        .filter(|p| !p.ends_with("examples/npm-token/npm_token.txt"))
        .collect();
    assert!(hits.is_empty(), "the token leaked into {hits:?}");
    assert!(!outputs.contains(&token), "the token was printed");
}

#[test]
fn plugin_step_writes_a_manifest_and_stays_out_of_the_image() {
    let sb = Sandbox::new();
    sb.examples();
    sb.build("examples/plugin-step", &["-t", "site"]);
    let manifest = sb.kiln(&["run", "--rm", "site"]).ok().stdout;
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let css = fs::read(workspace().join("examples/plugin-step/site/css/site.css")).unwrap();
    let entry = &manifest["assets"]["css/site.css"];
    let sha = sha256_hex(&css);
    assert_eq!(entry["sha256"], sha.as_str());
    assert_eq!(entry["size"], css.len());
    assert_eq!(entry["type"], "text/css");
    let fingerprinted = format!("css/site.{}.css", &sha[..8]);
    assert_eq!(entry["fingerprinted"], fingerprinted.as_str());
    // --copy wrote the fingerprinted file, with the same bytes.
    let copy = sb
        .kiln(&[
            "run",
            "--rm",
            "site",
            "sha256sum",
            &format!("/srv/site/{fingerprinted}"),
        ])
        .ok()
        .stdout;
    assert!(copy.starts_with(&sha), "{copy}");
    // The plugin was bind-mounted for its step only.
    sb.kiln(&["run", "--rm", "site", "ls", "/plugins"]).fails(1);
    let history = sb.kiln(&["history", "--no-trunc", "site"]).ok().stdout;
    assert!(
        history.contains("--mount=type=bind,source=bin,target=/plugins"),
        "{history}"
    );
}

/// The bitstream of `examples/fpga`: the same bytes on every machine, since
/// the tools are pinned (fetch.sh checks their sha256) and run as wasm.
const FPGA_BITSTREAM_SHA256: &str =
    "38cdab5897aeca6a299bc44b178c1dd1e3f048f5e0e31061487352aefb6907c3";

#[test]
fn fpga_builds_an_ice40_bitstream_with_yosys_and_nextpnr() {
    let example = workspace().join("examples/fpga");
    assert!(
        example.join("tools/.fetched").is_file(),
        "examples/fpga/tools is missing: run examples/fpga/fetch.sh first \
         (it downloads the pinned YoWASP wheels from PyPI, about 88 MB)"
    );
    let sb = Sandbox::new();
    // From the checkout: the tools are too big to copy into the sandbox.
    let context = example.to_str().unwrap();
    // The first build compiles yosys (69 MB of wasm): about 2 minutes.
    let id = sb.build(context, &["-t", "fpga"]);
    // Every step again, with the compiled code from the store: the tools
    // write the same bytes (no timestamps, nextpnr's seed is fixed).
    assert_eq!(
        sb.build(context, &["--no-cache"]),
        id,
        "a rebuild from scratch gives the same image"
    );

    sb.kiln(&["build", "-q", "-o", "type=local,dest=out", context])
        .ok();
    let names: Vec<_> = fs::read_dir(sb.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["top.bin"], "the image holds the bitstream only");
    let bin = fs::read(sb.path("out/top.bin")).unwrap();
    // An iCE40 bitstream: a comment (0xff 0x00 ... 0x00 0xff), then the
    // preamble; an HX1K's is 32220 bytes.
    assert_eq!(&bin[..2], [0xff, 0x00]);
    let preamble = bin.windows(4).position(|w| w == [0x7e, 0xaa, 0x99, 0x7e]);
    assert!(
        matches!(preamble, Some(p) if p < 64),
        "no preamble: {preamble:?}"
    );
    assert_eq!(bin.len(), 32220);
    assert_eq!(sha256_hex(&bin), FPGA_BITSTREAM_SHA256);

    let history = sb.kiln(&["history", "--no-trunc", "fpga"]).ok().stdout;
    assert!(
        history.contains("COPY --from=build /work/top.bin /top.bin"),
        "{history}"
    );
}
