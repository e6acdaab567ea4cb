//! The dead-peer watch: cached descriptors registered with the daemon's
//! epoll instance, so that a peer that hangs up or announces a shutdown
//! (`421 ...`) is noticed at once and its session evicted.
//!
//! Registrations are one-shot (`EPOLLONESHOT`) and never removed
//! explicitly, which saves an `epoll_ctl` per lookup: an epoll registration
//! outlives our `close()` while another process (the client that took the
//! session) still holds the same open file, but a one-shot registration
//! reports at most one event, whose token names a session handle that is
//! stale by then and is ignored. It disappears when the last holder closes
//! the file. When the same file comes back under the same descriptor
//! number, `EPOLL_CTL_ADD` says `EEXIST` and the old registration is
//! re-armed with the new token instead. Which to try first is guessed per
//! number from the last save under it: `EPOLL_CTL_MOD` first when the same
//! file came back (one call instead of a failed `ADD` and a `MOD`), `ADD`
//! first when another file did (many clients at once hand connections back
//! under shuffled numbers, and then a `MOD` would mostly fail).
//!
//! A client that keeps the connections it took (and gives them back under
//! other numbers) makes those leftover registrations pile up. The watch
//! counts the registrations it adds, an upper bound on those in the set,
//! and the daemon replaces its epoll instance when the count grows past a
//! multiple of the sessions cached (`Daemon::rebuild_epoll`).
#![forbid(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use scache_core::{EvictionCause, SessionHandle};

use crate::tokens::Token;

/// What the last registration under a descriptor number suggests for the
/// next one (one-shot registrations are never removed explicitly, so one
/// may remain under a number).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Never registered here: `EPOLL_CTL_ADD`.
    #[default]
    Unknown,
    /// The same file came back last time (or the number was new): try
    /// re-arming with `EPOLL_CTL_MOD` first.
    Rearm,
    /// Another file came last time: try `EPOLL_CTL_ADD` first, as
    /// clients that hand connections back under shuffled numbers (many at
    /// once) make a failed `MOD` the rule.
    Add,
}

/// The registrations of the cached sessions' descriptors.
#[derive(Debug, Default)]
pub struct SessionWatch {
    /// Per descriptor number, which `epoll_ctl` to try first.
    slots: Vec<Slot>,
    /// Registrations this watch has made (each `EPOLL_CTL_ADD` that
    /// succeeded): an upper bound on those still in the epoll set.
    added: usize,
}

impl SessionWatch {
    /// Registers `fd`, the descriptor of the cached session `handle`, for
    /// one dead-peer event. Returns false when it cannot be watched (not
    /// pollable, such as a regular file).
    pub fn watch(&mut self, epoll: &Epoll, fd: BorrowedFd<'_>, handle: SessionHandle) -> bool {
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT;
        let mut event = EpollEvent::new(flags, Token::Session(handle).to_u64());
        let slot = usize::try_from(fd.as_raw_fd()).unwrap_or(0);
        // A descriptor number registered before may still carry the
        // registration of the same file (a client re-saving the connection
        // it took): re-arm it with one MOD, unless another file came under
        // this number last time. Otherwise (ENOENT: another file now, or
        // the old one is gone) ADD it; EEXIST: it was the same file.
        let guess = self.slots.get(slot).copied().unwrap_or_default();
        if guess == Slot::Rearm && epoll.modify(fd, &mut event).is_ok() {
            return true;
        }
        let next = match epoll.add(fd, event) {
            Ok(()) => {
                self.added += 1;
                if guess == Slot::Unknown {
                    Slot::Rearm
                } else {
                    Slot::Add
                }
            }
            Err(Errno::EEXIST) if epoll.modify(fd, &mut event).is_ok() => Slot::Rearm,
            Err(_) => return false,
        };
        if self.slots.len() <= slot {
            self.slots.resize(slot + 1, Slot::Unknown);
        }
        self.slots[slot] = next;
        true
    }

    /// Registrations added since this watch began or its count was last
    /// restarted: an upper bound on the session registrations in the set.
    pub fn added(&self) -> usize {
        self.added
    }

    /// Starts the count of [`added`](SessionWatch::added) registrations
    /// again, keeping what is known about the descriptor numbers.
    pub fn restart_count(&mut self) {
        self.added = 0;
    }
}

/// What an event on a watched session means: its peer hung up, or spoke
/// (an idle SMTP server only speaks to say goodbye, `421`).
pub fn peer_event_cause(flags: EpollFlags) -> EvictionCause {
    if flags.intersects(EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR) {
        EvictionCause::PeerClosed
    } else {
        EvictionCause::PeerData
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use nix::sys::epoll::EpollCreateFlags;

    use super::*;

    fn epoll() -> Epoll {
        Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap()
    }

    #[test]
    fn only_new_registrations_are_counted() {
        let ep = epoll();
        let (a, _a_far) = UnixStream::pair().unwrap();
        let (b, _b_far) = UnixStream::pair().unwrap();
        let mut watch = SessionWatch::default();
        assert!(watch.watch(&ep, a.as_fd(), SessionHandle::from_u64(1)));
        assert!(watch.watch(&ep, b.as_fd(), SessionHandle::from_u64(2)));
        assert_eq!(watch.added(), 2);
        // Re-arming one already in the set adds nothing.
        assert!(watch.watch(&ep, a.as_fd(), SessionHandle::from_u64(3)));
        assert_eq!(watch.added(), 2);
        // Nor does one found by EEXIST (a watch that has not seen it).
        let mut other = SessionWatch::default();
        assert!(other.watch(&ep, a.as_fd(), SessionHandle::from_u64(4)));
        assert_eq!(other.added(), 0);
        // What cannot be polled is not watched, nor counted.
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(!watch.watch(&ep, file.as_fd(), SessionHandle::from_u64(5)));
        assert_eq!(watch.added(), 2);
        watch.restart_count();
        assert_eq!(watch.added(), 0);
        let (c, _c_far) = UnixStream::pair().unwrap();
        assert!(watch.watch(&ep, c.as_fd(), SessionHandle::from_u64(6)));
        assert_eq!(watch.added(), 1);
    }

    #[test]
    fn a_rearmed_registration_reports_the_new_handle() {
        let ep = epoll();
        let (a, a_far) = UnixStream::pair().unwrap();
        let mut watch = SessionWatch::default();
        assert!(watch.watch(&ep, a.as_fd(), SessionHandle::from_u64(1)));
        assert!(watch.watch(&ep, a.as_fd(), SessionHandle::from_u64(7)));
        drop(a_far);
        let mut events = [EpollEvent::empty(); 4];
        let n = ep.wait(&mut events, 1000u16).unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            Token::from_u64(events[0].data()),
            Some(Token::Session(SessionHandle::from_u64(7)))
        );
        assert_eq!(
            peer_event_cause(events[0].events()),
            EvictionCause::PeerClosed
        );
        // One-shot: nothing more.
        assert_eq!(ep.wait(&mut events, 0u16).unwrap(), 0);
    }
}
