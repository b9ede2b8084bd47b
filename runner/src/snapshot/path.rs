//! [`ImagePath`]: a normalized path inside an image's filesystem.
//!
//! Paths are stored relative to the image root without a leading `/`
//! (`etc/passwd`; the root itself is the empty path), never contain `.`,
//! `..` or empty components, and order component by component, so a
//! directory sorts immediately before everything inside it. That order is
//! the order of tar entries in every layer kiln writes.

use std::cmp::Ordering;
use std::fmt;

/// Longest path kiln accepts, in bytes: Linux's `PATH_MAX`. Anything longer
/// cannot be extracted by the runtimes that consume the image.
pub const MAX_PATH_BYTES: usize = 4096;

/// Longest single name: Linux's `NAME_MAX`.
pub const MAX_NAME_BYTES: usize = 255;

/// A normalized path in an image. See the module docs.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct ImagePath(pub(super) String);

/// A path that cannot be part of an image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Longer than [`MAX_PATH_BYTES`].
    #[error("path is {0} bytes long; the limit is {MAX_PATH_BYTES}")]
    TooLong(usize),
    /// A component longer than [`MAX_NAME_BYTES`].
    #[error("file name {0:?} is longer than {MAX_NAME_BYTES} bytes")]
    NameTooLong(String),
    /// Contains a NUL byte.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
}

impl ImagePath {
    /// The root directory.
    pub fn root() -> ImagePath {
        ImagePath(String::new())
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Resolves `path` lexically against `base` (used when `path` is
    /// relative): `.` is dropped, `..` goes up and stops at the root, as in a
    /// container where `/..` is `/`.
    pub fn resolve(base: &ImagePath, path: &str) -> Result<ImagePath, PathError> {
        if path.contains('\0') {
            return Err(PathError::Nul(path.to_string()));
        }
        let mut parts: Vec<&str> = if path.starts_with('/') {
            Vec::new()
        } else {
            base.components().collect()
        };
        for part in path.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name if name.len() > MAX_NAME_BYTES => {
                    return Err(PathError::NameTooLong(name.to_string()));
                }
                name => parts.push(name),
            }
        }
        let joined = parts.join("/");
        if joined.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(joined.len()));
        }
        Ok(ImagePath(joined))
    }

    /// Parses an absolute or root-relative path (`/a/b`, `a/b`, `./a/b/`).
    pub fn parse(path: &str) -> Result<ImagePath, PathError> {
        ImagePath::resolve(&ImagePath::root(), path)
    }

    /// The path with `name` appended; `name` must be a single component.
    pub fn join(&self, name: &str) -> ImagePath {
        debug_assert!(!name.is_empty() && !name.contains('/') && name != "." && name != "..");
        if self.0.is_empty() {
            ImagePath(name.to_string())
        } else {
            ImagePath(format!("{}/{name}", self.0))
        }
    }

    /// The parent directory; the root's parent is the root.
    pub fn parent(&self) -> ImagePath {
        ImagePath(self.parent_str().to_string())
    }

    /// [`ImagePath::parent`]'s text, without making a path of it.
    pub fn parent_str(&self) -> &str {
        self.0.rfind('/').map_or("", |i| &self.0[..i])
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The components from the root down.
    pub fn components(&self) -> impl DoubleEndedIterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// Every proper ancestor except the root, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> Vec<ImagePath> {
        let mut out = Vec::new();
        let mut end = 0;
        while let Some(i) = self.0[end..].find('/') {
            end += i;
            out.push(ImagePath(self.0[..end].to_string()));
            end += 1;
        }
        out
    }

    /// A key that sorts after `self` and everything inside it but before
    /// its next sibling (a NUL ends the name, and NUL sorts right after
    /// `/`): never a real path, since paths refuse NUL. Lets an ordered map
    /// skip a whole subtree in one look-up.
    pub(crate) fn subtree_end(&self) -> ImagePath {
        ImagePath(format!("{}\0", self.0))
    }

    /// Whether `self` is directly inside `dir`.
    pub fn is_child_of(&self, dir: &ImagePath) -> bool {
        self.0.len() > dir.0.len()
            && self.starts_with(dir)
            && !self.0[dir.0.len()..].trim_start_matches('/').contains('/')
    }

    /// Whether `self` is `other` or inside it.
    pub fn starts_with(&self, other: &ImagePath) -> bool {
        other.0.is_empty()
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
    }

    /// The path relative to the root, without a leading slash (tar form).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The absolute form, `/a/b` (`/` for the root).
    pub fn absolute(&self) -> String {
        format!("/{}", self.0)
    }
}

impl Ord for ImagePath {
    fn cmp(&self, other: &Self) -> Ordering {
        // Compare as if '/' were the smallest byte: component-wise order,
        // so "a", "a/b", "a-b" sort in that order.
        let key = |b: u8| if b == b'/' { 0 } else { u16::from(b) + 1 };
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        // Only the first byte that differs decides (or, when there is none,
        // the length): skip the common prefix a chunk at a time (slice
        // equality is one memcmp), so deep paths that share thousands of
        // bytes compare quickly.
        const CHUNK: usize = 16;
        let n = a.len().min(b.len());
        let mut i = 0;
        while i + CHUNK <= n && a[i..i + CHUNK] == b[i..i + CHUNK] {
            i += CHUNK;
        }
        match a[i..n].iter().zip(&b[i..n]).position(|(x, y)| x != y) {
            Some(at) => key(a[i + at]).cmp(&key(b[i + at])),
            None => a.len().cmp(&b.len()),
        }
    }
}

impl PartialOrd for ImagePath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", self.0)
    }
}

impl fmt::Debug for ImagePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.absolute())
    }
}

impl serde::Serialize for ImagePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ImagePath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ImagePath, D::Error> {
        let s = String::deserialize(d)?;
        let p = ImagePath::parse(&s).map_err(serde::de::Error::custom)?;
        if p.0 != s {
            return Err(serde::de::Error::custom(format!(
                "path {s:?} is not normalized"
            )));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        ImagePath::parse(s).unwrap()
    }

    #[test]
    fn the_order_is_component_wise_however_long_the_common_prefix() {
        // The order '/' is the smallest byte gives, byte by byte.
        let naive = |a: &ImagePath, b: &ImagePath| {
            let key = |c: &u8| if *c == b'/' { 0 } else { u16::from(*c) + 1 };
            a.0.as_bytes()
                .iter()
                .map(key)
                .cmp(b.0.as_bytes().iter().map(key))
        };
        let deep = "d/".repeat(100);
        let names = ["a", "a/b", "a-b", "a/b/c", "a0", "b", "a/b-c", "a/bc"];
        let paths: Vec<ImagePath> = names
            .iter()
            .flat_map(|n| [p(n), p(&format!("{deep}{n}"))])
            .collect();
        for x in &paths {
            for y in &paths {
                assert_eq!(x.cmp(y), naive(x, y), "{x} vs {y}");
            }
            // The end of a subtree sorts after everything inside it and
            // before the next sibling.
            let end = x.subtree_end();
            assert!(*x < end && x.join("z") < end && end < p(&format!("{}-", x.as_str())));
        }
    }

    #[test]
    fn normalizes_lexically_and_clamps_at_root() {
        assert_eq!(p("/a/./b//c/").as_str(), "a/b/c");
        assert_eq!(p("/../../etc/passwd").as_str(), "etc/passwd");
        assert_eq!(p("a/b/../../..").as_str(), "");
        assert_eq!(
            ImagePath::resolve(&p("/app"), "src/../bin")
                .unwrap()
                .as_str(),
            "app/bin"
        );
        assert_eq!(
            ImagePath::resolve(&p("/app"), "/abs").unwrap().as_str(),
            "abs"
        );
        assert!(p("/").is_root());
    }

    #[test]
    fn rejects_what_no_image_can_hold() {
        assert!(matches!(ImagePath::parse("a\0b"), Err(PathError::Nul(_))));
        assert!(matches!(
            ImagePath::parse(&"x".repeat(256)),
            Err(PathError::NameTooLong(_))
        ));
        let deep = "abcdefgh/".repeat(600);
        assert!(matches!(
            ImagePath::parse(&deep),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn sorts_directories_before_their_contents() {
        let mut v = [p("a-b"), p("a/b"), p("a"), p("a/b/c"), p("a.txt"), p("B")];
        v.sort();
        let s: Vec<&str> = v.iter().map(|x| x.as_str()).collect();
        assert_eq!(s, vec!["B", "a", "a/b", "a/b/c", "a-b", "a.txt"]);
    }

    #[test]
    fn parents_names_and_ancestors() {
        let x = p("a/b/c");
        assert_eq!(x.parent(), p("a/b"));
        assert_eq!(x.name(), "c");
        assert_eq!(x.ancestors(), vec![p("a"), p("a/b")]);
        assert!(x.starts_with(&p("a/b")));
        assert!(!p("a/bc").starts_with(&p("a/b")));
        assert!(x.starts_with(&ImagePath::root()));
        assert_eq!(p("top").parent(), ImagePath::root());
    }
}
