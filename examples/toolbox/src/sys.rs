//! What differs between WASI and a host, in one place: creating symlinks
//! (std's WASI `symlink_path` is unstable, so wasi-libc's `symlink(3)`,
//! which is what std would call), and file modes, owners and identities,
//! which WASI preview 1 does not have at all. Under WASI modes and owners
//! are reported as unknown and never set; a file kiln's filesystem creates
//! gets its default mode (0644, or 0755 for a directory).
//!
//! Unix hosts (where the unit tests run) have all of these.

use std::fs::Metadata;
use std::io;
use std::path::Path;

/// Creates a symlink at `link` pointing to `target` (stored as written).
pub(crate) fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    imp::symlink(target, link)
}

/// The permission bits (with setuid, setgid, sticky), when the platform has
/// them.
pub(crate) fn mode(meta: &Metadata) -> Option<u32> {
    imp::mode(meta)
}

/// Sets the permission bits where the platform has them; a no-op under WASI.
pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    imp::set_mode(path, mode)
}

/// Owner and group ids, when the platform has them.
pub(crate) fn owner(meta: &Metadata) -> Option<(u64, u64)> {
    imp::owner(meta)
}

/// Whether two metadata describe the same file, when the platform can tell.
pub(crate) fn same_file(a: &Metadata, b: &Metadata) -> Option<bool> {
    imp::same_file(a, b)
}

#[cfg(unix)]
mod imp {
    use std::fs::{self, Metadata, Permissions};
    use std::io;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::Path;

    pub(super) fn symlink(target: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(target, link)
    }

    pub(super) fn mode(meta: &Metadata) -> Option<u32> {
        Some(meta.mode() & 0o7777)
    }

    pub(super) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
        fs::set_permissions(path, Permissions::from_mode(mode))
    }

    pub(super) fn owner(meta: &Metadata) -> Option<(u64, u64)> {
        Some((u64::from(meta.uid()), u64::from(meta.gid())))
    }

    pub(super) fn same_file(a: &Metadata, b: &Metadata) -> Option<bool> {
        Some(a.dev() == b.dev() && a.ino() == b.ino())
    }
}

#[cfg(target_os = "wasi")]
mod imp {
    use std::ffi::{CString, c_char, c_int};
    use std::fs::Metadata;
    use std::io;
    use std::path::Path;

    fn c_path(path: &Path) -> io::Result<CString> {
        CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    }

    #[allow(unsafe_code)]
    pub(super) fn symlink(target: &Path, link: &Path) -> io::Result<()> {
        unsafe extern "C" {
            // wasi-libc: resolves `link` against the preopens and the
            // current directory, then calls `path_symlink`.
            fn symlink(target: *const c_char, link: *const c_char) -> c_int;
        }
        let (target, link) = (c_path(target)?, c_path(link)?);
        // SAFETY: both pointers are NUL-terminated strings that live until
        // the call returns; wasi-libc only reads them.
        if unsafe { symlink(target.as_ptr(), link.as_ptr()) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn mode(_meta: &Metadata) -> Option<u32> {
        None
    }

    pub(super) fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn owner(_meta: &Metadata) -> Option<(u64, u64)> {
        None
    }

    pub(super) fn same_file(_a: &Metadata, _b: &Metadata) -> Option<bool> {
        None
    }
}

#[cfg(not(any(unix, target_os = "wasi")))]
mod imp {
    use std::fs::Metadata;
    use std::io;
    use std::path::Path;

    pub(super) fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "symlinks are not supported on this platform",
        ))
    }

    pub(super) fn mode(_meta: &Metadata) -> Option<u32> {
        None
    }

    pub(super) fn set_mode(_path: &Path, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    pub(super) fn owner(_meta: &Metadata) -> Option<(u64, u64)> {
        None
    }

    pub(super) fn same_file(_a: &Metadata, _b: &Metadata) -> Option<bool> {
        None
    }
}
