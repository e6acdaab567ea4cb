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
//! re-armed with the new token instead (tried first when that number was
//! registered before: one `EPOLL_CTL_MOD` instead of a failed `ADD` and a
//! `MOD`).
#![forbid(unsafe_code)]

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use scache_core::{EvictionCause, SessionHandle};

use crate::tokens::Token;

/// Which descriptor numbers have had a registration (one-shot ones are
/// never removed explicitly, so one may remain).
#[derive(Debug, Default)]
pub struct SessionWatch {
    registered: Vec<bool>,
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
        // it took): re-arm it with one MOD. Otherwise (ENOENT: another file
        // now, or the old one is gone) ADD it.
        let was_registered = self.registered.get(slot).copied().unwrap_or(false);
        if was_registered && epoll.modify(fd, &mut event).is_ok() {
            return true;
        }
        let added = match epoll.add(fd, event) {
            Ok(()) => true,
            Err(Errno::EEXIST) => epoll.modify(fd, &mut event).is_ok(),
            Err(_) => false,
        };
        if added {
            if self.registered.len() <= slot {
                self.registered.resize(slot + 1, false);
            }
            self.registered[slot] = true;
        }
        added
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
