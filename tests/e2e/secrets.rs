//! Build secrets end to end: the seed scenario, every option and error, the
//! leak guard, masking, and a search of everything kiln wrote for the value.

use std::fs;
use std::path::Path;

use crate::run::GUESTS;
use crate::util::{Sandbox, layer_tar, tar_entries};

const TOKEN: &str = "npm_Z3cr3tT0k3n_f0r_t3sts_4242";

/// A sandbox with the probe in `ctx/bin`, the token in `npm_token.txt`
/// (outside the context) and `kilnfile` as the Kilnfile.
fn setup(guest: &str, kilnfile: &str) -> Sandbox {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx/bin")).unwrap();
    fs::copy(guest, sb.path("ctx/bin/probe")).unwrap();
    sb.write("ctx/Kilnfile", kilnfile);
    sb.write("npm_token.txt", TOKEN);
    fs::create_dir_all(sb.path("tmp")).unwrap();
    sb
}

/// Runs kiln with TMPDIR inside the sandbox (so it can be searched too).
fn kiln(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> crate::util::Run {
    let tmp = sb.path("tmp");
    let mut all = vec![("TMPDIR", tmp.to_str().unwrap())];
    all.extend_from_slice(env);
    sb.kiln_env(args, &all)
}

/// The forms of the token the search looks for.
pub(crate) fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    vec![
        secret.to_vec(),
        hex_lower(secret),
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(secret)
            .into_bytes(),
    ]
}

fn hex_lower(b: &[u8]) -> Vec<u8> {
    b.iter()
        .flat_map(|x| format!("{x:02x}").into_bytes())
        .collect()
}

/// Every file under `dir` (or `dir` itself, a file) that contains any of
/// `needles`.
pub(crate) fn files_containing(dir: &Path, needles: &[Vec<u8>]) -> Vec<String> {
    let mut hits = Vec::new();
    let holds = |data: &[u8]| {
        needles
            .iter()
            .any(|n| data.windows(n.len()).any(|w| w == n.as_slice()))
    };
    if dir.is_file() {
        if holds(&fs::read(dir).unwrap()) {
            hits.push(dir.display().to_string());
        }
        return hits;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && holds(&fs::read(e.path()).unwrap()) {
                hits.push(e.path().display().to_string());
            }
        }
    }
    hits
}

const SEED: &str = "FROM scratch\nCOPY bin/ /bin/\nWORKDIR /app\n\
    RUN --mount=type=secret,id=npm_token probe derive /run/secrets/npm_token /app/token.info -- ls /run/secrets\n\
    RUN --mount=type=secret,id=npm_token,env=NPM_TOKEN probe derive-env NPM_TOKEN /app/env.info\n";

#[test]
fn the_seed_scenario_keeps_the_token_out_of_the_image() {
    for (wasi, guest) in GUESTS {
        let sb = setup(guest, SEED);
        let src = format!("id=npm_token,src={}", sb.path("npm_token.txt").display());
        let built = kiln(
            &sb,
            &[
                "build",
                "--progress",
                "plain",
                "-t",
                "app",
                "--secret",
                &src,
                "ctx",
            ],
            &[],
        )
        .ok();
        let from_env = kiln(
            &sb,
            &[
                "build",
                "--progress",
                "plain",
                "-t",
                "app-env",
                "--secret",
                "id=npm_token,env=NPM_TOKEN",
                "ctx",
            ],
            &[("NPM_TOKEN", TOKEN)],
        )
        .ok();
        // Both ways give the same image: the token shapes only derived files.
        assert_eq!(
            sb.inspect("app")["Id"],
            sb.inspect("app-env")["Id"],
            "{wasi}: src= and env= give the same image"
        );
        assert!(
            built.stderr.contains(" npm_token\n"),
            "{wasi}: the step saw /run/secrets: {}",
            built.stderr
        );

        let history = sb.kiln(&["history", "--no-trunc", "app"]).ok().stdout;
        assert!(
            history.contains("RUN --mount=type=secret,id=npm_token probe derive /run/secrets/npm_token /app/token.info"),
            "{wasi}: {history}"
        );
        assert!(
            history.contains("RUN --mount=type=secret,id=npm_token,env=NPM_TOKEN probe derive-env"),
            "{wasi}"
        );

        // The file is not in the image.
        let run = sb
            .kiln(&[
                "run",
                "--rm",
                "app",
                "probe",
                "cat",
                "/run/secrets/npm_token",
            ])
            .fails(1);
        assert!(
            run.stderr.contains("probe cat /run/secrets/npm_token"),
            "{wasi}: {}",
            run.stderr
        );
        let info = sb
            .kiln(&["run", "--rm", "app", "probe", "cat", "/app/token.info"])
            .ok()
            .stdout;
        assert!(
            info.starts_with(&format!("{} bytes, fnv ", TOKEN.len())),
            "{wasi}: {info}"
        );

        // No layer has any entry under run/ (not even an empty mountpoint).
        let img = sb.inspect("app");
        for layer in img["Manifest"]["layers"].as_array().unwrap() {
            let tar = layer_tar(
                &sb.store(),
                layer["digest"].as_str().unwrap(),
                layer["mediaType"].as_str().unwrap(),
            );
            for (path, ..) in tar_entries(&tar) {
                assert!(!path.starts_with("run"), "{wasi}: {path} in a layer");
            }
        }

        // All that kiln wrote, and all it printed, holds no form of the token.
        let needles = forms(TOKEN.as_bytes());
        let archive = sb.path("out.tar");
        let local = sb.path("local");
        for output in [
            format!("type=oci,dest={}", archive.display()),
            format!("type=local,dest={}", local.display()),
        ] {
            kiln(
                &sb,
                &["build", "-q", "--secret", &src, "--output", &output, "ctx"],
                &[],
            )
            .ok();
        }
        for dir in [sb.store(), sb.path("tmp"), local] {
            assert_eq!(
                files_containing(&dir, &needles),
                Vec::<String>::new(),
                "{wasi}"
            );
        }
        assert_eq!(files_containing(&archive, &needles).len(), 0, "{wasi}");
        for out in [
            &built.stdout,
            &built.stderr,
            &from_env.stdout,
            &from_env.stderr,
            &history,
        ] {
            assert!(
                needles
                    .iter()
                    .all(|n| !out.as_bytes().windows(n.len()).any(|w| w == n.as_slice())),
                "{wasi}: {out}"
            );
        }
    }
}

#[test]
fn umoci_sees_no_run_secrets_in_a_linux_build() {
    let sb = setup(GUESTS[0].1, SEED);
    let src = format!("id=npm_token,src={}", sb.path("npm_token.txt").display());
    kiln(
        &sb,
        &[
            "build",
            "-q",
            "-t",
            "linux",
            "--platform",
            "linux/amd64",
            "--secret",
            &src,
            "ctx",
        ],
        &[],
    )
    .ok();
    let bundle = sb.umoci_unpack("linux:latest");
    assert!(bundle.join("rootfs/app/token.info").is_file());
    assert!(
        !bundle.join("rootfs/run").exists(),
        "no /run, not even an empty /run/secrets"
    );
}

#[test]
fn a_leaking_step_is_caught_and_the_search_would_see_it() {
    let kilnfile = "FROM scratch\nCOPY bin/ /bin/\nRUN --mount=type=secret,id=npm_token probe copy /run/secrets/npm_token /app/.npmrc -- cat /run/secrets/npm_token\n";
    for (wasi, guest) in GUESTS {
        let sb = setup(guest, &kilnfile.replace("/app/", "/"));
        let src = format!("id=npm_token,src={}", sb.path("npm_token.txt").display());
        // The leak guard (on by default) fails the build, naming file and id.
        let run = kiln(
            &sb,
            &[
                "build",
                "--progress",
                "plain",
                "-t",
                "leak",
                "--secret",
                &src,
                "ctx",
            ],
            &[],
        )
        .fails(1);
        assert!(
            run.stderr
                .contains("/.npmrc contains secret \"npm_token\" (raw)"),
            "{wasi}: {}",
            run.stderr
        );
        // The step printed the token: the output shows **** instead.
        assert!(run.stderr.contains(" ****"), "{wasi}: {}", run.stderr);
        assert!(!run.stderr.contains(TOKEN), "{wasi}");
        assert!(
            !sb.kiln(&["images"]).ok().stdout.contains("leak"),
            "{wasi}: nothing published"
        );
        assert_eq!(
            files_containing(&sb.store(), &forms(TOKEN.as_bytes())),
            Vec::<String>::new(),
            "{wasi}"
        );
        // warn: built, with a warning.
        let run = kiln(
            &sb,
            &[
                "build",
                "--progress",
                "plain",
                "--secret-scan",
                "warn",
                "--secret",
                &src,
                "ctx",
            ],
            &[],
        )
        .ok();
        assert!(
            run.stderr.contains("warning: [3/3] RUN"),
            "{wasi}: {}",
            run.stderr
        );
        // off, uncompressed: the same search finds the token in the store,
        // which shows the search can fail.
        kiln(
            &sb,
            &[
                "build",
                "-q",
                "--secret-scan",
                "off",
                "--output",
                "type=image,compression=uncompressed",
                "--secret",
                &src,
                "ctx",
            ],
            &[],
        )
        .ok();
        assert!(
            !files_containing(&sb.store(), &forms(TOKEN.as_bytes())).is_empty(),
            "{wasi}"
        );
    }
}

#[test]
fn secret_options_and_defaults() {
    let sb = setup(
        GUESTS[0].1,
        "FROM scratch\nCOPY bin/ /bin/\nCOPY keep /etc/keys/keep\n\
         RUN --mount=type=secret,target=/etc/keys/api.key --mount=type=secret,id=tok,env=TOK --mount=type=secret,id=npm_token,target=/custom/token \
             probe cat /etc/keys/api.key -- ls /etc/keys -- exists /run/secrets/tok -- getenv TOK -- cat /custom/token\n\
         RUN --mount=type=secret,id=npm_token probe derive /run/secrets/npm_token /again -- write /run/secrets/npm_token x\n",
    );
    sb.write("ctx/keep", "kept");
    sb.write("api.key", "the-api-key");
    let args = [
        "build",
        "--progress",
        "plain",
        "--secret",
        &format!("id=api.key,src={}", sb.path("api.key").display()),
        "--secret",
        "id=tok,env=TOK_VALUE",
        "--secret",
        &format!("id=npm_token,src={}", sb.path("npm_token.txt").display()),
        "ctx",
    ]
    .map(String::from);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = kiln(&sb, &argv, &[("TOK_VALUE", "t0k3n-from-env")]).fails(1);
    let err = &run.stderr;
    // id from the target's file name; a directory the image already has
    // keeps its files; env-only secrets have no file; custom targets.
    assert!(err.contains(" ****api.key keep\n"), "{err}");
    assert!(err.contains(" false\n"), "{err}");
    assert!(err.contains(" ****\n"), "the env secret, masked: {err}");
    // The same secret in a second step; the mount is read-only.
    assert!(
        err.contains("probe write /run/secrets/npm_token x:"),
        "{err}"
    );
    assert!(
        !err.contains(TOKEN) && !err.contains("t0k3n-from-env") && !err.contains("the-api-key"),
        "masked: {err}"
    );
}

#[test]
fn missing_secrets_required_or_not() {
    let sb = setup(
        GUESTS[0].1,
        "FROM scratch\nCOPY bin/ /bin/\nRUN --mount=type=secret,id=opt probe exists /run/secrets/opt\n",
    );
    let run = kiln(&sb, &["build", "--progress", "plain", "ctx"], &[]).ok();
    assert!(run.stderr.contains("secret \"opt\" was not provided (no --secret was given; pass --secret id=opt,src=FILE); the step runs without it"), "{}", run.stderr);
    // A typo shows against the ids that were given.
    sb.write("apikey.txt", "0123456789abcdef-api-key");
    let run = kiln(
        &sb,
        &[
            "build",
            "--progress",
            "plain",
            "--secret",
            "id=apikey,src=apikey.txt",
            "--no-cache",
            "ctx",
        ],
        &[],
    )
    .ok();
    assert!(
        run.stderr.contains(
            "secret \"opt\" was not provided (provided: apikey; pass --secret id=opt,src=FILE)"
        ),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(" false\n"), "{}", run.stderr);
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY bin/ /bin/\nRUN --mount=type=secret,id=need,required probe stderr STARTED\n");
    let run = kiln(&sb, &["build", "--progress", "plain", "ctx"], &[]).fails(1);
    assert!(run.stderr.contains("secret \"need\" is required by this step but was not provided (no --secret was given): pass --secret id=need,src=FILE"), "{}", run.stderr);
    // No output line of the step (`#N 0.123 ...`): it never started.
    let step_output = run.stderr.lines().any(|l| {
        l.starts_with('#')
            && l.split(' ')
                .nth(1)
                .is_some_and(|t| t.parse::<f64>().is_ok())
    });
    assert!(!step_output, "the step never started: {}", run.stderr);
}

#[test]
fn bad_secret_sources_are_errors() {
    let sb = setup(GUESTS[0].1, "FROM scratch\n");
    sb.write("big", vec![b'x'; 2048]);
    let big = format!("id=big,src={}", sb.path("big").display());
    for (args, env, expected, code) in [
        (
            vec!["--secret", "id=x,env=NOT_SET_ANYWHERE"],
            vec![],
            "the environment variable NOT_SET_ANYWHERE is not set",
            1,
        ),
        (
            vec!["--secret", "id=x,src=/no/such/file"],
            vec![],
            "secret \"x\": cannot read /no/such/file",
            1,
        ),
        (
            vec!["--secret", &big, "--secret-max-size", "1k"],
            vec![],
            "is 2048 bytes; the limit is 1024",
            1,
        ),
        (
            vec!["--secret", "id=x,colour=red"],
            vec![],
            "unknown key \"colour\"",
            2,
        ),
    ] {
        let mut argv = vec!["build"];
        argv.extend(args.iter().copied());
        argv.push("ctx");
        let run = kiln(&sb, &argv, &env).fails(code);
        assert!(run.stderr.contains(expected), "{argv:?}: {}", run.stderr);
    }
}

#[test]
fn two_secrets_in_one_step_and_a_large_one() {
    let sb = setup(
        GUESTS[1].1,
        "FROM scratch\nCOPY bin/ /bin/\n\
         RUN --mount=type=secret,id=a --mount=type=secret,id=big probe derive /run/secrets/a /a.info -- derive /run/secrets/big /big.info -- ls /run/secrets\n",
    );
    let big: Vec<u8> = (0..5u32 << 20)
        .map(|i| b"0123456789abcdefghijklmnopqrstuvwxyz"[(i % 36) as usize])
        .collect();
    sb.write("a.txt", "secret-a-value");
    sb.write("big.bin", &big);
    let run = kiln(
        &sb,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "two",
            "--secret",
            &format!("id=a,src={}", sb.path("a.txt").display()),
            "--secret",
            &format!("id=big,src={}", sb.path("big.bin").display()),
            "ctx",
        ],
        &[],
    )
    .ok();
    assert!(run.stderr.contains(" a big\n"), "{}", run.stderr);
    let info = sb
        .kiln(&["run", "two", "probe", "cat", "/big.info"])
        .ok()
        .stdout;
    assert!(info.starts_with(&format!("{} bytes", 5 << 20)), "{info}");
    let prefix = &big[..4096];
    assert_eq!(
        files_containing(&sb.store(), &[prefix.to_vec(), b"secret-a-value".to_vec()]),
        Vec::<String>::new()
    );
}

#[test]
fn kiln_run_serves_and_masks_secrets() {
    let sb = setup(GUESTS[0].1, "FROM scratch\nCOPY bin/ /bin/\n");
    sb.build("ctx", &["-t", "img"]);
    let src = format!("id=npm_token,src={}", sb.path("npm_token.txt").display());
    let run = kiln(
        &sb,
        &[
            "run",
            "--secret",
            &src,
            "--mount",
            "type=secret,id=npm_token",
            "img",
            "probe",
            "cat",
            "/run/secrets/npm_token",
            "--",
            "echo",
            "",
            "--",
            "derive",
            "/run/secrets/npm_token",
            "/tmp-out",
        ],
        &[],
    )
    .ok();
    assert_eq!(
        run.stdout, "****\n",
        "a secret is masked in kiln run's output too"
    );
    let run = kiln(
        &sb,
        &[
            "run",
            "--mount",
            "type=secret,id=npm_token,required",
            "img",
            "probe",
            "noop",
        ],
        &[],
    )
    .fails(1);
    assert!(
        run.stderr.contains("secret \"npm_token\" is required"),
        "{}",
        run.stderr
    );
}
