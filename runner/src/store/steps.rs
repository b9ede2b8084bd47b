//! The step cache: which layer an instruction produced, by cache key.
//!
//! ```text
//! STORE/kiln/steps/<key hex>.json   {"diff_id", "layer": descriptor, "used", "clean_of"}
//!                                   (no diff_id and layer: the step changed nothing)
//! STORE/kiln/secret-key             32 random bytes (0600): the key of secret HMACs
//! ```
//!
//! A key is a sha256 over everything that decides a step's result (see
//! `build/cache.rs`); an entry names the layer blob and its diff_id, whose
//! change index (`kiln/layers/`) rebuilds the snapshot without touching
//! the blob. Entries are written like everything else: temp file, rename.
//! An entry whose layer is gone or does not match its digest is a miss, and
//! the step runs again (and rewrites it).
//!
//! Secret values never reach the cache: a step that mounts a secret has an
//! HMAC of the value under the store's own random key in its cache key, so
//! a changed value is a miss, and nobody who reads the store without that
//! key can test a guess against it.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Descriptor, Result, Store, StoreError, io_err};
use crate::digest::Digest;

/// Largest entry read: real ones are a few hundred bytes.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// One step cache entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepEntry {
    /// The uncompressed layer's digest (its change index is stored by it);
    /// `None` when the step changed nothing.
    pub diff_id: Option<Digest>,
    /// The layer blob, when there is one.
    pub layer: Option<Descriptor>,
    /// When it was last used (Unix seconds), for `prune --keep-storage`.
    pub used: i64,
    /// HMACs (under the store's secret key) of the secret values this layer
    /// was searched for and found free of. A build with other secrets
    /// searches the layer again before it reuses it.
    #[serde(default)]
    pub clean_of: Vec<String>,
}

impl Store {
    pub(super) fn steps_dir(&self) -> PathBuf {
        self.kiln_dir().join("steps")
    }

    pub(super) fn step_path(&self, key: &Digest) -> PathBuf {
        self.steps_dir().join(format!("{}.json", key.hex()))
    }

    /// The entry for `key`, if there is a readable one.
    pub fn step_entry(&self, key: &Digest) -> Result<Option<StepEntry>> {
        let path = self.step_path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(StoreError::Corrupt {
                path,
                reason: "too large for a step cache entry".into(),
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: e.to_string(),
            })
    }

    /// Records (or replaces) the entry for `key`.
    pub fn put_step_entry(&self, key: &Digest, entry: &StepEntry) -> Result<()> {
        let dir = self.steps_dir();
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let bytes = serde_json::to_vec(entry).expect("entries serialize");
        self.write_file_unsynced(&self.step_path(key), &bytes)
    }

    /// Forgets the entry for `key`.
    pub fn remove_step_entry(&self, key: &Digest) -> Result<()> {
        super::blob::remove_if_exists(&self.step_path(key))
    }

    /// Every entry, by key; unreadable ones are reported in `problems`.
    pub fn step_entries(&self, problems: &mut Vec<String>) -> Result<Vec<(Digest, StepEntry)>> {
        let dir = self.steps_dir();
        let listing = match fs::read_dir(&dir) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in listing {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name
                .strip_suffix(".json")
                .and_then(|h| Digest::from_hex(h).ok())
            else {
                continue;
            };
            match self.step_entry(&key) {
                Ok(Some(e)) => out.push((key, e)),
                Ok(None) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    }

    /// The store's key for secret HMACs, created (random, 0600) on first use.
    pub fn secret_key(&self) -> Result<[u8; 32]> {
        let path = self.kiln_dir().join("secret-key");
        match fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(key);
            }
            Ok(_) => {
                return Err(StoreError::Corrupt {
                    path,
                    reason: "expected 32 bytes".into(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", &path)(e)),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| StoreError::Io {
            action: "making a random key for",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // Written to a private temp file, then linked into place: two builds
        // racing here agree on whichever key won.
        let tmp = tempfile::Builder::new()
            .prefix(".secret-key-")
            .tempfile_in(self.tmp_dir())
            .map_err(io_err("creating a temp file in", &self.tmp_dir()))?;
        restrict(tmp.path());
        tmp.as_file()
            .write_all(&key)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io_err("writing", tmp.path()))?;
        match tmp.persist_noclobber(&path) {
            Ok(_) => Ok(key),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => self.secret_key(),
            Err(e) => Err(io_err("creating", &path)(e.error)),
        }
    }
}

#[cfg(unix)]
fn restrict(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict(_: &std::path::Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = Digest::of(b"key");
        assert_eq!(store.step_entry(&key).unwrap(), None);
        let entry = StepEntry {
            diff_id: Some(Digest::of(b"tar")),
            layer: Some(Descriptor::new("application/x", Digest::of(b"gz"), 2)),
            used: 7,
            clean_of: vec!["ab".into()],
        };
        store.put_step_entry(&key, &entry).unwrap();
        assert_eq!(store.step_entry(&key).unwrap(), Some(entry.clone()));
        let mut problems = Vec::new();
        assert_eq!(
            store.step_entries(&mut problems).unwrap(),
            vec![(key, entry)]
        );
        fs::write(store.step_path(&key), b"{not json").unwrap();
        assert!(store.step_entry(&key).is_err());
        store.remove_step_entry(&key).unwrap();
        assert_eq!(store.step_entry(&key).unwrap(), None);
    }

    #[test]
    fn the_secret_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.secret_key().unwrap();
        assert_eq!(store.secret_key().unwrap(), a);
        assert_ne!(a, [0u8; 32]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("kiln/secret-key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
