//! `poll_oneoff`: clock subscriptions and descriptor readiness.
//!
//! Descriptor subscriptions are ready at once: files are in the VFS, and
//! the standard streams are the step's buffers or the terminal (a read of a
//! terminal's stdin may then wait for input, as a blocking read would).
//! Their errors (`EBADF`, `ENOTCAPABLE`) are reported per event, as
//! preview1 intends. Without any, the
//! call sleeps until the earliest clock fires, waking every
//! [`CANCEL_POLL`] to notice Ctrl-C: a cancelled step's sleep ends early and
//! the epoch check stops the guest as soon as it runs again.

use wiggle::{GuestMemory, GuestPtr};

use super::table::Kind;
use super::types::{self, Errno, Rights};
use super::{CANCEL_POLL, MAX_SUBSCRIPTIONS, StepState};

type Result<T, E = types::Error> = std::result::Result<T, E>;

fn event(userdata: u64, error: Errno, type_: types::Eventtype, nbytes: u64) -> types::Event {
    types::Event {
        userdata,
        error,
        type_,
        fd_readwrite: types::EventFdReadwrite {
            nbytes,
            flags: types::Eventrwflags::empty(),
        },
    }
}

/// The readiness event of an `fd_read` (`write` false) or `fd_write`
/// subscription.
fn fd_event(state: &mut StepState, userdata: u64, fd: types::Fd, write: bool) -> types::Event {
    let type_ = if write {
        types::Eventtype::FdWrite
    } else {
        types::Eventtype::FdRead
    };
    let StepState { p1, vfs, .. } = state;
    let desc = match p1.get(vfs, u32::from(fd)) {
        Ok(desc) => desc,
        Err(e) => return event(userdata, e, type_, 0),
    };
    if !desc.base.contains(Rights::POLL_FD_READWRITE) {
        return event(userdata, Errno::Notcapable, type_, 0);
    }
    match (&desc.kind, write) {
        (Kind::Stdin, false) | (Kind::Stdout | Kind::Stderr, true) => {
            event(userdata, Errno::Success, type_, 1)
        }
        (Kind::File { node, pos }, false) => match vfs.stat(*node) {
            Ok(st) => event(
                userdata,
                Errno::Success,
                type_,
                st.size.saturating_sub(*pos),
            ),
            Err(e) => event(userdata, super::errno(e), type_, 0),
        },
        (Kind::File { .. }, true) => event(userdata, Errno::Success, type_, 1),
        _ => event(userdata, Errno::Badf, type_, 0),
    }
}

/// When a clock subscription fires, on the monotonic clock.
fn deadline(state: &StepState, clock: &types::SubscriptionClock) -> u64 {
    let now = state.clocks.monotonic_now();
    let absolute = clock
        .flags
        .contains(types::Subclockflags::SUBSCRIPTION_CLOCK_ABSTIME);
    if !absolute {
        return now.saturating_add(clock.timeout);
    }
    match clock.id {
        types::Clockid::Realtime => {
            let wall = u64::try_from(state.clocks.wall_now()).unwrap_or(0);
            now.saturating_add(clock.timeout.saturating_sub(wall))
        }
        // CPU time is the monotonic clock (see `clock_time_get`).
        types::Clockid::Monotonic
        | types::Clockid::ProcessCputimeId
        | types::Clockid::ThreadCputimeId => clock.timeout,
    }
}

pub(super) fn poll_oneoff(
    state: &mut StepState,
    mem: &mut GuestMemory<'_>,
    subs: GuestPtr<types::Subscription>,
    events: GuestPtr<types::Event>,
    nsubscriptions: types::Size,
) -> Result<types::Size> {
    if nsubscriptions == 0 || nsubscriptions > MAX_SUBSCRIPTIONS {
        // Zero would sleep forever, which preview1 does not allow.
        return Err(Errno::Inval.into());
    }
    let mut ready = Vec::new();
    let mut clocks = Vec::new();
    for sub in subs.as_array(nsubscriptions).iter() {
        let sub = mem.read(sub?)?;
        match sub.u {
            types::SubscriptionU::Clock(clock) => {
                clocks.push((sub.userdata, deadline(state, &clock)));
            }
            types::SubscriptionU::FdRead(s) => {
                ready.push(fd_event(state, sub.userdata, s.file_descriptor, false));
            }
            types::SubscriptionU::FdWrite(s) => {
                ready.push(fd_event(state, sub.userdata, s.file_descriptor, true));
            }
        }
    }
    if ready.is_empty() {
        let earliest = clocks.iter().map(|&(_, d)| d).min().unwrap_or(0);
        loop {
            let now = state.clocks.monotonic_now();
            if now >= earliest || state.cancelled() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_nanos(earliest - now).min(CANCEL_POLL));
        }
        let now = state.clocks.monotonic_now().max(earliest);
        for &(userdata, d) in &clocks {
            if d <= now {
                ready.push(event(userdata, Errno::Success, types::Eventtype::Clock, 0));
            }
        }
    } else {
        let now = state.clocks.monotonic_now();
        for &(userdata, d) in &clocks {
            if d <= now {
                ready.push(event(userdata, Errno::Success, types::Eventtype::Clock, 0));
            }
        }
    }
    let out = events.as_array(nsubscriptions);
    let count = u32::try_from(ready.len())?;
    for (i, e) in (0..).zip(ready) {
        let slot = out.get(i).ok_or(Errno::Fault)?;
        mem.write(slot, e)?;
    }
    Ok(count)
}
