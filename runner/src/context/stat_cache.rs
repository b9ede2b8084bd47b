//! Digests of a context's files, remembered by [`FileIdentity`] between
//! builds, so a rebuild of an unchanged context hashes nothing (what
//! BuildKit's contenthash does).
//!
//! One file per context directory in the store (`kiln/contexts/<sha256 of
//! the directory's path>`), one line per file: `<digest> <x|-> <identity>
//! <path>`, where `x` says the contents make it executable. It is read when the build starts and written back at its end
//! when it learnt something, atomically and without a sync: a lost or torn
//! one costs hashing again, nothing more, since a line that does not parse
//! is skipped and a digest is used only when the identity matches. Only
//! settled identities are kept (see [`FileIdentity::settled`]), and the
//! layer writer still checks the bytes it copies against the digest, so a
//! file changed in between fails the step instead of being mislabelled.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::digest::Digest;
use crate::file_identity::FileIdentity;

/// The digests of one context's files (see the module docs).
#[derive(Debug, Default)]
pub struct StatCache {
    /// Where it is kept; `None`: in memory only (tests, no store).
    file: Option<PathBuf>,
    entries: Mutex<Entries>,
}

/// What is known of one file at one identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Known {
    identity: FileIdentity,
    digest: Digest,
    executable: bool,
}

#[derive(Debug, Default)]
struct Entries {
    by_path: HashMap<String, Known>,
    /// Whether anything was added since it was read.
    changed: bool,
}

impl StatCache {
    /// The cache kept in `file`, read now (missing or unreadable: empty).
    pub fn load(file: PathBuf) -> StatCache {
        let mut by_path = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(&file) {
            for line in text.lines() {
                if let Some((path, entry)) = parse_line(line) {
                    by_path.insert(path.to_string(), entry);
                }
            }
        }
        StatCache {
            file: Some(file),
            entries: Mutex::new(Entries {
                by_path,
                changed: false,
            }),
        }
    }

    /// Where the cache of context directory `root` lives under `dir`.
    pub fn file_for(dir: &Path, root: &Path) -> PathBuf {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let name = Digest::of(root.to_string_lossy().as_bytes());
        dir.join(name.hex())
    }

    /// The digest of `path`, and whether it is executable, when its
    /// identity is the one remembered.
    pub fn get(&self, path: &str, identity: &FileIdentity) -> Option<(Digest, bool)> {
        let entries = self.entries.lock().expect("stat cache lock");
        match entries.by_path.get(path) {
            Some(known) if known.identity == *identity => Some((known.digest, known.executable)),
            _ => None,
        }
    }

    /// Remembers `digest` and `executable` for `path` at `identity`, when
    /// it is settled.
    pub fn put(&self, path: &str, identity: FileIdentity, digest: Digest, executable: bool) {
        if !identity.settled() || path.contains(['\n', '\r']) {
            return;
        }
        let known = Known {
            identity,
            digest,
            executable,
        };
        let mut entries = self.entries.lock().expect("stat cache lock");
        if entries.by_path.get(path) != Some(&known) {
            entries.by_path.insert(path.to_string(), known);
            entries.changed = true;
        }
    }

    /// Writes the cache back when it learnt something. `write` replaces
    /// the file atomically (the store's unsynced write).
    pub fn save(
        &self,
        write: impl FnOnce(&Path, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut entries = self.entries.lock().expect("stat cache lock");
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !entries.changed {
            return Ok(());
        }
        let mut lines: Vec<_> = entries.by_path.iter().collect();
        lines.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut text = String::with_capacity(lines.len() * 160);
        for (path, known) in lines {
            text.push_str(&known.digest.hex());
            text.push_str(if known.executable { " x " } else { " - " });
            known.identity.encode_into(&mut text);
            text.push(' ');
            text.push_str(path);
            text.push('\n');
        }
        write(file, text.as_bytes())?;
        // Saved: a second save (the next platform's build) writes only
        // what it learns after this one.
        entries.changed = false;
        Ok(())
    }
}

/// `<digest hex> <x|-> <size> <modified> <changed> <inode> <device> <path>`.
fn parse_line(line: &str) -> Option<(&str, Known)> {
    let mut fields = line.splitn(8, ' ');
    let digest = Digest::from_hex(fields.next()?).ok()?;
    let executable = match fields.next()? {
        "x" => true,
        "-" => false,
        _ => return None,
    };
    let identity = FileIdentity::decode_fields(&mut fields)?;
    let path = fields.next()?;
    Some((
        path,
        Known {
            identity,
            digest,
            executable,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_settled_files_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        let cache = StatCache::load(file.clone());
        // Changed long ago: kept.
        let old = FileIdentity::decode("5 10 10 7 8").unwrap();
        let d = Digest::of(b"alpha");
        cache.put("dir/a b", old, d, true);
        assert_eq!(cache.get("dir/a b", &old), Some((d, true)));
        // Just written: a change within its timestamp's tick could go
        // unseen, so it is not kept.
        std::fs::write(dir.path().join("new"), b"x").unwrap();
        let new = FileIdentity::of(&std::fs::metadata(dir.path().join("new")).unwrap());
        cache.put("new", new, Digest::of(b"x"), false);
        assert_eq!(cache.get("new", &new), None);
        cache.save(|p, b| std::fs::write(p, b)).unwrap();
        cache.save(|_, _| panic!("nothing new to save")).unwrap();
        let again = StatCache::load(file);
        assert_eq!(again.get("dir/a b", &old), Some((d, true)));
        assert_eq!(again.get("new", &new), None);
    }

    #[test]
    fn reads_back_what_it_wrote_and_skips_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cache");
        let id = FileIdentity::decode("5 10 10 7 8").unwrap();
        let d = Digest::of(b"x");
        std::fs::write(
            &file,
            format!(
                "{} - {} with space/and\nnot a line\n{} 1 2 3\n{} {} old format\n",
                d.hex(),
                id.encode(),
                d.hex(),
                d.hex(),
                id.encode()
            ),
        )
        .unwrap();
        let cache = StatCache::load(file);
        assert_eq!(cache.get("with space/and", &id), Some((d, false)));
        assert_eq!(cache.get("old format", &id), None);
        let other = FileIdentity::decode("6 10 10 7 8").unwrap();
        assert_eq!(cache.get("with space/and", &other), None, "size differs");
        assert_eq!(cache.entries.lock().unwrap().by_path.len(), 1);
    }
}
