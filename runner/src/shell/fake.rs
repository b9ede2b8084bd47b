//! An in-memory [`Host`] for tests: files and directories in maps, and
//! commands written as Rust closures.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use super::host::{Exec, Host, PathTest, Streams};

/// A fake command: argv, stdin bytes, stdout, stderr -> status.
pub(super) type FakeCmd = Box<dyn FnMut(&[String], &[u8], &mut dyn Write, &mut dyn Write) -> i32>;

/// An external command that ran: argv, env, cwd.
pub(super) type Ran = (Vec<String>, Vec<(String, String)>, String);

#[derive(Default)]
pub(super) struct FakeHost {
    pub files: BTreeMap<String, Vec<u8>>,
    pub dirs: BTreeSet<String>,
    pub cmds: BTreeMap<String, FakeCmd>,
    /// Every external command run.
    pub ran: Vec<Ran>,
    pub traces: Vec<String>,
}

impl FakeHost {
    pub(super) fn new() -> Self {
        let mut h = FakeHost::default();
        h.dirs.insert("/".into());
        h
    }

    pub(super) fn file(&mut self, path: &str, data: &str) {
        self.mkdirs(parent(path));
        self.files.insert(path.into(), data.as_bytes().to_vec());
    }

    pub(super) fn mkdirs(&mut self, path: &str) {
        let mut p = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            p.push('/');
            p.push_str(c);
            self.dirs.insert(p.clone());
        }
    }

    pub(super) fn cmd(
        &mut self,
        name: &str,
        f: impl FnMut(&[String], &[u8], &mut dyn Write, &mut dyn Write) -> i32 + 'static,
    ) {
        self.cmds.insert(name.into(), Box::new(f));
    }

    pub(super) fn text(&self, path: &str) -> String {
        String::from_utf8_lossy(self.files.get(path).map_or(&[][..], |v| v)).into_owned()
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("/", |(p, _)| p)
}

impl Host for FakeHost {
    fn run(&mut self, cmd: &Exec<'_>, s: Streams<'_>) -> i32 {
        self.ran
            .push((cmd.argv.to_vec(), cmd.env.to_vec(), cmd.cwd.to_string()));
        let name = cmd.argv[0]
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut input = Vec::new();
        if let super::Stdin::Bytes(r) = s.stdin {
            let _ = r.read_to_end(&mut input);
        }
        match self.cmds.get_mut(&name) {
            Some(f) => f(cmd.argv, &input, s.stdout, s.stderr),
            None => {
                let path = cmd
                    .env
                    .iter()
                    .find(|(k, _)| k == "PATH")
                    .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
                let _ = writeln!(s.stderr, "{name}: not found in PATH {path}");
                127
            }
        }
    }

    fn read_file(&mut self, path: &str) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))
    }

    fn open_write(&mut self, path: &str, append: bool) -> io::Result<()> {
        if self.dirs.contains(path) {
            return Err(io::Error::other("is a directory"));
        }
        if !self.dirs.contains(parent(path)) && !parent(path).is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "nonexistent directory",
            ));
        }
        let f = self.files.entry(path.into()).or_default();
        if !append {
            f.clear();
        }
        Ok(())
    }

    fn append(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.files
            .entry(path.into())
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }

    fn test(&mut self, path: &str, what: PathTest) -> bool {
        let file = self.files.get(path);
        let dir = self.dirs.contains(path);
        match what {
            PathTest::Exists => file.is_some() || dir,
            PathTest::File => file.is_some(),
            PathTest::Dir => dir,
            PathTest::Executable => dir || path.ends_with(".wasm"),
            PathTest::NonEmpty => file.is_some_and(|f| !f.is_empty()) || dir,
            PathTest::Symlink => false,
        }
    }

    fn list_dir(&mut self, path: &str) -> io::Result<Vec<String>> {
        if !self.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        let names = self
            .files
            .keys()
            .chain(self.dirs.iter())
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(String::from)
            .collect::<BTreeSet<_>>();
        Ok(names.into_iter().collect())
    }

    fn trace(&mut self, line: &str, stderr: &mut dyn Write) {
        self.traces.push(line.to_string());
        let _ = writeln!(stderr, "{line}");
    }
}

/// Runs `script` in `/w` over `host`: (status, stdout, stderr).
pub(super) fn run_in(host: &mut FakeHost, script: &str, args: &[&str]) -> (i32, String, String) {
    host.mkdirs("/w");
    let mut out = Vec::new();
    let mut err = Vec::new();
    let opts = super::Options {
        env: vec![
            ("HOME".into(), "/home".into()),
            ("PATH".into(), "/bin".into()),
        ],
        cwd: "/w".into(),
        name: "sh".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        set: Vec::new(),
    };
    let status = super::run(script, host, &opts, &mut out, &mut err).unwrap_or_else(|e| {
        err.extend_from_slice(e.to_string().as_bytes());
        -1
    });
    (
        status,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}
