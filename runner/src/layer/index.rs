//! The layer index: a layer's [`ChangeSet`] saved beside its blob (by
//! diff_id), so a later build gets the image's snapshot without reading,
//! decompressing and re-hashing the layer tars.
//!
//! One JSON record per path, flat and explicit, e.g.
//! `{"path":"app/a.txt","type":"file","mode":420,"uid":0,"gid":0,"mtime":0,"digest":"sha256:..","size":5}`.
//!
//! The document carries the sha256 of its `changes` array as written
//! (`"digest"`), so a damaged index is detected on read, even one that
//! still parses (a flipped letter in a path), and rebuilt from its layer
//! blob. Indexes written before the digest existed are read as they are.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::snapshot::{Change, ChangeSet, FileRef, ImagePath, Meta, Node};

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

#[derive(Serialize, Deserialize)]
struct Record {
    path: ImagePath,
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Document {
    version: u32,
    changes: Vec<Record>,
    /// The digest of `changes` serialized alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
}

fn digest_of(records: &[Record]) -> Digest {
    Digest::of(&serde_json::to_vec(records).expect("layer indexes always serialize"))
}

/// Serializes a change set.
pub fn to_json(changes: &ChangeSet) -> Vec<u8> {
    let records: Vec<Record> = changes
        .iter()
        .map(|(path, change)| {
            let mut r = Record {
                path: path.clone(),
                kind: Kind::Whiteout,
                meta: None,
                digest: None,
                size: None,
                target: None,
            };
            match change {
                Change::Put(Node::Dir(m)) => (r.kind, r.meta) = (Kind::Dir, Some(*m)),
                Change::Put(Node::File(m, f)) => {
                    (r.kind, r.meta, r.digest, r.size) =
                        (Kind::File, Some(*m), Some(f.digest), Some(f.size));
                }
                Change::Put(Node::Symlink(m, t)) => {
                    (r.kind, r.meta, r.target) = (Kind::Symlink, Some(*m), Some(t.clone()));
                }
                Change::Hardlink(t) => {
                    (r.kind, r.target) = (Kind::Hardlink, Some(t.as_str().to_string()))
                }
                Change::Whiteout => {}
                Change::Opaque(m) => (r.kind, r.meta) = (Kind::Opaque, Some(*m)),
            }
            r
        })
        .collect();
    let digest = Some(digest_of(&records));
    serde_json::to_vec(&Document {
        version: 1,
        changes: records,
        digest,
    })
    .expect("layer indexes always serialize")
}

/// Parses a change set written by [`to_json`].
pub fn from_json(bytes: &[u8]) -> Result<ChangeSet, String> {
    let doc: Document = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if doc.version != 1 {
        return Err(format!("unknown layer index version {}", doc.version));
    }
    if let Some(expected) = doc.digest {
        let actual = digest_of(&doc.changes);
        if actual != expected {
            return Err(format!(
                "its changes have digest {actual}, but the index says {expected}"
            ));
        }
    }
    let mut out = ChangeSet::new();
    for r in doc.changes {
        let meta = || {
            r.meta
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
        out.insert(r.path, change);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                },
            )),
        );
        c.insert(p("d/l"), Change::Put(Node::Symlink(m, "../f".into())));
        c.insert(p("d/h"), Change::Hardlink(p("d/f")));
        c.insert(p("gone"), Change::Whiteout);
        c.insert(p("o"), Change::Opaque(m));
        assert_eq!(from_json(&to_json(&c)).unwrap(), c);
        assert_eq!(
            from_json(br#"{"version":1,"changes":[{"path":"gone","type":"whiteout"}]}"#)
                .unwrap()
                .len(),
            1,
            "indexes written before the digest are still read"
        );
        assert!(from_json(br#"{"version":2,"changes":[]}"#).is_err());
        assert!(
            from_json(br#"{"version":1,"changes":[{"path":"../x","type":"whiteout"}]}"#).is_err()
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
        };
        c.insert(
            ImagePath::parse("app/a.txt").unwrap(),
            Change::Put(Node::File(m, file)),
        );
        let json = String::from_utf8(to_json(&c)).unwrap();
        // One letter of a path flipped: still valid JSON, still a valid path.
        let flipped = json.replacen("a.txt", "b.txt", 1);
        assert_ne!(json, flipped);
        let err = from_json(flipped.as_bytes()).unwrap_err();
        assert!(err.contains("but the index says"), "{err}");
    }
}
