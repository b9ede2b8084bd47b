//! `yes`: prints its arguments (default `y`) and a newline, over and over,
//! until writing fails: a reader that goes away (`yes | head -n 3`) ends it
//! quietly with exit 1, any other write error with a message.

use crate::cli::{Io, Result};
use crate::opts;
use crate::tools::Tool;

pub(crate) const TOOL: Tool = Tool {
    name: "yes",
    usage: "[STRING]...",
    about: "Print the STRINGs (default: y) and a newline until output fails.",
    flags: &[],
    run,
};

/// About this many bytes are written at a time.
const CHUNK: usize = 8 << 10;

fn run(args: &[String], io: &mut Io<'_>) -> Result {
    let parsed = opts::parse(TOOL.flags, args)?;
    let mut line = if parsed.operands.is_empty() {
        "y".to_string()
    } else {
        parsed.operands.join(" ")
    };
    line.push('\n');
    let chunk = line.repeat(CHUNK.div_ceil(line.len()));
    loop {
        io.out(chunk.as_bytes())?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    use crate::multicall::run_tool;
    use crate::tools::find;

    /// Takes `room` bytes, then fails every write with `kind`.
    struct Full {
        taken: Vec<u8>,
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.taken.len());
            if n == 0 {
                return Err(self.kind.into());
            }
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn yes(args: &[&str], kind: io::ErrorKind) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut out = Full {
            taken: Vec::new(),
            room: 100_000,
            kind,
        };
        let (mut input, mut err) = (&b""[..], Vec::new());
        let code = run_tool(find("yes").unwrap(), &args, &mut input, &mut out, &mut err);
        let taken = String::from_utf8(out.taken).unwrap();
        (code, taken, String::from_utf8(err).unwrap())
    }

    #[test]
    fn repeats_until_the_reader_goes_away_then_exits_1_quietly() {
        let (code, out, err) = yes(&[], io::ErrorKind::BrokenPipe);
        assert_eq!((code, err.as_str()), (1, ""));
        assert_eq!(out.len(), 100_000);
        assert!(out.starts_with("y\ny\ny\n"), "{out:.10}");
    }

    #[test]
    fn joins_its_arguments_and_reports_other_write_errors() {
        let (code, out, err) = yes(&["a", "b c"], io::ErrorKind::StorageFull);
        assert_eq!(code, 1);
        assert!(out.starts_with("a b c\na b c\n"), "{out:.20}");
        assert!(err.starts_with("yes: write error: "), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let (_, out, _) = yes(&["--", "-"], io::ErrorKind::BrokenPipe);
        assert!(out.starts_with("-\n-\n"), "{out:.10}");
        let (_, out, _) = yes(&[""], io::ErrorKind::BrokenPipe);
        assert!(out.starts_with("\n\n\n"), "{out:.10}");
    }

    #[test]
    fn flags_are_usage_errors() {
        let (code, out, err) = yes(&["-x"], io::ErrorKind::BrokenPipe);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(
            err.starts_with("yes: unknown option -x; supported: none"),
            "{err}"
        );
    }
}
