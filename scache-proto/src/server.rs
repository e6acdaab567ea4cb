//! The server side of one client connection, as a pure state machine.
//!
//! [`ServerConn`] performs no system call and reads no clock. Its driver
//! (the daemon's event loop, a test, a fuzz target) tells it what happened
//! with `handle_*` methods, each given the current time — bytes arrived
//! (possibly with a descriptor), output was sent, a descriptor was sent,
//! the peer closed, a deadline passed — and asks what to do with `poll_*`
//! methods: bytes to send ([`ServerConn::poll_output`]), a descriptor to
//! send ([`ServerConn::poll_fd_to_send`]), when to call back
//! ([`ServerConn::poll_timeout`]), what to log ([`ServerConn::poll_notice`]).
//! Cache operations are applied through a [`Backend`] the driver passes in,
//! so the machine never owns the cache. This is quinn-proto's split between
//! a protocol state machine and the I/O around it.
//!
//! The exchanges are those of `docs/protocol.md` (Postfix 3.x on Linux):
//!
//! ```text
//! save_endp:  C request  S dummy  C fd  S status
//! find_endp:  C request  S status+prop  C dummy  S fd  C dummy
//! save_dest:  C request  S status
//! find_dest:  C request  S status+prop+prop  C dummy  S fd  C dummy
//! stats, list (ours): C request  S status+attributes
//! ```
//!
//! Improvements over Postfix's daemon, by construction:
//! - pipelined requests are all answered, in order (input is decoded one
//!   message at a time and the rest is kept);
//! - a malformed request is consumed whole and answered once, so the
//!   connection stays in sync; extra trailing attributes are tolerated (as
//!   Postfix does) without losing sync;
//! - a session taken by `find_*` goes back into the cache if the taker
//!   disappears or misbehaves before the descriptor is handed over;
//! - output is bounded: [`ServerConn::wants_input`] turns false while too many
//!   reply bytes are waiting, so a client that does not read stalls only
//!   itself;
//! - a client that stops in the middle of an exchange is given up after a
//!   timeout of its own (Postfix's `ipc_timeout`), without holding up others.
#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use scache_core::Instant;

use crate::attr::{self, DecodeError, Decoded, Decoder, Limits};
use crate::message::{self, parse_request, Canonical, Request, RequestKind, Status};

/// How many reply bytes may wait for a slow reader before the connection
/// stops consuming input (per connection).
pub const DEFAULT_OUTPUT_HIGH_WATER: usize = 64 * 1024;

/// The cache operations a [`ServerConn`] needs, implemented by its driver.
pub trait Backend {
    /// The descriptor type received from and sent to clients.
    type Fd;
    /// A session taken out of the cache, restorable with [`Backend::put_back`].
    type Session;

    /// Stores `fd` under `endp`. `ttl` is the client's value in seconds
    /// (already known to be positive); clamping it is the backend's job.
    fn save_endp(&mut self, ttl: u32, endp: &[u8], endp_prop: &[u8], fd: Self::Fd) -> Status;

    /// Takes a session cached under `endp`.
    fn find_endp(&mut self, endp: &[u8]) -> Option<Self::Session>;

    /// Binds `dest` to `endp`.
    fn save_dest(&mut self, ttl: u32, dest: &[u8], dest_prop: &[u8], endp: &[u8]) -> Status;

    /// Takes a session for `dest`.
    fn find_dest(&mut self, dest: &[u8]) -> Option<Self::Session>;

    /// The endpoint properties of a taken session.
    fn endp_prop<'s>(&self, session: &'s Self::Session) -> &'s [u8];

    /// The destination properties of a session taken by `find_dest`.
    fn dest_prop<'s>(&self, session: &'s Self::Session) -> &'s [u8];

    /// Returns a taken session that could not be handed over to the cache,
    /// with its remaining time to live.
    fn put_back(&mut self, session: Self::Session);

    /// Writes the attributes of a `stats` reply (after `status`), without
    /// the list terminator.
    fn stats(&mut self, out: &mut Vec<u8>);

    /// What is cached, for a `list` request: at most `limit` endpoints, as
    /// many destinations, and as many bindings per destination.
    fn list(&mut self, limit: usize) -> message::Listing;
}

/// Something worth a log line that happened on a connection. The driver
/// decides how to log it; the machine has already acted on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A malformed request was answered with status 1.
    Malformed {
        /// The request, as far as it was recognised.
        kind: RequestKind,
        /// Why it was rejected.
        reason: String,
    },
    /// A request was served although extra attributes followed the
    /// expected ones (Postfix tolerates this too).
    ExtraAttribute {
        /// The request.
        kind: RequestKind,
        /// The first unexpected attribute name (lossy UTF-8).
        name: String,
    },
    /// `save_endp`: the client sent no descriptor; answered with status 2.
    NoDescriptor,
    /// A descriptor arrived when none was expected; it was closed.
    UnexpectedDescriptor,
    /// The client did not complete a `find` exchange; the session went back
    /// into the cache.
    SessionPutBack,
}

/// Why a connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its end.
    PeerClosed,
    /// The peer broke the exchange (for example sent a request where the
    /// `dummy` message of a descriptor transfer was expected).
    ProtocolViolation(String),
    /// Sending a descriptor failed.
    SendFailed,
    /// The peer made no progress in the middle of an exchange for longer
    /// than the connection's timeout.
    Timeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("peer closed the connection"),
            CloseReason::ProtocolViolation(why) => write!(f, "protocol violation: {why}"),
            CloseReason::SendFailed => f.write_str("cannot send file descriptor"),
            CloseReason::Timeout => f.write_str("timeout in the middle of an exchange"),
        }
    }
}

/// Where a connection stands in its exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for (or reading) a request.
    Request,
    /// `save_endp`: the dummy was sent; waiting for the descriptor.
    AwaitFd,
    /// `find_*`: the reply was sent; waiting for the client's first dummy.
    AwaitDummyBeforeFd,
    /// `find_*`: the driver must send the descriptor now.
    SendFd,
    /// `find_*`: the descriptor was sent; waiting for the client's dummy.
    AwaitDummyAfterFd,
    /// The connection is finished; the driver must close it.
    Closed,
}

/// Where the exchange stands; the session being handed over, if any, is
/// in [`ServerConn::held`] and the reason of a close in
/// [`ServerConn::closed`], so that the state is one small tag, matched
/// several times per request.
#[derive(Clone, Copy)]
enum State {
    Request,
    AwaitFd {
        ttl: u32,
    },
    /// The session is held.
    AwaitDummyBeforeFd,
    /// The session is held.
    SendFd,
    AwaitDummyAfterFd,
    /// The reason is in `closed`.
    Closed,
}

/// The server side of one client connection.
pub struct ServerConn<S> {
    decoder: Decoder,
    state: State,
    /// Why the connection closed (set exactly in `Closed`).
    closed: Option<CloseReason>,
    /// The session taken for a `find_*` until its descriptor is sent (set
    /// exactly in `AwaitDummyBeforeFd` and `SendFd`).
    held: Option<S>,
    /// Input received but not yet decoded (only while a step must wait).
    pending: Vec<u8>,
    /// Reply bytes not yet written; `out[out_start..]` is what remains.
    out: Vec<u8>,
    out_start: usize,
    /// `save_endp` label and property, kept until the descriptor arrives.
    save_label: Vec<u8>,
    save_prop: Vec<u8>,
    notices: VecDeque<Notice>,
    high_water: usize,
    requests: u64,
    /// How long the peer may stall in the middle of an exchange.
    timeout: Option<Duration>,
    /// When the peer last made progress (input consumed, output or a
    /// descriptor taken).
    last_progress: Instant,
}

impl<S> fmt::Debug for ServerConn<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConn")
            .field("phase", &self.phase())
            .field("pending", &self.pending.len())
            .field("output", &self.poll_output().len())
            .field("timeout", &self.poll_timeout())
            .finish()
    }
}

impl<S> ServerConn<S> {
    /// A new connection, accepted at `now`, with the greeting already
    /// queued for output. It has no timeout until
    /// [`set_timeout`](ServerConn::set_timeout).
    pub fn new(limits: Limits, now: Instant) -> ServerConn<S> {
        let mut out = Vec::with_capacity(256);
        message::encode_greeting(&mut out);
        ServerConn {
            decoder: Decoder::new(limits),
            state: State::Request,
            closed: None,
            held: None,
            pending: Vec::new(),
            out,
            out_start: 0,
            save_label: Vec::new(),
            save_prop: Vec::new(),
            notices: VecDeque::new(),
            high_water: DEFAULT_OUTPUT_HIGH_WATER,
            requests: 0,
            timeout: None,
            last_progress: now,
        }
    }

    /// Sets how long the peer may stall in the middle of an exchange
    /// (Postfix's `ipc_timeout`) before [`handle_timeout`] gives it up;
    /// `None`: forever. An idle connection (between requests, nothing
    /// buffered) never times out here.
    ///
    /// [`handle_timeout`]: ServerConn::handle_timeout
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Sets how many reply bytes may wait before input is paused.
    pub fn set_output_high_water(&mut self, bytes: usize) {
        self.high_water = bytes.max(1);
    }

    /// Where the exchange stands.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Request => Phase::Request,
            State::AwaitFd { .. } => Phase::AwaitFd,
            State::AwaitDummyBeforeFd => Phase::AwaitDummyBeforeFd,
            State::SendFd => Phase::SendFd,
            State::AwaitDummyAfterFd => Phase::AwaitDummyAfterFd,
            State::Closed => Phase::Closed,
        }
    }

    /// Why the connection is closed, once [`Phase::Closed`].
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.closed.as_ref()
    }

    /// Whether the connection is between requests with nothing buffered:
    /// an idle client.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Request)
            && self.pending.is_empty()
            && self.output_len() == 0
            && !self.decoder.in_message()
    }

    /// Number of requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Bytes waiting to be written to the client.
    pub fn poll_output(&self) -> &[u8] {
        &self.out[self.out_start..]
    }

    /// `n` bytes of [`poll_output`](ServerConn::poll_output) were written
    /// at `now`. Input that was kept back while output was over its
    /// high-water mark is served now that there is room (which may queue
    /// more output).
    pub fn handle_output_sent<B: Backend<Session = S>>(
        &mut self,
        now: Instant,
        n: usize,
        backend: &mut B,
    ) {
        if n > 0 {
            self.last_progress = now;
        }
        self.out_start = self.out_start.saturating_add(n).min(self.out.len());
        if self.out_start == self.out.len() {
            self.out.clear();
            self.out_start = 0;
        }
        let ready = matches!(
            self.state,
            State::Request
                | State::AwaitFd { .. }
                | State::AwaitDummyBeforeFd
                | State::AwaitDummyAfterFd
        );
        if ready && self.below_high_water() {
            self.drain_pending(backend);
        }
    }

    /// When the driver must call [`handle_timeout`](ServerConn::handle_timeout)
    /// next: the peer's deadline while it is in the middle of an exchange,
    /// `None` while it is idle (or without a timeout, or closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let timeout = self.timeout?;
        if self.is_idle() || matches!(self.state, State::Closed) {
            return None;
        }
        Some(self.last_progress.saturating_add(timeout))
    }

    /// Time has come to `now`: a peer past its deadline is given up
    /// ([`CloseReason::Timeout`]; a session in the middle of a hand-over
    /// goes back into the cache). Returns whether it was.
    pub fn handle_timeout<B: Backend<Session = S>>(
        &mut self,
        now: Instant,
        backend: &mut B,
    ) -> bool {
        match self.poll_timeout() {
            Some(deadline) if now >= deadline => {
                self.handle_close(backend, CloseReason::Timeout);
                true
            }
            _ => false,
        }
    }

    /// Whether the driver should read more input now: false while the
    /// descriptor must be sent, while too much output waits, and once closed.
    pub fn wants_input(&self) -> bool {
        match self.state {
            State::SendFd | State::Closed => false,
            // Input kept back must be served (by `resume`) before more is
            // read, or a fast writer that reads slowly grows it unbounded.
            _ => self.pending.is_empty() && self.below_high_water(),
        }
    }

    fn below_high_water(&self) -> bool {
        self.output_len() < self.high_water
    }

    /// `poll_output().len()` without making the slice (`out_start` never
    /// passes `out.len()`).
    fn output_len(&self) -> usize {
        self.out.len().saturating_sub(self.out_start)
    }

    /// The session whose descriptor the driver must send now, after
    /// flushing [`poll_output`](ServerConn::poll_output). Report the result
    /// with [`handle_fd_sent`](ServerConn::handle_fd_sent) or
    /// [`handle_fd_send_failed`](ServerConn::handle_fd_send_failed).
    pub fn poll_fd_to_send(&self) -> Option<&S> {
        match &self.state {
            State::SendFd if self.output_len() == 0 => self.held.as_ref(),
            _ => None,
        }
    }

    /// The descriptor of the session from
    /// [`poll_fd_to_send`](ServerConn::poll_fd_to_send) was sent at `now`:
    /// the session is returned so the driver can close its copy.
    pub fn handle_fd_sent<B: Backend<Session = S>>(
        &mut self,
        now: Instant,
        backend: &mut B,
    ) -> Option<S> {
        if !matches!(self.state, State::SendFd) {
            return None;
        }
        self.state = State::AwaitDummyAfterFd;
        let session = self.held.take();
        self.last_progress = now;
        // The client may have pipelined its closing dummy already.
        self.drain_pending(backend);
        session
    }

    /// Sending the descriptor failed: the session goes back into the cache
    /// and the connection is closed.
    /// Does nothing unless a descriptor was due.
    pub fn handle_fd_send_failed<B: Backend<Session = S>>(&mut self, backend: &mut B) {
        if matches!(self.state, State::SendFd) {
            self.handle_close(backend, CloseReason::SendFailed);
        }
    }

    /// The next notice worth logging, if any.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.notices.pop_front()
    }

    /// Ends the exchange for `reason` (nothing is handed back here).
    fn close(&mut self, reason: CloseReason) {
        self.state = State::Closed;
        self.closed = Some(reason);
    }

    /// The peer closed its end (read returned EOF) or the connection is
    /// being dropped (shutdown): a session in the middle of a hand-over
    /// goes back into the cache.
    pub fn handle_close<B: Backend<Session = S>>(&mut self, backend: &mut B, reason: CloseReason) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.close(reason);
        if let Some(s) = self.held.take() {
            backend.put_back(s);
            self.notices.push_back(Notice::SessionPutBack);
        }
    }

    /// What one read returned at `now`: `data` and, if one came with it, a
    /// descriptor. Everything that can be answered is answered (replies go
    /// to [`poll_output`](ServerConn::poll_output)); what must wait is kept.
    pub fn handle_input<B: Backend<Session = S>>(
        &mut self,
        now: Instant,
        backend: &mut B,
        data: &[u8],
        fd: Option<B::Fd>,
    ) {
        if let State::Closed = self.state {
            return;
        }
        self.last_progress = now;
        let Some(fd) = fd else {
            self.feed(backend, data);
            return;
        };
        // The descriptor travels with the last byte of what was read:
        // anything before it was sent before it.
        let (before, sync) = match data.split_last() {
            Some((last, before)) => (before, Some(*last)),
            None => (data, None),
        };
        self.feed(backend, before);
        if self.pending.is_empty() && matches!(self.state, State::AwaitFd { .. }) {
            let State::AwaitFd { ttl } = std::mem::replace(&mut self.state, State::Request) else {
                unreachable!("checked above")
            };
            let status = backend.save_endp(ttl, &self.save_label, &self.save_prop, fd);
            message::encode_status(&mut self.out, status);
            self.requests += 1;
        } else {
            drop(fd);
            self.notices.push_back(Notice::UnexpectedDescriptor);
            if let Some(b) = sync {
                self.feed(backend, &[b]);
            }
        }
    }

    /// Serves `data`, or keeps it after what is already waiting.
    fn feed<B: Backend<Session = S>>(&mut self, backend: &mut B, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.pending.is_empty() {
            let used = self.process(backend, data);
            if used < data.len() {
                self.pending.extend_from_slice(&data[used..]);
            }
        } else {
            self.pending.extend_from_slice(data);
            self.drain_pending(backend);
        }
    }

    /// Processes buffered input after a step that had to wait completed.
    #[inline]
    fn drain_pending<B: Backend<Session = S>>(&mut self, backend: &mut B) {
        if !self.pending.is_empty() {
            self.serve_pending(backend);
        }
    }

    fn serve_pending<B: Backend<Session = S>>(&mut self, backend: &mut B) {
        let pending = std::mem::take(&mut self.pending);
        let used = self.process(backend, &pending);
        let mut rest = pending;
        rest.drain(..used);
        // Anything that arrived meanwhile went to the new `self.pending`
        // only if `process` stopped early; keep order.
        rest.extend_from_slice(&self.pending);
        self.pending = rest;
    }

    /// Decodes and serves messages from `data` until it is used up or the
    /// exchange must wait for something other than bytes. Returns how many
    /// bytes were used.
    fn process<B: Backend<Session = S>>(&mut self, backend: &mut B, data: &[u8]) -> usize {
        let mut used = 0;
        while used < data.len() {
            match self.state {
                State::Request | State::AwaitDummyBeforeFd | State::AwaitDummyAfterFd => {}
                State::AwaitFd { .. } => {
                    // Bytes where a descriptor was expected.
                    self.no_descriptor();
                    if data[used] == 0 {
                        used += 1;
                    }
                    continue;
                }
                State::SendFd | State::Closed => break,
            }
            if !self.below_high_water() {
                break;
            }
            if !self.decoder.in_message() {
                let limits = self.decoder.limits();
                match message::parse_canonical(&data[used..], &limits) {
                    // A dummy where a request belongs: the general way
                    // tells what is wrong.
                    Some((_, Canonical::Dummy)) if matches!(self.state, State::Request) => {}
                    Some((n, message)) => {
                        used += n;
                        self.on_canonical(backend, message);
                        continue;
                    }
                    None => {}
                }
            }
            let result = match self.decoder.decode(&data[used..]) {
                Decoded::Partial => {
                    used = data.len();
                    break;
                }
                Decoded::Complete { used: n, .. } => {
                    used += n;
                    Ok(())
                }
                Decoded::Rejected { used: n, error } => {
                    used += n;
                    Err(error)
                }
            };
            self.on_message(backend, result);
        }
        used
    }

    fn no_descriptor(&mut self) {
        self.state = State::Request;
        message::encode_status(&mut self.out, Status::Fail);
        self.requests += 1;
        self.notices.push_back(Notice::NoDescriptor);
    }

    /// A message read by the fast path ([`message::parse_canonical`]): the
    /// same as [`on_message`](Self::on_message) for the same bytes.
    fn on_canonical<B: Backend<Session = S>>(&mut self, backend: &mut B, message: Canonical<'_>) {
        match (&self.state, message) {
            (State::Request, Canonical::Request(request)) => {
                self.requests += 1;
                self.serve(backend, request);
            }
            (State::AwaitDummyBeforeFd, Canonical::Dummy) => self.state = State::SendFd,
            (State::AwaitDummyAfterFd, Canonical::Dummy) => self.state = State::Request,
            (State::AwaitDummyBeforeFd, Canonical::Request(_)) => self.handle_close(
                backend,
                CloseReason::ProtocolViolation("expected dummy message before descriptor".into()),
            ),
            (State::AwaitDummyAfterFd, Canonical::Request(_)) => self.close(
                CloseReason::ProtocolViolation("expected dummy message after descriptor".into()),
            ),
            // A dummy where a request belongs is left to the general way
            // (see `process`); nothing else reads input.
            _ => {}
        }
    }

    fn on_message<B: Backend<Session = S>>(
        &mut self,
        backend: &mut B,
        result: Result<(), DecodeError>,
    ) {
        match self.state {
            State::Request => self.on_request(backend, result),
            State::AwaitDummyBeforeFd => {
                if result.is_ok() && is_dummy(&self.decoder) {
                    self.state = State::SendFd;
                } else {
                    self.handle_close(
                        backend,
                        CloseReason::ProtocolViolation(
                            "expected dummy message before descriptor".into(),
                        ),
                    );
                }
            }
            State::AwaitDummyAfterFd => {
                if result.is_ok() && is_dummy(&self.decoder) {
                    self.state = State::Request;
                } else {
                    self.close(CloseReason::ProtocolViolation(
                        "expected dummy message after descriptor".into(),
                    ));
                }
            }
            _ => {}
        }
    }

    fn on_request<B: Backend<Session = S>>(
        &mut self,
        backend: &mut B,
        result: Result<(), DecodeError>,
    ) {
        self.requests += 1;
        if let Err(e) = result {
            // Over a limit: the whole message was skipped; answer in the
            // shape its request name calls for.
            let kind = message::rejected_kind(&self.decoder);
            message::encode_malformed(&mut self.out, kind);
            self.notices.push_back(Notice::Malformed {
                kind,
                reason: e.to_string(),
            });
            return;
        }
        // The request borrows the decoder's buffer while `serve` changes
        // the rest of `self`: the decoder steps aside meanwhile (a move, no
        // allocation).
        let decoder = std::mem::replace(&mut self.decoder, Decoder::new(Limits::default()));
        if let Some(msg) = decoder.message() {
            match parse_request(&msg) {
                Ok(parsed) => {
                    if let Some(name) = parsed.extra {
                        self.notices.push_back(Notice::ExtraAttribute {
                            kind: parsed.request.kind(),
                            name: String::from_utf8_lossy(name).into_owned(),
                        });
                    }
                    self.serve(backend, parsed.request);
                }
                Err(e) => {
                    message::encode_malformed(&mut self.out, e.kind());
                    self.notices.push_back(Notice::Malformed {
                        kind: e.kind(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        self.decoder = decoder;
    }

    /// Answers a well-formed request (counted already).
    fn serve<B: Backend<Session = S>>(&mut self, backend: &mut B, request: Request<'_>) {
        match request {
            Request::SaveEndp {
                ttl,
                endp,
                endp_prop,
            } => {
                self.save_label.clear();
                self.save_label.extend_from_slice(endp);
                self.save_prop.clear();
                self.save_prop.extend_from_slice(endp_prop);
                message::encode_dummy(&mut self.out);
                self.state = State::AwaitFd { ttl };
                // The status is counted when the descriptor arrives.
                self.requests -= 1;
            }
            Request::FindEndp { endp } => match backend.find_endp(endp) {
                Some(s) => {
                    message::encode_find_endp_reply(
                        &mut self.out,
                        Status::Ok,
                        backend.endp_prop(&s),
                    );
                    self.held = Some(s);
                    self.state = State::AwaitDummyBeforeFd;
                }
                None => message::encode_find_endp_reply(&mut self.out, Status::Fail, b""),
            },
            Request::SaveDest {
                ttl,
                dest,
                dest_prop,
                endp,
            } => {
                let status = backend.save_dest(ttl, dest, dest_prop, endp);
                message::encode_status(&mut self.out, status);
            }
            Request::FindDest { dest } => match backend.find_dest(dest) {
                Some(s) => {
                    message::encode_find_dest_reply(
                        &mut self.out,
                        Status::Ok,
                        backend.dest_prop(&s),
                        backend.endp_prop(&s),
                    );
                    self.held = Some(s);
                    self.state = State::AwaitDummyBeforeFd;
                }
                None => message::encode_find_dest_reply(&mut self.out, Status::Fail, b"", b""),
            },
            Request::Stats => {
                attr::put_attr(&mut self.out, b"status", b"0");
                backend.stats(&mut self.out);
                attr::put_end(&mut self.out);
            }
            Request::List { limit } => {
                let limit = limit
                    .unwrap_or(message::DEFAULT_LIST_LIMIT)
                    .min(message::MAX_LIST_LIMIT);
                let listing = backend.list(limit as usize);
                message::encode_list_reply(&mut self.out, &listing);
            }
        }
    }
}

fn is_dummy(decoder: &Decoder) -> bool {
    decoder.message().is_some_and(|m| message::is_dummy(&m))
}
