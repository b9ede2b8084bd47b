//! Build secrets inside a step: finding them ([`secret`], [`SecretLookup`])
//! and holding them ([`Secret`]) so they are not copied, printed or left in
//! memory.
//!
//! kiln serves a secret the RUN step mounts as a read-only file, by default
//! `/run/secrets/<id>` ([`SECRETS_DIR`]), as an environment variable
//! (`env=NAME`), or both. A lookup tries, in order: files the step was told
//! about ([`SecretLookup::file`]), the default file, then the environment
//! variables ([`SecretLookup::env`]).
//!
//! A [`Secret`] reads the file into one buffer of the file's size (no
//! reallocation leaves stray copies behind) and zeroes it when dropped. It
//! has no `Display` and no `Clone`; its `Debug` shows the id and length
//! only. Reading the value is an explicit [`Secret::expose`] call: grep for
//! `expose` to find every place a step touches one.
//!
//! What this cannot do: wipe the process environment (Rust's `remove_var`
//! is `unsafe` and would not wipe the bytes either; kiln zeroes its own copy
//! when the step ends), or wipe copies a step makes of the exposed bytes.
//!
//! Read next: kiln's side of the mount in `runner/src/secrets/mount.rs`, and
//! "Secrets, done right" in `docs/writing-steps.md`.

use std::env::VarError;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

use crate::error::{Context, Error, Result};

/// Where secret mounts appear by default, as in Docker BuildKit.
pub const SECRETS_DIR: &str = "/run/secrets";

/// The largest secret a lookup reads unless [`SecretLookup::max_size`] says
/// otherwise: kiln's own default for `--secret-max-size` (16 MiB), so a
/// secret kiln accepts by default is read, while a path that is not a
/// secret at all (a disk image, a log) is refused instead of filling the
/// step's memory.
pub const MAX_SECRET_BYTES: u64 = 16 << 20;

/// Why a secret id cannot name a file under [`SECRETS_DIR`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSecretId(pub String);

impl fmt::Display for InvalidSecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid secret id {:?}: an id is a file name (no '/', not '.' or '..', not empty)",
            self.0
        )
    }
}

impl std::error::Error for InvalidSecretId {}

/// The default path of the secret `id` inside a step:
/// `/run/secrets/<id>`, what `RUN --mount=type=secret,id=<id>` mounts when
/// no `target` is given.
///
/// ```
/// use kiln_guest::secret_path;
///
/// assert_eq!(secret_path("npm_token").unwrap(), "/run/secrets/npm_token");
/// assert!(secret_path("../etc/passwd").is_err());
/// ```
pub fn secret_path(id: &str) -> Result<String, InvalidSecretId> {
    if id.is_empty() || id == "." || id == ".." || id.contains(['/', '\0']) {
        return Err(InvalidSecretId(id.to_string()));
    }
    Ok(format!("{SECRETS_DIR}/{id}"))
}

/// A secret's value, wiped from memory when dropped.
///
/// No `Display`, no `Clone`, no `Deref`: use [`expose`](Secret::expose) or
/// [`expose_str`](Secret::expose_str) where the value is needed, derive
/// what the step needs from it, and let it drop.
///
/// ```
/// use kiln_guest::Secret;
///
/// let token = Secret::from_bytes("npm_token", b"s3cr3t\n".to_vec());
/// assert_eq!(format!("{token:?}"), r#"Secret("npm_token", 7 bytes, redacted)"#);
/// assert_eq!(token.expose_str()?.trim_end(), "s3cr3t");
/// # Ok::<(), kiln_guest::Error>(())
/// ```
pub struct Secret {
    id: String,
    bytes: Zeroizing<Vec<u8>>,
}

impl Secret {
    /// A secret holding `bytes`, which it takes over (no copy is made): for
    /// tests, or a value the step got some other way.
    pub fn from_bytes(id: impl Into<String>, bytes: Vec<u8>) -> Secret {
        Secret {
            id: id.into(),
            bytes: Zeroizing::new(bytes),
        }
    }

    /// The secret's id (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The value. Every call is a place the value is used: keep them few.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The value as text; an error (not a panic) when it is not UTF-8. The
    /// error names the secret and the offset of the first bad byte, never
    /// the bytes. Secret files often end with a newline: `trim_end()` it.
    ///
    /// ```
    /// # use kiln_guest::Secret;
    /// let key = Secret::from_bytes("key", vec![0xff, 0x00]);
    /// let err = key.expose_str().unwrap_err();
    /// assert_eq!(err.to_string(), r#"secret "key" is not UTF-8 text (bad byte at offset 0)"#);
    /// ```
    pub fn expose_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.bytes).map_err(|e| {
            Error::new(format!(
                "secret {:?} is not UTF-8 text (bad byte at offset {})",
                self.id,
                e.valid_up_to()
            ))
        })
    }

    /// The value's length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Overwrites the value with zeros, in place: what dropping does
    /// before the buffer is freed.
    fn wipe(&mut self) {
        self.bytes.as_mut_slice().zeroize();
    }
}

/// Shows the id and length only: `Secret("npm_token", 36 bytes, redacted)`.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({:?}, {} bytes, redacted)", self.id, self.len())
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // `Zeroizing` then wipes the whole allocation again as it drops; this
        // keeps the promise visible here, and testable through `wipe`.
        self.wipe();
    }
}

/// Starts looking up the secret `id`; finish with
/// [`get`](SecretLookup::get) (absent is `None`) or
/// [`require`](SecretLookup::require) (absent is an error that tells the
/// user how to provide it).
///
/// ```no_run
/// use kiln_guest::secret;
///
/// // RUN --mount=type=secret,id=npm_token my-step
/// // RUN --mount=type=secret,id=npm_token,env=NPM_TOKEN my-step
/// let token = secret("npm_token").env("NPM_TOKEN").require()?;
/// # Ok::<(), kiln_guest::Error>(())
/// ```
pub fn secret(id: &str) -> SecretLookup {
    SecretLookup {
        id: id.to_string(),
        files: Vec::new(),
        vars: Vec::new(),
        dir: PathBuf::from(SECRETS_DIR),
        max_bytes: MAX_SECRET_BYTES,
    }
}

/// Where to look for one secret; made by [`secret`].
///
/// Sources are tried in this order, and the first one present wins: the
/// files given with [`file`](SecretLookup::file) (in the order given),
/// `/run/secrets/<id>`, then the variables given with
/// [`env`](SecretLookup::env) (in the order given). A file or variable that
/// does not exist is skipped; one that exists but cannot be read (or is
/// larger than [`max_size`](SecretLookup::max_size)) is an error, never
/// skipped, so a broken mount is not mistaken for a missing one.
///
/// ```
/// use kiln_guest::secret;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("token");
/// std::fs::write(&path, "s3cr3t")?;
///
/// let token = secret("token").file(&path).get()?.expect("the file exists");
/// assert_eq!(token.expose(), b"s3cr3t");
/// assert!(secret("kiln-doc-absent").file(dir.path().join("nope")).get()?.is_none());
/// # Ok::<(), kiln_guest::Error>(())
/// ```
#[derive(Debug)]
pub struct SecretLookup {
    id: String,
    files: Vec<PathBuf>,
    vars: Vec<String>,
    dir: PathBuf,
    max_bytes: u64,
}

impl SecretLookup {
    /// Also looks at `path`, before `/run/secrets/<id>`: the `target=` of
    /// the secret mount, typically given to the step as an argument.
    /// A relative path starts at the working directory.
    pub fn file(mut self, path: impl Into<PathBuf>) -> SecretLookup {
        self.files.push(path.into());
        self
    }

    /// Also looks at the environment variable `name`, after the files: the
    /// mount's `env=NAME`.
    pub fn env(mut self, name: &str) -> SecretLookup {
        self.vars.push(name.to_string());
        self
    }

    /// Refuses values larger than `bytes` (default [`MAX_SECRET_BYTES`]);
    /// raise it together with kiln's `--secret-max-size`.
    pub fn max_size(mut self, bytes: u64) -> SecretLookup {
        self.max_bytes = bytes;
        self
    }

    /// Looks under `dir` instead of [`SECRETS_DIR`] (tests).
    #[cfg(test)]
    pub(crate) fn dir(mut self, dir: impl Into<PathBuf>) -> SecretLookup {
        self.dir = dir.into();
        self
    }

    /// The secret from the first source that has it, or `None`. Errors
    /// when the id is not a file name, or a source exists but cannot be
    /// read, is too large, or (a variable) is not UTF-8.
    pub fn get(self) -> Result<Option<Secret>> {
        self.get_with(&|name| std::env::var(name))
    }

    /// [`get`](SecretLookup::get), reading variables through `var`.
    fn get_with(self, var: &dyn Fn(&str) -> Result<String, VarError>) -> Result<Option<Secret>> {
        secret_path(&self.id)?;
        let default = self.dir.join(&self.id);
        for path in self.files.iter().chain([&default]) {
            let bytes = read_file(path, self.max_bytes)
                .with_context(|| format!("reading secret {:?} from {}", self.id, path.display()))?;
            if let Some(bytes) = bytes {
                return Ok(Some(Secret { id: self.id, bytes }));
            }
        }
        for name in &self.vars {
            match var(name) {
                Ok(value) => {
                    // `into_bytes` reuses the string's buffer: no copy.
                    let bytes = Zeroizing::new(value.into_bytes());
                    let size = bytes.len() as u64;
                    if size > self.max_bytes {
                        return Err(Error::new(format!(
                            "reading secret {:?} from ${name}: it is {size} bytes; the limit is {} (SecretLookup::max_size raises it)",
                            self.id, self.max_bytes
                        )));
                    }
                    return Ok(Some(Secret { id: self.id, bytes }));
                }
                Err(VarError::NotPresent) => {}
                Err(VarError::NotUnicode(_)) => {
                    return Err(Error::new(format!(
                        "reading secret {:?} from ${name}: the value is not UTF-8",
                        self.id
                    )));
                }
            }
        }
        Ok(None)
    }

    /// The secret, or an error telling the user what to add to the
    /// Kilnfile and the `kiln build` command line:
    ///
    /// ```text
    /// secret "npm_token" is not available to this step: add --mount=type=secret,id=npm_token to the RUN instruction (or --mount=type=secret,id=npm_token,env=NPM_TOKEN) and pass --secret id=npm_token,src=FILE (or env=VAR) to kiln build
    /// ```
    ///
    /// followed by a cause listing where the step looked.
    ///
    /// ```
    /// use kiln_guest::secret;
    ///
    /// let err = secret("kiln_doc_absent").file("/nonexistent/token").require().unwrap_err();
    /// assert!(err.message().starts_with(
    ///     "secret \"kiln_doc_absent\" is not available to this step: add --mount=type=secret,id=kiln_doc_absent"
    /// ));
    /// ```
    pub fn require(self) -> Result<Secret> {
        self.require_with(&|name| std::env::var(name))
    }

    /// [`require`](SecretLookup::require), reading variables through `var`.
    fn require_with(self, var: &dyn Fn(&str) -> Result<String, VarError>) -> Result<Secret> {
        let id = self.id.clone();
        let env_example = self
            .vars
            .first()
            .cloned()
            .unwrap_or_else(|| env_name_for(&id));
        let mut looked: Vec<String> = self.files.iter().map(|p| p.display().to_string()).collect();
        looked.push(self.dir.join(&id).display().to_string());
        looked.extend(self.vars.iter().map(|v| format!("${v}")));
        match self.get_with(var)? {
            Some(secret) => Ok(secret),
            None => Err(Error::new(format!(
                "secret {id:?} is not available to this step: add --mount=type=secret,id={id} to the RUN instruction (or --mount=type=secret,id={id},env={env_example}) and pass --secret id={id},src=FILE (or env=VAR) to kiln build"
            ))
            .caused_by(format!("looked for it at {}", looked.join(", ")))),
        }
    }
}

/// A conventional variable name for an id: `npm_token` -> `NPM_TOKEN`.
fn env_name_for(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The whole file at `path` in a zeroizing buffer of the file's size, or
/// `None` when there is no such file. Larger than `max` is an error.
fn read_file(path: &Path, max: u64) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
    if size > max {
        return Err(Error::new(format!(
            "the file is {size} bytes; the limit is {max} (SecretLookup::max_size raises it)"
        )));
    }
    let size = usize::try_from(size).map_err(|_| Error::new("the file does not fit in memory"))?;
    read_to_end_sized(file, size, max).map(Some)
}

/// Whether opening failed because nothing is there: no file, or a path
/// through something that is not a directory.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Reads `r` to its end into a buffer allocated once with `expected` bytes.
///
/// Should there be more (the file grew since it was measured), the bytes
/// move to a larger buffer and the old one is zeroed as it drops; a `Vec`
/// growing in place would free its old allocation unwiped.
fn read_to_end_sized(mut r: impl Read, expected: usize, max: u64) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; expected]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // Full: one byte tells whether there is more, without growing.
            let mut probe = Zeroizing::new([0u8; 1]);
            match r.read(&mut probe[..]) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            if filled as u64 >= max {
                return Err(Error::new(format!(
                    "the file grew past the limit of {max} bytes while it was read"
                )));
            }
            let limit = usize::try_from(max).unwrap_or(usize::MAX);
            let len = filled
                .saturating_mul(2)
                .clamp(filled + 1, limit.max(filled + 1));
            let mut bigger = Zeroizing::new(vec![0u8; len]);
            bigger[..filled].copy_from_slice(&buf[..filled]);
            bigger[filled] = probe[0];
            filled += 1;
            buf = bigger;
            continue;
        }
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Shortening keeps the allocation, all of which `Zeroizing` wipes.
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lookup that never sees the real /run/secrets.
    fn lookup(id: &str, dir: &Path) -> SecretLookup {
        secret(id).dir(dir)
    }

    /// An environment of `vars` only. (Rust 2024 makes `set_var` unsafe,
    /// which this crate forbids; lookups take the environment as a function.)
    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<String, VarError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .ok_or(VarError::NotPresent)
        }
    }

    #[test]
    fn default_secret_paths_match_buildkit() {
        assert_eq!(secret_path("npm_token").unwrap(), "/run/secrets/npm_token");
        assert_eq!(secret_path("a.b-c").unwrap(), "/run/secrets/a.b-c");
        assert_eq!(secret("x").dir, Path::new(SECRETS_DIR));
    }

    #[test]
    fn ids_that_are_not_file_names_are_refused() {
        for bad in ["", ".", "..", "a/b", "/abs", "nul\0"] {
            let err = secret_path(bad).unwrap_err();
            assert!(err.to_string().contains("invalid secret id"), "{bad:?}");
            let err = secret(bad).get().unwrap_err();
            assert!(err.to_string().contains("invalid secret id"), "{bad:?}");
        }
    }

    #[test]
    fn reads_the_default_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "value-1\n").unwrap();
        let s = lookup("tok", dir.path()).get().unwrap().unwrap();
        assert_eq!((s.id(), s.expose(), s.len()), ("tok", &b"value-1\n"[..], 8));
        assert!(!s.is_empty());
    }

    #[test]
    fn empty_file_is_an_empty_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "").unwrap();
        let s = lookup("tok", dir.path()).get().unwrap().unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn custom_file_is_tried_first_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "default").unwrap();
        std::fs::write(dir.path().join("custom"), "custom").unwrap();
        let s = lookup("tok", dir.path())
            .file(dir.path().join("absent"))
            .file(dir.path().join("custom"))
            .get()
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), b"custom");
        let s = lookup("tok", dir.path())
            .file(dir.path().join("absent"))
            .get()
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), b"default");
    }

    #[test]
    fn env_is_tried_after_the_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[("SECOND", "from-env"), ("THIRD", "unused")]);
        let s = lookup("e1", dir.path())
            .env("FIRST")
            .env("SECOND")
            .env("THIRD")
            .get_with(&env)
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), b"from-env");
        std::fs::write(dir.path().join("e1"), "from-file").unwrap();
        let s = lookup("e1", dir.path())
            .env("SECOND")
            .get_with(&env)
            .unwrap()
            .unwrap();
        assert_eq!(s.expose(), b"from-file");
    }

    #[test]
    fn env_reads_the_process_environment() {
        // Cargo sets CARGO_PKG_NAME for the test process.
        let expected = std::env::var("CARGO_PKG_NAME").ok();
        let dir = tempfile::tempdir().unwrap();
        let got = lookup("pkg", dir.path())
            .env("CARGO_PKG_NAME")
            .get()
            .unwrap();
        assert_eq!(
            got.map(|s| s.expose().to_vec()),
            expected.map(String::into_bytes)
        );
    }

    #[test]
    fn non_utf8_env_is_an_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let env = |_: &str| Err(VarError::NotUnicode("x".into()));
        let err = lookup("t", dir.path())
            .env("TOKEN")
            .get_with(&env)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "reading secret \"t\" from $TOKEN: the value is not UTF-8"
        );
    }

    #[test]
    fn absent_everywhere_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let got = lookup("nope", dir.path())
            .file(dir.path().join("a/b/c"))
            .env("UNSET")
            .get_with(&env_of(&[]))
            .unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn a_path_through_a_file_is_absent_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let got = lookup("nope", dir.path())
            .file(dir.path().join("file/tok"))
            .get()
            .unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn unreadable_source_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the secret file should be: it exists, and
        // reading it fails.
        std::fs::create_dir(dir.path().join("tok")).unwrap();
        let err = lookup("tok", dir.path()).get().unwrap_err();
        assert!(
            err.message().starts_with("reading secret \"tok\" from "),
            "{err}"
        );
        assert!(err.message().ends_with("tok"), "{err}");
        assert_eq!(err.causes().count(), 1, "{err}");
    }

    #[test]
    fn larger_than_the_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), [7u8; 100]).unwrap();
        let err = lookup("big", dir.path()).max_size(99).get().unwrap_err();
        assert!(
            err.to_string()
                .contains("the file is 100 bytes; the limit is 99"),
            "{err}"
        );
        let ok = lookup("big", dir.path())
            .max_size(100)
            .get()
            .unwrap()
            .unwrap();
        assert_eq!(ok.len(), 100);
        let env = env_of(&[("BIG", "12345")]);
        let err = lookup("e", dir.path())
            .env("BIG")
            .max_size(4)
            .get_with(&env)
            .unwrap_err();
        assert!(
            err.to_string().contains("it is 5 bytes; the limit is 4"),
            "{err}"
        );
        assert!(!err.to_string().contains("12345"), "{err}");
    }

    #[test]
    fn require_says_what_to_add() {
        let dir = tempfile::tempdir().unwrap();
        let err = lookup("npm_token", dir.path()).require().unwrap_err();
        assert_eq!(
            err.message(),
            "secret \"npm_token\" is not available to this step: add --mount=type=secret,id=npm_token to the RUN instruction (or --mount=type=secret,id=npm_token,env=NPM_TOKEN) and pass --secret id=npm_token,src=FILE (or env=VAR) to kiln build"
        );
        assert_eq!(err.code(), 1);
        let looked: Vec<&str> = err.causes().collect();
        assert_eq!(looked.len(), 1);
        assert!(looked[0].starts_with("looked for it at "), "{}", looked[0]);
        assert!(looked[0].ends_with("npm_token"), "{}", looked[0]);
    }

    #[test]
    fn require_names_the_given_env_var_and_lists_sources() {
        let dir = tempfile::tempdir().unwrap();
        let err = lookup("tok", dir.path())
            .file("/nonexistent/custom/tok")
            .env("MY_TOKEN")
            .require_with(&env_of(&[]))
            .unwrap_err();
        assert!(
            err.message()
                .contains("(or --mount=type=secret,id=tok,env=MY_TOKEN)"),
            "{err}"
        );
        let cause = err.causes().next().unwrap();
        assert!(
            cause.starts_with("looked for it at /nonexistent/custom/tok, "),
            "{cause}"
        );
        assert!(cause.ends_with(", $MY_TOKEN"), "{cause}");
    }

    #[test]
    fn require_returns_the_secret_when_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "v").unwrap();
        assert_eq!(lookup("tok", dir.path()).require().unwrap().expose(), b"v");
        let env = env_of(&[("TOK", "from-env")]);
        let s = lookup("other", dir.path())
            .env("TOK")
            .require_with(&env)
            .unwrap();
        assert_eq!(s.expose(), b"from-env");
    }

    #[test]
    fn env_names_for_ids() {
        assert_eq!(env_name_for("npm_token"), "NPM_TOKEN");
        assert_eq!(env_name_for("gh.token-2"), "GH_TOKEN_2");
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::from_bytes("api", b"hunter2".to_vec());
        let shown = format!("{s:?} {s:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{s:?}"), "Secret(\"api\", 7 bytes, redacted)");
        let in_result = format!("{:?}", Ok::<_, ()>(Some(s)));
        assert!(!in_result.contains("hunter2"), "{in_result}");
    }

    #[test]
    fn expose_str_errors_on_non_utf8_without_the_bytes() {
        let s = Secret::from_bytes("k", vec![b'o', b'k', 0xc3]);
        let err = s.expose_str().unwrap_err();
        assert_eq!(
            err.to_string(),
            "secret \"k\" is not UTF-8 text (bad byte at offset 2)"
        );
        assert_eq!(
            Secret::from_bytes("t", b"abc".to_vec())
                .expose_str()
                .unwrap(),
            "abc"
        );
    }

    #[test]
    fn drop_wipes_the_value_in_place() {
        // `wipe` is what `Drop` runs before the buffer is freed. Reading
        // the memory after the drop itself would need `unsafe`, which this
        // crate forbids.
        let mut s = Secret::from_bytes("w", b"hunter2".to_vec());
        let before = s.expose().as_ptr();
        s.wipe();
        assert_eq!(s.expose(), [0u8; 7], "every byte overwritten");
        assert_eq!(s.expose().as_ptr(), before, "in place, not a fresh buffer");
    }

    #[test]
    fn buffer_is_allocated_once_with_the_file_size() {
        let data = vec![42u8; 10_000];
        let buf = read_to_end_sized(&data[..], data.len(), MAX_SECRET_BYTES).unwrap();
        assert_eq!(&buf[..], &data[..]);
        assert_eq!(buf.capacity(), data.len(), "no reallocation, no spare copy");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), &data).unwrap();
        let s = lookup("tok", dir.path()).get().unwrap().unwrap();
        assert_eq!(s.bytes.capacity(), data.len());
    }

    #[test]
    fn a_file_that_grew_or_shrank_is_read_whole() {
        let data = b"0123456789".to_vec();
        let grew = read_to_end_sized(&data[..], 4, MAX_SECRET_BYTES).unwrap();
        assert_eq!(&grew[..], &data[..]);
        let from_nothing = read_to_end_sized(&data[..], 0, MAX_SECRET_BYTES).unwrap();
        assert_eq!(&from_nothing[..], &data[..]);
        let shrank = read_to_end_sized(&data[..], 20, MAX_SECRET_BYTES).unwrap();
        assert_eq!(&shrank[..], &data[..]);
        let err = read_to_end_sized(&data[..], 4, 8).unwrap_err();
        assert!(
            err.to_string().contains("grew past the limit of 8 bytes"),
            "{err}"
        );
        let exact = read_to_end_sized(&data[..], 4, 10).unwrap();
        assert_eq!(&exact[..], &data[..]);
    }
}
