//! Blobs known to match their digest, by [`FileIdentity`].
//!
//! A step cache hit reads its layer blob whole to check it against its
//! digest before trusting it. Doing that on every rebuild would read every
//! cached layer every time (a 1 GiB layer: most of a second), so the first
//! check leaves a note, `kiln/verified/<hex>`, with the blob's identity,
//! after syncing the blob to disk; later hits trust a blob whose identity
//! is the noted one. Blobs are never changed in place by kiln (a new one
//! is a new file, renamed over), so an identity that still matches means
//! the bytes checked are the bytes there. What it does not see is damage
//! that leaves the identity alone (a disk's bit rot, an edit that restores
//! the times); `kiln check` reads every blob whole, always.

use std::fs;
use std::path::PathBuf;

use super::Store;
use crate::digest::Digest;
use crate::file_identity::FileIdentity;

impl Store {
    fn verified_note(&self, digest: &Digest) -> PathBuf {
        self.kiln_dir().join("verified").join(digest.hex())
    }

    /// Whether blob `digest` was read whole and matched, and has not
    /// changed since.
    pub fn blob_known_good(&self, digest: &Digest) -> bool {
        let Ok(meta) = fs::metadata(self.blob_path(digest)) else {
            return false;
        };
        let noted = fs::read_to_string(self.verified_note(digest));
        noted.is_ok_and(|text| {
            FileIdentity::decode(text.trim_end()) == Some(FileIdentity::of(&meta))
        })
    }

    /// Notes that blob `digest` was just read whole and matched: syncs it
    /// (so the note never outlives the bytes on a power loss) and keeps
    /// its identity. Best effort: a failure costs the next hit a read.
    pub fn note_blob_good(&self, digest: &Digest) {
        let path = self.blob_path(digest);
        let Ok(file) = fs::File::open(&path) else {
            return;
        };
        if file.sync_data().is_err() {
            return;
        }
        let Ok(meta) = file.metadata() else { return };
        let note = self.verified_note(digest);
        if let Some(dir) = note.parent()
            && fs::create_dir_all(dir).is_ok()
        {
            let _ = self.write_file_unsynced(&note, FileIdentity::of(&meta).encode().as_bytes());
        }
    }

    /// Forgets the note of a blob that is gone or damaged.
    pub(super) fn forget_blob_good(&self, digest: &Digest) {
        let _ = fs::remove_file(self.verified_note(digest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_holds_until_the_blob_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.blob_writer().unwrap();
        std::io::Write::write_all(&mut w, b"layer bytes").unwrap();
        let (digest, _) = w.commit().unwrap();
        assert!(!store.blob_known_good(&digest), "never checked");
        store.note_blob_good(&digest);
        assert!(store.blob_known_good(&digest));
        // Replaced by other bytes (a new file under the same name).
        let path = store.blob_path(&digest);
        let tmp = dir.path().join("other");
        fs::write(&tmp, b"layer bytez").unwrap();
        fs::rename(&tmp, &path).unwrap();
        assert!(!store.blob_known_good(&digest));
        store.note_blob_good(&digest);
        store.discard_blob(&digest).unwrap();
        assert!(!store.blob_known_good(&digest));
        assert!(
            !store.verified_note(&digest).exists(),
            "forgotten with the blob"
        );
    }
}
