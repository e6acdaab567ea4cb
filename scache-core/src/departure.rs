//! What happens to sessions that leave a cache without being found, and
//! the optional liveness check at checkout.
//!
//! Both are opt-in. By default a session that expires or is evicted is
//! simply dropped (for `OwnedFd`, closed), and a lookup hands out the
//! oldest session without looking at it.

use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};

use crate::stats::EvictionCause;

/// Why a session left the cache without being found by a lookup.
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use scache_core::{DepartureCause, EvictionCause, Limits, ManualClock, MultiCache};
///
/// let clock = ManualClock::new();
/// let limits = Limits { max_sessions: Some(1), ..Limits::NONE };
/// let mut cache: MultiCache<u32, _> = MultiCache::with_limits(&clock, limits);
/// let (tx, rx) = mpsc::channel();
/// cache.set_departure_hook(move |d| tx.send(d.cause).unwrap());
/// cache.save_endp(Duration::from_secs(9), b"a", b"", 1).unwrap();
/// cache.save_endp(Duration::from_secs(1), b"b", b"", 2).unwrap(); // evicts 1
/// clock.advance(Duration::from_secs(1));
/// cache.expire_due(); // 2 expires
/// cache.save_endp(Duration::from_secs(9), b"c", b"", 3).unwrap();
/// cache.clear(); // 3 is still there
/// let causes: Vec<_> = rx.try_iter().collect();
/// assert_eq!(causes, [
///     DepartureCause::Evicted(EvictionCause::SessionLimit),
///     DepartureCause::Expired,
///     DepartureCause::Shutdown,
/// ]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DepartureCause {
    /// Its time to live ran out (this includes a session put back after
    /// its deadline).
    Expired,
    /// The cache evicted it: to respect a [`Limits`](crate::Limits) bound,
    /// because its peer was found closed or chatty at checkout, or because
    /// the owner asked (see the [`EvictionCause`]).
    Evicted(EvictionCause),
    /// The cache was cleared or dropped with the session still in it.
    Shutdown,
}

impl fmt::Display for DepartureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DepartureCause::Expired => f.write_str("expired"),
            DepartureCause::Evicted(cause) => write!(f, "evicted ({cause})"),
            DepartureCause::Shutdown => f.write_str("shutdown"),
        }
    }
}

/// A session leaving the cache without being found, handed to the
/// departure hook instead of being dropped (for example to send `QUIT`
/// before closing it).
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// use std::time::Duration;
/// use scache_core::{DepartureCause, ManualClock, MultiCache};
///
/// let clock = ManualClock::new();
/// let mut cache: MultiCache<UnixStream, _> = MultiCache::new(&clock);
/// cache.set_departure_hook(|mut departure| {
///     if departure.cause == DepartureCause::Expired {
///         let _ = departure.fd.write_all(b"QUIT\r\n"); // then dropped: closed
///     }
/// });
/// let (conn, mut server) = UnixStream::pair()?;
/// cache.save_endp(Duration::from_secs(2), b"smtp\nmx.example\n25\n", b"", conn).unwrap();
/// clock.advance(Duration::from_secs(2));
/// cache.expire_due();
/// let mut said = String::new();
/// server.read_to_string(&mut said)?;
/// assert_eq!(said, "QUIT\r\n");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct Departure<F> {
    /// The session's descriptor (or stream): the hook owns it now.
    pub fd: F,
    /// The endpoint label it was cached under.
    pub endp: Vec<u8>,
    /// The endpoint properties saved with it.
    pub endp_prop: Vec<u8>,
    /// Why it left.
    pub cause: DepartureCause,
}

/// The state of a cached connection's peer, as seen by a liveness probe
/// ([`probe_fd`], or a probe of your own given to
/// [`MultiCache::set_liveness_probe`](crate::MultiCache::set_liveness_probe)).
///
/// ```
/// use scache_core::{EvictionCause, Liveness};
///
/// assert_eq!(Liveness::Alive.eviction_cause(), None);
/// assert_eq!(Liveness::Closed.eviction_cause(), Some(EvictionCause::PeerClosed));
/// assert_eq!(Liveness::Unread.eviction_cause(), Some(EvictionCause::PeerData));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// Nothing to read and no hang-up: an idle peer waiting for a command.
    Alive,
    /// The peer closed the connection (or it is in error).
    Closed,
    /// The peer sent data that nobody asked for. An idle SMTP server only
    /// speaks to say goodbye (`421 ... closing connection`), so the session
    /// is not usable.
    Unread,
}

impl Liveness {
    /// The eviction cause a failed check is counted under, `None` when
    /// alive.
    pub fn eviction_cause(self) -> Option<EvictionCause> {
        match self {
            Liveness::Alive => None,
            Liveness::Closed => Some(EvictionCause::PeerClosed),
            Liveness::Unread => Some(EvictionCause::PeerData),
        }
    }
}

/// Looks at a connected socket without blocking and without consuming
/// anything: one `poll(2)` with a zero timeout, and when something is
/// readable one `recv(2)` with `MSG_PEEK` to tell data from end of file.
/// Hang-up, error or end of file is [`Liveness::Closed`]; unread data is
/// [`Liveness::Unread`]; nothing at all is [`Liveness::Alive`].
///
/// For a stream that buffers in user space (a TLS stream, a buffered
/// reader), only what reached the socket can be seen: check the buffer
/// yourself if it may hold data.
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
/// use scache_core::{probe_fd, Liveness};
///
/// let (mut server, client) = UnixStream::pair()?;
/// assert_eq!(probe_fd(client.as_fd()), Liveness::Alive);
/// server.write_all(b"421 4.3.2 shutting down\r\n")?;
/// assert_eq!(probe_fd(client.as_fd()), Liveness::Unread);
/// drop(server);
/// assert_eq!(probe_fd(client.as_fd()), Liveness::Closed);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn probe_fd(fd: BorrowedFd<'_>) -> Liveness {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    loop {
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => return Liveness::Alive,
            Ok(_) => break,
            Err(Errno::EINTR) => continue,
            // A descriptor poll(2) cannot look at is no usable connection.
            Err(_) => return Liveness::Closed,
        }
    }
    let revents = fds[0].revents().unwrap_or(PollFlags::POLLERR);
    if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
        return Liveness::Closed;
    }
    if !revents.contains(PollFlags::POLLIN) {
        return Liveness::Alive;
    }
    let mut byte = [0u8; 1];
    loop {
        return match recv(
            fd.as_raw_fd(),
            &mut byte,
            MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => Liveness::Closed,
            Ok(_) => Liveness::Unread,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => Liveness::Alive,
            // Not a socket (a pipe, say): readable is all that is known.
            Err(Errno::ENOTSOCK) => Liveness::Unread,
            Err(_) => Liveness::Closed,
        };
    }
}

/// [`probe_fd`] for anything that has a descriptor (`TcpStream`,
/// `OwnedFd`, tokio's `TcpStream`, most TLS stream types).
pub fn probe<F: AsFd>(stream: &F) -> Liveness {
    probe_fd(stream.as_fd())
}

/// Where departing sessions go.
pub(crate) enum Departures<F> {
    /// Dropped (closed).
    Drop,
    /// Handed to the owner's hook, at once.
    Hook(Box<dyn FnMut(Departure<F>) + Send>),
    /// Kept until taken (used by [`SharedCache`](crate::SharedCache) to
    /// call its hook outside its lock).
    Queue(Vec<Departure<F>>),
}

impl<F> Departures<F> {
    pub(crate) fn is_drop(&self) -> bool {
        matches!(self, Departures::Drop)
    }

    pub(crate) fn send(&mut self, departure: Departure<F>) {
        match self {
            Departures::Drop => drop(departure),
            Departures::Hook(hook) => hook(departure),
            Departures::Queue(queue) => queue.push(departure),
        }
    }
}

/// A liveness probe chosen by the owner.
pub(crate) type Probe<F> = Box<dyn Fn(&F) -> Liveness + Send>;
