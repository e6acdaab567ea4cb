//! The client side: a pure exchange state machine ([`ClientExchange`]),
//! and two drivers of it for Rust mail servers: the blocking [`Client`]
//! and, with the `tokio` feature, `AsyncClient`.
//!
//! Both behave like Postfix's `scache_clnt` where it matters to the
//! daemon: they connect on demand to the daemon's socket, check the
//! greeting, bound every operation by a timeout (default 5 s, Postfix's
//! `connection_cache_protocol_timeout`), and on a failure reconnect and try
//! once more after a short pause. Unlike Postfix's client they do not give
//! up for good when that second try fails too: they stop trying for a
//! while (1 s, doubling up to 60 s, see [`Recovery`]), failing fast with
//! [`ClientError::Unavailable`], and then try again, so a daemon restart
//! costs a long-running mail server a few seconds of caching, not the rest
//! of its life. A descriptor passed to `save_endp` is always closed on the
//! client side once the operation is over (the daemon holds its own copy).
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
//! The exchanges (see `docs/protocol.md`), from the client's side:
//!
//! ```text
//! save_endp:  send request, read dummy, send fd, read status
//! find_endp:  send request, read status+prop; if 0: send dummy, read fd, send dummy
//! save_dest:  send request, read status
//! find_dest:  send request, read status+prop+prop; if 0: as find_endp
//! stats:      send request, read status + counters (our extension)
//! list:       send request, read status + listing (our extension)
//! ```
#![forbid(unsafe_code)]

mod blocking;
mod exchange;
mod health;
#[cfg(feature = "tokio")]
mod nonblocking;

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use scache_core::{FoundDest, FoundEndp};

use crate::attr::Limits;
use crate::message::{EncodeError, ReplyError, RequestKind, Status, MAX_TTL};
use crate::unix::{self, RecvFdError};

pub use blocking::Client;
pub use exchange::{ClientExchange, Outcome, ProtocolError, StartError, Step};
#[cfg(feature = "tokio")]
pub use nonblocking::AsyncClient;

/// Settings of a [`Client`] (and of an `AsyncClient`).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The daemon's Unix socket (Postfix: `$queue_directory/private/scache`).
    pub path: PathBuf,
    /// Time limit for one try of one operation, connecting and greeting
    /// included (Postfix's `connection_cache_protocol_timeout`, 5 s).
    pub timeout: Duration,
    /// Pause before the second try (Postfix sleeps 1 s).
    pub retry_pause: Duration,
    /// What to do when an operation failed even after its second try.
    pub recovery: Recovery,
    /// Reconnect before an operation when the connection has been idle this
    /// long (Postfix's `ipc_idle`, 5 s). `None`: never.
    pub idle_limit: Option<Duration>,
    /// Reconnect before an operation when the connection is this old
    /// (Postfix's `ipc_ttl`, 1000 s). `None`: never.
    pub ttl_limit: Option<Duration>,
    /// The most connections to the daemon an `AsyncClient` keeps open at
    /// once (each serves one exchange at a time); tasks beyond wait for one.
    /// The blocking client has one.
    pub max_connections: usize,
    /// Decoding limits for server messages.
    pub limits: Limits,
}

impl ClientConfig {
    /// Postfix's defaults for the socket at `path`, with recovery after 1 s
    /// doubling to 60 s and at most 16 connections.
    pub fn new(path: impl Into<PathBuf>) -> ClientConfig {
        ClientConfig {
            path: path.into(),
            timeout: Duration::from_secs(5),
            retry_pause: Duration::from_secs(1),
            recovery: Recovery::default(),
            idle_limit: Some(Duration::from_secs(5)),
            ttl_limit: Some(Duration::from_secs(1000)),
            max_connections: 16,
            limits: Limits {
                max_attrs: 1024,
                ..Limits::default()
            },
        }
    }
}

/// What a client does once an operation has failed even after its second
/// try (the daemon is down, restarting, or broken).
///
/// ```
/// use std::time::Duration;
/// use scache_core::ConnectionCache;
/// use scache_proto::{Client, ClientConfig, ClientError, Recovery};
///
/// let mut config = ClientConfig::new("/nonexistent/scache");
/// config.retry_pause = Duration::from_millis(1);
/// config.recovery = Recovery::Backoff {
///     first: Duration::from_millis(50),
///     max: Duration::from_secs(5),
/// };
/// let mut client = Client::with_config(config);
/// // No daemon: the operation fails (after its retry) ...
/// assert!(matches!(client.find_endp(b"e"), Err(ClientError::Io(_))));
/// // ... and for 50 ms every operation fails at once, without trying.
/// assert!(matches!(client.find_endp(b"e"), Err(ClientError::Unavailable { .. })));
/// std::thread::sleep(Duration::from_millis(60));
/// // Then the daemon is tried again (still absent: the pause doubles).
/// assert!(matches!(client.find_endp(b"e"), Err(ClientError::Io(_))));
/// assert!(!client.is_disabled());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Stop trying for `first`, failing fast with
    /// [`ClientError::Unavailable`], then try again (once); every further
    /// failure doubles the pause, up to `max`. A success ends it.
    Backoff {
        /// The first pause.
        first: Duration,
        /// The longest pause.
        max: Duration,
    },
    /// Disable caching for the life of the client, as Postfix's client
    /// does (every later operation fails with [`ClientError::Disabled`]).
    Never,
}

impl Default for Recovery {
    /// A pause of 1 s, doubling up to 60 s.
    fn default() -> Recovery {
        Recovery::Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

/// Why a client operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Caching was disabled for good after repeated failures
    /// ([`Recovery::Never`]); nothing was sent.
    Disabled,
    /// The daemon failed recently; the client does not try again before
    /// `retry_in` has passed ([`Recovery::Backoff`]); nothing was sent.
    Unavailable {
        /// How long until the next operation tries the daemon again.
        retry_in: Duration,
    },
    /// The arguments cannot be sent (NUL in a string, zero ttl); nothing was
    /// sent and the failure does not count towards recovery.
    Invalid(EncodeError),
    /// The server answered the request with a non-success status that is
    /// not plain "not found": status 1 (the request was malformed, over the
    /// daemon's wire limits, or unknown to it: Postfix's own daemon answers
    /// `stats` and `list` so), or status 2 for a save (the daemon would not
    /// keep it: a label or property over its length limit, or the
    /// descriptor did not arrive). The message depends on the request.
    Refused {
        /// The request that was refused.
        request: RequestKind,
        /// The status received.
        status: Status,
    },
    /// The daemon refused the connection itself, before any request: its
    /// access control (`scache_allowed_uids`, `scache_allowed_gids`) does
    /// not allow this process. Not tried a second time (it would be refused
    /// again), but it counts towards [`Recovery`].
    Denied {
        /// The reason the daemon gave.
        reason: String,
    },
    /// The daemon closed the connection before sending its greeting. Our
    /// daemon sends a refusal first ([`ClientError::Denied`]); Postfix's
    /// closes without a word when it cannot serve (and a daemon that
    /// crashed or is at its connection limit looks the same).
    NoGreeting,
    /// Connecting, sending or receiving failed.
    Io(io::Error),
    /// The operation did not complete within the timeout.
    Timeout,
    /// The server closed the connection in the middle of an exchange.
    Closed,
    /// The server broke the protocol.
    Protocol(ProtocolError),
}

impl ClientError {
    /// Whether this failure counts towards recovery (the daemon did not
    /// answer); answers and invalid arguments do not.
    fn is_failure(&self) -> bool {
        !matches!(
            self,
            ClientError::Invalid(_)
                | ClientError::Refused { .. }
                | ClientError::Disabled
                | ClientError::Unavailable { .. }
        )
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Disabled => f.write_str("connection caching is disabled"),
            ClientError::Unavailable { retry_in } => write!(
                f,
                "connection cache unavailable after repeated failures; next try in {:.1}s",
                retry_in.as_secs_f64()
            ),
            ClientError::Invalid(e) => write!(f, "invalid request: {e}"),
            ClientError::Refused { request, status } => refusal_text(f, *request, *status),
            ClientError::Denied { reason } => {
                write!(f, "the daemon refused the connection: {reason}")
            }
            ClientError::NoGreeting => f.write_str(
                "the daemon closed the connection without a greeting (not allowed to connect? \
                 see scache_allowed_uids and scache_allowed_gids, or the socket's permissions)",
            ),
            ClientError::Io(e) => e.fmt(f),
            ClientError::Timeout => f.write_str("timeout"),
            ClientError::Closed => f.write_str("connection closed by server"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// The message of [`ClientError::Refused`]: what the status means for the
/// request that got it.
fn refusal_text(f: &mut fmt::Formatter<'_>, request: RequestKind, status: Status) -> fmt::Result {
    match (request, status) {
        (RequestKind::SaveEndp, Status::Fail) => f.write_str(
            "the daemon refused to cache the session (status 2): over one of its limits \
             (label or property length) or the descriptor did not arrive",
        ),
        (RequestKind::SaveDest, Status::Fail) => f.write_str(
            "the daemon refused to cache the binding (status 2): a label or the property \
             is over its length limit",
        ),
        (RequestKind::Stats | RequestKind::List, Status::Bad) => write!(
            f,
            "the daemon does not support the {request} request (status 1): it is not \
             scache-rs (Postfix's own scache(8) knows only save_endp, find_endp, save_dest \
             and find_dest) or an older version"
        ),
        (_, Status::Bad) => write!(
            f,
            "the daemon rejected the {request} request as malformed (status 1): for example a \
             label or property over its wire limit"
        ),
        (_, status) => write!(f, "the daemon answered {request} with status {status}"),
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
        match e {
            ProtocolError::Reply(ReplyError::Refused { reason }) => ClientError::Denied { reason },
            e => ClientError::Protocol(e),
        }
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

/// Whether an open connection can serve the next operation: not too old,
/// not idle too long, and silent (the server never speaks first between
/// operations: readable means it closed the connection, or is out of
/// sync).
fn reusable(
    config: &ClientConfig,
    sock: BorrowedFd<'_>,
    exchange: &ClientExchange,
    created: Instant,
    last_used: Instant,
) -> bool {
    let now = Instant::now();
    let too_old = config
        .ttl_limit
        .is_some_and(|ttl| now.duration_since(created) >= ttl);
    let too_idle = config
        .idle_limit
        .is_some_and(|idle| now.duration_since(last_used) >= idle);
    let silent = matches!(
        unix::wait(sock, unix::Interest::Read, Duration::ZERO),
        Ok(false)
    );
    !too_old && !too_idle && silent && exchange.poll_step() == Step::Idle
}

/// Connects to the daemon (non-blocking, close-on-exec). The error says
/// "cannot connect: ..." without the path: the callers' messages name it
/// already (`problem talking to service PATH: cannot connect: ...`).
fn connect(path: &Path) -> Result<OwnedFd, ClientError> {
    unix::connect_stream(path).map_err(|e| {
        let text = e.to_string();
        // Rust's " (os error N)" suffix says nothing more to a person.
        let text = match text.rfind(" (os error ") {
            Some(i) => &text[..i],
            None => &text,
        };
        ClientError::Io(io::Error::new(e.kind(), format!("cannot connect: {text}")))
    })
}

/// While waiting for the greeting, the server closing the connection is
/// [`ClientError::NoGreeting`].
fn no_greeting(e: ClientError) -> ClientError {
    match e {
        ClientError::Closed => ClientError::NoGreeting,
        e => e,
    }
}

/// What one successful exchange produced.
struct Done {
    outcome: Outcome,
    fd: Option<OwnedFd>,
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

/// The result of a save exchange (`request` is `SaveEndp` or `SaveDest`).
fn saved(request: RequestKind, done: Done) -> Result<(), ClientError> {
    match done.outcome {
        Outcome::Saved(Status::Ok) => Ok(()),
        Outcome::Saved(status) => Err(ClientError::Refused { request, status }),
        _ => Err(ProtocolError::OutOfSequence.into()),
    }
}

/// The result of a `find_endp` exchange; `None` on status 2.
fn found_endp(done: Done) -> Result<Option<FoundEndp<OwnedFd>>, ClientError> {
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
        (Outcome::FoundEndp { status, .. }, _) => Err(ClientError::Refused {
            request: RequestKind::FindEndp,
            status,
        }),
        _ => Err(ProtocolError::OutOfSequence.into()),
    }
}

/// The result of a `find_dest` exchange; `None` on status 2.
fn found_dest(done: Done) -> Result<Option<FoundDest<OwnedFd>>, ClientError> {
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
        (Outcome::FoundDest { status, .. }, _) => Err(ClientError::Refused {
            request: RequestKind::FindDest,
            status,
        }),
        _ => Err(ProtocolError::OutOfSequence.into()),
    }
}

/// The listing of a `list` exchange.
fn listing(done: Done) -> Result<crate::message::Listing, ClientError> {
    match done.outcome {
        Outcome::List {
            status: Status::Ok,
            listing,
        } => Ok(listing),
        Outcome::List { status, .. } => Err(ClientError::Refused {
            request: RequestKind::List,
            status,
        }),
        _ => Err(ProtocolError::OutOfSequence.into()),
    }
}

/// The counters of a `stats` exchange, as text.
fn stats(done: Done) -> Result<Vec<(String, String)>, ClientError> {
    match done.outcome {
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
        Outcome::Stats { status, .. } => Err(ClientError::Refused {
            request: RequestKind::Stats,
            status,
        }),
        _ => Err(ProtocolError::OutOfSequence.into()),
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
    fn failures_that_count() {
        assert!(ClientError::Timeout.is_failure());
        assert!(ClientError::Closed.is_failure());
        assert!(ClientError::Io(io::Error::other("x")).is_failure());
        assert!(!ClientError::Refused {
            request: RequestKind::FindEndp,
            status: Status::Bad
        }
        .is_failure());
        assert!(ClientError::Denied { reason: "x".into() }.is_failure());
        assert!(ClientError::NoGreeting.is_failure());
    }

    #[test]
    fn refusal_messages_depend_on_the_request() {
        let text = |request, status| ClientError::Refused { request, status }.to_string();
        let save = text(RequestKind::SaveEndp, Status::Fail);
        assert!(
            save.starts_with("the daemon refused to cache the session (status 2)"),
            "{save}"
        );
        assert!(!save.contains("not found"), "{save}");
        assert!(text(RequestKind::SaveDest, Status::Fail).contains("binding"));
        assert!(
            text(RequestKind::Stats, Status::Bad).contains("does not support the stats request")
        );
        assert!(text(RequestKind::FindEndp, Status::Bad).contains("find_endp request as malformed"));
        assert!(text(RequestKind::List, Status::Bad).contains("does not support the list request"));
        assert!(!ClientError::Invalid(EncodeError::BadTtl { ttl: 0 }).is_failure());
    }

    /// The result conversions of the finds and stats, for every reply
    /// status.
    #[test]
    fn outcomes_become_results() {
        let done = |outcome| Done { outcome, fd: None };
        let dest = |status| Outcome::FoundDest {
            status,
            dest_prop: b"d".to_vec(),
            endp_prop: b"e".to_vec(),
        };
        assert!(matches!(found_dest(done(dest(Status::Fail))), Ok(None)));
        assert!(matches!(
            found_dest(done(dest(Status::Bad))),
            Err(ClientError::Refused {
                status: Status::Bad,
                ..
            })
        ));
        // Status 0 without the descriptor that must come with it.
        assert!(matches!(
            found_dest(done(dest(Status::Ok))),
            Err(ClientError::Refused {
                status: Status::Ok,
                ..
            })
        ));
        assert!(matches!(
            found_dest(done(Outcome::Saved(Status::Ok))),
            Err(ClientError::Protocol(ProtocolError::OutOfSequence))
        ));
        let endp = |status| Outcome::FoundEndp {
            status,
            endp_prop: b"e".to_vec(),
        };
        assert!(matches!(found_endp(done(endp(Status::Fail))), Ok(None)));
        assert!(matches!(
            found_endp(done(endp(Status::Bad))),
            Err(ClientError::Refused {
                status: Status::Bad,
                ..
            })
        ));
        assert!(matches!(
            found_endp(done(Outcome::Saved(Status::Ok))),
            Err(ClientError::Protocol(ProtocolError::OutOfSequence))
        ));
        let counters = vec![(b"sess_count".to_vec(), b"3".to_vec())];
        let got = stats(done(Outcome::Stats {
            status: Status::Ok,
            counters,
        }))
        .unwrap();
        assert_eq!(got, [("sess_count".to_string(), "3".to_string())]);
        assert!(matches!(
            stats(done(Outcome::Stats {
                status: Status::Bad,
                counters: Vec::new()
            })),
            Err(ClientError::Refused {
                status: Status::Bad,
                ..
            })
        ));
        assert!(matches!(
            stats(done(Outcome::Saved(Status::Ok))),
            Err(ClientError::Protocol(ProtocolError::OutOfSequence))
        ));
    }
}
