//! Cached descriptors that the event loop watches for a dead peer.
//!
//! Every descriptor the daemon caches is a [`WatchedFd`]. While it sits in
//! the cache it is registered with the daemon's epoll instance (when the
//! descriptor can be polled and watching is on), so a peer that hangs up or
//! announces a shutdown (`421 ...`) is noticed at once. Whatever removes it
//! from the cache — a lookup, expiry, eviction, shutdown — goes through
//! [`WatchedFd::unwatch`] or `Drop`, both of which deregister it first:
//! an epoll registration outlives `close()` when another process still holds
//! the same open file (the client that took it, for instance), so it must be
//! removed explicitly.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

static EPOLL: OnceLock<Epoll> = OnceLock::new();

/// The daemon's epoll instance (one per process).
pub fn epoll() -> &'static Epoll {
    EPOLL.get_or_init(|| match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
        Ok(ep) => ep,
        Err(e) => crate::logging::fatal(format!("epoll_create: {e}")),
    })
}

/// An owned descriptor in the cache, possibly registered with [`epoll`].
#[derive(Debug)]
pub struct WatchedFd {
    fd: OwnedFd,
    watched: bool,
}

impl WatchedFd {
    /// A descriptor that is not (yet) watched.
    pub fn new(fd: OwnedFd) -> WatchedFd {
        WatchedFd { fd, watched: false }
    }

    /// Registers the descriptor for dead-peer events under `token`.
    /// Descriptors that cannot be polled (regular files) stay unwatched.
    pub fn watch(&mut self, token: u64) -> bool {
        if self.watched {
            return true;
        }
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        self.watched = epoll()
            .add(self.fd.as_fd(), EpollEvent::new(flags, token))
            .is_ok();
        self.watched
    }

    /// Whether the descriptor is registered with epoll.
    pub fn is_watched(&self) -> bool {
        self.watched
    }

    /// Deregisters the descriptor (before it is handed to a client).
    pub fn unwatch(&mut self) {
        if self.watched {
            self.watched = false;
            let _ = epoll().delete(self.fd.as_fd());
        }
    }
}

impl AsFd for WatchedFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for WatchedFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for WatchedFd {
    fn drop(&mut self) {
        self.unwatch();
    }
}
