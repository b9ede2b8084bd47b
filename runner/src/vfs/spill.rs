//! [`Spill`]: where an overlay keeps the large files a step writes, all in
//! one anonymous temp file in the store's temp directory.
//!
//! A file's spilled contents are a list of fixed-size blocks of that file
//! ([`BLOCK`]); blocks freed by truncation or deletion are reused. One host
//! handle serves every large file of the step however many it writes (a
//! handle per file would fail at the process's open-file limit), and the
//! layer is read from the same handle after the step ([`Spill::reader`]).
//! The file is unlinked from birth: nothing outlives the process.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::host::{read_full_at, write_all_at};

/// Bytes per block: large enough that a big file is few blocks (and few
/// system calls per write), small enough that a file just past the memory
/// threshold wastes little.
pub const BLOCK: u64 = 64 << 10;

/// A block not written yet: reads as zeros.
pub const HOLE: u32 = u32::MAX;

/// The spill file of one overlay. See the module docs.
#[derive(Debug)]
pub struct Spill {
    file: File,
    /// Blocks ever allocated, and those free for reuse.
    blocks: Mutex<(u32, Vec<u32>)>,
}

impl Spill {
    /// A new, empty spill file in `dir`.
    pub fn new(dir: &Path) -> io::Result<Arc<Spill>> {
        Ok(Arc::new(Spill {
            file: tempfile::tempfile_in(dir)?,
            blocks: Mutex::new((0, Vec::new())),
        }))
    }

    fn offset(block: u32, within: u64) -> u64 {
        u64::from(block) * BLOCK + within
    }

    /// A block to write, zeroed.
    fn allocate(&self) -> io::Result<u32> {
        let block = {
            let mut b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            match b.1.pop() {
                Some(free) => free,
                None if b.0 < HOLE => {
                    b.0 += 1;
                    b.0 - 1
                }
                None => return Err(io::Error::other("spill file full")),
            }
        };
        write_all_at(&self.file, &[0u8; BLOCK as usize], Self::offset(block, 0))?;
        Ok(block)
    }

    /// Gives `blocks` back for reuse.
    pub fn free(&self, blocks: &[u32]) {
        let mut b = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        b.1.extend(blocks.iter().copied().filter(|&x| x != HOLE));
    }

    /// Reads file bytes at `offset` of a file of `len` bytes in `blocks`.
    pub fn read(&self, blocks: &[u32], len: u64, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let end = len.min(offset.saturating_add(buf.len() as u64));
        let mut at = offset;
        while at < end {
            let (index, within) = (at / BLOCK, at % BLOCK);
            let take = (BLOCK - within).min(end - at) as usize;
            let out = &mut buf[(at - offset) as usize..][..take];
            match blocks.get(index as usize).copied().unwrap_or(HOLE) {
                HOLE => out.fill(0),
                b => {
                    if read_full_at(&self.file, out, Self::offset(b, within))? < take {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
            at += take as u64;
        }
        Ok(end.saturating_sub(offset) as usize)
    }

    /// Writes `data` at `offset` into the file whose blocks are `blocks`,
    /// allocating blocks as needed (`blocks` grows to cover the write).
    pub fn write(&self, blocks: &mut Vec<u32>, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let (index, within) = (at / BLOCK, at % BLOCK);
            let take = (BLOCK - within).min(end - at) as usize;
            let index = index as usize;
            if blocks.len() <= index {
                blocks.resize(index + 1, HOLE);
            }
            if blocks[index] == HOLE {
                blocks[index] = self.allocate()?;
            }
            let from = &data[(at - offset) as usize..][..take];
            write_all_at(&self.file, from, Self::offset(blocks[index], within))?;
            at += take as u64;
        }
        Ok(())
    }

    /// Cuts a file of `blocks` to `len` bytes: blocks past it are freed and
    /// the rest of the last one zeroed, so a later extension reads zeros.
    pub fn truncate(&self, blocks: &mut Vec<u32>, len: u64) -> io::Result<()> {
        let keep = len.div_ceil(BLOCK) as usize;
        if blocks.len() > keep {
            self.free(&blocks[keep..]);
            blocks.truncate(keep);
        }
        let within = len % BLOCK;
        if within != 0
            && let Some(&last) = blocks.last()
            && last != HOLE
        {
            let zeros = vec![0u8; (BLOCK - within) as usize];
            write_all_at(&self.file, &zeros, Self::offset(last, within))?;
        }
        Ok(())
    }

    /// A reader over a file of `len` bytes in `blocks`, for the layer.
    pub fn reader(self: &Arc<Spill>, blocks: Vec<u32>, len: u64) -> SpillReader {
        SpillReader {
            spill: Arc::clone(self),
            blocks,
            len,
            at: 0,
        }
    }
}

/// Reads one spilled file from its start. See [`Spill::reader`].
pub struct SpillReader {
    spill: Arc<Spill>,
    blocks: Vec<u32>,
    len: u64,
    at: u64,
}

impl Read for SpillReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.spill.read(&self.blocks, self.len, self.at, buf)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spilled_files_share_one_file_and_read_back_with_holes_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path()).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let data: Vec<u8> = (0..3 * BLOCK + 10).map(|i| (i % 251) as u8).collect();
        spill.write(&mut a, 0, &data).unwrap();
        spill.write(&mut b, 5 * BLOCK + 1, b"xyz").unwrap();
        let mut out = vec![0u8; data.len()];
        assert_eq!(
            spill.read(&a, data.len() as u64, 0, &mut out).unwrap(),
            data.len()
        );
        assert_eq!(out, data);
        let mut out = vec![1u8; 8];
        let len = 5 * BLOCK + 4;
        assert_eq!(spill.read(&b, len, 5 * BLOCK - 4, &mut out).unwrap(), 8);
        assert_eq!(out, [0, 0, 0, 0, 0, b'x', b'y', b'z']);
        // Freed blocks are reused, zeroed; truncation zeroes the tail.
        spill.truncate(&mut a, 5).unwrap();
        let mut c = Vec::new();
        spill.write(&mut c, 1, b"c").unwrap();
        let mut out = [9u8; 3];
        spill.read(&c, 3, 0, &mut out).unwrap();
        assert_eq!(out, [0, b'c', 0]);
        let mut out = [9u8; 8];
        spill.read(&a, 8, 0, &mut out).unwrap();
        assert_eq!(out, [0, 1, 2, 3, 4, 0, 0, 0]);
        let mut r = spill.reader(a.clone(), 5);
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, [0, 1, 2, 3, 4]);
    }
}
