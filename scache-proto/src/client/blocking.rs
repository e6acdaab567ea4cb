//! The blocking client.
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use scache_core::{CacheSize, ConnectionCache, FoundDest, FoundEndp};

use super::exchange::{ClientExchange, ProtocolError, StartError, Step};
use super::health::{Health, Tries};
use super::{
    found_dest, found_endp, no_greeting, saved, ttl_seconds, ClientConfig, ClientError, Done,
};
use crate::message::{Request, RequestKind};
use crate::unix::{self, Interest};

struct Connection {
    sock: OwnedFd,
    exchange: ClientExchange,
    created: Instant,
    last_used: Instant,
}

/// A blocking client of the connection cache daemon, usable wherever a
/// [`ConnectionCache`] is expected (`Fd = OwnedFd`).
///
/// One connection, one exchange at a time: give each thread its own (or
/// use `AsyncClient`, feature `tokio`, which many tasks share).
///
/// # When the daemon fails
///
/// An operation that fails (the daemon is not there, does not answer in
/// time, or breaks the protocol) is tried once more after
/// [`ClientConfig::retry_pause`] on a new connection, as Postfix's client
/// does. If that fails too, what follows depends on
/// [`ClientConfig::recovery`]:
///
/// - [`Recovery::Backoff`](super::Recovery::Backoff) (the default): for 1 s every operation fails at
///   once with [`ClientError::Unavailable`], without touching the socket;
///   then the next operation tries the daemon once. Each failure in a row
///   doubles the pause (2 s, 4 s, ... up to 60 s); a success ends it. A
///   daemon that restarts (for example Postfix's, after `max_idle`, or ours
///   after an upgrade) is used again by the same client.
/// - [`Recovery::Never`](super::Recovery::Never): caching is disabled for the life of the client
///   (`disabling connection caching`), exactly as Postfix's client.
///
/// Answers are not failures: "not found" is `Ok(None)`, and a request the
/// daemon refuses (status 1 or 2) is [`ClientError::Refused`].
///
/// ```no_run
/// use std::time::Duration;
/// use scache_core::ConnectionCache;
/// use scache_proto::client::{Client, ClientConfig, ClientError, Recovery};
///
/// let mut config = ClientConfig::new("/run/scache/scache.sock");
/// config.recovery = Recovery::Backoff {
///     first: Duration::from_millis(200),
///     max: Duration::from_secs(10),
/// };
/// let mut cache = Client::with_config(config);
/// match cache.find_endp(b"smtp\n192.0.2.1\n25\n") {
///     Ok(Some(found)) => { /* reuse found.fd */ }
///     Ok(None) => { /* nothing cached: connect */ }
///     Err(ClientError::Unavailable { .. }) => { /* daemon down: connect */ }
///     Err(e) => eprintln!("connection cache: {e}"),
/// }
/// ```
pub struct Client {
    config: ClientConfig,
    conn: Option<Connection>,
    health: Health,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.config.path)
            .field("connected", &self.conn.is_some())
            .field("health", &self.health)
            .finish()
    }
}

impl Client {
    /// A client of the daemon listening at `path`, with Postfix's defaults
    /// (see [`ClientConfig::new`]). Nothing is connected yet.
    pub fn new(path: impl Into<PathBuf>) -> Client {
        Client::with_config(ClientConfig::new(path))
    }

    /// A client with explicit settings.
    pub fn with_config(config: ClientConfig) -> Client {
        Client {
            config,
            conn: None,
            health: Health::default(),
            out: Vec::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether caching was disabled for good after repeated failures
    /// ([`Recovery::Never`](super::Recovery::Never)).
    pub fn is_disabled(&self) -> bool {
        self.health.is_disabled()
    }

    /// Until when operations fail fast after repeated failures
    /// ([`Recovery::Backoff`](super::Recovery::Backoff)); `None` when the client tries the daemon.
    pub fn paused_until(&self) -> Option<Instant> {
        self.health.paused_until()
    }

    /// Whether a connection to the daemon is currently open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Closes the connection (the next operation reconnects).
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Asks the daemon for its counters (`request=stats`, our extension).
    /// Returns the reply's attributes after `status` as text (lossy UTF-8).
    /// Postfix's own daemon does not know this request and answers status
    /// 1, reported as [`ClientError::Refused`].
    pub fn stats(&mut self) -> Result<Vec<(String, String)>, ClientError> {
        super::stats(self.run(&Request::Stats, None)?)
    }

    /// Asks the daemon what it caches (`request=list`, our extension): at
    /// most `limit` endpoints, destinations, and bindings per destination
    /// (`None`: the daemon's default, 50), most sessions first. Postfix's
    /// own daemon answers status 1, reported as [`ClientError::Refused`]
    /// ("does not support the list request").
    pub fn list(&mut self, limit: Option<u32>) -> Result<crate::message::Listing, ClientError> {
        super::listing(self.run(&Request::List { limit }, None)?)
    }

    /// Runs one operation under the failure policy (see the type's
    /// documentation): one try, and on failure a pause, a reconnect and a
    /// second try (only one try just after a pause); then recovery.
    fn run(
        &mut self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        let tries = match self.health.admit(Instant::now())? {
            Tries::Two => 2,
            Tries::One => 1,
        };
        let mut tried = 0;
        loop {
            tried += 1;
            let err = match self.try_once(request, fd) {
                Ok(done) => {
                    self.health.succeeded();
                    return Ok(done);
                }
                Err(e) if !e.is_failure() => return Err(e),
                Err(e) => e,
            };
            self.conn = None;
            log::warn!(
                "problem talking to service {}: {err}",
                self.config.path.display()
            );
            // A refusal by access control would only be repeated.
            let denied = matches!(err, ClientError::Denied { .. });
            if tried >= tries || denied {
                self.health.failed(Instant::now(), self.config.recovery);
                return Err(err);
            }
            std::thread::sleep(self.config.retry_pause);
        }
    }

    fn try_once(
        &mut self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        let deadline = Instant::now() + self.config.timeout;
        self.ensure_connected(deadline)?;
        let Client { conn, out, buf, .. } = self;
        let conn = conn.as_mut().ok_or(ClientError::Closed)?;
        out.clear();
        match conn.exchange.start(request, out) {
            Ok(()) => {}
            Err(StartError::Invalid(e)) => return Err(ClientError::Invalid(e)),
            Err(StartError::NotIdle) => return Err(ProtocolError::OutOfSequence.into()),
        }
        let mut received = None;
        loop {
            send_all(conn.sock.as_fd(), out, deadline)?;
            out.clear();
            match conn.exchange.poll_step() {
                Step::ReadBytes => read_some(conn, buf, out, deadline)?,
                Step::SendFd => {
                    let fd = fd.ok_or(ProtocolError::OutOfSequence)?;
                    wait_for(conn.sock.as_fd(), Interest::Write, deadline)?;
                    unix::send_fd(conn.sock.as_fd(), fd).map_err(ClientError::Io)?;
                    conn.exchange.handle_fd_sent()?;
                }
                Step::RecvFd => {
                    wait_for(conn.sock.as_fd(), Interest::Read, deadline)?;
                    received = Some(unix::recv_fd(conn.sock.as_fd())?);
                    conn.exchange.handle_fd_received(out)?;
                }
                Step::Done => {
                    let outcome = conn
                        .exchange
                        .poll_outcome()
                        .ok_or(ProtocolError::OutOfSequence)?;
                    conn.last_used = Instant::now();
                    return Ok(Done {
                        outcome,
                        fd: received,
                    });
                }
                Step::Idle | Step::Broken => {
                    return Err(conn
                        .exchange
                        .error()
                        .cloned()
                        .unwrap_or(ProtocolError::OutOfSequence)
                        .into())
                }
            }
        }
    }

    /// Makes sure an idle, greeted connection is open: drops one that is
    /// too old, idle too long, or closed (or chatty) on the server side, and
    /// connects anew if needed.
    fn ensure_connected(&mut self, deadline: Instant) -> Result<(), ClientError> {
        if let Some(conn) = &self.conn {
            let reusable = super::reusable(
                &self.config,
                conn.sock.as_fd(),
                &conn.exchange,
                conn.created,
                conn.last_used,
            );
            if !reusable {
                self.conn = None;
            }
        }
        if self.conn.is_some() {
            return Ok(());
        }
        let sock = super::connect(&self.config.path)?;
        let now = Instant::now();
        let mut conn = Connection {
            sock,
            exchange: ClientExchange::new(self.config.limits),
            created: now,
            last_used: now,
        };
        let Client { out, buf, .. } = self;
        out.clear();
        while conn.exchange.poll_step() == Step::ReadBytes {
            read_some(&mut conn, buf, out, deadline).map_err(no_greeting)?;
        }
        if conn.exchange.poll_step() != Step::Idle {
            return Err(ProtocolError::UnexpectedData.into());
        }
        self.conn = Some(conn);
        Ok(())
    }
}

fn remaining(deadline: Instant) -> Result<Duration, ClientError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(ClientError::Timeout)
    } else {
        Ok(left)
    }
}

fn wait_for(
    sock: BorrowedFd<'_>,
    interest: Interest,
    deadline: Instant,
) -> Result<(), ClientError> {
    if unix::wait(sock, interest, remaining(deadline)?).map_err(ClientError::Io)? {
        Ok(())
    } else {
        Err(ClientError::Timeout)
    }
}

fn send_all(sock: BorrowedFd<'_>, mut data: &[u8], deadline: Instant) -> Result<(), ClientError> {
    while !data.is_empty() {
        match unix::send_stream(sock, data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                wait_for(sock, Interest::Write, deadline)?
            }
            Err(e) => return Err(ClientError::Io(e)),
        }
    }
    Ok(())
}

/// Waits for and reads one chunk from the server into the exchange.
fn read_some(
    conn: &mut Connection,
    buf: &mut [u8],
    out: &mut Vec<u8>,
    deadline: Instant,
) -> Result<(), ClientError> {
    loop {
        wait_for(conn.sock.as_fd(), Interest::Read, deadline)?;
        match unix::recv_stream(conn.sock.as_fd(), buf) {
            Ok(got) => {
                if got.fd.is_some() || got.extra_fds > 0 || got.truncated {
                    return Err(ProtocolError::UnexpectedDescriptor.into());
                }
                if got.len == 0 {
                    return Err(ClientError::Closed);
                }
                conn.exchange.handle_bytes(&buf[..got.len], out)?;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(ClientError::Io(e)),
        }
    }
}

impl ConnectionCache for Client {
    type Fd = OwnedFd;
    type Error = ClientError;

    /// Sends the session to the daemon. `fd` is closed on return whatever
    /// happens (the daemon holds its own copy on success). A refusal
    /// (status 1 or 2) is [`ClientError::Refused`].
    fn save_endp(
        &mut self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: OwnedFd,
    ) -> Result<(), ClientError> {
        let request = Request::SaveEndp {
            ttl: ttl_seconds(ttl)?,
            endp,
            endp_prop,
        };
        let done = self.run(&request, Some(fd.as_fd()));
        drop(fd);
        saved(RequestKind::SaveEndp, done?)
    }

    /// Takes a session from the daemon; `Ok(None)` when none is cached
    /// (status 2).
    fn find_endp(&mut self, endp: &[u8]) -> Result<Option<FoundEndp<OwnedFd>>, ClientError> {
        found_endp(self.run(&Request::FindEndp { endp }, None)?)
    }

    /// Binds `dest` to `endp` in the daemon.
    fn save_dest(
        &mut self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<(), ClientError> {
        let request = Request::SaveDest {
            ttl: ttl_seconds(ttl)?,
            dest,
            dest_prop,
            endp,
        };
        saved(RequestKind::SaveDest, self.run(&request, None)?)
    }

    /// Takes a session for `dest` from the daemon; `Ok(None)` when none is
    /// cached (status 2).
    fn find_dest(&mut self, dest: &[u8]) -> Result<Option<FoundDest<OwnedFd>>, ClientError> {
        found_dest(self.run(&Request::FindDest { dest }, None)?)
    }

    /// Unknown (`None`): the sizes live in the daemon, and Postfix's
    /// daemon does not report them. Ask ours with [`Client::stats`].
    fn size(&self) -> Option<CacheSize> {
        None
    }
}
