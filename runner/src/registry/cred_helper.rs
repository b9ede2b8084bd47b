//! The `docker-credential-*` helper protocol (docker-credential-helpers).
//!
//! A helper is a program named `docker-credential-<name>` on `PATH`, run
//! with one argument, the action:
//!
//! - `get`: the server URL on stdin; `{"ServerURL","Username","Secret"}` on
//!   stdout. Exiting non-zero with `credentials not found in native
//!   keychain` on stdout means there are none.
//! - `store`: `{"ServerURL","Username","Secret"}` on stdin.
//! - `erase`: the server URL on stdin.
//!
//! Secrets travel only on stdin and stdout, never in arguments or the
//! environment. The buffers that hold them are zeroed when done; error
//! messages carry the helper's stderr (or, for a failure, its stdout, which
//! is then a message) but never what was sent to it, and any copy of the
//! secret a helper echoes back is redacted.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use secrecy::{ExposeSecret, SecretString};
use zeroize::{Zeroize, Zeroizing};

use super::credentials::{Credential, CredentialError};

/// What helpers print when they have no credentials for a server.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// Longest helper message kept in an error.
const MAX_MESSAGE: usize = 1000;

/// The program prefix of every helper.
pub(crate) const PREFIX: &str = "docker-credential-";

/// One credential helper, found on the search path.
#[derive(Debug)]
pub(crate) struct Helper {
    /// `docker-credential-<name>`.
    program: String,
    /// Where it was found.
    path: PathBuf,
}

impl Helper {
    /// Finds `docker-credential-<name>` in `search` (the directories of
    /// `PATH`). `origin` says where the helper was configured, for the
    /// error when it is missing.
    pub(crate) fn find(
        name: &str,
        search: &[PathBuf],
        origin: &str,
    ) -> Result<Helper, CredentialError> {
        let program = format!("{PREFIX}{name}");
        if name.is_empty()
            || name.contains(['/', '\\', ':'])
            || name.chars().any(char::is_control)
            || name == "."
            || name == ".."
        {
            return Err(CredentialError::HelperName {
                name: name.to_owned(),
                origin: origin.to_owned(),
            });
        }
        for dir in search {
            for candidate in candidates(dir, &program) {
                if candidate.is_file() {
                    return Ok(Helper {
                        program,
                        path: candidate,
                    });
                }
            }
        }
        Err(CredentialError::HelperMissing {
            program,
            origin: origin.to_owned(),
        })
    }

    /// The program's name, `docker-credential-<name>`.
    pub(crate) fn program(&self) -> &str {
        &self.program
    }

    /// `get`: the credentials stored for `server_url`, or `None`.
    pub(crate) fn get(&self, server_url: &str) -> Result<Option<Credential>, CredentialError> {
        let out = self.run("get", server_url.as_bytes())?;
        if !out.status.success() {
            if out.not_found() {
                return Ok(None);
            }
            return Err(self.failed("get", &out, None));
        }
        #[derive(serde::Deserialize)]
        struct Reply {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        // The stdout is the secret: never quoted in the error.
        let mut reply: Reply =
            serde_json::from_slice(&out.stdout).map_err(|_| CredentialError::HelperReply {
                program: self.program.clone(),
            })?;
        if reply.username.is_empty() && reply.secret.is_empty() {
            return Ok(None);
        }
        let secret = SecretString::from(std::mem::take(&mut reply.secret));
        Ok(Some(Credential {
            username: std::mem::take(&mut reply.username),
            secret,
        }))
    }

    /// `store`: saves `cred` for `server_url`.
    pub(crate) fn store(&self, server_url: &str, cred: &Credential) -> Result<(), CredentialError> {
        #[derive(serde::Serialize)]
        struct Request<'a> {
            #[serde(rename = "ServerURL")]
            server_url: &'a str,
            #[serde(rename = "Username")]
            username: &'a str,
            #[serde(rename = "Secret")]
            secret: &'a str,
        }
        let secret = cred.secret.expose_secret();
        let request = Request {
            server_url,
            username: &cred.username,
            secret,
        };
        // Room for the worst-case escaping, so the buffer never grows (and
        // leaves a copy behind in freed memory).
        let room = 64 + 6 * (server_url.len() + cred.username.len() + secret.len());
        let mut input = Zeroizing::new(Vec::with_capacity(room));
        serde_json::to_writer(&mut *input, &request).expect("a struct of strings serializes");
        let out = self.run("store", &input)?;
        if !out.status.success() {
            return Err(self.failed("store", &out, Some(secret)));
        }
        Ok(())
    }

    /// `erase`: removes the credentials for `server_url`; `Ok(false)` when
    /// the helper had none.
    pub(crate) fn erase(&self, server_url: &str) -> Result<bool, CredentialError> {
        let out = self.run("erase", server_url.as_bytes())?;
        if out.status.success() {
            return Ok(true);
        }
        if out.not_found() {
            return Ok(false);
        }
        Err(self.failed("erase", &out, None))
    }

    /// Runs the helper with `action`, `input` on stdin.
    fn run(&self, action: &'static str, input: &[u8]) -> Result<Output, CredentialError> {
        let spawn_err = |e: std::io::Error| CredentialError::HelperRun {
            program: self.program.clone(),
            action,
            path: self.path.clone(),
            source: e,
        };
        let mut attempts = 0;
        let mut child = loop {
            let spawned = Command::new(&self.path)
                .arg(action)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            match spawned {
                Ok(child) => break child,
                // Another thread forked while the helper was being
                // written (a fresh install, a test): it clears at exec.
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempts < 20 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(spawn_err(e)),
            }
        };
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        // stderr on its own thread so neither pipe can fill up and block
        // the helper while we wait on the other.
        let stderr_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stderr).take(64 * 1024).read_to_end(&mut buf);
            // Drain the rest so the helper never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            buf
        });
        // The input is small (well under a pipe's buffer). A helper that
        // exits without reading it closes the pipe: its exit status and
        // output say what went wrong, so a broken pipe is not the error.
        match stdin.write_all(input) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(spawn_err(e));
            }
        }
        drop(stdin);
        let stdout_bytes = read_zeroizing(&mut stdout);
        let status = child.wait().map_err(spawn_err)?;
        let stderr_bytes = stderr_thread.join().unwrap_or_default();
        Ok(Output {
            status,
            stdout: stdout_bytes.map_err(spawn_err)?,
            stderr: stderr_bytes,
        })
    }

    /// The error for a helper that exited with a failure.
    fn failed(&self, action: &'static str, out: &Output, sent: Option<&str>) -> CredentialError {
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if message.is_empty() {
            message = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        if let Some(secret) = sent.filter(|s| !s.is_empty()) {
            message = message.replace(secret, "[REDACTED]");
        }
        if message.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        CredentialError::HelperFailed {
            program: self.program.clone(),
            action,
            status: describe(out.status),
            message,
        }
    }
}

/// A finished helper run.
struct Output {
    status: ExitStatus,
    /// Zeroed when dropped: `get` prints the secret here.
    stdout: Zeroizing<Vec<u8>>,
    stderr: Vec<u8>,
}

impl Output {
    fn not_found(&self) -> bool {
        let says = |b: &[u8]| String::from_utf8_lossy(b).trim() == NOT_FOUND;
        says(&self.stdout) || says(&self.stderr)
    }
}

/// `exit status 1`, or the signal on unix.
fn describe(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => format!("{status}"),
    }
}

/// The file names `program` can have in `dir`.
fn candidates(dir: &Path, program: &str) -> Vec<PathBuf> {
    if cfg!(windows) {
        let exts: Vec<String> = std::env::var_os("PATHEXT")
            .map(|v| {
                v.to_string_lossy()
                    .split(';')
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let mut names = vec![dir.join(format!("{program}.exe"))];
        for ext in exts {
            let candidate = dir.join(format!("{program}{}", ext.to_ascii_lowercase()));
            if !names.contains(&candidate) {
                names.push(candidate);
            }
        }
        names
    } else {
        vec![dir.join(program)]
    }
}

/// The directories of a `PATH` value.
pub(crate) fn split_path(path: Option<OsString>) -> Vec<PathBuf> {
    path.map(|p| {
        std::env::split_paths(&p)
            .filter(|d| !d.as_os_str().is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Reads a pipe to its end into one buffer; each growth copies into a
/// bigger buffer and zeroes the old one, so freed memory keeps no copy of
/// what the helper printed.
fn read_zeroizing(source: &mut impl Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let n = match source.read(&mut chunk[..]) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if bytes.len() + n > bytes.capacity() {
            let mut bigger = Vec::with_capacity((bytes.len() + n).saturating_mul(2));
            bigger.extend_from_slice(&bytes);
            bytes.zeroize();
            *bytes = bigger;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}
