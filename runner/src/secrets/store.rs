//! The build's secrets, in memory only.
//!
//! Each `--secret` is read once, on the host, into a [`Secret`]: a
//! zeroizing, redacting buffer (`secrecy`), locked in RAM where the OS allows
//! (so it is never swapped to disk), zeroed when dropped. Reading the bytes
//! is an explicit [`Secret::expose`] call: grep for it to audit every place
//! that touches a secret's value.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretBox};

use super::spec::{SecretSource, SecretSpec};

/// The largest secret read by default: far above BuildKit's 500 KiB (a
/// service-account key with its certificate chain fits many times over),
/// small enough that a mistaken `src=` (a disk image, a log) is refused.
/// `--secret-max-size` raises it.
pub const DEFAULT_MAX_SECRET_BYTES: u64 = 16 << 20;

/// One secret value. `Debug` shows only the id.
pub struct Secret {
    // Declared first so it is dropped (the pages unlocked) before the bytes
    // are zeroed and freed.
    _lock: Option<region::LockGuard>,
    id: String,
    bytes: SecretBox<Vec<u8>>,
}

impl Secret {
    /// Wraps `bytes` (taking ownership: no copy is left behind).
    pub fn new(id: impl Into<String>, bytes: Vec<u8>) -> Secret {
        let bytes = SecretBox::new(Box::new(bytes));
        let lock = lock_in_ram(bytes.expose_secret());
        Secret {
            _lock: lock,
            id: id.into(),
            bytes,
        }
    }

    /// The id it is known by.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.expose_secret().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The secret bytes. Every caller is a place a secret flows through.
    pub fn expose(&self) -> &[u8] {
        self.bytes.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?}, {} bytes, redacted)", self.id, self.len())
    }
}

/// Why a `--secret` could not be loaded. Messages never contain the value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The source file cannot be read.
    #[error("secret {id:?}: cannot read {path}: {source}")]
    Read {
        /// The secret id.
        id: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The source is larger than allowed.
    #[error(
        "secret {id:?}: {what} is {size} bytes; the limit is {max} (raise it with --secret-max-size)"
    )]
    TooLarge {
        /// The secret id.
        id: String,
        /// The file or variable.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The read was interrupted (Ctrl-C, SIGTERM) while waiting for a
    /// writer on a FIFO or for input on a pipe.
    #[error("secret {id:?}: cancelled while waiting for {path}")]
    Cancelled {
        /// The secret id.
        id: String,
        /// The file.
        path: PathBuf,
    },
    /// `env=VAR` (or `type=env`) with VAR unset: an error, never an empty secret.
    #[error("secret {id:?}: the environment variable {var} is not set")]
    EnvUnset {
        /// The secret id.
        id: String,
        /// The variable.
        var: String,
    },
}

/// The secrets of a build, by id.
#[derive(Debug, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, Arc<Secret>>,
}

impl SecretStore {
    /// Loads every spec (a repeated id: the last wins). `env` reads host
    /// variables (injected for tests).
    pub fn load(
        specs: &[SecretSpec],
        max_size: u64,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<SecretStore, SecretError> {
        let never = AtomicBool::new(false);
        Self::load_interruptible(specs, max_size, env, &never, &|_, _| {})
    }

    /// [`SecretStore::load`], for sources that can block: a FIFO with no
    /// writer yet, a pipe, `/dev/stdin`. Those are read on a thread while
    /// this one watches `cancel` (so Ctrl-C and SIGTERM are honoured) and
    /// calls `waiting(id, path)` once if the read takes longer than
    /// [`WAIT_NOTICE`], so the user learns what kiln is waiting for.
    pub fn load_interruptible(
        specs: &[SecretSpec],
        max_size: u64,
        env: &dyn Fn(&str) -> Option<OsString>,
        cancel: &AtomicBool,
        waiting: &dyn Fn(&str, &Path),
    ) -> Result<SecretStore, SecretError> {
        let mut secrets = BTreeMap::new();
        for spec in specs {
            let bytes = match &spec.source {
                SecretSource::File(path) => read_source(&spec.id, path, max_size, cancel, waiting)?,
                SecretSource::Env(var) => {
                    let value = env(var).ok_or_else(|| SecretError::EnvUnset {
                        id: spec.id.clone(),
                        var: var.clone(),
                    })?;
                    let bytes = os_bytes(value);
                    if bytes.len() as u64 > max_size {
                        return Err(SecretError::TooLarge {
                            id: spec.id.clone(),
                            what: format!("${var}"),
                            size: bytes.len() as u64,
                            max: max_size,
                        });
                    }
                    bytes
                }
            };
            secrets.insert(
                spec.id.clone(),
                Arc::new(Secret::new(spec.id.clone(), bytes)),
            );
        }
        Ok(SecretStore { secrets })
    }

    /// The secret `id`.
    pub fn get(&self, id: &str) -> Option<&Arc<Secret>> {
        self.secrets.get(id)
    }

    /// The ids given, for a message about one that was not (so a typo
    /// shows): `provided: a, b`, or `no --secret was given`.
    pub fn provided(&self) -> String {
        if self.secrets.is_empty() {
            "no --secret was given".to_string()
        } else {
            let ids: Vec<&str> = self.secrets.keys().map(String::as_str).collect();
            format!("provided: {}", ids.join(", "))
        }
    }

    /// Every secret.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Secret>> {
        self.secrets.values()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// How long a secret source may keep kiln waiting before it says so.
pub const WAIT_NOTICE: Duration = Duration::from_secs(1);

/// How often a waiting read checks for cancellation.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Reads a secret source: a regular file here, anything that can block
/// (FIFO, pipe, terminal) on a thread this one can stop waiting for.
fn read_source(
    id: &str,
    path: &Path,
    max: u64,
    cancel: &AtomicBool,
    waiting: &dyn Fn(&str, &Path),
) -> Result<Vec<u8>, SecretError> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return read_file(id, path, max);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (thread_id, thread_path) = (id.to_string(), path.to_path_buf());
    // If kiln stops waiting, the thread stays blocked until the process
    // exits; a value it reads later is zeroed when the send fails.
    std::thread::Builder::new()
        .name("kiln-secret-read".into())
        .spawn(move || {
            let read = read_file(&thread_id, &thread_path, max).map(zeroize::Zeroizing::new);
            let _ = tx.send(read);
        })
        .map_err(|source| SecretError::Read {
            id: id.into(),
            path: path.to_path_buf(),
            source,
        })?;
    let started = Instant::now();
    let mut told = false;
    loop {
        match rx.recv_timeout(CANCEL_POLL) {
            Ok(read) => return read.map(|mut bytes| std::mem::take(&mut *bytes)),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if cancel.load(Ordering::SeqCst) {
                    return Err(SecretError::Cancelled {
                        id: id.into(),
                        path: path.to_path_buf(),
                    });
                }
                if !told && started.elapsed() >= WAIT_NOTICE {
                    waiting(id, path);
                    told = true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(SecretError::Read {
                    id: id.into(),
                    path: path.to_path_buf(),
                    source: std::io::Error::other("the reading thread ended"),
                });
            }
        }
    }
}

fn read_file(id: &str, path: &Path, max: u64) -> Result<Vec<u8>, SecretError> {
    let err = |source| SecretError::Read {
        id: id.into(),
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(err)?;
    let size = file.metadata().map_err(err)?.len();
    if size > max {
        return Err(SecretError::TooLarge {
            id: id.into(),
            what: path.display().to_string(),
            size,
            max,
        });
    }
    let mut bytes = read_zeroizing(file.take(max.saturating_add(1)), size).map_err(err)?;
    if bytes.len() as u64 > max {
        let size = bytes.len() as u64;
        zeroize::Zeroize::zeroize(&mut bytes);
        return Err(SecretError::TooLarge {
            id: id.into(),
            what: path.display().to_string(),
            size,
            max,
        });
    }
    Ok(bytes)
}

/// Reads everything into one buffer. Allocated once for a regular file
/// (`hint` is its size, plus room to notice growth); for a pipe, whose size
/// is unknown, each growth copies into a bigger buffer and zeroes the old
/// one, so freed memory never keeps a copy of the secret.
fn read_zeroizing(mut source: impl Read, hint: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(
        usize::try_from(hint)
            .unwrap_or(0)
            .saturating_add(1)
            .max(4096),
    );
    let mut chunk = zeroize::Zeroizing::new([0u8; 4096]);
    loop {
        let n = match source.read(&mut chunk[..]) {
            Ok(0) => return Ok(bytes),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut bytes);
                return Err(e);
            }
        };
        if bytes.len() + n > bytes.capacity() {
            let mut bigger = Vec::with_capacity((bytes.len() + n).saturating_mul(2));
            bigger.extend_from_slice(&bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
            bytes = bigger;
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// Locks `data`'s pages in RAM, best effort (a refusal leaves the secret
/// unlocked, never the build failed): `mlock` on Linux and macOS, bounded by
/// `RLIMIT_MEMLOCK` on Linux (8 MiB by default since Linux 5.16) and by the
/// wired-memory limit on macOS; `VirtualLock` on Windows, bounded by the
/// process's minimum working set (a few hundred KiB by default), so there a
/// refused lock raises that minimum by the secret's size and tries again.
fn lock_in_ram(data: &[u8]) -> Option<region::LockGuard> {
    if data.is_empty() {
        return None;
    }
    match region::lock(data.as_ptr(), data.len()) {
        Ok(guard) => Some(guard),
        #[cfg(windows)]
        Err(_) if working_set::grow(data.len()) => region::lock(data.as_ptr(), data.len()).ok(),
        Err(_) => None,
    }
}

/// Windows: room in the working set for `VirtualLock` (see [`lock_in_ram`]).
#[cfg(windows)]
#[allow(unsafe_code)]
mod working_set {
    use windows_sys::Win32::System::Threading::{
        GetCurrentProcess, GetProcessWorkingSetSize, SetProcessWorkingSetSize,
    };

    /// Raises the working set's minimum (and its maximum, to stay above it)
    /// by `bytes` and a page on each side; whether Windows agreed. Raising
    /// the minimum needs only SeIncreaseWorkingSetPrivilege, which every
    /// user has; it lasts as long as the process.
    pub(super) fn grow(bytes: usize) -> bool {
        let extra = bytes.saturating_add(2 * region::page::size());
        let (mut min, mut max) = (0usize, 0usize);
        // SAFETY: `GetCurrentProcess` returns a pseudo-handle that is always
        // valid and needs no closing; the out-pointers are live locals.
        unsafe {
            let me = GetCurrentProcess();
            if GetProcessWorkingSetSize(me, &mut min, &mut max) == 0 {
                return false;
            }
            let min = min.saturating_add(extra);
            SetProcessWorkingSetSize(me, min, max.max(min.saturating_add(extra))) != 0
        }
    }
}

#[cfg(unix)]
fn os_bytes(value: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    value.into_vec()
}

#[cfg(not(unix))]
fn os_bytes(value: OsString) -> Vec<u8> {
    match value.into_string() {
        Ok(s) => s.into_bytes(),
        Err(os) => os.to_string_lossy().into_owned().into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> SecretSpec {
        SecretSpec::parse(s, &|_| false).unwrap()
    }

    #[test]
    fn loads_files_and_variables_and_redacts() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tok");
        std::fs::write(&file, "file-secret").unwrap();
        let env = |k: &str| (k == "TOKEN").then(|| OsString::from("env-secret"));
        let specs = [
            spec(&format!("id=a,src={}", file.display())),
            spec("id=b,env=TOKEN"),
            spec("id=a,env=TOKEN"),
        ];
        let store = SecretStore::load(&specs, 1 << 20, &env).unwrap();
        assert_eq!(
            store.get("a").unwrap().expose(),
            b"env-secret",
            "the last repeated id wins"
        );
        assert_eq!(store.get("b").unwrap().expose(), b"env-secret");
        let shown = format!("{:?}", store);
        assert!(
            !shown.contains("secret\"") && !shown.contains("env-secret"),
            "{shown}"
        );
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn unset_variables_unreadable_and_oversized_sources_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        let none = |_: &str| None;
        let e = SecretStore::load(&[spec("id=t,env=NOPE")], 1 << 20, &none).unwrap_err();
        assert!(matches!(e, SecretError::EnvUnset { .. }), "{e}");
        let e = SecretStore::load(&[spec("id=t,src=/no/such/file")], 1 << 20, &none).unwrap_err();
        assert!(matches!(e, SecretError::Read { .. }), "{e}");
        let e = SecretStore::load(&[spec(&format!("id=t,src={}", big.display()))], 1024, &none)
            .unwrap_err();
        assert!(
            e.to_string().contains("2048 bytes; the limit is 1024"),
            "{e}"
        );
        let some = |_: &str| Some(OsString::from("y".repeat(2000)));
        let e = SecretStore::load(&[spec("id=t,env=V")], 1024, &some).unwrap_err();
        assert!(e.to_string().contains("$V is 2000 bytes"), "{e}");
    }
}
