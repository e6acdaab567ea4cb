//! The client side of one connection as a pure state machine.
#![forbid(unsafe_code)]

use std::fmt;

use crate::attr::{DecodeError, Decoded, Decoder, Limits};
use crate::message::{
    self, encode_request, parse_reply, EncodeError, Listing, Reply, ReplyError, Request,
    RequestKind, Status,
};

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
    /// `list` answered.
    List {
        /// Reply status.
        status: Status,
        /// What was listed (empty unless [`Status::Ok`]).
        listing: Listing,
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
    /// The limits given at creation (a `list` raises them for its reply).
    limits: Limits,
}

impl ClientExchange {
    /// A new connection, waiting for the server greeting.
    pub fn new(limits: Limits) -> ClientExchange {
        ClientExchange {
            decoder: Decoder::new(limits),
            state: State::AwaitGreeting,
            limits,
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
        // A listing may hold many more attributes than any other reply.
        self.decoder.set_limits(match request {
            Request::List { limit } => message::list_reply_limits(self.limits, *limit),
            _ => self.limits,
        });
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
                    Reply::List { status, listing } => {
                        State::Done(Outcome::List { status, listing })
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn refusal_instead_of_greeting() {
        let mut ex = ClientExchange::new(Limits::default());
        let mut out = Vec::new();
        let e = ex
            .handle_bytes(b"refused\0uid 7 gid 7 is not allowed\0\0", &mut out)
            .unwrap_err();
        let e = crate::client::ClientError::from(e);
        assert_eq!(
            e.to_string(),
            "the daemon refused the connection: uid 7 gid 7 is not allowed"
        );
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
