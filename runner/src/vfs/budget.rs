//! [`WriteBudget`]: what one step may write, counted across every writable
//! backend of its [`super::Vfs`].
//!
//! `--step-max-write` and `--step-max-files` bound everything a step writes
//! anywhere: the root overlay (the layer), tmpfs mounts, stage binds with
//! `rw`, cache mounts and read-write host binds. The namespace owns one
//! budget and hands it to every backend it mounts
//! ([`super::FileSystem::share_budget`]); each backend charges the bytes its
//! files grow by and the nodes it creates, and gives back the bytes it frees
//! (never more than it charged, so deleting what was there before the step
//! cannot pay for new writes elsewhere). A refused charge is `ENOSPC` for the
//! guest and is remembered ([`WriteBudget::hit`]), so the step ends with the
//! limit's message instead of the guest's "disk full".
//!
//! A backend may also have a budget of its own (a tmpfs `size=`); that one is
//! checked as well, and hitting it is only `ENOSPC`, as on Linux.

use std::sync::Mutex;

use super::fs::{Errno, VfsResult};

/// Limits on what one step may write, checked as it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteLimits {
    /// Bytes of file contents the step may hold across its writable
    /// filesystems.
    pub max_bytes: u64,
    /// Files, directories and links the step may create.
    pub max_files: u64,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            max_bytes: u64::MAX,
            max_files: u64::MAX,
        }
    }
}

/// Which write limit a step hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitHit {
    /// [`WriteLimits::max_bytes`].
    Bytes,
    /// [`WriteLimits::max_files`].
    Files,
}

#[derive(Debug, Default)]
struct State {
    limits: WriteLimits,
    bytes: u64,
    files: u64,
    hit: Option<LimitHit>,
}

/// A shared count of what a step wrote, against its [`WriteLimits`]. See
/// the module docs. Backends hold it in an `Arc`; the lock is only ever
/// taken for a few arithmetic operations.
#[derive(Debug, Default)]
pub struct WriteBudget {
    state: Mutex<State>,
}

impl WriteBudget {
    /// A budget with `limits` and nothing charged.
    pub fn new(limits: WriteLimits) -> WriteBudget {
        WriteBudget {
            state: Mutex::new(State {
                limits,
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every
        // update is a single assignment.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the limits (what was charged stays).
    pub fn set_limits(&self, limits: WriteLimits) {
        self.state().limits = limits;
    }

    /// The limits.
    pub fn limits(&self) -> WriteLimits {
        self.state().limits
    }

    /// Charges `n` more bytes, or refuses with `Nospc` (and remembers it).
    pub fn charge_bytes(&self, n: u64) -> VfsResult<()> {
        let mut s = self.state();
        match s.bytes.checked_add(n) {
            Some(total) if total <= s.limits.max_bytes => {
                s.bytes = total;
                Ok(())
            }
            _ => {
                s.hit = Some(LimitHit::Bytes);
                Err(Errno::Nospc)
            }
        }
    }

    /// Gives back `n` bytes that were charged and are now freed.
    pub fn refund_bytes(&self, n: u64) {
        let mut s = self.state();
        s.bytes = s.bytes.saturating_sub(n);
    }

    /// Charges one created node, or refuses with `Nospc` (and remembers it).
    pub fn charge_file(&self) -> VfsResult<()> {
        let mut s = self.state();
        if s.files >= s.limits.max_files {
            s.hit = Some(LimitHit::Files);
            return Err(Errno::Nospc);
        }
        s.files += 1;
        Ok(())
    }

    /// Gives back a node charged for a creation that then failed.
    pub fn refund_file(&self) {
        let mut s = self.state();
        s.files = s.files.saturating_sub(1);
    }

    /// Bytes charged now.
    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    /// Nodes created so far.
    pub fn files(&self) -> u64 {
        self.state().files
    }

    /// The limit a charge ran into, if any.
    pub fn hit(&self) -> Option<LimitHit> {
        self.state().hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_past_its_limits_and_remembers_which() {
        let b = WriteBudget::new(WriteLimits {
            max_bytes: 10,
            max_files: 1,
        });
        b.charge_bytes(6).unwrap();
        assert_eq!(b.charge_bytes(5), Err(Errno::Nospc));
        assert_eq!(b.hit(), Some(LimitHit::Bytes));
        b.refund_bytes(6);
        b.charge_bytes(10).unwrap();
        assert_eq!(b.charge_bytes(u64::MAX), Err(Errno::Nospc));
        b.charge_file().unwrap();
        assert_eq!(b.charge_file(), Err(Errno::Nospc));
        assert_eq!(b.hit(), Some(LimitHit::Files));
    }
}
