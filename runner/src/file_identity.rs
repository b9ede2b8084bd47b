//! What tells a file's version without reading it: size, modification and
//! change times to the nanosecond, inode and device. kiln keeps digests by
//! it (context files in `context/stat_cache.rs`, verified store blobs in
//! `store/verified.rs`), the way git's index and BuildKit's contenthash
//! do: a file whose identity is unchanged is not read again.
//!
//! The one case the identity cannot see is a file changed again within
//! the timestamp granularity of its filesystem, right after it was read
//! ("racily clean", in git's words). [`FileIdentity::settled`] says whether
//! a file is old enough for that to be impossible; only settled identities
//! are remembered.

use std::fs::Metadata;
use std::time::{Duration, SystemTime};

/// How old a file's last change must be before its identity is trusted:
/// more than any filesystem's timestamp granularity (FAT's is 2 s).
const SETTLE: Duration = Duration::from_secs(3);

/// A file's identity (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    size: u64,
    /// Nanoseconds since the Unix epoch.
    modified: i128,
    /// Nanoseconds since the Unix epoch (creation time on Windows, which
    /// has no change time in std).
    changed: i128,
    inode: u64,
    device: u64,
}

impl FileIdentity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &Metadata) -> FileIdentity {
        FileIdentity::of_cap(&cap_std::fs::Metadata::from_just_metadata(meta.clone()))
    }

    /// The identity of the file cap-std's `meta` describes (the context
    /// stats its files through cap-std: one system call, no second open).
    pub fn of_cap(meta: &cap_std::fs::Metadata) -> FileIdentity {
        #[cfg(unix)]
        {
            use cap_std::fs::MetadataExt;
            let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
            FileIdentity {
                size: meta.size(),
                modified: ns(meta.mtime(), meta.mtime_nsec()),
                changed: ns(meta.ctime(), meta.ctime_nsec()),
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            let ns = |t: std::io::Result<cap_std::time::SystemTime>| {
                t.ok()
                    .and_then(|t| t.into_std().duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as i128)
            };
            // No file index in stable std on Windows: size and both times.
            FileIdentity {
                size: meta.len(),
                modified: ns(meta.modified()),
                changed: ns(meta.created()),
                inode: 0,
                device: 0,
            }
        }
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the file last changed long enough ago (see the module docs)
    /// that a change now would show in its identity.
    pub fn settled(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let latest = self.modified.max(self.changed);
        now - latest > SETTLE.as_nanos() as i128
    }

    /// A one-line text form, for the files that keep identities.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// Appends [`FileIdentity::encode`]'s form to `out`.
    pub fn encode_into(&self, out: &mut String) {
        let mut n = itoa::Buffer::new();
        out.push_str(n.format(self.size));
        out.push(' ');
        out.push_str(n.format(self.modified));
        out.push(' ');
        out.push_str(n.format(self.changed));
        out.push(' ');
        out.push_str(n.format(self.inode));
        out.push(' ');
        out.push_str(n.format(self.device));
    }

    /// Reads [`FileIdentity::encode`]'s form; `None` when it is not that.
    pub fn decode(text: &str) -> Option<FileIdentity> {
        let mut it = text.split(' ');
        let identity = FileIdentity::decode_fields(&mut it)?;
        it.next().is_none().then_some(identity)
    }

    /// Reads the five fields of [`FileIdentity::encode`]'s form from a
    /// line split at spaces, leaving the rest of it.
    pub fn decode_fields<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Option<FileIdentity> {
        Some(FileIdentity {
            size: fields.next()?.parse().ok()?,
            modified: fields.next()?.parse().ok()?,
            changed: fields.next()?.parse().ok()?,
            inode: fields.next()?.parse().ok()?,
            device: fields.next()?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_sees_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let a = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        assert_eq!(FileIdentity::decode(&a.encode()), Some(a));
        assert_eq!(a.size(), 3);
        assert!(!a.settled(), "just written");
        std::fs::write(&path, b"two!").unwrap();
        let b = FileIdentity::of(&std::fs::metadata(&path).unwrap());
        assert_ne!(a, b);
        let dir =
            cap_std::fs::Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        assert_eq!(FileIdentity::of_cap(&dir.symlink_metadata("f").unwrap()), b);
        for bad in ["", "1 2 3 4", "1 2 3 4 5 6", "x 2 3 4 5"] {
            assert_eq!(FileIdentity::decode(bad), None, "{bad:?}");
        }
    }
}
