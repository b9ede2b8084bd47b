//! Errors of the filesystem host: [`FsError`] (an `error-code` for the
//! guest, or a trap) and the mapping from the VFS's [`Errno`].

use wasmtime::component::ResourceTableError;

use super::bindings::wasi::filesystem::types::ErrorCode;
use crate::vfs::Errno;

/// What a `wasi:filesystem/types` method fails with: an `error-code` the
/// guest sees, or a trap (a host-side failure that is not the guest's).
#[derive(Debug)]
pub(super) enum FsError {
    /// Returned to the guest.
    Code(ErrorCode),
    /// Traps the guest.
    Trap(wasmtime::Error),
}

/// `Result` with [`FsError`].
pub(super) type FsResult<T> = Result<T, FsError>;

impl From<ErrorCode> for FsError {
    fn from(code: ErrorCode) -> Self {
        FsError::Code(code)
    }
}

impl From<Errno> for FsError {
    fn from(errno: Errno) -> Self {
        FsError::Code(error_code(errno))
    }
}

impl From<ResourceTableError> for FsError {
    fn from(e: ResourceTableError) -> Self {
        FsError::Trap(e.into())
    }
}

impl From<wasmtime::Error> for FsError {
    fn from(e: wasmtime::Error) -> Self {
        FsError::Trap(e)
    }
}

/// The `error-code` for a VFS error.
pub(super) fn error_code(errno: Errno) -> ErrorCode {
    match errno {
        Errno::Acces => ErrorCode::Access,
        Errno::Badf => ErrorCode::BadDescriptor,
        Errno::Busy => ErrorCode::Busy,
        Errno::Exist => ErrorCode::Exist,
        Errno::Fbig => ErrorCode::FileTooLarge,
        Errno::Inval => ErrorCode::Invalid,
        Errno::Io => ErrorCode::Io,
        Errno::Isdir => ErrorCode::IsDirectory,
        Errno::Loop => ErrorCode::Loop,
        Errno::Nametoolong => ErrorCode::NameTooLong,
        Errno::Noent => ErrorCode::NoEntry,
        Errno::Nospc => ErrorCode::InsufficientSpace,
        Errno::Notdir => ErrorCode::NotDirectory,
        Errno::Notempty => ErrorCode::NotEmpty,
        // wasi:filesystem: leaving the base directory "fails with
        // `error-code::not-permitted`".
        Errno::Notcapable => ErrorCode::NotPermitted,
        Errno::Notsup => ErrorCode::Unsupported,
        Errno::Perm => ErrorCode::NotPermitted,
        Errno::Rofs => ErrorCode::ReadOnly,
        Errno::Xdev => ErrorCode::CrossDevice,
    }
}
