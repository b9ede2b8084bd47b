//! Limits that hold before a step's program runs: its size, the time its
//! compilation takes, and Ctrl-C while it compiles.

use std::fs;
use std::time::Duration;

use crate::util::{Sandbox, tool};

/// A step whose program is `wasm`, at ctx/bin/prog.
fn context(sb: &Sandbox, wasm: &[u8]) {
    sb.write("ctx/bin/prog", wasm);
    sb.write("ctx/Kilnfile", "FROM scratch\nCOPY bin/ /bin/\nRUN prog\n");
}

/// Files in the store's compile cache.
fn compiled(sb: &Sandbox) -> Vec<String> {
    match fs::read_dir(sb.store().join("kiln/compiled")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_compile_over_its_time_limit_fails_the_step_and_is_not_remembered() {
    let sb = Sandbox::new();
    context(&sb, &slow_module());
    let err = sb
        .kiln(&["build", "--step-compile-timeout", "1", "ctx"])
        .fails(1)
        .stderr;
    assert!(
        err.contains(
            "compiling the program took longer than its limit of 1s \
             (raise it with --step-compile-timeout)"
        ),
        "{err}"
    );
    // Neither compiled code nor a remembered failure: with more time the
    // next build compiles it.
    assert!(compiled(&sb).is_empty(), "{:?}", compiled(&sb));
    // 0 is not a limit but a typo: a usage error naming the range.
    let zero = sb
        .kiln(&["build", "--step-compile-timeout", "0", "ctx"])
        .fails(2)
        .stderr;
    assert!(zero.contains("from 1 to"), "{zero}");
}

#[test]
fn a_program_that_fails_to_compile_is_remembered() {
    let sb = Sandbox::new();
    context(
        &sb,
        &wat::parse_str("(module (func (result i32)))").unwrap(),
    );
    let first = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        first.contains("cannot load /bin/prog: compiling: "),
        "{first}"
    );
    let records: Vec<String> = compiled(&sb)
        .into_iter()
        .filter(|n| n.ends_with(".failed"))
        .collect();
    assert_eq!(records.len(), 1, "{:?}", compiled(&sb));
    let again = sb.kiln(&["build", "ctx"]).fails(1).stderr;
    assert!(
        again.contains("(remembered from an earlier attempt; delete ")
            && again.contains(&records[0]),
        "{again}"
    );
}

/// A module that takes the compiler tens of seconds: a few huge functions
/// keeping many values live.
fn slow_module() -> Vec<u8> {
    let mut wat = String::from("(module (memory 1)\n");
    for f in 0..10 {
        wat.push_str(&format!(
            "(func $f{f} (param i32) (result i32) (local i32 i32 i32 i32)\n"
        ));
        for i in 0..40_000 {
            let l = i % 5;
            wat.push_str(&format!(
                "(local.set {l} (i32.add (i32.mul (local.get {l}) (i32.const {i})) (i32.load (local.get 0))))\n"
            ));
        }
        wat.push_str("(local.get 1))\n");
    }
    wat.push_str(r#"(func (export "_start")))"#);
    wat::parse_str(&wat).unwrap()
}

#[cfg(unix)]
#[test]
fn ctrl_c_while_compiling_ends_the_build_before_the_compiler_does() {
    let sb = Sandbox::new();
    context(&sb, &slow_module());
    let mut child = std::process::Command::new(crate::util::kiln_bin())
        .args(["build", "--progress", "plain", "-t", "slow", "ctx"])
        .env("KILN_STORE", sb.store())
        .current_dir(sb.dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Let the build reach the compiler (it needs tens of seconds there).
    std::thread::sleep(Duration::from_millis(1500));
    tool("kill", &["-INT", &child.id().to_string()]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    // Had kiln waited for the compiler, its code would be in the cache
    // (and the step then cancelled at its first epoch, also 130).
    assert!(compiled(&sb).is_empty(), "{:?}", compiled(&sb));
    assert!(!sb.kiln(&["images"]).ok().stdout.contains("slow"));
}

/// A module built with atomics (what `+atomics` toolchains emit for one
/// thread), on an unshared and on a shared memory, runs as a step and its
/// compiled code is cached.
#[test]
fn modules_with_atomics_and_shared_memories_run_as_steps() {
    for memory in ["(memory 1)", "(memory 1 16 shared)"] {
        let sb = Sandbox::new();
        let wat = format!(
            r#"(module {memory}
                (func (export "_start")
                  (drop (i32.atomic.rmw.add (i32.const 0) (i32.const 1)))
                  (if (i32.ne (i32.atomic.load (i32.const 0)) (i32.const 1))
                    (then unreachable))))"#
        );
        context(&sb, &wat::parse_str(&wat).unwrap());
        sb.kiln(&["build", "ctx"]).ok();
        assert!(!compiled(&sb).is_empty(), "{memory}: nothing cached");
    }
}
