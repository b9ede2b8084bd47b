//! Content digests: the `sha256:<hex>` names of everything kiln stores.
//!
//! This module owns the [`Digest`] type and the two adapters that compute one
//! while bytes flow through: [`HashingWriter`] (what the store and the layer
//! writer use, so nothing is read twice) and [`VerifyingReader`] (what every
//! blob read goes through, so a corrupt store is noticed, not trusted).
//!
//! Only sha256 exists here: it is what the OCI image spec requires every
//! implementation to support, and one algorithm keeps store paths simple.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::{Digest as _, Sha256};

/// A sha256 content digest, shown as `sha256:<64 lowercase hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// A string that is not a `sha256:<hex>` digest.
#[derive(Debug, thiserror::Error)]
#[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
pub struct DigestParseError(String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::digest(bytes).into())
    }

    /// A digest computed elsewhere (a finished sha256).
    pub const fn from_bytes(bytes: [u8; 32]) -> Digest {
        Digest(bytes)
    }

    /// The 64 hex digits without the algorithm prefix.
    pub fn hex(&self) -> String {
        let mut out = [0u8; 64];
        self.hex_into(&mut out);
        String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
    }

    /// Writes the 64 hex digits into `out` (a digest is shown in every
    /// store path, index record and stat cache line: no allocation here).
    fn hex_into(&self, out: &mut [u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 15)];
        }
    }

    /// The first 12 hex digits, as `docker images` shows an image id.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses the bare 64-digit hex form (no `sha256:` prefix).
    pub fn from_hex(hex_digits: &str) -> Result<Digest, DigestParseError> {
        let mut out = [0u8; 32];
        if hex_digits.len() != 64 || hex_digits.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(DigestParseError(hex_digits.to_string()));
        }
        hex::decode_to_slice(hex_digits, &mut out)
            .map_err(|_| DigestParseError(hex_digits.to_string()))?;
        Ok(Digest(out))
    }

    /// This digest as oci-spec's type, for descriptors.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        self.to_string()
            .parse()
            .expect("a sha256 digest is always a valid OCI digest")
    }

    /// Converts oci-spec's digest, refusing algorithms other than sha256.
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Digest, DigestParseError> {
        d.to_string().parse()
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    fn from_str(s: &str) -> Result<Digest, DigestParseError> {
        match s.strip_prefix("sha256:") {
            Some(hex_digits) => {
                Digest::from_hex(hex_digits).map_err(|_| DigestParseError(s.into()))
            }
            None => Err(DigestParseError(s.to_string())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = *b"sha256:0000000000000000000000000000000000000000000000000000000000000000";
        self.hex_into(&mut text[7..]);
        f.write_str(std::str::from_utf8(&text).expect("hex digits are ASCII"))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        /// Parses the text where it lies, without a copy.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Digest;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sha256:<hex> digest")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Digest, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

/// Incremental sha256 with a byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    /// A fresh hasher.
    pub fn new() -> Hasher {
        Hasher::default()
    }

    /// Adds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest and the number of bytes hashed.
    pub fn finish(self) -> (Digest, u64) {
        (Digest(self.sha.finalize().into()), self.len)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        let (digest, len) = self.hasher.finish();
        (self.inner, digest, len)
    }

    /// The wrapped writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that checks that the bytes it returned have the expected digest
/// and length: at the end of the stream, or, when the length is given, as
/// soon as that many bytes were read (so a reader that stops there, as a
/// `take` does, still checks). A mismatch is an `InvalidData` error.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    read: u64,
    expected: Digest,
    expected_len: Option<u64>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, which must yield content with digest `expected`.
    pub fn new(inner: R, expected: Digest, expected_len: Option<u64>) -> Self {
        VerifyingReader {
            inner,
            hasher: Some(Hasher::new()),
            read: 0,
            expected,
            expected_len,
        }
    }

    /// Checks what was read against the digest (once).
    fn verify(&mut self) -> io::Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        let (actual, len) = hasher.finish();
        if actual != self.expected || self.expected_len.is_some_and(|l| l != len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                Damaged(format!(
                    "content does not match its digest: expected {}, found {actual} ({len} bytes); the store is corrupt",
                    self.expected
                )),
            ));
        }
        Ok(())
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.read += n as u64;
            if self.expected_len.is_some_and(|len| self.read > len) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    Damaged(format!(
                        "content of {} is longer than expected; the store is corrupt",
                        self.expected
                    )),
                ));
            }
            if let Some(hasher) = &mut self.hasher {
                hasher.update(&buf[..n]);
            }
            if self.expected_len == Some(self.read) {
                self.verify()?;
            }
            return Ok(n);
        }
        if !buf.is_empty() {
            self.verify()?;
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_roundtrips_through_text() {
        let d = Digest::of(b"hello");
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(Digest::from_oci(&d.to_oci()).unwrap(), d);
        for n in 0..=255u8 {
            let d = Digest::from_bytes([n; 32]);
            assert_eq!(d.hex(), hex::encode([n; 32]));
            let json = serde_json::to_string(&d).unwrap();
            assert_eq!(json, format!("\"sha256:{}\"", d.hex()));
            assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
        assert!(serde_json::from_str::<Digest>("7").is_err());
    }

    #[test]
    fn rejects_malformed_digests() {
        for bad in [
            "sha256:abc",
            "sha512:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            "sha256:zzf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad}");
        }
    }

    #[test]
    fn verifying_reader_detects_corruption() {
        let good = Digest::of(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], good, Some(5))
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello");
        let err = VerifyingReader::new(&b"hellO"[..], good, None)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let err = VerifyingReader::new(&b"hello!"[..], good, Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // A reader that stops at the length (a tar writer's `take`) never
        // reaches the end of the stream: the check comes with the last byte.
        let err = VerifyingReader::new(&b"hellO"[..], good, Some(5))
            .take(5)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let mut one = [0u8; 1];
        let mut r = VerifyingReader::new(&b"hello"[..], good, Some(5));
        for _ in 0..5 {
            assert_eq!(r.read(&mut one).unwrap(), 1);
        }
        assert_eq!(r.read(&mut one).unwrap(), 0);
    }

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"hel").unwrap();
        w.write_all(b"lo").unwrap();
        let (inner, d, n) = w.finish();
        assert_eq!(
            (inner.as_slice(), d, n),
            (&b"hello"[..], Digest::of(b"hello"), 5)
        );
    }
}

/// Read content that does not match its digest: damage on disk (or a
/// stray edit), carried inside an `io::Error` so the CLI can tell it from
/// other read failures and point at `kiln check`.
#[derive(Debug)]
pub struct Damaged(pub String);

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Damaged {}

/// Whether `err` (or what it wraps) is [`Damaged`] content.
pub fn is_damaged(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<Damaged>())
}
