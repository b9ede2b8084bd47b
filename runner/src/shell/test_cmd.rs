//! `test` and `[`: POSIX's rules by argument count, then `-a`/`-o`/`!`
//! and parentheses for longer expressions.

use super::host::PathTest;
use super::interp::Shell;

impl Shell<'_, '_> {
    /// `test args...`: 0 true, 1 false, 2 a usage error.
    pub(super) fn test_builtin(&mut self, args: &[String]) -> i32 {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        match self.test_expr(&a) {
            Ok(true) => 0,
            Ok(false) => 1,
            Err(msg) => {
                self.err(&format!("test: {msg}"));
                2
            }
        }
    }

    fn test_expr(&mut self, a: &[&str]) -> Result<bool, String> {
        match a.len() {
            0 => Ok(false),
            1 => Ok(!a[0].is_empty()),
            2 if a[0] == "!" => Ok(a[1].is_empty()),
            2 => self.unary(a[0], a[1]),
            3 if is_binary(a[1]) => self.binary(a[0], a[1], a[2]),
            3 if a[0] == "!" => self.test_expr(&a[1..]).map(|b| !b),
            3 if a[0] == "(" && a[2] == ")" => Ok(!a[1].is_empty()),
            4 if a[0] == "!" => self.test_expr(&a[1..]).map(|b| !b),
            _ => {
                let mut pos = 0;
                let v = self.or_expr(a, &mut pos)?;
                if pos != a.len() {
                    return Err(format!("{}: unexpected operator", a[pos]));
                }
                Ok(v)
            }
        }
    }

    fn or_expr(&mut self, a: &[&str], pos: &mut usize) -> Result<bool, String> {
        let mut v = self.and_expr(a, pos)?;
        while a.get(*pos) == Some(&"-o") {
            *pos += 1;
            let r = self.and_expr(a, pos)?;
            v = v || r;
        }
        Ok(v)
    }

    fn and_expr(&mut self, a: &[&str], pos: &mut usize) -> Result<bool, String> {
        let mut v = self.primary(a, pos)?;
        while a.get(*pos) == Some(&"-a") {
            *pos += 1;
            let r = self.primary(a, pos)?;
            v = v && r;
        }
        Ok(v)
    }

    fn primary(&mut self, a: &[&str], pos: &mut usize) -> Result<bool, String> {
        let Some(&t) = a.get(*pos) else {
            return Err("argument expected".into());
        };
        if t == "!" {
            *pos += 1;
            return self.primary(a, pos).map(|b| !b);
        }
        if t == "(" {
            *pos += 1;
            let v = self.or_expr(a, pos)?;
            if a.get(*pos) != Some(&")") {
                return Err("closing paren expected".into());
            }
            *pos += 1;
            return Ok(v);
        }
        if let (Some(op), Some(r)) = (a.get(*pos + 1), a.get(*pos + 2))
            && is_binary(op)
        {
            *pos += 3;
            return self.binary(t, op, r);
        }
        if t.starts_with('-')
            && t.len() == 2
            && let Some(x) = a.get(*pos + 1)
        {
            *pos += 2;
            return self.unary(t, x);
        }
        *pos += 1;
        Ok(!t.is_empty())
    }

    fn unary(&mut self, op: &str, x: &str) -> Result<bool, String> {
        let what = match op {
            "-n" => return Ok(!x.is_empty()),
            "-z" => return Ok(x.is_empty()),
            "-e" => PathTest::Exists,
            "-f" => PathTest::File,
            "-d" => PathTest::Dir,
            "-x" => PathTest::Executable,
            "-s" => PathTest::NonEmpty,
            "-L" | "-h" => PathTest::Symlink,
            // Steps run as one user who may read and write what exists.
            "-r" | "-w" => PathTest::Exists,
            "-t" => return Ok(false),
            _ => return Err(format!("{op}: unexpected operator")),
        };
        let path = self.abs(x);
        Ok(!x.is_empty() && self.host.test(&path, what))
    }

    fn binary(&mut self, l: &str, op: &str, r: &str) -> Result<bool, String> {
        let num = |s: &str| {
            s.trim()
                .parse::<i64>()
                .map_err(|_| format!("{s}: bad number"))
        };
        Ok(match op {
            "=" | "==" => l == r,
            "!=" => l != r,
            "<" => l < r,
            ">" => l > r,
            "-eq" => num(l)? == num(r)?,
            "-ne" => num(l)? != num(r)?,
            "-lt" => num(l)? < num(r)?,
            "-le" => num(l)? <= num(r)?,
            "-gt" => num(l)? > num(r)?,
            "-ge" => num(l)? >= num(r)?,
            _ => return Err(format!("{op}: unknown operator")),
        })
    }
}

fn is_binary(op: &str) -> bool {
    matches!(
        op,
        "=" | "==" | "!=" | "<" | ">" | "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge"
    )
}
