//! The layer index: a layer's [`ChangeSet`] saved beside its blob (by
//! diff_id), so a later build gets the image's snapshot without reading,
//! decompressing and re-hashing the layer tars.
//!
//! One JSON record per path, flat and explicit, e.g.
//! `{"path":"app/a.txt","type":"file","mode":420,"uid":0,"gid":0,"mtime":0,"digest":"sha256:..","size":5,"at":1536}`.
//! `at` is where the file's bytes start in the layer's pack (its
//! uncompressed tar, the blob named by the diff_id: see [`crate::store`]);
//! a file without `at` has loose contents (indexes of format 1 stores).
//!
//! The document carries the sha256 of its `changes` array as written
//! (`"digest"`), so a damaged index is detected on read, even one that
//! still parses (a flipped letter in a path), and rebuilt from its layer
//! blob. Indexes written before the digest existed are read as they are.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::snapshot::{Change, ChangeSet, FileRef, ImagePath, Meta, Node, Packed};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    Whiteout,
    Opaque,
}

/// One path. The metadata fields are spelled out (not a flattened
/// [`Meta`], which serde reads through a buffered map, several times
/// slower on an index of 100,000 records); they serialize the same.
/// Read, it owns its path and target; written, it borrows them from the
/// change set (`Record<&str, &str>`), so writing an index copies no path.
#[derive(Serialize, Deserialize)]
struct Record<P = ImagePath, T = String> {
    path: P,
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mtime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<u64>,
}

impl<P, T> Record<P, T> {
    fn meta(&self) -> Option<Meta> {
        Some(Meta {
            mode: self.mode?,
            uid: self.uid?,
            gid: self.gid?,
            mtime: self.mtime?,
        })
    }
}

impl<'a> Record<&'a str, &'a str> {
    /// The record of `change` at `path`, in layer `diff_id`.
    fn written(diff_id: &Digest, path: &'a ImagePath, change: &'a Change) -> Self {
        let mut r = Record {
            path: path.as_str(),
            kind: Kind::Whiteout,
            mode: None,
            uid: None,
            gid: None,
            mtime: None,
            digest: None,
            size: None,
            target: None,
            at: None,
        };
        let meta = match change {
            Change::Put(Node::Dir(m)) => {
                r.kind = Kind::Dir;
                Some(m)
            }
            Change::Put(Node::File(m, f)) => {
                (r.kind, r.digest, r.size) = (Kind::File, Some(f.digest), Some(f.size));
                debug_assert!(
                    f.at.is_none_or(|p| p.layer == *diff_id),
                    "{path}: another pack"
                );
                r.at = f.at.map(|p| p.offset);
                Some(m)
            }
            Change::Put(Node::Symlink(m, t)) => {
                (r.kind, r.target) = (Kind::Symlink, Some(t.as_str()));
                Some(m)
            }
            Change::Hardlink(t) => {
                (r.kind, r.target) = (Kind::Hardlink, Some(t.as_str()));
                None
            }
            Change::Whiteout => None,
            Change::Opaque(m) => {
                r.kind = Kind::Opaque;
                Some(m)
            }
        };
        if let Some(m) = meta {
            (r.mode, r.uid, r.gid, r.mtime) =
                (Some(m.mode), Some(m.uid), Some(m.gid), Some(m.mtime));
        }
        r
    }
}

/// The `changes` array of a layer index: one record per path,
/// made as it is serialized.
struct Records<'a> {
    diff_id: &'a Digest,
    changes: &'a ChangeSet,
}

impl Serialize for Records<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.changes
                .iter()
                .map(|(path, change)| Record::written(self.diff_id, path, change)),
        )
    }
}

/// An index as read: its changes still as written, so their digest is
/// taken over the very bytes of the file.
#[derive(Deserialize)]
struct Read<'a> {
    version: u32,
    #[serde(borrow)]
    changes: &'a serde_json::value::RawValue,
    #[serde(default)]
    digest: Option<Digest>,
}

/// The digest of `records` serialized again (an index written with other
/// spacing than kiln's).
fn digest_of(records: &[Record]) -> Digest {
    Digest::of(&serde_json::to_vec(records).expect("layer indexes always serialize"))
}

/// Serializes the change set of layer `diff_id`, whose packed files are
/// all in that layer's pack: `{"version":1,"changes":[...],"digest":".."}`,
/// the array serialized once and its digest taken over those bytes.
pub fn to_json(diff_id: &Digest, changes: &ChangeSet) -> Vec<u8> {
    const HEAD: &[u8] = br#"{"version":1,"changes":"#;
    let mut out = Vec::with_capacity(HEAD.len() + changes.len() * 200 + 96);
    out.extend_from_slice(HEAD);
    serde_json::to_writer(&mut out, &Records { diff_id, changes })
        .expect("layer indexes always serialize");
    let digest = Digest::of(&out[HEAD.len()..]);
    out.extend_from_slice(br#","digest":"#);
    serde_json::to_writer(&mut out, &digest).expect("digests always serialize");
    out.push(b'}');
    out
}

/// Parses the change set of layer `diff_id`, written by [`to_json`].
pub fn from_json(diff_id: &Digest, bytes: &[u8]) -> Result<ChangeSet, String> {
    let doc: Read<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if doc.version != 1 {
        return Err(format!("unknown layer index version {}", doc.version));
    }
    let raw = doc.changes.get();
    let records: Vec<Record> = serde_json::from_str(raw).map_err(|e| e.to_string())?;
    if let Some(expected) = doc.digest
        // As kiln writes it (compact), the digest is of these very bytes;
        // written any other way, of the records serialized again.
        && Digest::of(raw.as_bytes()) != expected
    {
        let actual = digest_of(&records);
        if actual != expected {
            return Err(format!(
                "its changes have digest {actual}, but the index says {expected}"
            ));
        }
    }
    // In path order as written, so the map is built in one pass.
    records.into_iter().map(|r| change_of(diff_id, r)).collect()
}

fn change_of(diff_id: &Digest, r: Record) -> Result<(ImagePath, Change), String> {
    let meta = || {
        r.meta()
            .ok_or_else(|| format!("{}: missing metadata", r.path))
    };
    let change = match r.kind {
        Kind::Dir => Change::Put(Node::Dir(meta()?)),
        Kind::File => Change::Put(Node::File(
            meta()?,
            FileRef {
                digest: r
                    .digest
                    .ok_or_else(|| format!("{}: missing digest", r.path))?,
                size: r.size.ok_or_else(|| format!("{}: missing size", r.path))?,
                at: r.at.map(|offset| Packed {
                    layer: *diff_id,
                    offset,
                }),
            },
        )),
        Kind::Symlink => Change::Put(Node::Symlink(
            meta()?,
            r.target
                .clone()
                .ok_or_else(|| format!("{}: missing target", r.path))?,
        )),
        Kind::Hardlink => Change::Hardlink(
            ImagePath::parse(
                r.target
                    .as_deref()
                    .ok_or_else(|| format!("{}: missing target", r.path))?,
            )
            .map_err(|e| e.to_string())?,
        ),
        Kind::Whiteout => Change::Whiteout,
        Kind::Opaque => Change::Opaque(meta()?),
    };
    Ok((r.path, change))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Digest {
        Digest::of(b"layer")
    }

    #[test]
    fn roundtrips_every_kind() {
        let m = Meta {
            mode: 0o640,
            uid: 1,
            gid: 2,
            mtime: 3,
        };
        let mut c = ChangeSet::new();
        let p = |s: &str| ImagePath::parse(s).unwrap();
        c.insert(p("d"), Change::Put(Node::Dir(m)));
        c.insert(
            p("d/f"),
            Change::Put(Node::File(
                m,
                FileRef {
                    digest: Digest::of(b"x"),
                    size: 1,
                    at: Some(Packed {
                        layer: id(),
                        offset: 512,
                    }),
                },
            )),
        );
        c.insert(
            p("d/loose"),
            Change::Put(Node::File(m, FileRef::loose(Digest::of(b"y"), 1))),
        );
        c.insert(p("d/l"), Change::Put(Node::Symlink(m, "../f".into())));
        c.insert(p("d/h"), Change::Hardlink(p("d/f")));
        c.insert(p("gone"), Change::Whiteout);
        c.insert(p("o"), Change::Opaque(m));
        assert_eq!(from_json(&id(), &to_json(&id(), &c)).unwrap(), c);
        assert_eq!(
            from_json(
                &id(),
                br#"{"version":1,"changes":[{"path":"gone","type":"whiteout"}]}"#
            )
            .unwrap()
            .len(),
            1,
            "indexes written before the digest are still read"
        );
        // Written another way (spaces, lines): the same changes, checked
        // by their digest all the same.
        let compact = String::from_utf8(to_json(&id(), &c)).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&compact).unwrap();
        let pretty = serde_json::to_string_pretty(&doc).unwrap();
        assert_ne!(pretty, compact);
        assert_eq!(from_json(&id(), pretty.as_bytes()).unwrap(), c);
        let damaged = pretty.replacen("\"d/l\"", "\"d/m\"", 1);
        assert!(from_json(&id(), damaged.as_bytes()).is_err());
        assert!(from_json(&id(), br#"{"version":2,"changes":[]}"#).is_err());
        assert!(
            from_json(
                &id(),
                br#"{"version":1,"changes":[{"path":"../x","type":"whiteout"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn a_damaged_index_that_still_parses_is_refused() {
        let mut c = ChangeSet::new();
        let m = Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        let file = FileRef {
            digest: Digest::of(b"x"),
            size: 1,
            at: Some(Packed {
                layer: id(),
                offset: 1536,
            }),
        };
        c.insert(
            ImagePath::parse("app/a.txt").unwrap(),
            Change::Put(Node::File(m, file)),
        );
        let json = String::from_utf8(to_json(&id(), &c)).unwrap();
        // The format the module docs show, byte for byte (indexes written
        // by earlier versions are read, and checked, as they are).
        assert!(
            json.contains(&format!(
                r#"{{"path":"app/a.txt","type":"file","mode":420,"uid":0,"gid":0,"mtime":0,"digest":"{}","size":1,"at":1536}}"#,
                file.digest
            )),
            "{json}"
        );
        // One letter of a path flipped: still valid JSON, still a valid path.
        let flipped = json.replacen("a.txt", "b.txt", 1);
        assert_ne!(json, flipped);
        let err = from_json(&id(), flipped.as_bytes()).unwrap_err();
        assert!(err.contains("but the index says"), "{err}");
    }
}
