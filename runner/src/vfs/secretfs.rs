//! [`SecretFs`]: the in-memory, read-only directory that serves a step its
//! secrets (`/run/secrets` by default). Its files read straight from the
//! [`Secret`] buffers: no copy is made, nothing is ever on disk, and no
//! write of any kind is accepted. The mount, and with it the last reference
//! the step holds to a secret, goes away with the step.

use std::sync::Arc;

use super::fs::{DirEntry, Errno, FileSystem, FileType, SetTime, Stat, VfsResult};
use crate::secrets::Secret;

const ROOT: u64 = 1;

/// One secret file.
pub struct SecretFile {
    /// File name in the directory.
    pub name: String,
    /// The value.
    pub secret: Arc<Secret>,
    /// Permission bits (BuildKit's default is 0400).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A read-only directory of secret files, or a single secret file.
pub struct SecretFs {
    files: Vec<SecretFile>,
    dev: u64,
    mtime: i64,
    /// The root is the one file (mounted at the secret's own path).
    single: bool,
}

impl SecretFs {
    /// A directory holding `files` (sorted by name).
    pub fn new(mut files: Vec<SecretFile>, dev: u64, mtime: i64) -> SecretFs {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        SecretFs {
            files,
            dev,
            mtime,
            single: false,
        }
    }

    /// Just `file`, mounted at its own path: for a target whose directory
    /// the image already has, so the step still sees that directory's files.
    pub fn single(file: SecretFile, dev: u64, mtime: i64) -> SecretFs {
        SecretFs {
            files: vec![file],
            dev,
            mtime,
            single: true,
        }
    }

    fn is_dir(&self, node: u64) -> bool {
        node == ROOT && !self.single
    }

    fn file(&self, node: u64) -> VfsResult<&SecretFile> {
        if self.single {
            return if node == ROOT {
                Ok(&self.files[0])
            } else {
                Err(Errno::Badf)
            };
        }
        let i = node.checked_sub(ROOT + 1).ok_or(Errno::Isdir)?;
        self.files.get(i as usize).ok_or(Errno::Badf)
    }
}

impl FileSystem for SecretFs {
    fn root(&self) -> u64 {
        ROOT
    }

    fn readonly(&self) -> bool {
        true
    }

    fn stat(&mut self, node: u64) -> VfsResult<Stat> {
        let (kind, size, mode, uid, gid, nlink) = if self.is_dir(node) {
            (FileType::Dir, 0, 0o755, 0, 0, 2)
        } else {
            let f = self.file(node)?;
            (
                FileType::File,
                f.secret.len() as u64,
                f.mode,
                f.uid,
                f.gid,
                1,
            )
        };
        Ok(Stat {
            dev: self.dev,
            ino: node,
            kind,
            nlink,
            size,
            mode,
            uid,
            gid,
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.mtime,
        })
    }

    fn lookup(&mut self, dir: u64, name: &str) -> VfsResult<u64> {
        if !self.is_dir(dir) {
            return Err(Errno::Notdir);
        }
        self.files
            .iter()
            .position(|f| f.name == name)
            .map(|i| ROOT + 1 + i as u64)
            .ok_or(Errno::Noent)
    }

    fn read_dir(&mut self, dir: u64) -> VfsResult<Vec<DirEntry>> {
        if !self.is_dir(dir) {
            return Err(Errno::Notdir);
        }
        Ok(self
            .files
            .iter()
            .enumerate()
            .map(|(i, f)| DirEntry {
                name: f.name.clone(),
                id: ROOT + 1 + i as u64,
                kind: FileType::File,
            })
            .collect())
    }

    fn read_link(&mut self, _node: u64) -> VfsResult<String> {
        Err(Errno::Inval)
    }

    fn create_file(&mut self, _: u64, _: &str, _: u32) -> VfsResult<u64> {
        Err(Errno::Rofs)
    }

    fn mkdir(&mut self, _: u64, _: &str, _: u32) -> VfsResult<u64> {
        Err(Errno::Rofs)
    }

    fn symlink(&mut self, _: u64, _: &str, _: &str) -> VfsResult<u64> {
        Err(Errno::Rofs)
    }

    fn link(&mut self, _: u64, _: u64, _: &str) -> VfsResult<()> {
        Err(Errno::Rofs)
    }

    fn unlink(&mut self, _: u64, _: &str) -> VfsResult<()> {
        Err(Errno::Rofs)
    }

    fn rmdir(&mut self, _: u64, _: &str) -> VfsResult<()> {
        Err(Errno::Rofs)
    }

    fn rename(&mut self, _: u64, _: &str, _: u64, _: &str) -> VfsResult<()> {
        Err(Errno::Rofs)
    }

    fn read(&mut self, node: u64, offset: u64, buf: &mut [u8]) -> VfsResult<usize> {
        let data = self.file(node)?.secret.expose();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write(&mut self, _: u64, _: u64, _: &[u8]) -> VfsResult<usize> {
        Err(Errno::Rofs)
    }

    fn set_size(&mut self, _: u64, _: u64) -> VfsResult<()> {
        Err(Errno::Rofs)
    }

    fn set_times(&mut self, _: u64, _: SetTime, _: SetTime) -> VfsResult<()> {
        Err(Errno::Rofs)
    }

    fn open(&mut self, node: u64) -> VfsResult<()> {
        if self.is_dir(node) {
            Ok(())
        } else {
            self.file(node).map(drop)
        }
    }

    fn close(&mut self, _node: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_secrets_read_only() {
        let s = Arc::new(Secret::new("tok", b"s3cret".to_vec()));
        let mut fs = SecretFs::new(
            vec![SecretFile {
                name: "tok".into(),
                secret: s,
                mode: 0o400,
                uid: 0,
                gid: 0,
            }],
            9,
            0,
        );
        let id = fs.lookup(ROOT, "tok").unwrap();
        let st = fs.stat(id).unwrap();
        assert_eq!((st.size, st.mode, st.kind), (6, 0o400, FileType::File));
        let mut buf = [0u8; 16];
        assert_eq!(fs.read(id, 2, &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"cret");
        assert_eq!(fs.write(id, 0, b"x"), Err(Errno::Rofs));
        assert_eq!(fs.create_file(ROOT, "new", 0o644), Err(Errno::Rofs));
        assert_eq!(fs.unlink(ROOT, "tok"), Err(Errno::Rofs));
        assert_eq!(fs.lookup(ROOT, "other"), Err(Errno::Noent));
        assert_eq!(fs.read_dir(ROOT).unwrap().len(), 1);
    }
}
