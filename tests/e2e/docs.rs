//! The docs match the code: docs/cli.md is generated from the binary's
//! help, and this test fails when they drift. Regenerate with
//! `KILN_BLESS=1 cargo test -p kiln-e2e docs`.

use std::fs;
use std::process::Command;

use crate::util::{kiln_bin, workspace};

const COMMANDS: [&str; 10] = [
    "build", "images", "history", "inspect", "export", "load", "save", "rmi", "prune", "check",
];

fn help(args: &[&str]) -> String {
    let out = Command::new(kiln_bin())
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .env_remove("KILN_STORE")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

fn render() -> String {
    let mut md = String::from(
        "# kiln command-line reference\n\n\
         Generated from `kiln --help` by `KILN_BLESS=1 cargo test -p kiln-e2e docs`;\n\
         the test suite fails when this page and the code disagree.\n\n\
         Exit codes, one contract for every command (tested by `cli_contract`):\n\n\
         | code | meaning |\n\
         |---|---|\n\
         | `0` | success |\n\
         | `1` | the command failed: a build or step error, a missing image, a registry refusal |\n\
         | `2` | the invocation was wrong: an unknown flag, a malformed value or spec, a missing Kilnfile or context, an empty `dest=` |\n\
         | `130`, `143`, `129` | interrupted by SIGINT (Ctrl-C), SIGTERM or SIGHUP |\n\
         | the program's | `kiln run`: the program's own exit code; `127` when it is not found |\n\n\
         Standard output carries only data: the image id with `-q`, pushed\n\
         references, or the archive with `-o -`/`dest=-` (then the id goes to\n\
         stderr, so a pipe into `tar` sees nothing after the archive).\n\
         `--iidfile FILE` and `--metadata-file FILE` record what was built, as\n\
         docker and buildx do. Files kiln writes for you (archives, layouts) get\n\
         your umask.\n\n\
         Environment: `KILN_STORE` (the store directory, like `--store`),\n\
         `SOURCE_DATE_EPOCH` (the timestamp written into images; `--build-arg\n\
         SOURCE_DATE_EPOCH=...` overrides it).\n\n\
         Docker's habits: boolean flags of `kiln build` take docker's spellings\n\
         (`--no-cache=true`, `--pull=false`); `--load` and `--output type=docker`\n\
         without `dest=` are refused with the kiln way (`kiln save IMAGE | docker load`:\n\
         kiln has no daemon). `kiln save` writes docker's `manifest.json` beside an OCI\n\
         layout by default, as docker 25 and later do (`--format oci` leaves it out);\n\
         `kiln load` reads that, older `docker save` archives and OCI archives\n\
         (gzip or zstd compressed too), checks every blob and layer against its digest\n\
         before naming anything, and tags images with the names the archive carries\n\
         (`Loaded image: NAME:TAG`, or `Loaded image ID: sha256:...` for none).\n\
         `kiln images` lists the newest first, sizes in SI units like docker, and\n\
         `N/A` for images made at the epoch (built without `SOURCE_DATE_EPOCH`).\n\n## kiln\n\n```text\n",
    );
    md.push_str(&help(&[]));
    md.push_str("```\n");
    for cmd in COMMANDS {
        md.push_str(&format!("\n## kiln {cmd}\n\n```text\n"));
        md.push_str(&help(&[cmd]));
        md.push_str("```\n");
    }
    md
}

#[test]
fn cli_reference_matches_the_code() {
    let path = workspace().join("docs/cli.md");
    let expected = render();
    if std::env::var_os("KILN_BLESS").is_some() {
        fs::write(&path, &expected).unwrap();
    }
    let actual = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/cli.md is out of date; regenerate it with KILN_BLESS=1 cargo test -p kiln-e2e docs"
    );
}

/// Every relative link in the README, docs/ and the examples' READMEs
/// points at a file or directory of the checkout.
#[test]
fn relative_links_resolve() {
    let root = workspace();
    let mut pages = vec![root.join("README.md")];
    for dir in ["docs", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            } else if path.join("README.md").is_file() {
                pages.push(path.join("README.md"));
            }
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            let path = target.split('#').next().unwrap_or("");
            if path.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !page.parent().unwrap().join(path).exists() {
                broken.push(format!(
                    "{}: {target}",
                    page.strip_prefix(&root).unwrap().display()
                ));
            }
        }
    }
    assert!(pages.len() > 8, "{pages:?}");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every install instruction builds the tested dependency versions
/// (`--locked`), and the files the walkthrough leaves in the checkout are
/// ignored by git.
#[test]
fn install_instructions_are_locked_and_walkthrough_files_ignored() {
    let root = workspace();
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        pages.push(entry.unwrap().path());
    }
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(page).unwrap();
        for line in text.lines().filter(|l| l.contains("cargo install ")) {
            assert!(line.contains("--locked"), "{}: {line}", page.display());
        }
    }
    let ignored = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignored.lines().any(|l| l == "/wrong_token.txt"),
        "{ignored}"
    );
}
