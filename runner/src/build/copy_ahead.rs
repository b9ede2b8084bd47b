//! A COPY's layer, written while the COPY is planned.
//!
//! A COPY knows its cache key only once it has hashed every source, and
//! only a miss needs the layer. Written after the lookup, the layer waits
//! for the last source to be hashed: reading the sources (one core) and
//! writing the layer (the other) would come one after the other. Where the
//! plan has to read its sources anyway (they are not in the context's stat
//! cache, so the step is likely new), [`Ahead`] starts the layer on its own
//! thread at the first file read ([`LayerStream`]), hands it every change
//! planned so far, then each change as it is planned, with the bytes just
//! read; the plan keeps a reference to each such file instead (its digest
//! for the key, and a way to read it again). After the lookup a miss
//! finishes that layer and a hit drops it, unwritten. A rebuild whose
//! sources the stat cache knows reads no file and starts nothing.
//!
//! The layer must see its entries in path order. A directory source walked
//! depth first gives them so; a plan whose changes leave that order
//! (several sources that interleave, a path planned twice) drops the layer
//! at once and is written after the lookup, from the plan.

use super::Build;
use crate::layer::{Content, LayerOptions, LayerStream, PendingChanges};
use crate::snapshot::{Change, ImagePath, Node};
use crate::store::Store;

/// See the module docs. Before the layer starts, `start` says where and
/// how to write it; once it runs, `stream` holds it; when there is none to
/// write ahead (not a context COPY, or the changes left path order), both
/// are `None`.
pub(super) struct Ahead {
    start: Option<(Store, LayerOptions)>,
    stream: Option<LayerStream>,
    /// The last path planned.
    last: Option<ImagePath>,
}

impl Ahead {
    /// A layer that may be written ahead for a COPY of build `b`.
    pub(super) fn new(b: &Build<'_>) -> Ahead {
        Ahead {
            start: Some((b.store.clone(), b.layer_options())),
            stream: None,
            last: None,
        }
    }

    /// Nothing written ahead: the layer is written after the lookup.
    pub(super) fn off() -> Ahead {
        Ahead {
            start: None,
            stream: None,
            last: None,
        }
    }

    /// Whether a file read now goes to the layer (then the plan keeps a
    /// reference to it, and hands its contents to [`Ahead::follow`]).
    pub(super) fn wants(&self) -> bool {
        self.stream.is_some() || self.start.is_some()
    }

    /// Follows the plan: `change` at `path` is about to join `planned`.
    /// `fresh`: the contents of the file just read there, for the layer
    /// (`change` holds a reference to it).
    pub(super) fn follow(
        &mut self,
        planned: &PendingChanges,
        path: &ImagePath,
        change: &Change<Content>,
        fresh: Option<Content>,
    ) {
        if !self.wants() {
            return;
        }
        if self.last.as_ref().is_some_and(|last| path <= last) {
            return self.stop();
        }
        self.last = Some(path.clone());
        if self.stream.is_none() {
            if fresh.is_none() {
                return;
            }
            let started = self.start.take().map(|(s, o)| LayerStream::start(s, o));
            let Some(Ok(mut stream)) = started else {
                return self.stop();
            };
            for (p, c) in planned {
                let Some(c) = share(c) else {
                    return self.stop();
                };
                stream.send(p.clone(), c);
            }
            self.stream = Some(stream);
        }
        let sent = match (fresh, change) {
            (Some(content), Change::Put(Node::File(meta, _))) => {
                Some(Change::Put(Node::File(*meta, content)))
            }
            (Some(_), _) => None,
            (None, change) => share(change),
        };
        match (sent, &mut self.stream) {
            (Some(change), Some(stream)) => stream.send(path.clone(), change),
            _ => self.stop(),
        }
    }

    /// Gives up the layer: it is thrown away, unwritten.
    fn stop(&mut self) {
        self.start = None;
        self.stream = None;
    }

    /// The layer written ahead, holding every change planned, if any.
    pub(super) fn into_stream(self) -> Option<LayerStream> {
        self.stream
    }
}

/// A second handle on `change`, without copying bytes held in memory.
fn share(change: &Change<Content>) -> Option<Change<Content>> {
    Some(match change {
        Change::Put(Node::File(m, c)) => Change::Put(Node::File(*m, c.share()?)),
        Change::Put(Node::Dir(m)) => Change::Put(Node::Dir(*m)),
        Change::Put(Node::Symlink(m, t)) => Change::Put(Node::Symlink(*m, t.clone())),
        Change::Opaque(m) => Change::Opaque(*m),
        Change::Whiteout => Change::Whiteout,
        Change::Hardlink(_) => return None,
    })
}
