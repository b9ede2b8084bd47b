//! `index.json`: which images the store holds and under which names.
//!
//! Each entry is a manifest descriptor; a tagged image carries the name in the
//! `org.opencontainers.image.ref.name` annotation as `repository:tag`, so
//! `skopeo inspect oci:STORE:hello:latest` finds it. An entry without the
//! annotation is an untagged image (what `docker images` shows as `<none>`):
//! kept until `kiln rmi` or `kiln prune` removes it.
//!
//! Updates are read-modify-write under `kiln/index.lock`, written to a temp
//! file, synced and renamed, so concurrent builds never lose each other's
//! tags and a crash never leaves a torn index. Unknown fields in the file are
//! preserved.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Result, Store, StoreError, io_err};
use crate::digest::Digest;

/// The OCI annotation naming an image in a layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct Index {
    #[serde(rename = "schemaVersion")]
    pub(crate) schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub(crate) media_type: Option<String>,
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
    #[serde(flatten)]
    pub(crate) other: BTreeMap<String, Value>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(INDEX_MEDIA_TYPE.into()),
            manifests: Vec::new(),
            other: BTreeMap::new(),
        }
    }
}

/// An OCI content descriptor.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Any other fields (platform, urls...), kept as they are.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

impl Descriptor {
    /// A descriptor with no annotations.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: None,
            other: BTreeMap::new(),
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }
}

/// An image listed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedImage {
    /// `repository:tag`, or `None` for an untagged image.
    pub name: Option<String>,
    /// The manifest.
    pub manifest: Descriptor,
}

/// How a user names an image on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `repository[:tag]`, normalized to `repository:tag`.
    Name(String),
    /// `sha256:<hex>` or a unique prefix of the hex digits (at least 4).
    Id(String),
}

/// A name that is not valid or not in the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// Not a valid image name.
    #[error("invalid image name {name:?}: {why}")]
    Invalid {
        /// What the user wrote.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// No image with that name or id.
    #[error(
        "no image {0:?} in the store (see `kiln images`; `kiln pull` or `kiln load` brings one in)"
    )]
    NotFound(String),
    /// An id prefix that matches several images.
    #[error("image id prefix {0:?} matches more than one image; give more digits")]
    Ambiguous(String),
}

impl ImageRef {
    /// Parses what a user typed: a name, `sha256:...` or an id prefix.
    pub fn parse(s: &str) -> Result<ImageRef, RefError> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(ImageRef::Id(hex.to_ascii_lowercase()));
            }
            return Err(RefError::Invalid {
                name: s.into(),
                why: "expected sha256: followed by hex digits".into(),
            });
        }
        if s.len() >= 4
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            // Could also be a repository name made of hex letters; names win
            // when they exist (checked by the store), as in docker.
            return Ok(ImageRef::Id(s.to_string()));
        }
        normalize_name(s).map(ImageRef::Name)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Name(n) => f.write_str(n),
            ImageRef::Id(id) => write!(f, "sha256:{id}"),
        }
    }
}

/// Normalizes `repository[:tag]` to `repository:tag` (tag `latest` by default).
pub fn normalize_name(s: &str) -> Result<String, RefError> {
    let bad = |why: &str| RefError::Invalid {
        name: s.into(),
        why: why.into(),
    };
    if s.contains('@') {
        return Err(bad(
            "digest references (name@sha256:...) are not supported; use the name or the image id",
        ));
    }
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match s[last_slash..].rfind(':') {
        Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
        None => (s, "latest"),
    };
    if repo.is_empty() {
        return Err(bad("the repository part is empty"));
    }
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !tag_ok {
        return Err(bad(
            "a tag is up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'",
        ));
    }
    let components: Vec<&str> = repo.split('/').collect();
    for (i, c) in components.iter().enumerate() {
        let is_host =
            i == 0 && components.len() > 1 && (c.contains(['.', ':']) || *c == "localhost");
        let ok = if is_host {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ".-:".contains(ch))
        } else {
            let bytes = c.as_bytes();
            !c.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        };
        if !ok {
            return Err(bad(
                "a repository is lowercase letters, digits and separators (. _ - /), like myapp or team/app",
            ));
        }
    }
    Ok(format!("{repo}:{tag}"))
}

impl Store {
    pub(crate) fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    pub(crate) fn write_index(&self, index: &Index) -> Result<()> {
        let json = crate::json::canonical(index);
        self.write_file_atomic(&self.index_path(), &json)
    }

    /// Runs `f` on the index under the index lock and saves the result,
    /// when it changed: a rebuild that gives the same image under the same
    /// names writes (and syncs) nothing.
    pub(crate) fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _guard = self.lock_index()?;
        let mut index = self.read_index()?;
        let before = crate::json::canonical(&index);
        let out = f(&mut index)?;
        if crate::json::canonical(&index) != before || !self.index_path().is_file() {
            self.write_index(&index)?;
        }
        Ok(out)
    }

    /// Every image in the store, in index order.
    pub fn images(&self) -> Result<Vec<TaggedImage>> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .map(|d| TaggedImage {
                name: d.ref_name().map(str::to_string),
                manifest: d,
            })
            .collect())
    }

    /// Finds the manifest an image reference names.
    pub fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let images = self.images()?;
        if let Some(img) = find_by_name(&images, reference) {
            return Ok(img.manifest.clone());
        }
        match ImageRef::parse(reference)? {
            ImageRef::Name(_) => Err(RefError::NotFound(reference.into()).into()),
            ImageRef::Id(prefix) => {
                let mut found: Vec<&Descriptor> = images
                    .iter()
                    .map(|i| &i.manifest)
                    .filter(|d| d.digest.hex().starts_with(&prefix))
                    .collect();
                found.dedup_by_key(|d| d.digest);
                match found.as_slice() {
                    [] => Err(RefError::NotFound(reference.into()).into()),
                    [one] => Ok((*one).clone()),
                    _ => Err(RefError::Ambiguous(reference.into()).into()),
                }
            }
        }
    }

    /// Records `manifest` in the index, tagged with each of `names`
    /// (normalized), or untagged when `names` is empty. A name moved off
    /// another image leaves that image untagged, as `docker build -t` does.
    pub fn add_image(&self, manifest: &Descriptor, names: &[String]) -> Result<()> {
        self.update_index(|index| {
            for name in names {
                for d in index.manifests.iter_mut() {
                    if d.ref_name() == Some(name.as_str())
                        && let Some(a) = d.annotations.as_mut()
                    {
                        a.remove(REF_NAME);
                    }
                }
            }
            let mut entries = Vec::new();
            for name in names {
                let mut d = manifest.clone();
                d.annotations
                    .get_or_insert_with(BTreeMap::new)
                    .insert(REF_NAME.into(), name.clone());
                entries.push(d);
            }
            if entries.is_empty() {
                entries.push(manifest.clone());
            }
            index.manifests.extend(entries);
            dedup_untagged(index);
            Ok(())
        })
    }

    /// Removes an image: by name, just that tag; by id, every entry of the
    /// image. Returns the names removed, the manifest digest, and whether the
    /// image is now gone from the index (its blobs stay until `kiln prune`).
    pub fn remove_image(&self, reference: &str) -> Result<(Vec<String>, Digest, bool)> {
        let images = self.images()?;
        let name = find_by_name(&images, reference).and_then(|i| i.name.clone());
        let digest = self.resolve(reference)?.digest;
        self.update_index(|index| {
            let mut removed = Vec::new();
            index.manifests.retain(|d| {
                let hit = match &name {
                    Some(n) => d.ref_name() == Some(n.as_str()),
                    None => d.digest == digest,
                };
                if hit && let Some(n) = d.ref_name() {
                    removed.push(n.to_string());
                }
                !hit
            });
            let gone = !index.manifests.iter().any(|d| d.digest == digest);
            Ok((removed, digest, gone))
        })
    }
}

/// The image whose name is `reference` as written or normalized. Exact
/// matches also find images in layouts written by other tools, which often
/// store a bare tag.
fn find_by_name<'a>(images: &'a [TaggedImage], reference: &str) -> Option<&'a TaggedImage> {
    let normalized = normalize_name(reference).ok();
    images
        .iter()
        .find(|i| i.name.as_deref() == Some(reference))
        .or_else(|| {
            let n = normalized.as_deref()?;
            images.iter().find(|i| i.name.as_deref() == Some(n))
        })
}

/// Drops untagged entries for manifests that also have a tagged entry, and
/// duplicate untagged entries.
fn dedup_untagged(index: &mut Index) {
    let tagged: Vec<Digest> = index
        .manifests
        .iter()
        .filter(|d| d.ref_name().is_some())
        .map(|d| d.digest)
        .collect();
    let mut seen_untagged = Vec::new();
    index.manifests.retain(|d| {
        if d.ref_name().is_some() {
            return true;
        }
        if tagged.contains(&d.digest) || seen_untagged.contains(&d.digest) {
            return false;
        }
        seen_untagged.push(d.digest);
        true
    });
    for d in index.manifests.iter_mut() {
        if d.annotations.as_ref().is_some_and(BTreeMap::is_empty) {
            d.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_names_like_docker() {
        assert_eq!(normalize_name("hello").unwrap(), "hello:latest");
        assert_eq!(normalize_name("team/app:1.0").unwrap(), "team/app:1.0");
        assert_eq!(
            normalize_name("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_name("registry.example.com/a/b:v2").unwrap(),
            "registry.example.com/a/b:v2"
        );
        for bad in [
            "Hello",
            "app:",
            ":tag",
            "app:-x",
            "a//b",
            "app@sha256:00",
            "-app",
        ] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_ids_and_names() {
        assert_eq!(
            ImageRef::parse("sha256:abcd").unwrap(),
            ImageRef::Id("abcd".into())
        );
        assert_eq!(
            ImageRef::parse("abcdef12").unwrap(),
            ImageRef::Id("abcdef12".into())
        );
        assert_eq!(
            ImageRef::parse("app").unwrap(),
            ImageRef::Name("app:latest".into())
        );
        assert!(ImageRef::parse("sha256:xyz").is_err());
    }
}
