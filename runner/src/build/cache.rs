//! The step cache, from the builder's side: cache keys, and reusing the
//! layer a key names (the entries themselves live in `store/steps.rs`).
//!
//! Every instruction that makes a layer (COPY, RUN, WORKDIR) has a key: a
//! sha256 over, in order and length-prefixed, a format version, the kind of
//! step, the key of the filesystem it starts from, the timestamp epoch and
//! layer compression, and what the step reads. The filesystem key starts at
//! the base (`scratch` and the platform, a stored image's manifest digest,
//! or another stage's filesystem key) and takes in the diff_id of each
//! layer made on it ([`filesystem_key`]), so it names the bytes the step
//! sees, whatever steps made them. What a step reads:
//!
//! - COPY: its history line after expansion, and every change it will make
//!   (paths, modes, owners, and file contents by sha256, never by mtime);
//! - RUN: its history line (the command as written and its mount specs),
//!   the argv after expansion, the environment, WORKDIR, user and platform;
//!   for each bind mount, the digest of what it shows (a context directory
//!   hashed file by file, another stage's key, an image's digest); for each
//!   secret mount, an HMAC of the value under the store's own key, or that
//!   it was absent; cache and tmpfs mounts by their spec only, as BuildKit;
//! - WORKDIR: the path and the owner of the directories it creates.
//!
//! Metadata instructions (ENV, LABEL, CMD...) are not in the chain: they
//! reach a step only through what its key already holds (the environment,
//! the user...), so changing a LABEL reruns nothing. The filesystem a RUN
//! sees is the result of the steps before it, which the chain pins.

use sha2::{Digest as _, Sha256};

use super::{Build, BuildError};
use crate::context::{self, EntryKind};
use crate::digest::Digest;
use crate::layer::{Content, PendingChanges};
use crate::snapshot::{Change, ImagePath, Meta, Node};

/// Changes when what goes into keys changes, so old entries simply miss.
const KEY_FORMAT: &str = "kiln step cache v1";

/// Builds a cache key field by field.
pub(super) struct Key(Sha256);

impl Key {
    /// A key for a step of `kind` (`copy`, `run`, `workdir`, `base`...).
    pub(super) fn new(kind: &str) -> Key {
        let mut k = Key(Sha256::new());
        k.add("format", KEY_FORMAT).add("kind", kind);
        k
    }

    /// Adds a named field; names and values are length-prefixed, so no two
    /// different sequences of fields hash the same bytes.
    pub(super) fn add(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Key {
        let value = value.as_ref();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// [`Key::add`] of the value `parts` make together, without joining
    /// them first.
    fn add_parts(&mut self, name: &str, parts: &[&[u8]]) -> &mut Key {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.0.update((name.len() as u64).to_le_bytes());
        self.0.update(name.as_bytes());
        self.0.update((len as u64).to_le_bytes());
        for part in parts {
            self.0.update(part);
        }
        self
    }

    /// Adds an image path, absolute (`/a/b`).
    fn path(&mut self, name: &str, path: &ImagePath) -> &mut Key {
        self.add_parts(name, &[b"/", path.as_str().as_bytes()])
    }

    /// Adds a digest.
    pub(super) fn digest(&mut self, name: &str, d: &Digest) -> &mut Key {
        self.add(name, d.as_bytes())
    }

    /// Adds a node's metadata, as `{mode:o} {uid}:{gid} {mtime}`; written
    /// without `fmt`, as a COPY adds it for each of its files.
    fn meta(&mut self, m: &Meta) -> &mut Key {
        let mut octal = [0u8; 11];
        let mut at = octal.len();
        let mut mode = m.mode;
        loop {
            at -= 1;
            octal[at] = b'0' + (mode & 7) as u8;
            mode >>= 3;
            if mode == 0 {
                break;
            }
        }
        let (mut uid, mut gid, mut mtime) = (
            itoa::Buffer::new(),
            itoa::Buffer::new(),
            itoa::Buffer::new(),
        );
        self.add_parts(
            "meta",
            &[
                &octal[at..],
                b" ",
                uid.format(m.uid).as_bytes(),
                b":",
                gid.format(m.gid).as_bytes(),
                b" ",
                mtime.format(m.mtime).as_bytes(),
            ],
        )
    }

    /// The key.
    pub(super) fn finish(self) -> Digest {
        Digest::from_bytes(self.0.finalize().into())
    }
}

/// The key of the filesystem `parent` with the layer `diff_id` on top.
///
/// The chain follows what steps produced, not what they were given: a step
/// that ran again (a new secret value, a rebuilt module) and wrote the same
/// bytes leaves the filesystem key as it was, so the steps after it are
/// still cache hits. A step that changes nothing leaves it as it was too.
pub(super) fn filesystem_key(parent: &Digest, diff_id: &Digest) -> Digest {
    let mut key = Key::new("filesystem");
    key.digest("parent", parent).digest("layer", diff_id);
    key.finish()
}

/// Adds every change of a COPY to `key`: what will be written, with file
/// contents by digest.
pub(super) fn add_changes(key: &mut Key, changes: &PendingChanges) -> Result<(), String> {
    key.add("changes", (changes.len() as u64).to_le_bytes());
    for (path, change) in changes {
        key.path("path", path);
        match change {
            Change::Put(Node::Dir(m)) => {
                key.add("put", "dir").meta(m);
            }
            Change::Put(Node::Symlink(m, target)) => {
                key.add("put", "symlink").meta(m).add("target", target);
            }
            Change::Put(Node::File(m, content)) => {
                key.add("put", "file").meta(m);
                match content {
                    Content::Stored(f) => key.digest("content", &f.digest),
                    Content::Bytes(b) => key.digest("content", &Digest::of(b)),
                    Content::Hashed { digest, .. } => key.digest("content", digest),
                    Content::Reader {
                        digest: Some(d), ..
                    } => key.digest("content", d),
                    Content::Reader { origin, .. } => {
                        return Err(format!("{origin} has no digest for the cache key"));
                    }
                };
            }
            Change::Hardlink(target) => {
                key.path("hardlink", target);
            }
            Change::Whiteout => {
                key.add("whiteout", "");
            }
            Change::Opaque(m) => {
                key.add("opaque", "").meta(m);
            }
        }
    }
    Ok(())
}

impl Build<'_> {
    /// A key for a layer step of `kind` after `parent`, with what every
    /// layer depends on: the timestamp epoch (and whether steps see it as
    /// their clock) and the compression.
    pub(super) fn step_key(&self, kind: &str, parent: &Digest) -> Key {
        let mut key = Key::new(kind);
        key.digest("parent", parent)
            .add("epoch", self.epoch.to_le_bytes())
            .add("reproducible", [u8::from(self.reproducible)])
            .add("compression", self.opts.compression.cache_id());
        key
    }

    /// The digest of context directory `source` as a bind mount shows it:
    /// every name, kind, executable bit, symlink target and file content
    /// (by sha256), in sorted order, ignored paths left out.
    /// Each directory is hashed once per build, however many steps bind it.
    pub(super) fn context_tree_digest(&self, source: &str) -> Result<Digest, String> {
        if let Some(d) = self.memo.lock().expect("memo lock").trees.get(source) {
            return Ok(*d);
        }
        let digest = self.hash_context_tree(source)?;
        self.memo
            .lock()
            .expect("memo lock")
            .trees
            .insert(source.to_string(), digest);
        Ok(digest)
    }

    fn hash_context_tree(&self, source: &str) -> Result<Digest, String> {
        let mut key = Key::new("context-tree");
        let mut stack = vec![source.to_string()];
        while let Some(dir) = stack.pop() {
            key.add("dir", &dir);
            let mut subdirs = Vec::new();
            for name in self.context.list(&dir).map_err(|e| e.to_string())? {
                let path = context::join(&dir, &name);
                key.add("name", &name);
                let (entry, digest) = self
                    .context
                    .entry_with_digest(&path, false)
                    .map_err(|e| format!("reading {path} in the build context: {e}"))?;
                match entry {
                    EntryKind::Dir => {
                        key.add("kind", "dir");
                        subdirs.push(path);
                    }
                    EntryKind::File { executable, .. } => {
                        let d = digest.expect("a file's entry comes with its digest");
                        key.add("kind", if executable { "exe" } else { "file" })
                            .digest("content", &d);
                    }
                    EntryKind::Symlink(target) => {
                        key.add("kind", "symlink").add("target", target);
                    }
                    EntryKind::Special => {
                        key.add("kind", "special");
                    }
                }
            }
            // Depth first, in sorted order.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(key.finish())
    }

    /// An HMAC-SHA256 of `value` under the store's secret key, labelled by
    /// `purpose`, in hex. It identifies a secret value without revealing it.
    pub(super) fn secret_mac(&self, purpose: &str, value: &[u8]) -> Result<String, BuildError> {
        use hmac::Mac as _;
        // (The memo's lock is not held while the store is read.)
        let memoized = self.memo.lock().expect("memo lock").secret_key;
        let key = match memoized {
            Some(k) => k,
            None => {
                let k = self.store.secret_key()?;
                self.memo.lock().expect("memo lock").secret_key = Some(k);
                k
            }
        };
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let tag = mac.finalize().into_bytes();
        Ok(tag.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The key of a RUN: see the module docs.
    pub(super) fn run_key(
        &self,
        parent: &Digest,
        prepared: &super::run::Prepared,
        cx: &super::run::RunContext<'_>,
        platform: &str,
    ) -> Result<Digest, BuildError> {
        use crate::frontend::MountType;
        let mut key = self.step_key("run", parent);
        key.add("created_by", &prepared.created_by)
            .add("argv", (prepared.argv.len() as u64).to_le_bytes());
        for a in &prepared.argv {
            key.add("arg", a);
        }
        key.add("env", (cx.env.len() as u64).to_le_bytes());
        for (k, v) in &cx.env {
            key.add("name", k).add("value", v);
        }
        key.add("workdir", cx.workdir.absolute())
            .add("owner", format!("{}:{}", cx.owner.0, cx.owner.1))
            .add("platform", platform);
        if prepared.network {
            // What the step may reach is an input; what it downloads is not
            // (see docs/kilnfile.md, Network).
            key.add("allow-net", self.opts.network.allow.canonical());
        }
        for (m, span) in &prepared.mounts {
            key.add("mount", format!("{m:?}"));
            let err = |msg: String| -> BuildError { self.kilnfile.error(span.clone(), msg).into() };
            match m.kind {
                MountType::Bind => match m.from.as_deref() {
                    Some(from) => match self.kilnfile.stage(from) {
                        Some(stage) => {
                            let r = self.stage_result(stage.index)?;
                            key.digest("from-stage", &r.key);
                        }
                        None => {
                            let d = self
                                .image(from, self.opts.platform.as_ref(), cx.step_id)
                                .map_err(|e| {
                                    self.image_error(
                                        span.clone(),
                                        format!("from={from}: not a stage, and {e}"),
                                    )
                                })?;
                            key.digest("from-image", &d.digest);
                        }
                    },
                    None => {
                        let source = context::source_path(m.source.as_deref().unwrap_or("."));
                        let d = self
                            .context_tree_digest(&source)
                            .map_err(|e| err(format!("bind source {source:?}: {e}")))?;
                        key.digest("context", &d);
                    }
                },
                MountType::Secret => {
                    let id = m.id.clone().unwrap_or_default();
                    match self.opts.secrets.get(&id) {
                        Some(s) => {
                            let mut labelled = id.clone().into_bytes();
                            labelled.push(0);
                            labelled.extend_from_slice(s.expose());
                            let mac = self.secret_mac("step", &labelled);
                            labelled.fill(0);
                            key.add("secret", mac?);
                        }
                        None => {
                            key.add("secret-absent", &id);
                        }
                    }
                }
                // Cache and tmpfs mounts start as they start; their
                // contents are not inputs, as in BuildKit.
                MountType::Cache | MountType::Tmpfs | MountType::Ssh => {}
            }
        }
        Ok(key.finish())
    }

    /// HMACs of every secret of the build, for [`crate::store::StepEntry::clean_of`].
    /// Computed once per build.
    pub(super) fn secret_fingerprints(&self) -> Result<Vec<String>, BuildError> {
        if let Some(f) = &self.memo.lock().expect("memo lock").fingerprints {
            return Ok(f.clone());
        }
        let mut out = Vec::new();
        for s in self.opts.secrets.all() {
            out.push(self.secret_mac("scan", s.expose())?);
        }
        out.sort();
        out.dedup();
        self.memo.lock().expect("memo lock").fingerprints = Some(out.clone());
        Ok(out)
    }
}

/// What the cache computes once per build.
#[derive(Default)]
pub(super) struct Memo {
    /// The store's secret key, read once.
    secret_key: Option<[u8; 32]>,
    /// [`Build::secret_fingerprints`].
    fingerprints: Option<Vec<String>>,
    /// [`Build::context_tree_digest`], by context directory.
    trees: std::collections::HashMap<String, Digest>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_metadata_hash_as_their_text() {
        // Keys written before these were added without `fmt` still match.
        let metas = [
            (0, 0, 0, 0),
            (0o755, 1000, 1000, 1_700_000_000),
            (0o104_777, u32::MAX, 7, -1),
            (u32::MAX, 0, u32::MAX, i64::MIN),
            (0o644, 0, 0, i64::MAX),
        ];
        for (mode, uid, gid, mtime) in metas {
            let m = Meta {
                mode,
                uid,
                gid,
                mtime,
            };
            let mut fast = Key::new("t");
            fast.meta(&m);
            let mut text = Key::new("t");
            text.add("meta", format!("{mode:o} {uid}:{gid} {mtime}"));
            assert_eq!(fast.finish(), text.finish(), "{m:?}");
        }
        for path in ["", "a", "a/b c/d"] {
            let p = ImagePath::parse(path).unwrap();
            let mut fast = Key::new("t");
            fast.path("path", &p);
            let mut text = Key::new("t");
            text.add("path", p.absolute());
            assert_eq!(fast.finish(), text.finish(), "{path:?}");
        }
    }

    #[test]
    fn fields_are_length_prefixed() {
        let a = {
            let mut k = Key::new("t");
            k.add("a", "bc").add("d", "");
            k.finish()
        };
        let b = {
            let mut k = Key::new("t");
            k.add("a", "b").add("cd", "");
            k.finish()
        };
        assert_ne!(a, b);
        let mut k = Key::new("t");
        k.add("a", "bc").add("d", "");
        assert_eq!(k.finish(), a, "keys are stable");
    }
}
