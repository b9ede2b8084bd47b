//! `sleep`: waits for the sum of its durations, like GNU sleep: seconds,
//! maybe fractional (`0.5`), or with a suffix `s`, `m`, `h` or `d`.

use std::time::Duration;

use crate::cli::{Io, Result, quote, usage};
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "sleep",
    usage: "NUMBER[smhd]...",
    about: "Wait for the sum of the durations (seconds unless s, m, h or d follows).",
    flags: &[],
    run,
};

fn run(args: &[String], _io: &mut Io<'_>) -> Result {
    let args = match args.first() {
        Some(first) if first == "--" => &args[1..],
        _ => args,
    };
    if args.is_empty() {
        return Err(usage("missing operand"));
    }
    let mut total = Duration::ZERO;
    for arg in args {
        total = total.saturating_add(duration(arg)?);
    }
    std::thread::sleep(total);
    Ok(())
}

/// `1.5`, `2m`, `1d`: a duration.
fn duration(arg: &str) -> Result<Duration> {
    let invalid = || usage(format!("invalid time interval {}", quote(arg)));
    let (number, unit) = match arg.char_indices().last() {
        Some((i, 's')) => (&arg[..i], 1.0),
        Some((i, 'm')) => (&arg[..i], 60.0),
        Some((i, 'h')) => (&arg[..i], 3600.0),
        Some((i, 'd')) => (&arg[..i], 86400.0),
        _ => (arg, 1.0),
    };
    // Digits and one dot only: no signs, exponents, `inf` or `nan`.
    let plain = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1
        && number != ".";
    if !plain {
        return Err(invalid());
    }
    let seconds: f64 = number.parse().map_err(|_| invalid())?;
    Duration::try_from_secs_f64(seconds * unit).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::duration;
    use crate::tools::run_for_test;

    #[test]
    fn durations_with_units_and_fractions() {
        assert_eq!(duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(duration(".5d").unwrap(), Duration::from_secs(43200));
        assert_eq!(duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn sleeps_for_the_sum() {
        let start = Instant::now();
        assert_eq!(
            run_for_test("sleep", &["0.02", "0.03s"], b""),
            (0, String::new(), String::new())
        );
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn bad_durations_are_usage_errors() {
        for bad in ["x", "-1", "1e3", "inf", "nan", "1.2.3", ".", "5y", "", "s"] {
            let (code, _, err) = run_for_test("sleep", &[bad], b"");
            assert_eq!(code, 2, "{bad}");
            assert!(
                err.starts_with(&format!("sleep: invalid time interval '{bad}'")),
                "{err}"
            );
        }
        let (code, _, err) = run_for_test("sleep", &[], b"");
        assert_eq!(code, 2);
        assert!(err.starts_with("sleep: missing operand"), "{err}");
    }
}
