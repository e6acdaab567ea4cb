//! The client side: a pure exchange state machine ([`ClientExchange`]) and
//! a blocking [`Client`] for Rust MTAs built on it.
//!
//! [`Client`] behaves like Postfix's `scache_clnt`: it connects on demand to
//! the daemon's socket, checks the greeting, bounds every operation by a
//! timeout (default 5 s, Postfix's `connection_cache_protocol_timeout`), and
//! on a failure reconnects and tries once more after a short pause; when the
//! second try fails too it logs `disabling connection caching` and refuses
//! every later operation. A descriptor passed to
//! [`ConnectionCache::save_endp`] is always closed on the client side once
//! the operation is over (the daemon holds its own copy).
//!
//! ```no_run
//! use std::os::fd::OwnedFd;
//! use std::time::Duration;
//! use scache_core::ConnectionCache;
//! use scache_proto::client::Client;
//!
//! # fn session() -> OwnedFd { std::fs::File::open("/").unwrap().into() }
//! let mut cache = Client::new("/var/spool/postfix/private/scache");
//! cache.save_endp(Duration::from_secs(2), b"smtp\n192.0.2.1\n25\n", b"props", session())?;
//! if let Some(found) = cache.find_endp(b"smtp\n192.0.2.1\n25\n")? {
//!     // found.fd refers to the same open connection that was saved.
//!     # drop(found);
//! }
//! # Ok::<(), scache_proto::client::ClientError>(())
//! ```
//!
//! The exchanges (see `protocol.md`), from the client's side:
//!
//! ```text
//! save_endp:  send request, read dummy, send fd, read status
//! find_endp:  send request, read status+prop; if 0: send dummy, read fd, send dummy
//! save_dest:  send request, read status
//! find_dest:  send request, read status+prop+prop; if 0: as find_endp
//! stats:      send request, read status + counters (our extension)
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scache_core::{CacheSize, ConnectionCache, FoundDest, FoundEndp};

use crate::attr::{DecodeError, Decoded, Decoder, Limits};
use crate::message::{
    self, encode_request, parse_reply, EncodeError, Reply, ReplyError, Request, RequestKind,
    Status, MAX_TTL,
};
use crate::unix::{self, Interest, RecvFdError};

/// What the driver of a [`ClientExchange`] must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send the pending output, then read bytes and feed them to
    /// [`ClientExchange::handle_bytes`].
    ReadBytes,
    /// Send the pending output, then send the session's descriptor and call
    /// [`ClientExchange::handle_fd_sent`].
    SendFd,
    /// Send the pending output, then receive one descriptor and call
    /// [`ClientExchange::handle_fd_received`].
    RecvFd,
    /// Send the pending output; the outcome is ready
    /// ([`ClientExchange::poll_outcome`]).
    Done,
    /// Between operations: [`ClientExchange::start`] may be called.
    Idle,
    /// The connection is out of sync and must be closed.
    Broken,
}

/// The result of one client exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `save_endp` or `save_dest` answered with this status. For
    /// `save_endp`, the descriptor was sent only if the server asked for it
    /// (its `dummy`); a server refusing the request straight away answers
    /// with a status instead.
    Saved(Status),
    /// `find_endp` answered. With [`Status::Ok`] the descriptor was received
    /// (the driver holds it).
    FoundEndp {
        /// Reply status.
        status: Status,
        /// Endpoint properties (empty unless found).
        endp_prop: Vec<u8>,
    },
    /// `find_dest` answered. With [`Status::Ok`] the descriptor was received.
    FoundDest {
        /// Reply status.
        status: Status,
        /// Destination properties (empty unless found).
        dest_prop: Vec<u8>,
        /// Endpoint properties (empty unless found).
        endp_prop: Vec<u8>,
    },
    /// `stats` answered.
    Stats {
        /// Reply status.
        status: Status,
        /// The attributes after `status`.
        counters: Vec<(Vec<u8>, Vec<u8>)>,
    },
}

/// How the server broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A server message was over the client's decoding limits.
    Decode(DecodeError),
    /// A server message did not have the expected attributes.
    Reply(ReplyError),
    /// The server sent something other than `dummy` where the descriptor
    /// handshake needed it.
    ExpectedDummy,
    /// The server sent bytes when it should have been silent (or more than
    /// one message).
    UnexpectedData,
    /// The server sent a descriptor when none was expected.
    UnexpectedDescriptor,
    /// An event arrived that the exchange was not waiting for (a driver
    /// bug).
    OutOfSequence,
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Decode(e) => write!(f, "undecodable server message: {e}"),
            ProtocolError::Reply(e) => e.fmt(f),
            ProtocolError::ExpectedDummy => f.write_str("server did not send the dummy message"),
            ProtocolError::UnexpectedData => f.write_str("unexpected data from server"),
            ProtocolError::UnexpectedDescriptor => {
                f.write_str("unexpected file descriptor from server")
            }
            ProtocolError::OutOfSequence => f.write_str("client exchange driven out of sequence"),
        }
    }
}

impl std::error::Error for ProtocolError {}

#[derive(Debug)]
enum State {
    AwaitGreeting,
    Idle,
    /// `save_endp`: waiting for the server's `dummy` (or a refusal).
    AwaitSaveDummy,
    /// `save_endp`: the driver must send the descriptor.
    SendFd,
    /// Waiting for the reply to a request of this kind.
    AwaitReply(RequestKind),
    /// `find_*` succeeded: the driver must receive the descriptor.
    RecvFd(Outcome),
    Done(Outcome),
    Broken(ProtocolError),
}

/// The client side of one connection as a pure state machine: it encodes
/// requests, consumes what the server sent, and says what to do next
/// ([`Step`]); it makes no system call.
///
/// ```
/// use scache_proto::attr::Limits;
/// use scache_proto::client::{ClientExchange, Outcome, Step};
/// use scache_proto::message::{Request, Status};
///
/// let mut ex = ClientExchange::new(Limits::default());
/// let mut out = Vec::new();
/// ex.handle_bytes(b"protocol\0connection_cache_protocol\0\0", &mut out).unwrap();
/// assert_eq!(ex.poll_step(), Step::Idle);
///
/// ex.start(&Request::FindEndp { endp: b"e" }, &mut out).unwrap();
/// assert_eq!(out, b"request\0find_endp\0label\0e\0\0");
/// out.clear();
/// ex.handle_bytes(b"status\x000\x00property\0p\0\0", &mut out).unwrap();
/// assert_eq!(out, b"dummy\0\0\0"); // send this, then receive the descriptor
/// assert_eq!(ex.poll_step(), Step::RecvFd);
/// out.clear();
/// ex.handle_fd_received(&mut out).unwrap();
/// assert_eq!(out, b"dummy\0\0\0"); // the closing dummy
/// assert_eq!(
///     ex.poll_outcome(),
///     Some(Outcome::FoundEndp { status: Status::Ok, endp_prop: b"p".to_vec() })
/// );
/// assert_eq!(ex.poll_step(), Step::Idle);
/// ```
#[derive(Debug)]
pub struct ClientExchange {
    decoder: Decoder,
    state: State,
}

impl ClientExchange {
    /// A new connection, waiting for the server greeting.
    pub fn new(limits: Limits) -> ClientExchange {
        ClientExchange {
            decoder: Decoder::new(limits),
            state: State::AwaitGreeting,
        }
    }

    /// What the driver must do next.
    pub fn poll_step(&self) -> Step {
        match self.state {
            State::AwaitGreeting | State::AwaitSaveDummy | State::AwaitReply(_) => Step::ReadBytes,
            State::Idle => Step::Idle,
            State::SendFd => Step::SendFd,
            State::RecvFd(_) => Step::RecvFd,
            State::Done(_) => Step::Done,
            State::Broken(_) => Step::Broken,
        }
    }

    /// Why the exchange is [`Step::Broken`].
    pub fn error(&self) -> Option<&ProtocolError> {
        match &self.state {
            State::Broken(e) => Some(e),
            _ => None,
        }
    }

    /// Starts an operation: appends the request to `out`. Only valid when
    /// [`Step::Idle`]; an invalid request (NUL in a string, bad ttl) leaves
    /// the exchange idle.
    pub fn start(&mut self, request: &Request<'_>, out: &mut Vec<u8>) -> Result<(), StartError> {
        if !matches!(self.state, State::Idle) {
            return Err(StartError::NotIdle);
        }
        encode_request(out, request).map_err(StartError::Invalid)?;
        self.state = match request.kind() {
            RequestKind::SaveEndp => State::AwaitSaveDummy,
            kind => State::AwaitReply(kind),
        };
        Ok(())
    }

    /// Feeds bytes read from the server; may append a `dummy` to `out`.
    /// Bytes beyond the one message the exchange waits for, or bytes when
    /// none are expected, break the exchange.
    pub fn handle_bytes(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        if input.is_empty() {
            return Ok(());
        }
        if self.poll_step() != Step::ReadBytes {
            return Err(self.broken(ProtocolError::UnexpectedData));
        }
        match self.decoder.decode(input) {
            Decoded::Partial => Ok(()),
            Decoded::Rejected { error, .. } => Err(self.broken(ProtocolError::Decode(error))),
            Decoded::Complete { used, .. } => {
                if used < input.len() {
                    return Err(self.broken(ProtocolError::UnexpectedData));
                }
                match self.on_message(out) {
                    Ok(state) => {
                        self.state = state;
                        Ok(())
                    }
                    Err(e) => Err(self.broken(e)),
                }
            }
        }
    }

    /// The driver sent the descriptor asked for by [`Step::SendFd`].
    pub fn handle_fd_sent(&mut self) -> Result<(), ProtocolError> {
        match self.state {
            State::SendFd => {
                self.state = State::AwaitReply(RequestKind::SaveEndp);
                Ok(())
            }
            _ => Err(self.broken(ProtocolError::OutOfSequence)),
        }
    }

    /// The driver received the descriptor asked for by [`Step::RecvFd`];
    /// appends the closing `dummy` to `out`.
    pub fn handle_fd_received(&mut self, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::RecvFd(outcome) => {
                message::encode_dummy(out);
                self.state = State::Done(outcome);
                Ok(())
            }
            other => {
                self.state = other;
                Err(self.broken(ProtocolError::UnexpectedDescriptor))
            }
        }
    }

    /// Takes the outcome once [`Step::Done`]; the exchange becomes idle.
    pub fn poll_outcome(&mut self) -> Option<Outcome> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Done(outcome) => Some(outcome),
            other => {
                self.state = other;
                None
            }
        }
    }

    fn broken(&mut self, e: ProtocolError) -> ProtocolError {
        self.state = State::Broken(e.clone());
        e
    }

    fn on_message(&mut self, out: &mut Vec<u8>) -> Result<State, ProtocolError> {
        let msg = self.decoder.message().ok_or(ProtocolError::OutOfSequence)?;
        Ok(match self.state {
            State::AwaitGreeting => {
                message::parse_greeting(&msg).map_err(ProtocolError::Reply)?;
                State::Idle
            }
            State::AwaitSaveDummy => {
                if message::is_dummy(&msg) {
                    State::SendFd
                } else {
                    // A refusal (status 1) instead of the dummy.
                    match parse_reply(RequestKind::SaveEndp, &msg) {
                        Ok(Reply::Status(status)) => State::Done(Outcome::Saved(status)),
                        _ => return Err(ProtocolError::ExpectedDummy),
                    }
                }
            }
            State::AwaitReply(kind) => {
                let reply = parse_reply(kind, &msg).map_err(ProtocolError::Reply)?;
                match reply {
                    Reply::Status(status) => State::Done(Outcome::Saved(status)),
                    Reply::FindEndp { status, endp_prop } => {
                        let outcome = Outcome::FoundEndp {
                            status,
                            endp_prop: endp_prop.to_vec(),
                        };
                        found(status, outcome, out)
                    }
                    Reply::FindDest {
                        status,
                        dest_prop,
                        endp_prop,
                    } => {
                        let outcome = Outcome::FoundDest {
                            status,
                            dest_prop: dest_prop.to_vec(),
                            endp_prop: endp_prop.to_vec(),
                        };
                        found(status, outcome, out)
                    }
                    Reply::Stats { status, counters } => State::Done(Outcome::Stats {
                        status,
                        counters: counters.map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                    }),
                }
            }
            _ => return Err(ProtocolError::OutOfSequence),
        })
    }
}

fn found(status: Status, outcome: Outcome, out: &mut Vec<u8>) -> State {
    if status == Status::Ok {
        message::encode_dummy(out);
        State::RecvFd(outcome)
    } else {
        State::Done(outcome)
    }
}

/// Why [`ClientExchange::start`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartError {
    /// Another operation is in progress (or the exchange is broken).
    NotIdle,
    /// The request cannot be encoded.
    Invalid(EncodeError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::NotIdle => f.write_str("an operation is already in progress"),
            StartError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

// ---------------------------------------------------------------------------
// The blocking client.

/// Settings of a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The daemon's Unix socket (Postfix: `$queue_directory/private/scache`).
    pub path: PathBuf,
    /// Time limit for one try of one operation, connecting and greeting
    /// included (Postfix's `connection_cache_protocol_timeout`, 5 s).
    pub timeout: Duration,
    /// Pause before the second try (Postfix sleeps 1 s).
    pub retry_pause: Duration,
    /// Reconnect before an operation when the connection has been idle this
    /// long (Postfix's `ipc_idle`, 5 s). `None`: never.
    pub idle_limit: Option<Duration>,
    /// Reconnect before an operation when the connection is this old
    /// (Postfix's `ipc_ttl`, 1000 s). `None`: never.
    pub ttl_limit: Option<Duration>,
    /// Decoding limits for server messages.
    pub limits: Limits,
}

impl ClientConfig {
    /// Postfix's defaults for the socket at `path`.
    pub fn new(path: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            path: path.into(),
            timeout: Duration::from_secs(5),
            retry_pause: Duration::from_secs(1),
            idle_limit: Some(Duration::from_secs(5)),
            ttl_limit: Some(Duration::from_secs(1000)),
            limits: Limits {
                max_attrs: 1024,
                ..Limits::default()
            },
        }
    }
}

/// Why a [`Client`] operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// Caching was disabled after repeated failures; nothing was sent.
    Disabled,
    /// The arguments cannot be sent (NUL in a string, zero ttl); nothing was
    /// sent and the failure does not count towards disabling.
    Invalid(EncodeError),
    /// The server answered the request with a non-success status that is
    /// not plain "not found" (malformed request, descriptor not received).
    Refused {
        /// The status received.
        status: Status,
    },
    /// Connecting, sending or receiving failed.
    Io(io::Error),
    /// The operation did not complete within the timeout.
    Timeout,
    /// The server closed the connection in the middle of an exchange.
    Closed,
    /// The server broke the protocol.
    Protocol(ProtocolError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Disabled => f.write_str("connection caching is disabled"),
            ClientError::Invalid(e) => write!(f, "invalid request: {e}"),
            ClientError::Refused { status } => write!(f, "server answered status {status}"),
            ClientError::Io(e) => e.fmt(f),
            ClientError::Timeout => f.write_str("timeout"),
            ClientError::Closed => f.write_str("connection closed by server"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Invalid(e) => Some(e),
            ClientError::Io(e) => Some(e),
            ClientError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        ClientError::Protocol(e)
    }
}

impl From<RecvFdError> for ClientError {
    fn from(e: RecvFdError) -> Self {
        match e {
            RecvFdError::Eof => ClientError::Closed,
            RecvFdError::Io(e) => ClientError::Io(e),
            other => ClientError::Io(other.into()),
        }
    }
}

struct Connection {
    sock: OwnedFd,
    exchange: ClientExchange,
    created: Instant,
    last_used: Instant,
}

/// A blocking client of the connection cache daemon, usable wherever a
/// [`ConnectionCache`] is expected (`Fd = OwnedFd`).
///
/// Not thread-safe by design (one connection, one exchange at a time); give
/// each thread its own.
pub struct Client {
    config: ClientConfig,
    conn: Option<Connection>,
    disabled: bool,
    out: Vec<u8>,
    buf: Vec<u8>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.config.path)
            .field("connected", &self.conn.is_some())
            .field("disabled", &self.disabled)
            .finish()
    }
}

/// What one successful try produced.
struct Done {
    outcome: Outcome,
    fd: Option<OwnedFd>,
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
            disabled: false,
            out: Vec::new(),
            buf: vec![0; 64 * 1024],
        }
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether caching was disabled after repeated failures.
    pub fn is_disabled(&self) -> bool {
        self.disabled
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
        match self.run(&Request::Stats, None)?.outcome {
            Outcome::Stats {
                status: Status::Ok,
                counters,
            } => Ok(counters
                .into_iter()
                .map(|(n, v)| {
                    (
                        String::from_utf8_lossy(&n).into_owned(),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })
                .collect()),
            Outcome::Stats { status, .. } => Err(ClientError::Refused { status }),
            _ => Err(ProtocolError::OutOfSequence.into()),
        }
    }

    /// Runs one operation with Postfix's failure policy: one try, and on
    /// failure a pause, a reconnect and a second try; a second failure
    /// disables the client.
    fn run(
        &mut self,
        request: &Request<'_>,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Done, ClientError> {
        if self.disabled {
            return Err(ClientError::Disabled);
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let err = match self.try_once(request, fd) {
                Ok(done) => return Ok(done),
                Err(ClientError::Invalid(e)) => return Err(ClientError::Invalid(e)),
                Err(e) => e,
            };
            self.conn = None;
            log::warn!(
                "problem talking to service {}: {err}",
                self.config.path.display()
            );
            if tries >= 2 {
                log::warn!("disabling connection caching");
                self.disabled = true;
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
            let now = Instant::now();
            let too_old = self
                .config
                .ttl_limit
                .is_some_and(|ttl| now.duration_since(conn.created) >= ttl);
            let too_idle = self
                .config
                .idle_limit
                .is_some_and(|idle| now.duration_since(conn.last_used) >= idle);
            // The server never speaks first between operations: readable
            // means it closed the connection (or is out of sync).
            let stale = !matches!(
                unix::wait(conn.sock.as_fd(), Interest::Read, Duration::ZERO),
                Ok(false)
            );
            if too_old || too_idle || stale || conn.exchange.poll_step() != Step::Idle {
                self.conn = None;
            }
        }
        if self.conn.is_some() {
            return Ok(());
        }
        let sock = connect(&self.config.path)?;
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
            read_some(&mut conn, buf, out, deadline)?;
        }
        if conn.exchange.poll_step() != Step::Idle {
            return Err(ProtocolError::UnexpectedData.into());
        }
        self.conn = Some(conn);
        Ok(())
    }
}

fn connect(path: &Path) -> Result<OwnedFd, ClientError> {
    unix::connect_stream(path).map_err(|e| {
        ClientError::Io(io::Error::new(
            e.kind(),
            format!("connect to {}: {e}", path.display()),
        ))
    })
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

/// Converts a time to live to whole seconds for the wire: rounded up (so a
/// sub-second ttl is 1 s, not 0), capped at [`MAX_TTL`]; zero is invalid.
fn ttl_seconds(ttl: Duration) -> Result<u32, ClientError> {
    if ttl.is_zero() {
        return Err(ClientError::Invalid(EncodeError::BadTtl { ttl: 0 }));
    }
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    Ok(u32::try_from(secs).unwrap_or(MAX_TTL).min(MAX_TTL))
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
        let done = self.run(&request, Some(fd.as_fd()))?;
        drop(fd);
        match done.outcome {
            Outcome::Saved(Status::Ok) => Ok(()),
            Outcome::Saved(status) => Err(ClientError::Refused { status }),
            _ => Err(ProtocolError::OutOfSequence.into()),
        }
    }

    /// Takes a session from the daemon; `Ok(None)` when none is cached
    /// (status 2).
    fn find_endp(&mut self, endp: &[u8]) -> Result<Option<FoundEndp<OwnedFd>>, ClientError> {
        let done = self.run(&Request::FindEndp { endp }, None)?;
        match (done.outcome, done.fd) {
            (
                Outcome::FoundEndp {
                    status: Status::Ok,
                    endp_prop,
                },
                Some(fd),
            ) => Ok(Some(FoundEndp { endp_prop, fd })),
            (
                Outcome::FoundEndp {
                    status: Status::Fail,
                    ..
                },
                _,
            ) => Ok(None),
            (Outcome::FoundEndp { status, .. }, _) => Err(ClientError::Refused { status }),
            _ => Err(ProtocolError::OutOfSequence.into()),
        }
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
        match self.run(&request, None)?.outcome {
            Outcome::Saved(Status::Ok) => Ok(()),
            Outcome::Saved(status) => Err(ClientError::Refused { status }),
            _ => Err(ProtocolError::OutOfSequence.into()),
        }
    }

    /// Takes a session for `dest` from the daemon; `Ok(None)` when none is
    /// cached (status 2).
    fn find_dest(&mut self, dest: &[u8]) -> Result<Option<FoundDest<OwnedFd>>, ClientError> {
        let done = self.run(&Request::FindDest { dest }, None)?;
        match (done.outcome, done.fd) {
            (
                Outcome::FoundDest {
                    status: Status::Ok,
                    dest_prop,
                    endp_prop,
                },
                Some(fd),
            ) => Ok(Some(FoundDest {
                dest_prop,
                endp_prop,
                fd,
            })),
            (
                Outcome::FoundDest {
                    status: Status::Fail,
                    ..
                },
                _,
            ) => Ok(None),
            (Outcome::FoundDest { status, .. }, _) => Err(ClientError::Refused { status }),
            _ => Err(ProtocolError::OutOfSequence.into()),
        }
    }

    /// Unknown (`None`): the sizes live in the daemon, and Postfix's
    /// daemon does not report them. Ask ours with [`Client::stats`].
    fn size(&self) -> Option<CacheSize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounding() {
        assert!(ttl_seconds(Duration::ZERO).is_err());
        assert_eq!(ttl_seconds(Duration::from_millis(1)).unwrap(), 1);
        assert_eq!(ttl_seconds(Duration::from_millis(2001)).unwrap(), 3);
        assert_eq!(ttl_seconds(Duration::from_secs(2)).unwrap(), 2);
        assert_eq!(ttl_seconds(Duration::MAX).unwrap(), MAX_TTL);
    }

    #[test]
    fn save_endp_refused_without_dummy() {
        let mut ex = ClientExchange::new(Limits::default());
        let mut out = Vec::new();
        ex.handle_bytes(b"protocol\0connection_cache_protocol\0\0", &mut out)
            .unwrap();
        ex.start(
            &Request::SaveEndp {
                ttl: 1,
                endp: b"e",
                endp_prop: b"",
            },
            &mut out,
        )
        .unwrap();
        ex.handle_bytes(b"status\x001\0\0", &mut out).unwrap();
        assert_eq!(ex.poll_outcome(), Some(Outcome::Saved(Status::Bad)));
    }

    #[test]
    fn trailing_bytes_break() {
        let mut ex = ClientExchange::new(Limits::default());
        let mut out = Vec::new();
        let e = ex
            .handle_bytes(b"protocol\0connection_cache_protocol\0\0x", &mut out)
            .unwrap_err();
        assert_eq!(e, ProtocolError::UnexpectedData);
        assert_eq!(ex.poll_step(), Step::Broken);
    }

    #[test]
    fn bad_greeting() {
        let mut ex = ClientExchange::new(Limits::default());
        let mut out = Vec::new();
        assert!(ex.handle_bytes(b"protocol\0other\0\0", &mut out).is_err());
        let mut ex = ClientExchange::new(Limits::default());
        assert!(ex.handle_bytes(b"status\x000\0\0", &mut out).is_err());
    }
}
