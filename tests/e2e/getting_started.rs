//! docs/getting-started.md is generated here: the walkthrough's commands
//! run against a copy of the examples, and their real output goes into the
//! page. The test fails when the page and the output disagree (timings and
//! ages aside); `KILN_BLESS=1 cargo test -p kiln-e2e getting_started`
//! regenerates it.

use std::fs;

use crate::util::{Sandbox, workspace};

/// A command of the walkthrough, as the page shows it, and how to run it.
struct Cmd {
    shown: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

/// Replaces what differs between runs and machines so the page can be
/// compared with a fresh run: durations and step output times, ages,
/// digests and sizes (the wasm programs' bytes depend on the toolchain and
/// where its sources live), and the column widths that follow from them.
fn normalize(text: &str) -> String {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let decimal = |s: &str| {
        s.split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
    };
    let size = |s: &str| {
        let number = s.trim_end_matches(['B', 'k', 'M', 'G']);
        number.len() < s.len() && s.ends_with('B') && (digits(number) || decimal(number))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        for i in 0..words.len() {
            let w = words[i].clone();
            if w.strip_suffix('s').is_some_and(decimal) {
                words[i] = "T.Ts".into();
            } else if i == 1 && words[0].starts_with('#') && decimal(&w) {
                words[i] = "T.TTT".into();
            } else if (w == "years" || w == "months") && i > 0 {
                words[i - 1] = "N".into();
            } else if size(&w) {
                words[i] = "SIZE".into();
            } else {
                words[i] = hide_hex(&w);
            }
        }
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

/// `w` with every run of 12 or more hex digits (an id, a digest) as `HEX`.
fn hide_hex(w: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in w.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_hexdigit() {
            run.push(c);
            continue;
        }
        out.push_str(if run.len() >= 12 { "HEX" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

fn render(sb: &Sandbox, cmds: &[Cmd]) -> String {
    let kilnfile = fs::read_to_string(workspace().join("examples/npm-token/Kilnfile")).unwrap();
    let mut page = include_str!("getting_started_intro.md")
        .replace("{{examples/npm-token/Kilnfile}}", &kilnfile);
    for cmd in cmds {
        let mut args: Vec<&str> = cmd.args.to_vec();
        args.retain(|a| !a.is_empty());
        let run = sb.kiln_env(&args, cmd.env);
        page.push_str(&format!("\n```console\n$ {}\n", cmd.shown));
        let mut shown_output = run.stderr.clone() + &run.stdout;
        if !shown_output.ends_with('\n') && !shown_output.is_empty() {
            shown_output.push('\n');
        }
        page.push_str(&shown_output.replace(&sb.dir.path().display().to_string(), "~"));
        if run.code != 0 {
            page.push_str(&format!("$ echo $?\n{}\n", run.code));
        }
        page.push_str("```\n");
        if let Some(after) = AFTER.iter().find(|(s, _)| *s == cmd.shown) {
            page.push_str(after.1);
        }
    }
    page.push_str(include_str!("getting_started_outro.md"));
    page
}

/// Prose after a command's output.
const AFTER: &[(&str, &str)] = &[
    (
        "kiln build --progress plain --secret id=npm_token,src=examples/npm-token/npm_token.txt -t npm-app examples/npm-token",
        "\nThe step authenticated with the token (a wrong one is refused, see below),\nchecked each package's sha256 and unpacked them. Build it again with the\ntoken in an environment variable instead of a file:\n",
    ),
    (
        "NPM_TOKEN=$(cat examples/npm-token/npm_token.txt) kiln build --progress plain --secret id=npm_token,env=NPM_TOKEN -t npm-app examples/npm-token",
        "\nThe same token, so every step came from the step cache and the image id is\nthe same. (The cache knows a secret only by an HMAC of its value under a key\nthat never leaves this store; a different token reruns the step that mounts\nit.) The history names the secret by its id, never its value:\n",
    ),
    (
        "kiln history npm-app",
        "\nThe image has what the step installed, and no trace of the token:\n",
    ),
    (
        "kiln run --rm npm-app cat /run/secrets/npm_token",
        "\nA wrong token is refused by the registry, and the step's error says why:\n\n```sh\necho npm_not_the_right_token_0000 > wrong_token.txt\n```\n",
    ),
];

#[test]
fn the_walkthrough_matches_its_page() {
    let sb = Sandbox::new();
    sb.examples();
    sb.write("wrong_token.txt", "npm_not_the_right_token_0000\n");
    let token = fs::read_to_string(sb.path("examples/npm-token/npm_token.txt")).unwrap();
    let token: &'static str = Box::leak(token.into_boxed_str());
    let env: &'static [(&str, &str)] = Box::leak(vec![("NPM_TOKEN", token)].into_boxed_slice());
    let cmds = [
        Cmd {
            shown: "kiln build --progress plain --secret id=npm_token,src=examples/npm-token/npm_token.txt -t npm-app examples/npm-token",
            args: &[
                "build",
                "--progress",
                "plain",
                "--secret",
                "id=npm_token,src=examples/npm-token/npm_token.txt",
                "-t",
                "npm-app",
                "examples/npm-token",
            ],
            env: &[],
        },
        Cmd {
            shown: "NPM_TOKEN=$(cat examples/npm-token/npm_token.txt) kiln build --progress plain --secret id=npm_token,env=NPM_TOKEN -t npm-app examples/npm-token",
            args: &[
                "build",
                "--progress",
                "plain",
                "--secret",
                "id=npm_token,env=NPM_TOKEN",
                "-t",
                "npm-app",
                "examples/npm-token",
            ],
            env,
        },
        Cmd {
            shown: "kiln history npm-app",
            args: &["history", "npm-app"],
            env: &[],
        },
        Cmd {
            shown: "kiln run --rm npm-app",
            args: &["run", "--rm", "npm-app"],
            env: &[],
        },
        Cmd {
            shown: "kiln run --rm npm-app ls -R /app/node_modules",
            args: &["run", "--rm", "npm-app", "ls", "-R", "/app/node_modules"],
            env: &[],
        },
        Cmd {
            shown: "kiln run --rm npm-app cat /run/secrets/npm_token",
            args: &["run", "--rm", "npm-app", "cat", "/run/secrets/npm_token"],
            env: &[],
        },
        Cmd {
            shown: "kiln build --progress plain --secret id=npm_token,src=wrong_token.txt examples/npm-token",
            args: &[
                "build",
                "--progress",
                "plain",
                "--secret",
                "id=npm_token,src=wrong_token.txt",
                "examples/npm-token",
            ],
            env: &[],
        },
        Cmd {
            shown: "kiln images",
            args: &["images"],
            env: &[],
        },
    ];
    let page = render(&sb, &cmds);
    // The page's install section repeats the README's first command.
    let readme = fs::read_to_string(workspace().join("README.md")).unwrap();
    let first = page
        .lines()
        .find(|l| l.starts_with("examples/build.sh && "))
        .expect("the README's first command in the page");
    assert!(
        readme.contains(first),
        "README.md and getting-started disagree on {first}"
    );
    assert!(
        !page.contains(token.trim()),
        "the token must never show in the page"
    );
    let path = workspace().join("docs/getting-started.md");
    if std::env::var_os("KILN_BLESS").is_some() {
        fs::write(&path, &page).unwrap();
    }
    let current = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        normalize(&current) == normalize(&page),
        "docs/getting-started.md is out of date; regenerate it with KILN_BLESS=1 cargo test -p kiln-e2e getting_started"
    );
}
