//! The WASI conformance suite (../shared/wasi-testsuite) through `kiln run`,
//! each test's `root` bound read-write at `/`, as a user would run a module
//! on the host: `kiln run --mount type=bind,source=ROOT,target=/,rw scratch
//! /test.wasm ARGS`. (runner/tests/wasi_conformance.rs runs the same suite
//! through the library, with the reason for the one known difference.)

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{Sandbox, workspace};

/// Tests whose expectations assume something kiln deliberately does
/// differently, with the reason.
const KNOWN: &[(&str, &str)] = &[(
    "c/sock_shutdown-invalid_fd",
    "expects fd 3 to be free; kiln always preopens the image's / at fd 3, so it is an open \
     non-socket descriptor (ENOTSOCK, not EBADF), exactly as the wasmtime CLI with one preopen",
)];

fn suite() -> PathBuf {
    workspace().join("../shared/wasi-testsuite")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else if !e.file_name().to_string_lossy().ends_with(".cleanup") {
            fs::copy(e.path(), &target).unwrap();
            let mut perms = fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            fs::set_permissions(&target, perms).unwrap();
        }
    }
    let mut perms = fs::metadata(to).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(to, perms).unwrap();
}

#[test]
fn wasi_testsuite_passes_through_kiln_run() {
    let sb = Sandbox::new();
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut known_seen = Vec::new();
    for lang in ["rust", "c", "assemblyscript"] {
        let dir = suite().join(lang);
        let mut tests: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
            .collect();
        tests.sort();
        for wasm in tests {
            let name = wasm.file_stem().unwrap().to_string_lossy().into_owned();
            let id = format!("{lang}/{name}");
            let spec: serde_json::Value = fs::read(wasm.with_extension("json"))
                .ok()
                .map(|b| serde_json::from_slice(&b).unwrap())
                .unwrap_or_else(|| serde_json::json!({}));
            // The module sits in the bound root under a name no test uses.
            let root = sb.path(&format!("roots/{lang}-{name}"));
            match spec["root"].as_str() {
                Some(r) => copy_dir(&dir.join(r), &root),
                None => fs::create_dir_all(&root).unwrap(),
            }
            fs::copy(&wasm, root.join(".kiln-test.wasm")).unwrap();
            let mount = format!("type=bind,source={},target=/,rw", root.display());
            let mut args = vec!["run".to_string(), "--mount".into(), mount];
            for (k, v) in spec["env"].as_object().into_iter().flatten() {
                args.push("-e".into());
                args.push(format!("{k}={}", v.as_str().unwrap()));
            }
            args.push("scratch".into());
            args.push("/.kiln-test.wasm".into());
            for a in spec["args"].as_array().into_iter().flatten() {
                args.push(a.as_str().unwrap().into());
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = sb.kiln(&argv);
            ran += 1;
            let want_code = spec["exit_code"].as_i64().unwrap_or(0) as i32;
            let want_out = spec["stdout"].as_str().unwrap_or("");
            let want_err = spec["stderr"].as_str().unwrap_or("");
            let ok = run.code == want_code
                && run.stdout.starts_with(want_out)
                && run.stderr.starts_with(want_err);
            match (ok, KNOWN.iter().find(|(k, _)| *k == id)) {
                (true, Some(_)) => failures.push(format!("{id}: passes now; remove it from KNOWN")),
                (true, None) => {}
                (false, Some(_)) => known_seen.push(id),
                (false, None) => failures.push(format!(
                    "{id}: exit {} (want {want_code}); stdout {:?}; stderr {:?}",
                    run.code,
                    run.stdout.chars().take(200).collect::<String>(),
                    run.stderr.chars().take(400).collect::<String>()
                )),
            }
        }
    }
    assert_eq!(ran, 72, "the suite has 72 tests");
    assert!(
        failures.is_empty(),
        "{} of {ran} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(known_seen.len(), KNOWN.len());
}
