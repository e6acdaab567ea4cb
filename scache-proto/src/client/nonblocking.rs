//! The asynchronous client, on tokio (feature `tokio`).
#![forbid(unsafe_code)]

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use scache_core::{FoundDest, FoundEndp};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

use super::exchange::{ClientExchange, Outcome, ProtocolError, StartError, Step};
use super::health::{Health, Tries};
use super::{found_dest, found_endp, saved, stats, ttl_seconds, ClientConfig, ClientError, Done};
use crate::message::{Request, RequestKind};
use crate::unix::{self, RecvFdError};

/// The time to live of a session that a cancelled `find_endp` received
/// after all and saves back (Postfix's `smtp_connection_cache_time_limit`).
const RESTORE_TTL: Duration = Duration::from_secs(2);

/// An asynchronous client of the connection cache daemon (Postfix's or
/// ours), for tokio mail servers: `Clone + Send + Sync`, so every task can
/// hold one; clones share one set of connections.
///
/// Each operation takes an idle connection to the daemon (or opens one, up
/// to [`ClientConfig::max_connections`]), runs its exchange, and gives the
/// connection back, so concurrent tasks do not wait for each other's
/// exchanges. The wire behaviour, the timeouts and the failure policy are
/// those of the blocking [`Client`](super::Client): one retry after
/// [`ClientConfig::retry_pause`], then a pause that doubles from 1 s to
/// 60 s during which operations fail at once with
/// [`ClientError::Unavailable`] (or, with
/// [`Recovery::Never`](super::Recovery::Never), caching disabled for good).
///
/// # Cancellation
///
/// Dropping an operation's future part-way is safe: nothing leaks, and a
/// session is not lost where the protocol allows it.
///
/// - Before the descriptor is on its way (the usual case: a future dropped
///   while it waits for the daemon's reply), the connection is closed; our
///   daemon then puts the session back in the cache with its remaining
///   time to live. (Postfix's daemon closes it instead.)
/// - Once the client has asked for the descriptor, the exchange is finished
///   by a task of its own. A session found by `find_endp` is saved back
///   under its endpoint for 2 s; one found by `find_dest` is closed (the
///   reply does not name its endpoint).
///
/// ```no_run
/// use std::time::Duration;
/// use scache_proto::AsyncClient;
/// use tokio::net::TcpStream;
///
/// # async fn deliver(_: &mut TcpStream) {}
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = AsyncClient::new("/var/spool/postfix/private/scache");
/// let endpoint = b"smtp\n192.0.2.1\n25\n";
/// let mut conn = match cache.find_endp(endpoint).await {
///     Ok(Some(found)) => TcpStream::from_std(std::net::TcpStream::from(found.fd))?,
///     _ => TcpStream::connect("192.0.2.1:25").await?, // then EHLO ...
/// };
/// deliver(&mut conn).await;
/// let fd = conn.into_std()?.into();
/// cache.save_endp(Duration::from_secs(2), endpoint, b"", fd).await?;
/// # Ok(())
/// # }
/// ```
///
/// Without a daemon, operations fail cleanly and then fast:
///
/// ```
/// use std::time::Duration;
/// use scache_proto::{AsyncClient, ClientConfig, ClientError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut config = ClientConfig::new("/nonexistent/scache");
/// config.retry_pause = Duration::from_millis(1);
/// let cache = AsyncClient::with_config(config);
/// assert!(matches!(cache.find_dest(b"d").await, Err(ClientError::Io(_))));
/// assert!(matches!(cache.find_dest(b"d").await, Err(ClientError::Unavailable { .. })));
/// assert!(cache.paused_until().is_some());
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    /// Greeted connections between operations.
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection in use or idle (at most `max_connections`).
    permits: Semaphore,
    health: Mutex<Health>,
}

struct Connection {
    sock: UnixStream,
    exchange: ClientExchange,
    created: Instant,
    last_used: Instant,
}

impl fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient")
            .field("path", &self.inner.config.path)
            .field("idle", &self.lock_idle().len())
            .field("health", &*self.lock_health())
            .finish()
    }
}

impl AsyncClient {
    /// A client of the daemon listening at `path`, with Postfix's defaults
    /// (see [`ClientConfig::new`]). Nothing is connected yet; this needs no
    /// runtime.
    pub fn new(path: impl Into<PathBuf>) -> AsyncClient {
        AsyncClient::with_config(ClientConfig::new(path))
    }

    /// A client with explicit settings.
    pub fn with_config(config: ClientConfig) -> AsyncClient {
        let permits = Semaphore::new(config.max_connections.max(1));
        AsyncClient {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
                permits,
                health: Mutex::new(Health::default()),
            }),
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Whether caching was disabled for good after repeated failures.
    pub fn is_disabled(&self) -> bool {
        self.lock_health().is_disabled()
    }

    /// Until when operations fail fast after repeated failures; `None` when
    /// the client tries the daemon.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock_health().paused_until()
    }

    /// Sends the session to the daemon, to be cached under `endp` for
    /// `ttl`. `fd` is closed on return whatever happens (the daemon holds
    /// its own copy on success). A refusal is [`ClientError::Refused`].
    pub async fn save_endp(
        &self,
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
        let done = self.run(&request, Some(fd.as_fd())).await;
        drop(fd);
        saved(RequestKind::SaveEndp, done?)
    }

    /// Takes the oldest session cached under `endp`; `Ok(None)` when none
    /// is.
    pub async fn find_endp(&self, endp: &[u8]) -> Result<Option<FoundEndp<OwnedFd>>, ClientError> {
        found_endp(self.run(&Request::FindEndp { endp }, None).await?)
    }

    /// Binds destination `dest` to endpoint `endp` for `ttl`.
    pub async fn save_dest(
        &self,
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
        saved(RequestKind::SaveDest, self.run(&request, None).await?)
    }

    /// Takes a session for destination `dest` through its bindings;
    /// `Ok(None)` when none is cached.
    pub async fn find_dest(&self, dest: &[u8]) -> Result<Option<FoundDest<OwnedFd>>, ClientError> {
        found_dest(self.run(&Request::FindDest { dest }, None).await?)
    }

    /// Asks our daemon for its counters (see
    /// [`Client::stats`](super::Client::stats)).
    pub async fn stats(&self) -> Result<Vec<(String, String)>, ClientError> {
        stats(self.run(&Request::Stats, None).await?)
    }

    /// Asks our daemon what it caches (see
    /// [`Client::list`](super::Client::list)).
    pub async fn list(&self, limit: Option<u32>) -> Result<crate::message::Listing, ClientError> {
        super::listing(self.run(&Request::List { limit }, None).await?)
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.inner
            .health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One operation under the failure policy.
    async fn run(
        &self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        let tries = match self.lock_health().admit(Instant::now())? {
            Tries::Two => 2,
            Tries::One => 1,
        };
        let config = &self.inner.config;
        // Never closed, so acquiring cannot fail.
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| ClientError::Closed)?;
        let mut tried = 0;
        loop {
            tried += 1;
            let result = tokio::time::timeout(config.timeout, self.try_once(request, fd))
                .await
                .unwrap_or(Err(ClientError::Timeout));
            let err = match result {
                Ok(done) => {
                    self.lock_health().succeeded();
                    return Ok(done);
                }
                Err(e) if !e.is_failure() => return Err(e),
                Err(e) => e,
            };
            log::warn!(
                "problem talking to service {}: {err}",
                config.path.display()
            );
            // A refusal by access control would only be repeated.
            let denied = matches!(err, ClientError::Denied { .. });
            if tried >= tries || denied {
                self.lock_health().failed(Instant::now(), config.recovery);
                return Err(err);
            }
            tokio::time::sleep(config.retry_pause).await;
        }
    }

    /// One try on one connection, which goes back to the idle set only
    /// when the exchange completed.
    async fn try_once(
        &self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        let conn = self.checkout().await?;
        let mut flight = InFlight {
            conn: Some(conn),
            client: self.clone(),
            restore: None,
        };
        let done = flight.exchange(request, fd).await?;
        if let Some(mut conn) = flight.conn.take() {
            conn.last_used = Instant::now();
            self.lock_idle().push(conn);
        }
        Ok(done)
    }

    /// An idle connection that can serve an operation, or a new one.
    async fn checkout(&self) -> Result<Connection, ClientError> {
        let config = &self.inner.config;
        loop {
            let Some(conn) = self.lock_idle().pop() else {
                break;
            };
            if super::reusable(
                config,
                conn.sock.as_fd(),
                &conn.exchange,
                conn.created,
                conn.last_used,
            ) {
                return Ok(conn);
            }
        }
        let sock = super::connect(&config.path)?;
        let now = Instant::now();
        let mut conn = Connection {
            sock: UnixStream::from_std(std::os::unix::net::UnixStream::from(sock))
                .map_err(ClientError::Io)?,
            exchange: ClientExchange::new(config.limits),
            created: now,
            last_used: now,
        };
        let mut out = Vec::new();
        while conn.exchange.poll_step() == Step::ReadBytes {
            read_some(&mut conn, &mut out)
                .await
                .map_err(super::no_greeting)?;
        }
        if conn.exchange.poll_step() != Step::Idle {
            return Err(ProtocolError::UnexpectedData.into());
        }
        Ok(conn)
    }
}

/// A connection in the middle of an exchange. Dropped before the end (the
/// caller's future was dropped), it closes the connection, unless the
/// descriptor was already asked for: then a task of its own finishes the
/// exchange.
struct InFlight {
    conn: Option<Connection>,
    client: AsyncClient,
    /// `find_endp`: the endpoint label, set once the descriptor is asked
    /// for, to save the session back if nobody takes it.
    restore: Option<Restore>,
}

/// What a find finished in the background does with its session.
enum Restore {
    /// Save it back under this endpoint label.
    Endpoint(Vec<u8>),
    /// Close it (a `find_dest` reply does not name the endpoint).
    Close,
}

impl InFlight {
    /// Runs the exchange; after a failure nothing is finished in the
    /// background.
    async fn exchange(
        &mut self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        let result = self.run_exchange(request, fd).await;
        self.restore = None;
        result
    }

    async fn run_exchange(
        &mut self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        let conn = self.conn.as_mut().ok_or(ClientError::Closed)?;
        let mut out = Vec::new();
        match conn.exchange.start(request, &mut out) {
            Ok(()) => {}
            Err(StartError::Invalid(e)) => return Err(ClientError::Invalid(e)),
            Err(StartError::NotIdle) => return Err(ProtocolError::OutOfSequence.into()),
        }
        let mut received = None;
        loop {
            send_all(conn, &out).await?;
            out.clear();
            let step = conn.exchange.poll_step();
            if step == Step::RecvFd {
                // The dummy that asks for the descriptor is out: from here
                // on the exchange must finish even if we are dropped.
                self.restore = Some(match request {
                    Request::FindEndp { endp } => Restore::Endpoint(endp.to_vec()),
                    _ => Restore::Close,
                });
            }
            match step {
                Step::ReadBytes => read_some(conn, &mut out).await?,
                Step::SendFd => {
                    let fd = fd.ok_or(ProtocolError::OutOfSequence)?;
                    send_fd(conn, fd).await?;
                    conn.exchange.handle_fd_sent()?;
                }
                Step::RecvFd => {
                    received = Some(recv_fd(conn).await?);
                    conn.exchange.handle_fd_received(&mut out)?;
                }
                Step::Done => {
                    let outcome = conn
                        .exchange
                        .poll_outcome()
                        .ok_or(ProtocolError::OutOfSequence)?;
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
                        .into());
                }
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (Some(conn), Some(restore)) = (self.conn.take(), self.restore.take()) else {
            // Not started, finished, or before the point of no return:
            // closing the connection is all there is to do.
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let client = self.client.clone();
        runtime.spawn(async move {
            let timeout = client.inner.config.timeout;
            let finished = tokio::time::timeout(timeout, finish_find(conn)).await;
            let Ok(Ok((conn, fd, endp_prop))) = finished else {
                return;
            };
            client.lock_idle().push(conn);
            match restore {
                Restore::Endpoint(endp) => {
                    let saved = client.save_endp(RESTORE_TTL, &endp, &endp_prop, fd).await;
                    if let Err(e) = saved {
                        log::debug!("session of a cancelled find_endp not saved back: {e}");
                    }
                }
                Restore::Close => {
                    log::debug!("session of a cancelled find_dest closed");
                    drop(fd);
                }
            }
        });
    }
}

/// Finishes a find whose descriptor was asked for: receives it, sends the
/// closing dummy. Returns the connection (idle again), the descriptor and
/// the endpoint properties.
async fn finish_find(mut conn: Connection) -> Result<(Connection, OwnedFd, Vec<u8>), ClientError> {
    let mut out = Vec::new();
    let fd = recv_fd(&conn).await?;
    conn.exchange.handle_fd_received(&mut out)?;
    send_all(&conn, &out).await?;
    let endp_prop = match conn.exchange.poll_outcome() {
        Some(Outcome::FoundEndp { endp_prop, .. } | Outcome::FoundDest { endp_prop, .. }) => {
            endp_prop
        }
        _ => return Err(ProtocolError::OutOfSequence.into()),
    };
    conn.last_used = Instant::now();
    Ok((conn, fd, endp_prop))
}

async fn send_all(conn: &Connection, mut data: &[u8]) -> Result<(), ClientError> {
    let sock = &conn.sock;
    while !data.is_empty() {
        let n = sock
            .async_io(Interest::WRITABLE, || unix::send_stream(sock.as_fd(), data))
            .await
            .map_err(ClientError::Io)?;
        data = &data[n..];
    }
    Ok(())
}

async fn send_fd(conn: &Connection, fd: BorrowedFd<'_>) -> Result<(), ClientError> {
    let sock = &conn.sock;
    sock.async_io(Interest::WRITABLE, || unix::send_fd(sock.as_fd(), fd))
        .await
        .map_err(ClientError::Io)
}

async fn recv_fd(conn: &Connection) -> Result<OwnedFd, ClientError> {
    let sock = &conn.sock;
    let got = sock
        .async_io(Interest::READABLE, || match unix::recv_fd(sock.as_fd()) {
            // Would block (and other I/O errors) go to tokio, which waits.
            Err(RecvFdError::Io(e)) => Err(e),
            other => Ok(other),
        })
        .await
        .map_err(ClientError::Io)?;
    got.map_err(ClientError::from)
}

/// Reads one chunk from the server into the exchange.
async fn read_some(conn: &mut Connection, out: &mut Vec<u8>) -> Result<(), ClientError> {
    let mut buf = [0u8; 4096];
    let sock = &conn.sock;
    let got = sock
        .async_io(Interest::READABLE, || {
            unix::recv_stream(sock.as_fd(), &mut buf)
        })
        .await
        .map_err(ClientError::Io)?;
    if got.fd.is_some() || got.extra_fds > 0 || got.truncated {
        return Err(ProtocolError::UnexpectedDescriptor.into());
    }
    if got.len == 0 {
        return Err(ClientError::Closed);
    }
    conn.exchange.handle_bytes(&buf[..got.len], out)?;
    Ok(())
}
