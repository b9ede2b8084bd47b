use std::io::{Read, Write};

use super::*;

/// Text-like bytes (compressible) with a stretch of noise every so often.
fn sample(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len);
    let words = [
        "layer ",
        "kiln ",
        "wasm ",
        "secret\n",
        "tar ",
        "0123456789 ",
    ];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(97) {
            out.extend((0..300).map(|i| (x >> (i % 56)) as u8 ^ i as u8));
        } else {
            out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
        }
    }
    out.truncate(len);
    out
}

/// Compresses `data` written in pieces of `piece` bytes.
fn encode(compression: Compression, data: &[u8], threads: usize, piece: usize) -> Vec<u8> {
    let mut e = Encoder::new(compression, Vec::new(), threads).unwrap();
    for part in data.chunks(piece.max(1)) {
        e.write_all(part).unwrap();
    }
    if data.is_empty() {
        e.write_all(&[]).unwrap();
    }
    e.finish().unwrap()
}

fn gunzip(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unzstd(blob: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(blob).unwrap()
}

#[test]
fn gzip_bytes_do_not_depend_on_threads_or_write_sizes() {
    let sizes = [
        0,
        1,
        WINDOW - 1,
        GZIP_CHUNK - 1,
        GZIP_CHUNK,
        GZIP_CHUNK + 1,
        3 * GZIP_CHUNK + 17,
        10 * GZIP_CHUNK,
    ];
    for size in sizes {
        let data = sample(size);
        let one = encode(Compression::Gzip, &data, 1, 1 << 20);
        for (threads, piece) in [(2, 4096), (4, 1 << 20), (3, 100_003), (1, 512)] {
            assert!(
                encode(Compression::Gzip, &data, threads, piece) == one,
                "{size} bytes on {threads} threads in writes of {piece}"
            );
        }
        assert_eq!(gunzip(&one), data, "{size} bytes round trip");
        assert_eq!(&one[..10], &GZIP_HEADER, "a fixed header");
    }
}

#[test]
fn gzip_chunks_compress_about_as_well_as_one_stream() {
    let data = sample(4 << 20);
    let chunked = encode(Compression::Gzip, &data, 2, 1 << 16).len();
    let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    one.write_all(&data).unwrap();
    let stream = one.finish().unwrap().len();
    // The dictionary carries the window across chunks: under 1% larger.
    assert!(
        chunked * 100 < stream * 101,
        "chunked {chunked} bytes, one stream {stream}"
    );
}

#[test]
fn gzip_is_read_by_the_host_gzip() {
    let Ok(mut child) = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(std::env::var_os("CI").is_none(), "gzip is missing");
        return;
    };
    let data = sample(3 * GZIP_CHUNK + 5);
    let blob = encode(Compression::Gzip, &data, 2, 8192);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&blob).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "gzip -t refused kiln's stream");
    assert!(out.stdout == data, "gzip -dc gave other bytes");
}

#[test]
fn zstd_bytes_do_not_depend_on_threads() {
    // Over the job size (4 MiB), so several jobs run at once.
    for size in [0, 1000, 20 << 20] {
        let data = sample(size);
        let one = encode(Compression::Zstd, &data, 1, 1 << 20);
        for (threads, piece) in [(2, 65_536), (4, 1 << 20)] {
            assert!(
                encode(Compression::Zstd, &data, threads, piece) == one,
                "{size} bytes on {threads} threads"
            );
        }
        assert_eq!(unzstd(&one), data, "{size} bytes round trip");
    }
}

#[test]
fn uncompressed_is_the_tar() {
    let data = sample(70_000);
    assert_eq!(encode(Compression::Uncompressed, &data, 3, 999), data);
}

#[test]
fn zero_threads_means_one_per_core() {
    assert!(threads(0) >= 1);
    assert_eq!(threads(3), 3);
}
