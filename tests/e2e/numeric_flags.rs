//! Every numeric flag of every command, at its extremes: each value either
//! works (saturating where it is larger than kiln can use) or is a usage
//! error (exit 2) that names the expected range. Never a panic.

use std::fs;

use crate::run::GUESTS;
use crate::util::Sandbox;

const U64_MAX: &str = "18446744073709551615";

/// The values every flag is tried with.
const VALUES: [&str; 8] = [
    "0",
    U64_MAX,
    "18446744073709551616",
    "99999999999999999999999999",
    "-1",
    "abc",
    "1.5",
    "",
];

/// (command, flag, whether 0 is refused).
const FLAGS: [(&str, &str, bool); 16] = [
    ("run", "--step-memory", true),
    ("run", "--step-max-module", true),
    ("run", "--step-compile-timeout", true),
    ("run", "--step-timeout", true),
    ("run", "--step-max-write", false),
    ("run", "--step-max-files", false),
    ("run", "--secret-max-size", false),
    ("build", "--step-memory", true),
    ("build", "--step-timeout", true),
    ("build", "--step-max-write", false),
    ("build", "--step-max-files", false),
    ("build", "--secret-max-size", false),
    ("build", "--jobs", true),
    ("build", "--step-max-module", true),
    ("build", "--step-compile-timeout", true),
    ("prune", "--keep-storage", false),
];

#[test]
fn numeric_flags_saturate_or_are_usage_errors_naming_the_range() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/tool.wasm")).unwrap();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY tool.wasm /tool.wasm\nRUN [\"/tool.wasm\", \"echo\", \"hi\"]\n",
    );
    let mount = format!("type=bind,source={},target=/work", sb.path("ctx").display());
    for (command, flag, zero_refused) in FLAGS {
        for value in VALUES {
            let flag_value = format!("{flag}={value}");
            let mut args = vec![command, flag_value.as_str()];
            match command {
                "run" => args.extend(["--mount", &mount, "scratch", "/work/tool.wasm", "echo"]),
                // --no-cache: the step runs every time, so its limits apply.
                "build" => args.extend(["--no-cache", "-q", "ctx"]),
                _ => {}
            }
            let run = sb.kiln(&args);
            let what = format!("kiln {}: {}\n{}", args.join(" "), run.code, run.stderr);
            let refused = match value {
                "0" => zero_refused,
                U64_MAX => false,
                "-1" | "abc" | "1.5" | "" => true,
                // Past u64: sizes are refused, counts saturate.
                _ => run.code == 2,
            };
            if refused {
                assert_eq!(run.code, 2, "{what}");
                if !value.is_empty() {
                    assert!(run.stderr.contains(flag), "{what}");
                    assert!(
                        run.stderr.contains(&format!("to {U64_MAX}"))
                            || run.stderr.contains("to 65535"),
                        "{what}"
                    );
                }
            } else {
                assert_eq!(run.code, 0, "{what}");
            }
        }
    }
}

#[test]
fn no_step_time_limit_is_spelled_none() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.path("ctx")).unwrap();
    fs::copy(GUESTS[0].1, sb.path("ctx/tool.wasm")).unwrap();
    sb.write(
        "ctx/Kilnfile",
        "FROM scratch\nCOPY tool.wasm /tool.wasm\nRUN [\"/tool.wasm\", \"echo\", \"no limit\"]\n",
    );
    let run = sb.kiln(&[
        "build",
        "--progress",
        "plain",
        "--step-timeout",
        "none",
        "ctx",
    ]);
    let run = run.ok();
    assert!(run.stderr.contains("no limit"), "{}", run.stderr);
    let bad = sb
        .kiln(&["build", "--step-timeout", "never", "ctx"])
        .fails(2);
    assert!(
        bad.stderr.contains("whole seconds from 1 to") && bad.stderr.contains("or none"),
        "{}",
        bad.stderr
    );
}
