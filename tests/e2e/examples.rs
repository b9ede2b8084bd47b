//! Every example builds, and the README's commands work on it.

use crate::util::{Sandbox, workspace};

#[test]
fn every_example_builds() {
    let sb = Sandbox::new();
    let mut built = 0;
    for entry in std::fs::read_dir(workspace().join("examples")).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("Kilnfile").is_file() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            sb.build(dir.to_str().unwrap(), &["-t", &name]);
            built += 1;
        }
    }
    assert!(built >= 1);
}

#[test]
fn hello_has_the_history_the_readme_promises() {
    let sb = Sandbox::new();
    let ctx = workspace().join("examples/hello");
    sb.kiln(&["build", "-t", "hello", ctx.to_str().unwrap()])
        .ok();
    let out = sb.kiln(&["history", "hello"]).ok().stdout;
    for line in [
        "COPY site/ ./ # kiln",
        "WORKDIR /srv/site",
        "ENV SITE_ROOT=/srv/site",
        "USER 1000:1000",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
}
