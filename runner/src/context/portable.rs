//! What makes a context read the same on Linux, macOS and Windows, so the
//! same checkout gives the same image digest on every host.
//!
//! - **Executable**: Windows has no execute bit and a checkout's bits depend
//!   on the tool that made it, so "executable" comes from a file's first
//!   bytes, on every host: a `#!` script, a WebAssembly binary (`\0asm`, the
//!   programs kiln runs) or an ELF binary (`\x7fELF`, for images meant for
//!   Linux runtimes) is 0755, anything else 0644. The host's bits are never
//!   read.
//! - **Names that differ only in case** (`README` and `readme`), or only in
//!   Unicode normalization (`é` as one code point or two, which macOS's APFS
//!   treats as one name), are one file on Windows and macOS: such a
//!   directory is refused, on every host, when a build reads it.
//! - **Spelling**: a COPY source must be spelled as the context spells it;
//!   a case-insensitive filesystem would otherwise find `readme.md` for
//!   `README.md` on one host and not on another.
//! - **`\` in a source path** separates components on every host, as it does
//!   on Windows: `COPY src\main.rs /app/` under the `` # escape=` ``
//!   directive (without it `\` escapes, as in Docker) copies `src/main.rs`
//!   everywhere.
//!   So `\` cannot escape a glob character in a context source (`[*]` can).

use std::collections::HashMap;
use std::io::{self, Read};

use unicode_normalization::UnicodeNormalization;

use super::{ContextError, ContextPath, clean, display};

/// The magic numbers that make a file executable (see the module docs).
const EXECUTABLE_MAGIC: [&[u8]; 3] = [b"#!", b"\0asm", b"\x7fELF"];

/// Whether a file whose contents start with `head` is executable.
pub(super) fn is_executable(head: &[u8]) -> bool {
    EXECUTABLE_MAGIC.iter().any(|m| head.starts_with(m))
}

/// Whether the file `file` is executable: reads its first four bytes.
pub(super) fn file_is_executable(mut file: impl Read) -> io::Result<bool> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(is_executable(&head[..n]))
}

/// The name a case-insensitive, normalization-insensitive filesystem
/// (NTFS, APFS) sees: canonical decomposition, then lower case.
pub fn case_fold(name: &str) -> String {
    if name.is_ascii() {
        // The common case, and the same answer: ASCII has no
        // decompositions and only ASCII lower cases.
        return name.to_ascii_lowercase();
    }
    name.nfd().flat_map(char::to_lowercase).collect()
}

/// Refuses a directory listing (`dir`, its `names`) holding two names that
/// Windows or macOS would take for one.
pub(super) fn check_collisions(dir: &str, names: &[String]) -> Result<(), ContextError> {
    let mut seen: HashMap<String, &str> = HashMap::with_capacity(names.len());
    for name in names {
        if let Some(first) = seen.insert(case_fold(name), name) {
            return Err(ContextError::Collision {
                dir: display(dir),
                first: first.to_string(),
                second: name.clone(),
            });
        }
    }
    Ok(())
}

/// A COPY or bind source as written in the Kilnfile, as a context path:
/// `\` separates components like `/` does (see the module docs), then
/// [`clean`].
pub fn source_path(raw: &str) -> ContextPath {
    clean(&raw.replace('\\', "/"))
}

/// The name in `names` that `wanted` matches only when case and Unicode
/// normalization are ignored, if `wanted` itself is not there.
pub(super) fn misspelled<'a>(wanted: &str, names: &'a [String]) -> Option<&'a str> {
    if names.iter().any(|n| n == wanted) {
        return None;
    }
    let key = case_fold(wanted);
    names
        .iter()
        .find(|n| case_fold(n) == key)
        .map(String::as_str)
}
