//! Finding secrets where they must not be: in layers, in the image config,
//! in a step's output.
//!
//! A [`LeakScanner`] searches for each secret as raw bytes, lowercase and
//! uppercase hex, and base64 (standard and URL-safe) at each of the three
//! byte alignments a secret can have inside a longer base64 text. Secrets
//! longer than [`PATTERN_PREFIX`] bytes are searched by their first
//! [`PATTERN_PREFIX`] bytes: any copy of the whole secret contains them, and
//! a copy of its beginning is a leak too. Secrets shorter than
//! [`MIN_SCAN_BYTES`] cannot be searched without matching everything.
//!
//! [`StreamScan`] carries the last bytes of one chunk over to the next, so a
//! secret split across writes is still found; [`MaskingWriter`] replaces
//! every occurrence in a stream with `****` the same way.

use std::io::{self, Write};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;

use super::store::Secret;

/// Secrets shorter than this are not searched for (they would match
/// ordinary text); the build warns about them.
pub const MIN_SCAN_BYTES: usize = 4;

/// Longest part of a secret searched for: bounds the automaton's memory for
/// large secrets (a 5 MiB key) while any copy of the secret still matches.
pub const PATTERN_PREFIX: usize = 256;

/// What a scan found: which secret, in which encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The secret's id.
    pub id: String,
    /// `raw`, `hex`, `base64`...
    pub encoding: &'static str,
}

/// A search for every secret of a build. See the module docs.
pub struct LeakScanner {
    ac: AhoCorasick,
    labels: Vec<Hit>,
    max_len: usize,
    /// The patterns themselves (zeroed when dropped), for
    /// [`LeakScanner::partial_suffix`]: as secret as the secrets they come
    /// from, which the build holds in memory anyway.
    patterns: Vec<zeroize::Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for LeakScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LeakScanner({} patterns)", self.labels.len())
    }
}

fn b64_windows(secret: &[u8], url: bool) -> Vec<Vec<u8>> {
    let engine = if url {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    let mut out = Vec::new();
    for pad in 0..3usize {
        let mut bytes = vec![0u8; pad];
        bytes.extend_from_slice(secret);
        let encoded = engine.encode(&bytes).into_bytes();
        // Characters that depend on secret bits only.
        let start = (pad * 8).div_ceil(6);
        let end = (bytes.len() * 8) / 6;
        if end > start + 3 {
            out.push(encoded[start..end].to_vec());
        }
    }
    out
}

impl LeakScanner {
    /// A scanner for `secrets`; `None` when none is long enough to search.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Option<LeakScanner> {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        let mut labels = Vec::new();
        for s in secrets {
            let bytes = s.expose();
            if bytes.len() < MIN_SCAN_BYTES {
                continue;
            }
            let head = &bytes[..bytes.len().min(PATTERN_PREFIX)];
            let mut add = |p: Vec<u8>, encoding: &'static str| {
                patterns.push(p);
                labels.push(Hit {
                    id: s.id().to_string(),
                    encoding,
                });
            };
            add(head.to_vec(), "raw");
            add(hex::encode(head).into_bytes(), "hex");
            add(hex::encode_upper(head).into_bytes(), "hex");
            for p in b64_windows(head, false) {
                add(p, "base64");
            }
            for p in b64_windows(head, true) {
                add(p, "base64url");
            }
        }
        if patterns.is_empty() {
            return None;
        }
        let max_len = patterns.iter().map(Vec::len).max().unwrap_or(0);
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&patterns)
            .expect("byte patterns always build");
        let patterns = patterns.into_iter().map(zeroize::Zeroizing::new).collect();
        Some(LeakScanner {
            ac,
            labels,
            max_len,
            patterns,
        })
    }

    /// The first secret in `data`.
    pub fn find(&self, data: &[u8]) -> Option<Hit> {
        self.ac
            .find(data)
            .map(|m| self.labels[m.pattern().as_usize()].clone())
    }

    /// `text` with every secret (in every encoding searched for) replaced
    /// by `****`: for messages kiln prints itself (a path the leak guard
    /// names, an error that quotes a value).
    pub fn mask(&self, text: &str) -> String {
        let mut out = Vec::with_capacity(text.len());
        let mut pos = 0;
        for m in self.ac.find_iter(text.as_bytes()) {
            out.extend_from_slice(&text.as_bytes()[pos..m.start()]);
            out.extend_from_slice(MASK);
            pos = m.end();
        }
        if pos == 0 {
            return text.to_string();
        }
        out.extend_from_slice(&text.as_bytes()[pos..]);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The length of the longest end of `tail` that is the beginning of a
    /// secret (in any encoding): what masked output must hold back until
    /// more bytes arrive. Anything before it can be shown at once, so a
    /// step's `started` line is not held up because secrets exist.
    pub fn partial_suffix(&self, tail: &[u8]) -> usize {
        let longest = self.overlap().min(tail.len());
        (1..=longest)
            .rev()
            .find(|&l| {
                let end = &tail[tail.len() - l..];
                self.patterns
                    .iter()
                    .any(|p| p.len() > l && p.starts_with(end))
            })
            .unwrap_or(0)
    }

    /// Bytes a stream must carry over between chunks.
    pub fn overlap(&self) -> usize {
        self.max_len.saturating_sub(1)
    }
}

/// A scan over a stream fed in chunks.
pub struct StreamScan<'s> {
    scanner: &'s LeakScanner,
    tail: Vec<u8>,
    hit: Option<Hit>,
}

impl<'s> StreamScan<'s> {
    /// A fresh scan.
    pub fn new(scanner: &'s LeakScanner) -> StreamScan<'s> {
        StreamScan {
            scanner,
            tail: Vec::new(),
            hit: None,
        }
    }

    /// Feeds the next chunk; returns the first hit so far.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<&Hit> {
        if self.hit.is_none() && !chunk.is_empty() {
            let keep = self.scanner.overlap();
            if self.tail.is_empty() {
                self.hit = self.scanner.find(chunk);
            } else {
                self.tail.extend_from_slice(chunk);
                self.hit = self.scanner.find(&self.tail);
            }
            let source: &[u8] = if self.tail.is_empty() {
                chunk
            } else {
                &self.tail
            };
            let from = source.len().saturating_sub(keep);
            let next = source[from..].to_vec();
            zeroize::Zeroize::zeroize(&mut self.tail);
            self.tail = next;
        }
        self.hit.as_ref()
    }

    /// Starts over (a new file).
    pub fn reset(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.tail);
        self.tail.clear();
    }

    /// The first hit, if any.
    pub fn hit(&self) -> Option<&Hit> {
        self.hit.as_ref()
    }
}

impl Drop for StreamScan<'_> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.tail);
    }
}

/// What masked output shows instead of a secret.
pub const MASK: &[u8] = b"****";

/// Writes through to `inner` with every secret replaced by `****`, also
/// when a secret is split across writes. Holds back the last few bytes (a
/// possible start of a secret) until more arrive or the writer is dropped.
pub struct MaskingWriter<W: Write> {
    inner: W,
    scanner: std::sync::Arc<LeakScanner>,
    buf: Vec<u8>,
}

impl<W: Write> MaskingWriter<W> {
    /// Masks what is written to `inner`.
    pub fn new(inner: W, scanner: std::sync::Arc<LeakScanner>) -> MaskingWriter<W> {
        MaskingWriter {
            inner,
            scanner,
            buf: Vec::new(),
        }
    }

    fn drain(&mut self, all: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(self.buf.len());
        let mut pos = 0;
        for m in self.scanner.ac.find_iter(&self.buf) {
            out.extend_from_slice(&self.buf[pos..m.start()]);
            out.extend_from_slice(MASK);
            pos = m.end();
        }
        let keep = if all {
            0
        } else {
            self.scanner.partial_suffix(&self.buf[pos..])
        };
        let release = self.buf.len() - keep;
        out.extend_from_slice(&self.buf[pos..release]);
        let rest = self.buf[release..].to_vec();
        zeroize::Zeroize::zeroize(&mut self.buf);
        self.buf = rest;
        self.inner.write_all(&out)
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.drain(false)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // The held-back bytes stay: releasing them on every flush would let
        // a secret written in two flushed parts through.
        self.inner.flush()
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        let _ = self.drain(true);
        let _ = self.inner.flush();
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn scanner(values: &[&str]) -> LeakScanner {
        let secrets: Vec<Secret> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Secret::new(format!("s{i}"), v.as_bytes().to_vec()))
            .collect();
        LeakScanner::new(&secrets).unwrap()
    }

    #[test]
    fn masked_output_holds_back_only_a_possible_start_of_a_secret() {
        let s = Arc::new(scanner(&["npm_TOKEN_1234"]));
        let out = Arc::new(Mutex::new(Vec::new()));
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = MaskingWriter::new(Sink(out.clone()), s);
        w.write_all(b"started\n").unwrap();
        assert_eq!(&*out.lock().unwrap(), b"started\n", "nothing to hold back");
        w.write_all(b"key npm_TO").unwrap();
        assert_eq!(
            &*out.lock().unwrap(),
            b"started\nkey ",
            "a possible start waits"
        );
        w.write_all(b"KEN_1234 done\n").unwrap();
        assert_eq!(&*out.lock().unwrap(), b"started\nkey **** done\n");
        w.write_all(b"npm_TOAST\n").unwrap();
        assert_eq!(
            &*out.lock().unwrap(),
            b"started\nkey **** done\nnpm_TOAST\n"
        );
    }

    #[test]
    fn mask_hides_every_encoding_in_a_message() {
        let s = scanner(&["npm_TOKEN_1234"]);
        let hex = hex::encode("npm_TOKEN_1234");
        let text = format!("/out/npm_TOKEN_1234/x and {hex} end");
        assert_eq!(s.mask(&text), "/out/****/x and **** end");
        assert_eq!(s.mask("nothing here"), "nothing here");
    }

    #[test]
    fn finds_raw_hex_and_base64_at_every_alignment() {
        let s = scanner(&["npm_TOKEN_1234"]);
        assert_eq!(s.find(b"x=npm_TOKEN_1234;").unwrap().encoding, "raw");
        assert_eq!(
            s.find(hex::encode("..npm_TOKEN_1234..").as_bytes())
                .unwrap()
                .encoding,
            "hex"
        );
        assert_eq!(
            s.find(hex::encode_upper("npm_TOKEN_1234").as_bytes())
                .unwrap()
                .encoding,
            "hex"
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        for prefix in ["", "a", "ab", "abc", "abcd"] {
            let text = b64.encode(format!("{prefix}npm_TOKEN_1234 trailing"));
            assert!(
                s.find(text.as_bytes()).is_some(),
                "alignment of {prefix:?}: {text}"
            );
        }
        assert!(s.find(b"nothing to see here").is_none());
        assert!(
            LeakScanner::new(&[Secret::new("x", b"abc".to_vec())]).is_none(),
            "too short to scan"
        );
    }

    #[test]
    fn long_secrets_are_found_by_their_beginning() {
        let big: String = (0..5_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let s = scanner(&[&big]);
        let mut text = b"header ".to_vec();
        text.extend_from_slice(big.as_bytes());
        assert_eq!(s.find(&text).unwrap().id, "s0");
    }

    #[test]
    fn stream_scans_catch_secrets_split_across_chunks() {
        let s = scanner(&["split-secret-value"]);
        let mut scan = StreamScan::new(&s);
        assert!(scan.feed(b"....split-sec").is_none());
        assert!(scan.feed(b"ret-val").is_none());
        assert_eq!(scan.feed(b"ue....").unwrap().id, "s0");
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn masking_replaces_secrets_even_when_split() {
        let s = Arc::new(scanner(&["hunter22", "other-secret"]));
        let out = Shared::default();
        {
            let mut w = MaskingWriter::new(out.clone(), s);
            w.write_all(b"token is hun").unwrap();
            w.flush().unwrap();
            w.write_all(b"ter22 and other-").unwrap();
            w.write_all(b"secret, done\n").unwrap();
        }
        assert_eq!(
            String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
            "token is **** and ****, done\n"
        );
    }
}
