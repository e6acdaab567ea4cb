//! The bodies of the fuzz targets, as plain functions.
//!
//! `fuzz/fuzz_targets/<name>.rs` calls [`decoder`], [`request_parser`],
//! [`client_exchange`] or [`server_exchange`] with libFuzzer's input; this
//! crate's `tests/fuzz_corpus.rs` replays every file of
//! `fuzz/corpus/<name>/` through the same function, so the stable toolchain
//! checks the corpus on every test run. Each function panics (assertion
//! failure) when an invariant breaks, and must never panic otherwise,
//! whatever the input.
//!
//! [`server_exchange`] drives the daemon's own cache adapter
//! (`scache_bin::backend::CacheBackend`) with tokens for descriptors and a
//! manual clock, through a recorder that only watches what passes.
#![forbid(unsafe_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use scache_bin::backend::CacheBackend;
use scache_core::{
    Clock, EvictionCause, Instant, Limits as CacheLimits, ManualClock, MultiCache, SessionHandle,
    Taken,
};
use scache_proto::attr::{put_attr, put_end, DecodeError, Decoded, Decoder, Limits, Message};
use scache_proto::client::{ClientExchange, Step};
use scache_proto::message::{
    encode_malformed, encode_request, is_dummy, parse_greeting, parse_reply, parse_request,
    parse_ttl, Reply, RequestKind, Status, MAX_TTL, PROTOCOL_NAME,
};
use scache_proto::server::{
    Backend, CloseReason, Notice, Phase, ServerConn, DEFAULT_OUTPUT_HIGH_WATER,
};

/// The body of a fuzz target.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (as in `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/`) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("decoder", decoder),
    ("request_parser", request_parser),
    ("client_exchange", client_exchange),
    ("server_exchange", server_exchange),
];

/// Longest input the targets look at (libFuzzer's default is far below).
const MAX_INPUT: usize = 1 << 20;

type Attrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything observable from decoding one input.
#[derive(Debug, PartialEq, Eq)]
struct Trace {
    events: Vec<Result<Attrs, DecodeError>>,
    in_message: bool,
}

fn limits_for(selector: u8) -> Limits {
    match selector & 3 {
        0 => Limits::default(),
        1 => Limits {
            max_name_len: 4,
            max_value_len: 8,
            max_attrs: 3,
        },
        2 => Limits {
            max_name_len: 1,
            max_value_len: 0,
            max_attrs: 1,
        },
        _ => Limits {
            max_name_len: 16,
            max_value_len: 64,
            max_attrs: 8,
        },
    }
}

/// Decodes `input` fed in pieces of `chunk` bytes, checking the decoder's
/// contract at every call.
fn run_decoder(limits: Limits, input: &[u8], chunk: usize) -> Trace {
    let mut dec = Decoder::new(limits);
    let mut events = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        let mut pos = 0;
        while pos < piece.len() {
            let rest = piece.len() - pos;
            match dec.decode(&piece[pos..]) {
                Decoded::Partial => {
                    assert!(dec.message().is_none(), "a message while partial");
                    pos = piece.len();
                }
                Decoded::Complete { used, message } => {
                    assert!(used <= rest, "consumed more than given");
                    assert!(used > 0, "a message from no bytes");
                    pos += used;
                    check_message(&message, limits);
                    events.push(Ok(message
                        .iter()
                        .map(|(n, v)| (n.to_vec(), v.to_vec()))
                        .collect()));
                    let again = dec.message().expect("the message stays readable");
                    assert_eq!(
                        again.len(),
                        events.last().map_or(0, |e| e.as_ref().map_or(0, Vec::len))
                    );
                }
                Decoded::Rejected { used, error } => {
                    assert!(used <= rest, "consumed more than given");
                    assert!(used > 0, "a message from no bytes");
                    pos += used;
                    assert!(!error.to_string().is_empty());
                    assert!(dec.message().is_none());
                    if let Some((name, value)) = dec.rejected_head() {
                        assert!(!name.is_empty() && name.len() <= limits.max_name_len);
                        assert!(value.len() <= limits.max_value_len);
                    }
                    events.push(Err(error));
                }
            }
        }
    }
    Trace {
        events,
        in_message: dec.in_message(),
    }
}

fn check_message(msg: &Message<'_>, limits: Limits) {
    assert!(msg.len() <= limits.max_attrs);
    assert_eq!(msg.iter().count(), msg.len());
    for (name, value) in msg.iter() {
        assert!(!name.is_empty(), "empty name inside a message");
        assert!(name.len() <= limits.max_name_len);
        assert!(value.len() <= limits.max_value_len);
        assert!(!name.contains(&0) && !value.contains(&0));
    }
    assert!(msg.attr(msg.len()).is_none());
}

/// Fuzz target `decoder`: the first byte picks limits and a chunk size; the
/// rest is decoded whole, in chunks and one byte at a time, which must all
/// give the same messages and errors; every message must re-encode to bytes
/// that decode to itself.
pub fn decoder(data: &[u8]) {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let input = &input[..input.len().min(MAX_INPUT)];
    let limits = limits_for(selector);
    let chunk = usize::from(selector >> 2) + 1;
    let whole = run_decoder(limits, input, usize::MAX);
    assert_eq!(whole, run_decoder(limits, input, chunk), "chunked differs");
    if input.len() <= 64 * 1024 {
        assert_eq!(whole, run_decoder(limits, input, 1), "bytewise differs");
    }
    for attrs in whole.events.iter().flatten() {
        let mut wire = Vec::new();
        for (n, v) in attrs {
            put_attr(&mut wire, n, v);
        }
        put_end(&mut wire);
        let again = run_decoder(limits, &wire, usize::MAX);
        assert_eq!(again.events, vec![Ok(attrs.clone())], "round trip");
        assert!(!again.in_message);
    }
}

/// Fuzz target `request_parser`: decodes `data` (default limits) and runs
/// every message through the request parser and the reply parsers. A parsed
/// request must re-encode and parse back to itself; a malformed one must
/// produce a reply that parses as status 1.
pub fn request_parser(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let mut dec = Decoder::new(Limits::default());
    let mut pos = 0;
    while pos < data.len() {
        match dec.decode(&data[pos..]) {
            Decoded::Partial => break,
            Decoded::Complete { used, message } => {
                pos += used;
                check_request(&message);
            }
            Decoded::Rejected { used, .. } => pos += used,
        }
    }
}

const ALL_KINDS: [RequestKind; 8] = [
    RequestKind::SaveEndp,
    RequestKind::FindEndp,
    RequestKind::SaveDest,
    RequestKind::FindDest,
    RequestKind::Stats,
    RequestKind::List,
    RequestKind::Unknown,
    RequestKind::Missing,
];

fn expected_attrs(request: &scache_proto::message::Request<'_>) -> usize {
    use scache_proto::message::Request;
    match request {
        Request::SaveEndp { .. } => 4,
        Request::SaveDest { .. } => 5,
        Request::FindEndp { .. } | Request::FindDest { .. } => 2,
        Request::List { limit: Some(_) } => 2,
        Request::Stats | Request::List { limit: None } => 1,
    }
}

fn decode_one(wire: &[u8], limits: Limits) -> Decoder {
    let mut dec = Decoder::new(limits);
    match dec.decode(wire) {
        Decoded::Complete { used, .. } => assert_eq!(used, wire.len()),
        other => panic!("one whole message expected: {other:?}"),
    }
    dec
}

fn check_request(msg: &Message<'_>) {
    match parse_request(msg) {
        Ok(parsed) => {
            let expected = expected_attrs(&parsed.request);
            assert_eq!(parsed.extra.is_some(), msg.len() > expected);
            if let Some(extra) = parsed.extra {
                assert_eq!(Some(extra), msg.attr(expected).map(|(n, _)| n));
            }
            let mut wire = Vec::new();
            encode_request(&mut wire, &parsed.request).expect("parsed request re-encodes");
            let dec = decode_one(&wire, Limits::default());
            let msg = dec.message().expect("decoded");
            let again = parse_request(&msg).expect("re-encoded request parses");
            assert_eq!(again.request, parsed.request);
            assert_eq!(again.extra, None);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let mut wire = Vec::new();
            encode_malformed(&mut wire, e.kind());
            let dec = decode_one(&wire, Limits::default());
            let msg = dec.message().expect("decoded");
            let status = match parse_reply(e.kind(), &msg).expect("malformed reply") {
                Reply::Status(s) => s,
                Reply::FindEndp { status, endp_prop } => {
                    assert!(endp_prop.is_empty());
                    status
                }
                Reply::FindDest {
                    status,
                    dest_prop,
                    endp_prop,
                } => {
                    assert!(dest_prop.is_empty() && endp_prop.is_empty());
                    status
                }
                Reply::Stats { status, .. } | Reply::List { status, .. } => status,
            };
            assert_eq!(status, Status::Bad);
        }
    }
    for kind in ALL_KINDS {
        if let Err(e) = parse_reply(kind, msg) {
            assert!(!e.to_string().is_empty());
        }
    }
    let _ = parse_greeting(msg);
    let _ = is_dummy(msg);
    for (_, value) in msg.iter() {
        if let Some(ttl) = parse_ttl(value) {
            assert!((1..=MAX_TTL).contains(&ttl));
        }
    }
}

/// Fuzz target `client_exchange`: a client connection fed arbitrary server
/// bytes in arbitrary pieces, for each kind of operation, must never panic,
/// and must stay within its steps.
pub fn client_exchange(data: &[u8]) {
    use scache_proto::message::Request;
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let input = &input[..input.len().min(MAX_INPUT)];
    // Bits 0-1: operation; bit 3: `stats` or `list` instead; bit 2: no built-in
    // greeting; bits 4-7: chunk size - 1.
    let chunk = usize::from(selector >> 4) + 1;
    let request = if selector & 8 != 0 {
        // Our extensions: bit 0 picks `list` (with a small limit) or `stats`.
        if selector & 1 != 0 {
            Request::List { limit: Some(2) }
        } else {
            Request::Stats
        }
    } else {
        match selector & 3 {
            0 => Request::SaveEndp {
                ttl: 2,
                endp: b"e",
                endp_prop: b"p",
            },
            1 => Request::FindEndp { endp: b"e" },
            2 => Request::SaveDest {
                ttl: 2,
                dest: b"d",
                dest_prop: b"p",
                endp: b"e",
            },
            _ => Request::FindDest { dest: b"d" },
        }
    };
    let mut ex = ClientExchange::new(Limits::default());
    let mut out = Vec::new();
    // Unless bit 2 is set, the greeting is taken care of so that the input
    // hits the reply parsers directly.
    if selector & 4 == 0 {
        ex.handle_bytes(b"protocol\0connection_cache_protocol\0\0", &mut out)
            .expect("greeting");
    }
    for piece in input.chunks(chunk) {
        match ex.poll_step() {
            Step::Idle => {
                out.clear();
                ex.start(&request, &mut out).expect("start when idle");
                assert!(!out.is_empty());
            }
            Step::SendFd => ex.handle_fd_sent().expect("fd sent when asked"),
            Step::RecvFd => {
                ex.handle_fd_received(&mut out)
                    .expect("fd received when asked");
            }
            Step::Done => {
                assert!(ex.poll_outcome().is_some());
            }
            Step::Broken => {
                assert!(ex.error().is_some());
                return;
            }
            Step::ReadBytes => {}
        }
        let step = ex.poll_step();
        let result = ex.handle_bytes(piece, &mut out);
        if step != Step::ReadBytes {
            assert!(result.is_err());
        }
        if result.is_err() {
            assert_eq!(ex.poll_step(), Step::Broken);
        }
    }
}

// ---------------------------------------------------------------------------
// server_exchange

/// Operation codes of a [`server_exchange`] input: the low 4 bits of an
/// event byte (bits 4-6 are ignored; bit 7 is [`SECOND`]).
mod op {
    /// Feed bytes: length (u8), then the bytes.
    pub const FEED: u8 = 0;
    /// Feed bytes: length (u16, little-endian), then the bytes.
    pub const FEED_LONG: u8 = 1;
    /// Feed bytes with a descriptor attached: length (u8), then the bytes.
    pub const FEED_FD: u8 = 2;
    /// The client reads `n` bytes of output: `n` (u8).
    pub const CONSUME: u8 = 3;
    /// The client reads all the output.
    pub const CONSUME_ALL: u8 = 4;
    /// The descriptor of `poll_fd_to_send()` was sent (when there is one).
    pub const FD_SENT: u8 = 5;
    /// Sending the descriptor of `poll_fd_to_send()` failed (when there is
    /// one).
    pub const FD_SEND_FAILED: u8 = 6;
    /// The peer closed the connection.
    pub const CLOSE: u8 = 7;
    /// `handle_output_sent(now, 0)`: the driver had nothing to write, which
    /// serves input kept back.
    pub const RESUME: u8 = 8;
    /// The clock moves: `t` (u8): `t * 50` ms below 128, else
    /// `(t - 128) * 10` s. Then every connection is told the time
    /// (`handle_timeout`), as the daemon does.
    pub const ADVANCE: u8 = 9;
    /// The cache expires what is due.
    pub const EXPIRE: u8 = 10;
    /// The cache loses a session: `w` (u8): odd, the one closest to expiry
    /// (descriptor pressure); even, the `(w / 2)`-th cached one (its peer
    /// closed it).
    pub const EVICT: u8 = 11;
    /// The connection is closed (if it is not yet) and a new one accepted.
    pub const RECONNECT: u8 = 12;
    /// What the daemon does when the socket is writable: write all output,
    /// send the descriptor when due; until nothing changes.
    pub const PUMP: u8 = 13;
    /// Feed one byte: the byte.
    pub const FEED_BYTE: u8 = 14;
    /// Feed the rest of the input at once.
    pub const FEED_REST: u8 = 15;
}

/// Event bit selecting the second connection of a [`server_exchange`]
/// input (when its options enable two).
pub const SECOND: u8 = 0x80;

/// Records which descriptors were closed (dropped).
#[derive(Debug, Default)]
struct Ledger {
    dropped: Vec<bool>,
    drops: u64,
}

/// A descriptor: dropping it (closing it) is recorded in the ledger.
#[derive(Debug)]
struct Token {
    id: usize,
    ledger: Rc<RefCell<Ledger>>,
}

impl Drop for Token {
    fn drop(&mut self) {
        // No assertion here: a panic while unwinding would abort.
        let mut ledger = self.ledger.borrow_mut();
        if let Some(d) = ledger.dropped.get_mut(self.id) {
            *d = true;
        }
        ledger.drops += 1;
    }
}

type FuzzSession = Taken<Token>;

/// The daemon's cache adapter, on tokens and a manual clock.
type DaemonBackend = CacheBackend<Token, Rc<ManualClock>>;

/// Watches what passes between the connections and the daemon's backend,
/// which does the work: knows where every descriptor is.
struct Recorder {
    inner: DaemonBackend,
    /// Handle of every descriptor saved or put back (stale once it left).
    cached: BTreeMap<usize, SessionHandle>,
    /// Descriptors taken out by `find_*`, held by a connection.
    taken: BTreeSet<usize>,
    /// Descriptors the cache refused (and closed).
    refused_fds: u64,
    /// Successful `find_*` calls.
    takes: u64,
    /// `find_*` calls that found nothing.
    misses: u64,
    /// Saves the cache accepted (sessions and bindings).
    saves: u64,
    /// `save_dest` calls the cache refused.
    refused_dests: u64,
    /// `stats` calls, and the attributes of the last reply.
    stats_calls: u64,
    /// `list` requests served.
    list_calls: u64,
    stats_attrs: usize,
}

impl Recorder {
    fn on_take(&mut self, taken: &FuzzSession) {
        let id = taken.fd.id;
        assert!(
            self.cached.remove(&id).is_some(),
            "a session taken from the cache was never put in it"
        );
        assert!(self.taken.insert(id), "a session taken twice");
        self.takes += 1;
    }

    /// Notes the handle the backend gave the session it just stored.
    fn on_stored(&mut self, id: usize) {
        let stored: Vec<SessionHandle> = self.inner.take_stored().collect();
        assert_eq!(stored.len(), 1, "one session stored, one handle listed");
        self.cached.insert(id, stored[0]);
    }

    fn cache(&self) -> &MultiCache<Token, Rc<ManualClock>> {
        self.inner.cache()
    }
}

impl Backend for Recorder {
    type Fd = Token;
    type Session = FuzzSession;

    fn save_endp(&mut self, ttl: u32, endp: &[u8], endp_prop: &[u8], fd: Token) -> Status {
        assert!(ttl > 0, "save_endp with ttl 0");
        let id = fd.id;
        let sessions = self.cache().size().sess_count;
        let status = self.inner.save_endp(ttl, endp, endp_prop, fd);
        match status {
            Status::Ok => {
                self.on_stored(id);
                self.saves += 1;
            }
            Status::Fail => {
                assert_eq!(self.inner.take_stored().count(), 0);
                assert!(self.cache().size().sess_count <= sessions);
                self.refused_fds += 1;
            }
            Status::Bad => panic!("save_endp answered status 1"),
        }
        status
    }

    fn find_endp(&mut self, endp: &[u8]) -> Option<FuzzSession> {
        let Some(taken) = self.inner.find_endp(endp) else {
            self.misses += 1;
            return None;
        };
        assert_eq!(taken.endp_label(), endp, "find_endp took another label");
        assert!(taken.dest_prop.is_none());
        self.on_take(&taken);
        Some(taken)
    }

    fn save_dest(&mut self, ttl: u32, dest: &[u8], dest_prop: &[u8], endp: &[u8]) -> Status {
        assert!(ttl > 0, "save_dest with ttl 0");
        let status = self.inner.save_dest(ttl, dest, dest_prop, endp);
        match status {
            Status::Ok => self.saves += 1,
            Status::Fail => self.refused_dests += 1,
            Status::Bad => panic!("save_dest answered status 1"),
        }
        status
    }

    fn find_dest(&mut self, dest: &[u8]) -> Option<FuzzSession> {
        let Some(taken) = self.inner.find_dest(dest) else {
            self.misses += 1;
            return None;
        };
        assert!(taken.dest_prop.is_some());
        self.on_take(&taken);
        Some(taken)
    }

    fn endp_prop<'s>(&self, session: &'s FuzzSession) -> &'s [u8] {
        self.inner.endp_prop(session)
    }

    fn dest_prop<'s>(&self, session: &'s FuzzSession) -> &'s [u8] {
        self.inner.dest_prop(session)
    }

    fn put_back(&mut self, session: FuzzSession) {
        let id = session.fd.id;
        assert!(
            self.taken.remove(&id),
            "put_back of a session that was not taken"
        );
        let deadline = session.deadline();
        let now = self.cache().clock().now();
        self.inner.put_back(session);
        if deadline > now {
            self.on_stored(id);
        } else {
            assert_eq!(
                self.inner.take_stored().count(),
                0,
                "an expired session kept"
            );
        }
    }

    fn stats(&mut self, out: &mut Vec<u8>) {
        self.stats_calls += 1;
        let start = out.len();
        self.inner.stats(out);
        // Each attribute is `name \0 value \0`; no terminator yet.
        self.stats_attrs = out[start..].iter().filter(|&&b| b == 0).count() / 2;
    }

    fn list(&mut self, limit: usize) -> scache_proto::message::Listing {
        self.list_calls += 1;
        let listing = self.inner.list(limit);
        let size = self.cache().size();
        assert_eq!(listing.endpoints_total, size.endp_count as u64);
        assert_eq!(listing.destinations_total, size.dest_count as u64);
        assert!(listing.endpoints.len() <= limit && listing.destinations.len() <= limit);
        assert!(listing
            .endpoints
            .windows(2)
            .all(|w| w[0].sessions >= w[1].sessions));
        listing
    }
}

/// What a reply message was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Greeting,
    Dummy,
    Status(u8),
    FindEndp(u8),
    FindDest(u8),
    Stats,
    List,
}

impl Sent {
    fn is_find_hit(self) -> bool {
        matches!(self, Sent::FindEndp(0) | Sent::FindDest(0))
    }

    /// Index in [`SentCounts`].
    fn index(self) -> usize {
        match self {
            Sent::Greeting => 0,
            Sent::Dummy => 1,
            Sent::Status(c) => 2 + usize::from(c),
            Sent::FindEndp(c) => 5 + usize::from(c),
            Sent::FindDest(c) => 8 + usize::from(c),
            Sent::Stats => 11,
            Sent::List => 12,
        }
    }
}

/// How many replies of each kind were queued (see [`Sent::index`]).
type SentCounts = [u64; 13];

fn sent_count(counts: &SentCounts, kinds: &[Sent]) -> u64 {
    kinds.iter().map(|k| counts[k.index()]).sum()
}

/// Properties announced by a find reply with status 0:
/// (destination properties for `find_dest`, endpoint properties).
type Announced = (Option<Vec<u8>>, Vec<u8>);

/// Checks one reply message and says what it was; a `stats` reply must
/// have `stats_attrs` counters (as the backend last wrote).
fn classify(
    msg: &Message<'_>,
    first: bool,
    announced: &mut Option<Announced>,
    stats_attrs: usize,
) -> Sent {
    let (name, value) = msg.attr(0).expect("an empty reply message");
    let sent = match name {
        b"protocol" => {
            assert_eq!(msg.len(), 1, "greeting with extra attributes");
            assert_eq!(value, PROTOCOL_NAME.as_bytes(), "wrong greeting");
            Sent::Greeting
        }
        b"dummy" => {
            assert_eq!(msg.len(), 1, "dummy with extra attributes");
            assert!(value.is_empty(), "dummy with a value");
            Sent::Dummy
        }
        b"status" => {
            let code = match value {
                b"0" => 0,
                b"1" => 1,
                b"2" => 2,
                _ => panic!("status {:?}", scache_proto::attr::Printable(value)),
            };
            let rest: Vec<(&[u8], &[u8])> = msg.iter().skip(1).collect();
            if rest.iter().all(|(n, _)| *n == b"property") {
                if code != 0 {
                    assert!(
                        rest.iter().all(|(_, v)| v.is_empty()),
                        "properties in a failed reply"
                    );
                }
                match rest.len() {
                    0 => Sent::Status(code),
                    1 => {
                        if code == 0 {
                            *announced = Some((None, rest[0].1.to_vec()));
                        }
                        Sent::FindEndp(code)
                    }
                    2 => {
                        if code == 0 {
                            *announced = Some((Some(rest[0].1.to_vec()), rest[1].1.to_vec()));
                        }
                        Sent::FindDest(code)
                    }
                    n => panic!("reply with {n} properties"),
                }
            } else if rest.first().map(|(n, _)| *n) == Some(&b"endpoints"[..]) {
                assert_eq!(code, 0, "list reply with status {code}");
                let Ok(scache_proto::message::Reply::List { listing, .. }) =
                    parse_reply(RequestKind::List, msg)
                else {
                    panic!("list reply that does not parse")
                };
                assert!(listing.endpoints.len() as u64 <= listing.endpoints_total);
                assert!(listing.destinations.len() as u64 <= listing.destinations_total);
                Sent::List
            } else {
                assert_eq!(code, 0, "stats reply with status {code}");
                assert_eq!(rest.len(), stats_attrs, "stats reply shape");
                let names: BTreeSet<&[u8]> = rest.iter().map(|(n, _)| *n).collect();
                assert_eq!(names.len(), rest.len(), "stats counter named twice");
                for (_, v) in &rest {
                    assert!(
                        !v.is_empty() && v.len() <= 20 && v.iter().all(u8::is_ascii_digit),
                        "stats counter value"
                    );
                }
                Sent::Stats
            }
        }
        _ => panic!(
            "reply starting with {:?}",
            scache_proto::attr::Printable(name)
        ),
    };
    assert_eq!(
        first,
        sent == Sent::Greeting,
        "greeting not first, or twice"
    );
    sent
}

/// One client connection and what its client has seen of it.
struct Conn {
    conn: ServerConn<FuzzSession>,
    /// `conn.poll_output()` as of the last check.
    shadow: Vec<u8>,
    /// Decodes every byte the machine ever queued, in order.
    stream: Decoder,
    /// Bytes queued so far, and consumed (read by the client) so far.
    appended: u64,
    consumed: u64,
    /// Messages queued so far, and the stream offset where the last ended.
    messages: u64,
    msg_end: u64,
    /// The last two messages queued: what, and at which stream offset.
    last: Option<(Sent, u64)>,
    prev: Option<(Sent, u64)>,
    /// What the last find reply with status 0 announced.
    announced: Option<Announced>,
    /// Replies queued other than the greeting and dummies: one per request
    /// answered.
    answers: u64,
    /// Replies queued, by kind.
    sent: SentCounts,
    /// Longest input given in one `handle_input` call.
    max_feed: usize,
}

/// Unprocessed input held by `conn`. The machine exposes it only through
/// its `Debug` output.
fn pending_len<S>(conn: &ServerConn<S>) -> usize {
    let text = format!("{conn:?}");
    let after = text
        .split("pending: ")
        .nth(1)
        .expect("ServerConn's Debug output shows `pending`");
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("`pending` is a number")
}

impl Conn {
    fn new(limits: Limits, high_water: usize, now: Instant, timeout: Option<Duration>) -> Conn {
        let mut conn = ServerConn::new(limits, now);
        conn.set_timeout(timeout);
        if high_water != DEFAULT_OUTPUT_HIGH_WATER {
            conn.set_output_high_water(high_water);
        }
        let mut c = Conn {
            conn,
            shadow: Vec::new(),
            stream: Decoder::new(Limits {
                max_name_len: 64,
                max_value_len: 1 << 20,
                // A `list` reply grows with the cache.
                max_attrs: 1 << 20,
            }),
            appended: 0,
            consumed: 0,
            messages: 0,
            msg_end: 0,
            last: None,
            prev: None,
            announced: None,
            answers: 0,
            sent: [0; 13],
            max_feed: 0,
        };
        c.sync(0);
        assert_eq!(c.last.map(|l| l.0), Some(Sent::Greeting));
        c
    }

    /// Takes in what the machine queued since the last call: queued output
    /// is never changed, only appended to, by whole well-formed messages.
    fn sync(&mut self, stats_attrs: usize) {
        let out = self.conn.poll_output();
        assert!(
            out.starts_with(&self.shadow),
            "output not yet written was changed"
        );
        let new = out[self.shadow.len()..].to_vec();
        self.shadow.extend_from_slice(&new);
        let mut pos = 0;
        while pos < new.len() {
            let message = match self.stream.decode(&new[pos..]) {
                Decoded::Partial => break,
                Decoded::Rejected { error, .. } => panic!("reply over the limits: {error}"),
                Decoded::Complete { used, message } => {
                    pos += used;
                    message
                }
            };
            {
                {
                    let start = self.msg_end;
                    let sent = classify(
                        &message,
                        self.messages == 0,
                        &mut self.announced,
                        stats_attrs,
                    );
                    if !matches!(sent, Sent::Greeting | Sent::Dummy) {
                        self.answers += 1;
                    }
                    self.sent[sent.index()] += 1;
                    self.prev = self.last;
                    self.last = Some((sent, start));
                    self.messages += 1;
                    self.msg_end = self.appended + pos as u64;
                }
            }
        }
        self.appended += new.len() as u64;
        assert!(
            !self.stream.in_message(),
            "part of a reply was queued (not a message boundary)"
        );
    }
}

impl Conn {
    /// The per-connection invariants.
    fn check(&self, high_water: usize, max_reply: usize) {
        let out = self.conn.poll_output();
        let phase = self.conn.phase();
        let wants_input = self.conn.wants_input();
        assert_eq!(out, &self.shadow[..]);
        assert_eq!(
            self.answers,
            self.conn.requests(),
            "replies queued vs requests answered"
        );
        // Output is bounded: no reply is queued once `high_water` bytes
        // wait, so at most one reply (of at most `max_reply` bytes) goes
        // over; a save_endp's `status` can directly follow its `dummy` (a
        // byte where the descriptor was expected, or the descriptor itself,
        // is answered at once), which together are shorter than a reply to
        // `find_dest`.
        assert!(
            out.len() < high_water + max_reply,
            "{} bytes of output queued (high-water mark {high_water}, longest reply {max_reply})",
            out.len()
        );
        if let Some((sent, start)) = self.last {
            let start = match (sent, self.prev) {
                (Sent::Status(_), Some((Sent::Dummy, dummy_start))) => dummy_start,
                _ => start,
            };
            let unread_before = start.saturating_sub(self.consumed);
            assert!(
                unread_before < high_water as u64,
                "a reply was queued behind {unread_before} unread bytes (high-water mark \
                 {high_water})"
            );
        }
        if wants_input {
            assert!(
                out.len() < high_water,
                "wants input above the high-water mark"
            );
        }
        let fd = self.conn.poll_fd_to_send();
        if let Some(session) = fd {
            assert!(!wants_input, "wants input while a descriptor must be sent");
            assert_eq!(phase, Phase::SendFd);
            assert!(
                out.is_empty(),
                "descriptor due before the output was written"
            );
            let (dest_prop, endp_prop) = self.announced.as_ref().expect("a find hit was sent");
            assert_eq!(&session.endp_prop, endp_prop, "sent another session");
            assert_eq!(&session.dest_prop, dest_prop, "sent another session");
        }
        assert_eq!(phase == Phase::Closed, self.conn.close_reason().is_some());
        if phase == Phase::Closed {
            assert!(!wants_input, "closed but wants input");
        }
        if self.conn.is_idle() {
            assert_eq!(phase, Phase::Request);
            assert!(out.is_empty());
        }
        let last = self.last.map(|(sent, _)| sent);
        if phase == Phase::AwaitFd {
            assert_eq!(
                last,
                Some(Sent::Dummy),
                "awaits a descriptor without a dummy"
            );
        }
        if last == Some(Sent::Dummy) {
            assert!(
                matches!(phase, Phase::AwaitFd | Phase::Closed),
                "dummy sent but {phase:?}"
            );
        }
        if matches!(phase, Phase::AwaitDummyBeforeFd | Phase::SendFd) {
            assert!(
                last.is_some_and(Sent::is_find_hit),
                "hands over a session but said {last:?}"
            );
        }
        // Input is bounded too: the driver reads only while `wants_input()`,
        // so what the machine keeps unprocessed must never exceed one read.
        // (Fails as of this writing: `wants_input()` ignores kept input, so
        // a driver that reads again after a partial write, before
        // `resume()`, piles reads up. Shortest input: high-water mark 1;
        // three times: read all output, then `\0\0` arrives:
        // `04 00 04 00 02 00 00 04 00 02 00 00 04 00 02 00 00`.)
        let pending = pending_len(&self.conn);
        assert!(
            pending <= self.max_feed,
            "{pending} bytes of input held, more than one read ({} bytes)",
            self.max_feed
        );
    }
}

/// Reads the events of a [`server_exchange`] input.
struct Events<'a> {
    data: &'a [u8],
}

impl<'a> Events<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

/// Everything one [`server_exchange`] run drives and checks.
struct Driver {
    ledger: Rc<RefCell<Ledger>>,
    clock: Rc<ManualClock>,
    backend: Recorder,
    conns: Vec<Conn>,
    attr_limits: Limits,
    high_water: usize,
    max_reply: usize,
    /// The connections' timeout (Postfix's `ipc_timeout`), if any.
    timeout: Option<Duration>,
    /// Descriptors handed over to clients (`fd_sent`).
    client: Vec<Token>,
    handed: Vec<bool>,
    /// Notices seen, on all connections.
    unexpected: u64,
    put_back_notices: u64,
    /// Replies queued by connections since replaced.
    retired_sent: SentCounts,
    /// `Malformed` and `NoDescriptor` notices.
    malformed: u64,
    no_descriptor: u64,
    events: u64,
}

fn cache_limits(selector: u8) -> CacheLimits {
    let none = CacheLimits::NONE;
    match selector & 7 {
        1 => CacheLimits {
            max_sessions: Some(2),
            ..none
        },
        2 => CacheLimits {
            max_sessions_per_endpoint: Some(1),
            max_bindings_per_destination: Some(1),
            ..none
        },
        3 => CacheLimits {
            max_labels: Some(2),
            ..none
        },
        4 => CacheLimits {
            max_label_len: Some(8),
            max_prop_len: Some(8),
            ..none
        },
        5 => CacheLimits {
            max_sessions: Some(3),
            max_sessions_per_endpoint: Some(2),
            max_bindings_per_destination: Some(2),
            max_labels: Some(3),
            max_label_len: Some(32),
            max_prop_len: Some(32),
        },
        6 => CacheLimits {
            max_sessions: Some(0),
            max_labels: Some(1),
            ..none
        },
        _ => none,
    }
}

fn server_attr_limits(selector: u8) -> Limits {
    match selector & 3 {
        0 => Limits::default(),
        1 => Limits {
            max_name_len: 16,
            max_value_len: 64,
            max_attrs: 8,
        },
        2 => Limits {
            max_name_len: 12,
            max_value_len: 24,
            max_attrs: 6,
        },
        // Just long enough for `request=save_endp` and `property`.
        _ => Limits {
            max_name_len: 8,
            max_value_len: 9,
            max_attrs: 5,
        },
    }
}

const HIGH_WATER: [usize; 8] = [DEFAULT_OUTPUT_HIGH_WATER, 1, 10, 38, 64, 200, 1024, 4096];
const TTL_CAP: [u32; 8] = [u32::MAX, 1, 2, 5, 60, 300, 3600, 86400];
const TIMEOUT: [Option<u64>; 4] = [None, Some(1), Some(5), Some(3600)];

impl Driver {
    fn new(config: u8, options: u8) -> Driver {
        let attr_limits = server_attr_limits(config);
        let high_water = HIGH_WATER[usize::from((config >> 2) & 7)];
        let limits = cache_limits(config >> 5);
        let clock = Rc::new(ManualClock::new());
        let prop = attr_limits
            .max_value_len
            .min(limits.max_prop_len.unwrap_or(usize::MAX));
        let ttl_cap = TTL_CAP[usize::from((options >> 1) & 7)];
        let timeout = TIMEOUT[usize::from((options >> 4) & 3)].map(Duration::from_secs);
        let mut inner = CacheBackend::new(
            MultiCache::with_limits(Rc::clone(&clock), limits),
            Duration::from_secs(u64::from(ttl_cap)),
            true,
        );
        // The longest `stats` reply: the one with counters at zero, plus
        // room for 20-digit values.
        let mut sample = Vec::new();
        inner.stats(&mut sample);
        let counters = sample.iter().filter(|&&b| b == 0).count() / 2;
        let stats = 10 + sample.len() + 20 * counters;
        let max_reply = (30 + 2 * prop).max(stats);
        let conns = (0..1 + usize::from(options & 1))
            .map(|_| Conn::new(attr_limits, high_water, clock.now(), timeout))
            .collect();
        Driver {
            ledger: Rc::new(RefCell::new(Ledger::default())),
            backend: Recorder {
                inner,
                cached: BTreeMap::new(),
                taken: BTreeSet::new(),
                refused_fds: 0,
                takes: 0,
                misses: 0,
                saves: 0,
                refused_dests: 0,
                stats_calls: 0,
                list_calls: 0,
                stats_attrs: counters,
            },
            clock,
            conns,
            attr_limits,
            high_water,
            max_reply,
            timeout,
            client: Vec::new(),
            handed: Vec::new(),
            unexpected: 0,
            put_back_notices: 0,
            retired_sent: [0; 13],
            malformed: 0,
            no_descriptor: 0,
            events: 0,
        }
    }

    fn token(&mut self) -> Token {
        let mut ledger = self.ledger.borrow_mut();
        ledger.dropped.push(false);
        self.handed.push(false);
        Token {
            id: ledger.dropped.len() - 1,
            ledger: Rc::clone(&self.ledger),
        }
    }

    fn feed(&mut self, i: usize, data: &[u8], with_fd: bool) {
        if !self.conns[i].conn.wants_input() {
            // The daemon does not read then.
            return;
        }
        let fd = with_fd.then(|| self.token());
        let now = self.clock.now();
        let c = &mut self.conns[i];
        c.max_feed = c.max_feed.max(data.len());
        c.conn.handle_input(now, &mut self.backend, data, fd);
        c.sync(self.backend.stats_attrs);
    }

    /// The client read `n` bytes (at most what is queued).
    fn consume(&mut self, i: usize, n: usize) {
        let now = self.clock.now();
        let c = &mut self.conns[i];
        let n = n.min(c.shadow.len());
        c.conn.handle_output_sent(now, n, &mut self.backend);
        c.shadow.drain(..n);
        c.consumed += n as u64;
        c.sync(self.backend.stats_attrs);
    }

    /// Returns whether a descriptor was sent.
    fn fd_sent(&mut self, i: usize) -> bool {
        let now = self.clock.now();
        let c = &mut self.conns[i];
        let Some(id) = c.conn.poll_fd_to_send().map(|s| s.fd.id) else {
            return false;
        };
        let session = c
            .conn
            .handle_fd_sent(now, &mut self.backend)
            .expect("handle_fd_sent gives the session poll_fd_to_send named");
        c.sync(self.backend.stats_attrs);
        assert_eq!(session.fd.id, id, "fd_sent gave another session");
        assert!(
            self.backend.taken.remove(&id),
            "a session handed over that was not taken"
        );
        let token = session.fd;
        self.handed[token.id] = true;
        self.client.push(token);
        true
    }

    fn fd_send_failed(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.conn.poll_fd_to_send().is_some() {
            c.conn.handle_fd_send_failed(&mut self.backend);
            c.sync(self.backend.stats_attrs);
            assert_eq!(c.conn.close_reason(), Some(&CloseReason::SendFailed));
        }
    }

    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.conn
            .handle_close(&mut self.backend, CloseReason::PeerClosed);
        c.sync(self.backend.stats_attrs);
        assert_eq!(c.conn.phase(), Phase::Closed);
    }

    fn pump(&mut self, i: usize) {
        for _ in 0..1 << 20 {
            let before = (self.conns[i].appended, self.conns[i].consumed);
            let all = self.conns[i].conn.poll_output().len();
            self.consume(i, all);
            let sent = self.fd_sent(i);
            if !sent && before == (self.conns[i].appended, self.conns[i].consumed) {
                return;
            }
        }
        panic!("pump does not settle");
    }

    /// The clock moved: every connection is told (as the daemon does when
    /// a deadline comes up), and the cache expires what is due.
    fn advance(&mut self, d: Duration) {
        self.clock.advance(d);
        let now = self.clock.now();
        for c in &mut self.conns {
            let deadline = c.conn.poll_timeout();
            let closed = c.conn.handle_timeout(now, &mut self.backend);
            assert_eq!(
                closed,
                deadline.is_some_and(|d| now >= d),
                "timeout vs deadline"
            );
            if closed {
                assert_eq!(c.conn.close_reason(), Some(&CloseReason::Timeout));
            }
            assert!(
                !c.conn.poll_timeout().is_some_and(|d| d <= now),
                "a deadline left behind"
            );
            c.sync(self.backend.stats_attrs);
        }
    }

    fn evict(&mut self, which: u8) {
        if which & 1 == 1 {
            self.backend.inner.evict_for_fds();
            return;
        }
        // What is due goes first (the daemon's timer does this before it
        // reads peer events), so every session left must be removable.
        self.backend.inner.cache_mut().expire_due();
        let cache = self.backend.cache();
        let live: Vec<SessionHandle> = self
            .backend
            .cached
            .values()
            .copied()
            .filter(|&h| cache.contains_session(h))
            .collect();
        if !live.is_empty() {
            let h = live[usize::from(which >> 1) % live.len()];
            assert!(self
                .backend
                .inner
                .on_peer_event(h, EvictionCause::PeerClosed));
        }
    }

    fn reconnect(&mut self, i: usize) {
        if self.conns[i].conn.phase() != Phase::Closed {
            self.close(i);
        }
        self.notices();
        self.check();
        for (total, n) in self.retired_sent.iter_mut().zip(self.conns[i].sent) {
            *total += n;
        }
        self.conns[i] = Conn::new(
            self.attr_limits,
            self.high_water,
            self.clock.now(),
            self.timeout,
        );
    }

    fn notices(&mut self) {
        for c in &mut self.conns {
            while let Some(notice) = c.conn.poll_notice() {
                match notice {
                    Notice::UnexpectedDescriptor => self.unexpected += 1,
                    Notice::SessionPutBack => self.put_back_notices += 1,
                    Notice::Malformed { reason, .. } => {
                        assert!(!reason.is_empty());
                        self.malformed += 1;
                    }
                    Notice::NoDescriptor => self.no_descriptor += 1,
                    Notice::ExtraAttribute { .. } => {}
                }
            }
        }
    }

    /// The invariants across connections: every descriptor is accounted
    /// for.
    fn check(&mut self) {
        for c in &self.conns {
            c.check(self.high_water, self.max_reply);
        }
        let holding = self
            .conns
            .iter()
            .filter(|c| matches!(c.conn.phase(), Phase::AwaitDummyBeforeFd | Phase::SendFd))
            .count();
        assert_eq!(
            self.backend.taken.len(),
            holding,
            "sessions taken out of the cache vs connections handing one over"
        );
        for c in &self.conns {
            if let Some(s) = c.conn.poll_fd_to_send() {
                assert!(self.backend.taken.contains(&s.fd.id));
            }
        }
        // Every reply matches what was done: status 1 for each malformed
        // request, 0 for each save the cache took, 2 for each it refused or
        // whose descriptor did not come; find replies for each lookup.
        let mut sent = self.retired_sent;
        for c in &self.conns {
            for (total, n) in sent.iter_mut().zip(c.sent) {
                *total += n;
            }
        }
        let b = &self.backend;
        assert_eq!(
            sent_count(
                &sent,
                &[Sent::Status(1), Sent::FindEndp(1), Sent::FindDest(1)]
            ),
            self.malformed,
            "status 1 replies vs Malformed notices"
        );
        assert_eq!(
            sent_count(&sent, &[Sent::Status(0)]),
            b.saves,
            "status 0 replies vs saves"
        );
        assert_eq!(
            sent_count(&sent, &[Sent::Status(2)]),
            self.no_descriptor + b.refused_fds + b.refused_dests,
            "status 2 replies vs refused saves and missing descriptors"
        );
        assert_eq!(
            sent_count(&sent, &[Sent::FindEndp(0), Sent::FindDest(0)]),
            b.takes,
            "find hits vs sessions taken"
        );
        assert_eq!(
            sent_count(&sent, &[Sent::FindEndp(2), Sent::FindDest(2)]),
            b.misses,
            "find misses vs lookups that found nothing"
        );
        assert_eq!(
            sent_count(&sent, &[Sent::Stats]),
            b.stats_calls,
            "stats replies"
        );
        assert_eq!(
            sent_count(&sent, &[Sent::List]),
            b.list_calls,
            "list replies"
        );
        let stats = self.backend.cache().stats();
        assert_eq!(
            self.put_back_notices, stats.put_backs,
            "SessionPutBack notices vs put_back calls"
        );
        let ledger = self.ledger.borrow();
        let created = ledger.dropped.len();
        let evicted: u64 = stats.evicted_sessions.iter().sum();
        assert_eq!(
            ledger.drops,
            stats.expired_sessions + evicted + self.backend.refused_fds + self.unexpected,
            "a descriptor was closed without being expired, evicted, refused or unexpected"
        );
        assert_eq!(
            created as u64,
            ledger.drops
                + self.client.len() as u64
                + stats.sess_count as u64
                + self.backend.taken.len() as u64,
            "a descriptor is lost (neither closed, cached, held nor handed over)"
        );
        if created <= 256 || self.events % 64 == 0 {
            let cache = self.backend.cache();
            let mut cached = 0;
            for id in 0..created {
                let in_cache = self
                    .backend
                    .cached
                    .get(&id)
                    .and_then(|&h| cache.session_fd(h))
                    .is_some_and(|t| t.id == id);
                cached += usize::from(in_cache);
                let places = usize::from(ledger.dropped[id])
                    + usize::from(self.handed[id])
                    + usize::from(self.backend.taken.contains(&id))
                    + usize::from(in_cache);
                assert_eq!(places, 1, "descriptor {id} is in {places} places");
            }
            assert_eq!(cached, stats.sess_count, "cached sessions not all known");
            cache.check_invariants();
        }
    }

    fn run(&mut self, events: &mut Events<'_>) {
        while let Some(code) = events.byte() {
            self.events += 1;
            let i = if code & SECOND != 0 {
                self.conns.len() - 1
            } else {
                0
            };
            match code & 0x0f {
                op::FEED => {
                    let n = events.byte().unwrap_or(0);
                    let data = events.take(usize::from(n));
                    self.feed(i, data, false);
                }
                op::FEED_LONG => {
                    let lo = events.byte().unwrap_or(0);
                    let hi = events.byte().unwrap_or(0);
                    let data = events.take(usize::from(u16::from_le_bytes([lo, hi])));
                    self.feed(i, data, false);
                }
                op::FEED_FD => {
                    let n = events.byte().unwrap_or(0);
                    let data = events.take(usize::from(n));
                    self.feed(i, data, true);
                }
                op::CONSUME => {
                    let n = events.byte().unwrap_or(0);
                    self.consume(i, usize::from(n));
                }
                op::CONSUME_ALL => {
                    let all = self.conns[i].conn.poll_output().len();
                    self.consume(i, all);
                }
                op::FD_SENT => {
                    self.fd_sent(i);
                }
                op::FD_SEND_FAILED => self.fd_send_failed(i),
                op::CLOSE => self.close(i),
                op::RESUME => self.consume(i, 0),
                op::ADVANCE => {
                    let t = u64::from(events.byte().unwrap_or(0));
                    let ms = if t < 128 { t * 50 } else { (t - 128) * 10_000 };
                    self.advance(Duration::from_millis(ms));
                }
                op::EXPIRE => {
                    let now = self.clock.now();
                    self.backend.inner.expire(now);
                }
                op::EVICT => {
                    let w = events.byte().unwrap_or(0);
                    self.evict(w);
                }
                op::RECONNECT => self.reconnect(i),
                op::PUMP => self.pump(i),
                op::FEED_BYTE => {
                    let b = events.byte().unwrap_or(0);
                    self.feed(i, &[b], false);
                }
                _ => {
                    let rest = events.take(usize::MAX);
                    self.feed(i, rest, false);
                }
            }
            self.notices();
            self.check();
        }
        // The end: every connection goes away; whatever was being handed
        // over is back in the cache or expired.
        for i in 0..self.conns.len() {
            self.close(i);
        }
        self.notices();
        self.check();
        assert!(
            self.backend.taken.is_empty(),
            "a session went with its connection"
        );
    }
}

/// Fuzz target `server_exchange`: the server side of client connections
/// ([`ServerConn`]), driven the way the daemon drives it, by arbitrary
/// event sequences, over the daemon's cache adapter (`CacheBackend`) on a
/// [`MultiCache`] whose descriptors record when they are closed.
///
/// Input: two configuration bytes, then events.
/// - `config`: bits 0-1 pick the decoder limits (default, or small ones);
///   bits 2-4 the output high-water mark (default, 1, 10, 38, 64, 200,
///   1024, 4096 bytes); bits 5-7 the cache limits (none, or small ones).
/// - `options`: bit 0: two connections (events with [`SECOND`] go to the
///   second); bits 1-3: the TTL cap (none, 1, 2, 5, 60, 300, 3600, 86400 s);
///   bits 4-5: the connections' timeout in the middle of an exchange (none,
///   1, 5, 3600 s).
/// - events: one byte each (low 4 bits: what; see [`ServerScript`]), some
///   followed by their arguments. Bytes are fed only while the connection
///   wants input, and descriptors are sent only when asked for, as the
///   daemon does.
///
/// After every event it checks: queued output is only ever appended to, by
/// whole well-formed replies (the greeting first), at most one reply past
/// the high-water mark; `wants_input()` is false while a descriptor must
/// be sent (and once closed, and above the mark); the machine holds at
/// most one read's worth of unprocessed input; a descriptor is due only
/// after a find reply with status 0, and is the session that reply
/// described; a `dummy` is the last reply exactly while a descriptor is
/// awaited; replies match what was done (one per request answered; status
/// 1 per `Malformed` notice, 0 per save the cache took, 2 per save it
/// refused or descriptor missing; a find hit per session taken, a miss per
/// empty lookup); and every descriptor ever created is in exactly one place:
/// cached, held by a connection handing it over, handed to the client, or
/// closed, closings being exactly the expirations and evictions the cache
/// counted, the saves it refused and the `UnexpectedDescriptor` notices.
/// At the end every connection is closed, and no session may go with it.
pub fn server_exchange(data: &[u8]) {
    let data = &data[..data.len().min(MAX_INPUT)];
    let Some((&[config, options], events)) = data.split_first_chunk::<2>() else {
        return;
    };
    let mut driver = Driver::new(config, options);
    driver.check();
    driver.run(&mut Events { data: events });
}

/// Writes inputs for [`server_exchange`] (its seed corpus is made with it).
#[derive(Debug, Clone)]
pub struct ServerScript {
    bytes: Vec<u8>,
}

impl ServerScript {
    /// A script with the configuration bytes `config` and `options` (see
    /// [`server_exchange`]).
    pub fn new(config: u8, options: u8) -> ServerScript {
        ServerScript {
            bytes: vec![config, options],
        }
    }

    /// The input.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn op(&mut self, conn: usize, code: u8) -> &mut ServerScript {
        self.bytes
            .push(if conn == 0 { code } else { code | SECOND });
        self
    }

    /// Connection `conn` (0 or 1) receives `data` in reads of at most
    /// 65535 bytes.
    pub fn feed(&mut self, conn: usize, data: &[u8]) -> &mut ServerScript {
        for chunk in data.chunks(usize::from(u16::MAX)) {
            if chunk.len() <= 255 {
                self.op(conn, op::FEED).bytes.push(chunk.len() as u8);
            } else {
                let len = (chunk.len() as u16).to_le_bytes();
                self.op(conn, op::FEED_LONG).bytes.extend_from_slice(&len);
            }
            self.bytes.extend_from_slice(chunk);
        }
        self
    }

    /// `data` arrives in reads of `piece` bytes (1 ..= 255).
    pub fn feed_split(&mut self, conn: usize, data: &[u8], piece: usize) -> &mut ServerScript {
        for chunk in data.chunks(piece.clamp(1, 255)) {
            self.op(conn, op::FEED).bytes.push(chunk.len() as u8);
            self.bytes.extend_from_slice(chunk);
        }
        self
    }

    /// `data` arrives with a descriptor attached (to its last 255 bytes at
    /// most; what comes before arrives first).
    pub fn feed_fd(&mut self, conn: usize, data: &[u8]) -> &mut ServerScript {
        let split = data.len().saturating_sub(255);
        self.feed(conn, &data[..split]);
        let tail = &data[split..];
        self.op(conn, op::FEED_FD).bytes.push(tail.len() as u8);
        self.bytes.extend_from_slice(tail);
        self
    }

    /// One byte arrives.
    pub fn feed_byte(&mut self, conn: usize, byte: u8) -> &mut ServerScript {
        self.op(conn, op::FEED_BYTE).bytes.push(byte);
        self
    }

    /// `data` arrives in one read, and the input ends.
    pub fn feed_rest(&mut self, conn: usize, data: &[u8]) -> &mut ServerScript {
        self.op(conn, op::FEED_REST).bytes.extend_from_slice(data);
        self
    }

    /// The client reads `n` bytes.
    pub fn consume(&mut self, conn: usize, n: u8) -> &mut ServerScript {
        self.op(conn, op::CONSUME).bytes.push(n);
        self
    }

    /// The client reads everything.
    pub fn consume_all(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::CONSUME_ALL)
    }

    /// The descriptor due is sent.
    pub fn fd_sent(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::FD_SENT)
    }

    /// Sending the descriptor due fails.
    pub fn fd_send_failed(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::FD_SEND_FAILED)
    }

    /// The peer closes the connection.
    pub fn close(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::CLOSE)
    }

    /// The driver tells the connection that nothing was written (which
    /// serves input kept back).
    pub fn resume(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::RESUME)
    }

    /// The connection is replaced by a new one.
    pub fn reconnect(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::RECONNECT)
    }

    /// Output written, descriptor sent, input resumed, until nothing
    /// changes (what the daemon does when the socket is writable).
    pub fn pump(&mut self, conn: usize) -> &mut ServerScript {
        self.op(conn, op::PUMP)
    }

    /// The clock moves (`t * 50` ms below 128, else `(t - 128) * 10` s).
    pub fn advance(&mut self, t: u8) -> &mut ServerScript {
        self.op(0, op::ADVANCE).bytes.push(t);
        self
    }

    /// The cache expires what is due.
    pub fn expire(&mut self) -> &mut ServerScript {
        self.op(0, op::EXPIRE)
    }

    /// The cache loses a session (odd `which`: the one closest to expiry;
    /// even: the `(which / 2)`-th cached).
    pub fn evict(&mut self, which: u8) -> &mut ServerScript {
        self.op(0, op::EVICT).bytes.push(which);
        self
    }
}
