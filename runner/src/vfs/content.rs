//! The contents of one file in the overlay: still the lower layer's bytes
//! in the store, or the step's own bytes in memory, moved to the overlay's
//! [`Spill`] file in the store once they outgrow [`MEM_LIMIT`]. A step can
//! write gigabytes with bounded memory, and thousands of large files with
//! one host handle; nothing it wrote outlives the process except through
//! the layer it produces.
//!
//! Where there is no spill file (`spill: None`: a tmpfs mount), the bytes
//! stay in memory whatever their size; the mount's size cap bounds them.
//! Lower bytes are read through [`super::handles`], which bounds the host
//! handles a step holds.

use std::io::{self, Read};
use std::sync::Arc;

use super::fs::{Errno, VfsResult};
use super::spill::Spill;
use crate::snapshot::FileRef;
use crate::store::Store;

/// Contents up to this size stay in memory; larger ones go to the spill
/// file. Small enough that thousands of small files cost little memory,
/// large enough that most config and source files never touch the disk.
pub const MEM_LIMIT: usize = 256 << 10;

/// Buffer for copying between files.
const COPY_BUFFER: usize = 256 << 10;

/// A file's contents. See the module docs.
#[derive(Debug)]
pub enum Data {
    /// Unmodified lower contents, read from the store on demand.
    Lower {
        /// The contents in the store.
        file: FileRef,
    },
    /// Small contents written by the step.
    Mem(Vec<u8>),
    /// Larger contents written by the step.
    Temp {
        /// The overlay's spill file.
        spill: Arc<Spill>,
        /// The file's blocks in it.
        blocks: Vec<u32>,
        /// Its length.
        len: u64,
    },
}

impl Drop for Data {
    fn drop(&mut self) {
        if let Data::Temp { spill, blocks, .. } = self {
            spill.free(blocks);
        }
    }
}

fn io(_: io::Error) -> Errno {
    Errno::Io
}

/// Moves `v` into blocks of `spill`.
fn spill_out(spill: &Arc<Spill>, v: &[u8]) -> VfsResult<Data> {
    let mut blocks = Vec::new();
    spill.write(&mut blocks, 0, v).map_err(io)?;
    Ok(Data::Temp {
        spill: Arc::clone(spill),
        blocks,
        len: v.len() as u64,
    })
}

/// Lets go of the host handle reading `file`, once a guest closed it. A
/// pack's handle serves every file of its layer, so it stays, bounded by
/// the handle cache like any other.
pub(super) fn release(store: &Store, file: &FileRef) {
    if file.at.is_none() {
        super::handles::release(&store.content_path(&file.digest));
    }
}

impl Data {
    /// The length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Data::Lower { file, .. } => file.size,
            Data::Mem(v) => v.len() as u64,
            Data::Temp { len, .. } => *len,
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the contents are the step's own (not the lower layer's).
    pub fn is_upper(&self) -> bool {
        !matches!(self, Data::Lower { .. })
    }

    /// Reads at `offset`.
    pub fn read_at(&mut self, store: &Store, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        let len = self.len();
        if offset >= len || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min((len - offset) as usize);
        match self {
            Data::Mem(v) => {
                let start = offset as usize;
                buf[..want].copy_from_slice(&v[start..start + want]);
                Ok(want)
            }
            Data::Lower { file } => {
                let (path, start) = store.content_at(file);
                super::handles::read_at(&path, start + offset, &mut buf[..want]).map_err(io)
            }
            Data::Temp { spill, blocks, len } => spill
                .read(blocks, *len, offset, &mut buf[..want])
                .map_err(io),
        }
    }

    /// Makes the contents the step's own (copying lower bytes up), so they
    /// can be changed. `spill` is where large contents go (`None`: memory).
    pub fn make_upper(&mut self, store: &Store, spill: Option<&Arc<Spill>>) -> VfsResult<()> {
        if let Data::Lower { file } = self {
            let file = *file;
            let mut src = store.open_content(&file).map_err(|_| Errno::Io)?;
            *self = if let (Some(spill), true) = (spill, file.size > MEM_LIMIT as u64) {
                let mut blocks = Vec::new();
                let mut buf = vec![0u8; COPY_BUFFER];
                let mut len = 0u64;
                loop {
                    let n = match src.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            spill.free(&blocks);
                            return Err(io(e));
                        }
                    };
                    if let Err(e) = spill.write(&mut blocks, len, &buf[..n]) {
                        spill.free(&blocks);
                        return Err(io(e));
                    }
                    len += n as u64;
                }
                Data::Temp {
                    spill: Arc::clone(spill),
                    blocks,
                    len,
                }
            } else {
                let mut v =
                    Vec::with_capacity(usize::try_from(file.size).map_err(|_| Errno::Fbig)?);
                src.read_to_end(&mut v).map_err(io)?;
                Data::Mem(v)
            };
        }
        Ok(())
    }

    /// Writes at `offset` (contents must be upper), spilling to `spill`
    /// past [`MEM_LIMIT`] when there is one. Returns how much the length grew.
    pub fn write_at(
        &mut self,
        spill: Option<&Arc<Spill>>,
        offset: u64,
        data: &[u8],
    ) -> VfsResult<u64> {
        let old_len = self.len();
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::Fbig)?;
        if let Data::Mem(v) = self
            && let Some(spill) = spill
            && end > MEM_LIMIT as u64
        {
            *self = spill_out(spill, v)?;
        }
        match self {
            Data::Mem(v) => {
                let end = usize::try_from(end).map_err(|_| Errno::Fbig)?;
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[offset as usize..end].copy_from_slice(data);
            }
            Data::Temp { spill, blocks, len } => {
                spill.write(blocks, offset, data).map_err(io)?;
                *len = (*len).max(end);
            }
            Data::Lower { .. } => unreachable!("make_upper first"),
        }
        Ok(self.len().saturating_sub(old_len))
    }

    /// Truncates or extends with zeros (contents must be upper), spilling
    /// as [`Data::write_at`] does.
    pub fn set_len(&mut self, spill: Option<&Arc<Spill>>, size: u64) -> VfsResult<()> {
        if let Data::Mem(v) = self
            && let Some(spill) = spill
            && size > MEM_LIMIT as u64
        {
            *self = spill_out(spill, v)?;
        }
        match self {
            Data::Mem(v) => v.resize(usize::try_from(size).map_err(|_| Errno::Fbig)?, 0),
            Data::Temp { spill, blocks, len } => {
                if size < *len {
                    spill.truncate(blocks, size).map_err(io)?;
                }
                *len = size;
            }
            Data::Lower { .. } => unreachable!("make_upper first"),
        }
        Ok(())
    }

    /// A reader over the whole contents, for writing the layer.
    pub fn layer_content(&self) -> VfsResult<crate::layer::Content> {
        use crate::layer::Content;
        Ok(match self {
            Data::Lower { file } => Content::Stored(*file),
            Data::Mem(v) => Content::Bytes(v.clone()),
            Data::Temp { spill, blocks, len } => {
                let (spill, blocks, len) = (Arc::clone(spill), blocks.clone(), *len);
                Content::Reader {
                    size: len,
                    open: Arc::new(move || {
                        let reader = spill.reader(blocks.clone(), len);
                        Ok(Box::new(io::BufReader::with_capacity(COPY_BUFFER, reader)))
                    }),
                    origin: "a file written by the step".into(),
                    digest: None,
                }
            }
        })
    }
}
