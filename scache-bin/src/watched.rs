//! Cached descriptors that the event loop watches for a dead peer.
//!
//! Every descriptor the daemon caches is a [`WatchedFd`]. While it sits in
//! the cache it is registered with the daemon's epoll instance (when the
//! descriptor can be polled and watching is on), so a peer that hangs up or
//! announces a shutdown (`421 ...`) is noticed at once.
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

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

static EPOLL: OnceLock<Epoll> = OnceLock::new();

thread_local! {
    /// Descriptor numbers that have had a registration (one-shot ones are
    /// never removed explicitly, so one may remain).
    static REGISTERED: std::cell::RefCell<Vec<bool>> = const { std::cell::RefCell::new(Vec::new()) };
}

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

    /// Registers the descriptor for one dead-peer event under `token`.
    /// Descriptors that cannot be polled (regular files) stay unwatched.
    pub fn watch(&mut self, token: u64) -> bool {
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLONESHOT;
        let mut event = EpollEvent::new(flags, token);
        let fd = self.fd.as_fd();
        let slot = usize::try_from(self.fd.as_raw_fd()).unwrap_or(0);
        // A descriptor number registered before may still carry the
        // registration of the same file (a client re-saving the connection
        // it took): re-arm it with one MOD. Otherwise (ENOENT: another file
        // now, or the old one is gone) ADD it.
        let rearmed = REGISTERED.with(|r| r.borrow().get(slot).copied().unwrap_or(false))
            && epoll().modify(fd, &mut event).is_ok();
        self.watched = rearmed
            || match epoll().add(fd, event) {
                Ok(()) => true,
                Err(nix::errno::Errno::EEXIST) => epoll().modify(fd, &mut event).is_ok(),
                Err(_) => false,
            };
        if self.watched && !rearmed {
            REGISTERED.with(|r| {
                let mut r = r.borrow_mut();
                if r.len() <= slot {
                    r.resize(slot + 1, false);
                }
                r[slot] = true;
            });
        }
        self.watched
    }

    /// Whether the descriptor was registered with epoll when last watched.
    pub fn is_watched(&self) -> bool {
        self.watched
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
