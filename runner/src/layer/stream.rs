//! A layer written on a thread of its own while its changes are still
//! being found.
//!
//! A COPY must hash every source before it knows its cache key, and only a
//! miss needs the layer; written after the lookup, the layer waits for the
//! last file to be hashed, and reading the sources (one core) and writing
//! the layer (the other) come one after the other. [`LayerStream`] lets the
//! planner hand each change over as it finds it, in path order, to a writer
//! that builds the layer beside it; after the lookup the planner either
//! [`LayerStream::finish`]es it (a miss: the layer is the same bytes
//! [`super::write_layer`] gives for those changes) or drops it (a hit, or a
//! plan that could not keep to path order): nothing of it is committed to
//! the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;

use super::writer::{Entry, write_entries};
use super::{Content, LayerError, LayerOptions, WrittenLayer};
use crate::snapshot::{Change, ImagePath};
use crate::store::Store;

enum Message {
    Entry(Entry),
    /// Every entry was sent: commit the layer.
    End,
}

/// A layer being written from changes sent in path order. Dropped
/// unfinished, it is thrown away.
pub struct LayerStream {
    tx: Option<mpsc::Sender<Message>>,
    writer: Option<thread::JoinHandle<Result<WrittenLayer, LayerError>>>,
    /// Set when the stream is dropped: the writer stops at its next entry.
    stop: Arc<AtomicBool>,
}

impl LayerStream {
    /// Starts a writer thread for a layer of `store` written with `opts`.
    pub fn start(store: Store, opts: LayerOptions) -> std::io::Result<LayerStream> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let entries = Entries {
            rx,
            stop: Arc::clone(&stop),
            done: false,
        };
        let writer = thread::Builder::new()
            .name("kiln-layer-stream".into())
            .spawn(move || write_entries(&store, entries, &opts))?;
        Ok(LayerStream {
            tx: Some(tx),
            writer: Some(writer),
            stop,
        })
    }

    /// Sends the next change: its path must come after every path sent
    /// before, and it is not a hard link. A writer that failed already
    /// ignores it; [`LayerStream::finish`] gives its error.
    pub fn send(&mut self, path: ImagePath, change: Change<Content>) {
        debug_assert!(!matches!(change, Change::Hardlink(_)));
        if let Some(tx) = &self.tx {
            // A writer that stopped has its error kept for `finish`.
            let _ = tx.send(Message::Entry((path, change)));
        }
    }

    /// Waits for the writer to write the last change and commit the layer.
    pub fn finish(mut self) -> Result<WrittenLayer, LayerError> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Message::End);
        }
        self.join().expect("the writer runs until finish or drop")
    }

    fn join(&mut self) -> Option<Result<WrittenLayer, LayerError>> {
        let writer = self.writer.take()?;
        match writer.join() {
            Ok(result) => Some(result),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for LayerStream {
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.stop.store(true, Ordering::Relaxed);
            self.tx = None;
            // Its temp files are removed before this returns; a panic of
            // the writer is not raised again while dropping.
            if let Some(writer) = self.writer.take() {
                let _ = writer.join();
            }
        }
    }
}

/// The writer's side of the channel: the entries, then the end; a channel
/// closed without the end, or the stop flag, ends the layer with an error
/// so that nothing is committed.
struct Entries {
    rx: mpsc::Receiver<Message>,
    stop: Arc<AtomicBool>,
    done: bool,
}

impl Iterator for Entries {
    type Item = Result<Entry, LayerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let message = match self.stop.load(Ordering::Relaxed) {
            true => None,
            false => self.rx.recv().ok(),
        };
        match message {
            Some(Message::Entry(entry)) => Some(Ok(entry)),
            Some(Message::End) => {
                self.done = true;
                None
            }
            None => {
                self.done = true;
                Some(Err(LayerError::Cancelled))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layer::{Compression, PendingChanges, write_layer};
    use crate::snapshot::{Meta, Node};

    fn changes() -> PendingChanges {
        let mut c = PendingChanges::new();
        let dir = Meta::root(0o755, 0);
        c.insert(
            ImagePath::parse("app").unwrap(),
            Change::Put(Node::Dir(dir)),
        );
        for i in 0..300 {
            let bytes = format!("file {i}\n").repeat(i * 7).into_bytes();
            let meta = Meta::root(0o644, 0);
            c.insert(
                ImagePath::parse(&format!("app/f{i:03}")).unwrap(),
                Change::Put(Node::File(meta, Content::Bytes(bytes))),
            );
        }
        c
    }

    /// Files of more than 1000 bytes under `dir`: a layer's blob or pack,
    /// committed or left in the temp space.
    fn big_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(big_files(&p));
            } else if e.metadata().is_ok_and(|m| m.len() > 1000) {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn a_streamed_layer_is_the_layer_write_layer_gives() {
        for compression in [
            Compression::Uncompressed,
            Compression::Gzip,
            Compression::Zstd,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path()).unwrap();
            let opts = LayerOptions {
                compression,
                ..LayerOptions::default()
            };
            let whole = write_layer(&store, changes(), &opts).unwrap();
            let other = tempfile::tempdir().unwrap();
            let other = Store::open(other.path()).unwrap();
            let mut stream = LayerStream::start(other.clone(), opts.clone()).unwrap();
            for (path, change) in changes() {
                stream.send(path, change);
            }
            let streamed = stream.finish().unwrap();
            assert_eq!(streamed.diff_id, whole.diff_id, "{compression}");
            assert_eq!(streamed.descriptor, whole.descriptor, "{compression}");
            assert_eq!(streamed.changes, whole.changes);
            assert!(other.has_blob(&streamed.descriptor.digest));
        }
    }

    #[test]
    fn a_dropped_stream_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let opts = LayerOptions {
            compression: Compression::Zstd,
            ..LayerOptions::default()
        };
        let mut stream = LayerStream::start(store.clone(), opts).unwrap();
        for (i, (path, change)) in changes().into_iter().enumerate() {
            stream.send(path, change);
            if i == 150 {
                break;
            }
        }
        drop(stream);
        // No blob, no pack, nothing left in the store's temp space.
        assert_eq!(big_files(dir.path()), Vec::<std::path::PathBuf>::new());
    }

    #[test]
    fn a_writer_error_comes_back_from_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut stream = LayerStream::start(store.clone(), LayerOptions::default()).unwrap();
        let meta = Meta::root(0o644, 0);
        let open: crate::layer::Opener = Arc::new(|| Err(std::io::Error::other("gone")));
        stream.send(
            ImagePath::parse("a").unwrap(),
            Change::Put(Node::File(
                meta,
                Content::Reader {
                    size: 3,
                    open,
                    origin: "a in the test".into(),
                    digest: None,
                },
            )),
        );
        // Sent after the writer failed: ignored.
        stream.send(
            ImagePath::parse("b").unwrap(),
            Change::Put(Node::File(meta, Content::Bytes(b"b".to_vec()))),
        );
        let err = stream.finish().unwrap_err();
        assert!(err.to_string().contains("a in the test"), "{err}");
        assert_eq!(big_files(dir.path()), Vec::<std::path::PathBuf>::new());
    }
}
