//! Typed requests and replies of the connection cache protocol.
//!
//! Requests are parsed from decoded [`Message`]s as strictly as Postfix's
//! `scache(8)` does (its `attr_scan` with `ATTR_FLAG_STRICT`):
//!
//! - the first attribute must be `request`; its value names the operation;
//! - then the operation's attributes must follow in their fixed order; a
//!   missing one, or another name in place of an expected one, makes the
//!   request malformed;
//! - attributes *after* all expected ones are tolerated: the request is
//!   served and [`Parsed::extra`] names the first extra one (for a warning).
//!   Postfix does the same, but then reads the leftover bytes as the next
//!   request; our decoder has consumed the whole message, so we stay in sync.
//!
//! | request | attributes after `request` |
//! |---|---|
//! | `save_endp` | `ttl`, `label` (endpoint), `property` (endpoint properties) |
//! | `find_endp` | `label` (endpoint) |
//! | `save_dest` | `ttl`, `label` (destination), `property` (destination properties), `label` (endpoint) |
//! | `find_dest` | `label` (destination) |
//! | `stats` | none (our extension; Postfix answers it as an unknown request) |
//! | `list` | optionally `limit` (our extension, see [`Listing`]) |
//!
//! # Time to live
//!
//! Postfix reads `ttl` with `sscanf("%u")`, rejects trailing junk, and then
//! rejects a value that is `<= 0` once stored in an `int`. We accept exactly
//! the values Postfix would store as a positive `int` through the sane part
//! of that syntax: optional leading white space (space, `\t`, `\n`, `\v`,
//! `\f`, `\r`), an optional `+`, one or more ASCII digits (leading zeros
//! allowed), nothing after, and a value from 1 to 2^31 - 1. We reject a
//! leading `-` outright (Postfix's `%u` accepts it and wraps, which with a
//! few huge magnitudes yields a small positive number: an accident, not a
//! feature), an empty value, trailing white space or junk, and overflow.
//!
//! # Replies
//!
//! The reply encoders produce exactly the bytes of Postfix 3.7's daemon,
//! verified against `/usr/lib/postfix/sbin/scache`:
//!
//! ```
//! use scache_proto::message::{self, RequestKind, Status};
//!
//! let mut out = Vec::new();
//! message::encode_find_endp_reply(&mut out, Status::Ok, b"prop");
//! assert_eq!(out, b"status\x000\x00property\x00prop\x00\x00");
//!
//! out.clear();
//! message::encode_malformed(&mut out, RequestKind::FindDest);
//! assert_eq!(out, b"status\x001\x00property\x00\x00property\x00\x00\x00");
//! ```
#![forbid(unsafe_code)]

use std::fmt;
use std::time::Duration;

use crate::attr::{is_valid_value, put_attr, put_end, Attrs, Message, Printable};

pub(crate) mod canonical;
pub(crate) use canonical::{parse_canonical, Canonical};

/// Attribute name of the request type.
pub const ATTR_REQUEST: &str = "request";
/// Attribute name of a time to live.
pub const ATTR_TTL: &str = "ttl";
/// Attribute name of an endpoint or destination label.
pub const ATTR_LABEL: &str = "label";
/// Attribute name of endpoint or destination properties.
pub const ATTR_PROPERTY: &str = "property";
/// Attribute name of a reply status.
pub const ATTR_STATUS: &str = "status";
/// Attribute name of the sync message around descriptor passing.
pub const ATTR_DUMMY: &str = "dummy";
/// Attribute name of the server greeting.
pub const ATTR_PROTOCOL: &str = "protocol";
/// Value of the server greeting's `protocol` attribute.
pub const PROTOCOL_NAME: &str = "connection_cache_protocol";
/// Attribute name of our refusal, sent instead of the greeting to a client
/// that access control turns away (its value says why).
pub const ATTR_REFUSED: &str = "refused";

/// The largest time to live the protocol carries (it is an `int` in
/// Postfix).
pub const MAX_TTL: u32 = i32::MAX as u32;

/// Attribute name of the optional bound of a `list` request.
pub const ATTR_LIMIT: &str = "limit";

/// How many endpoints, destinations, and bindings per destination a `list`
/// reply shows when the request has no `limit`.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// The largest `limit` a server honours (larger ones are capped).
pub const MAX_LIST_LIMIT: u32 = 100_000;

/// A reply status, with its wire value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// The request succeeded (`0`).
    Ok = 0,
    /// The request was malformed (`1`).
    Bad = 1,
    /// Not found, or the descriptor could not be received (`2`).
    Fail = 2,
}

impl Status {
    /// The wire text of this status (`"0"`, `"1"` or `"2"`).
    pub fn as_wire(self) -> &'static [u8] {
        match self {
            Status::Ok => b"0",
            Status::Bad => b"1",
            Status::Fail => b"2",
        }
    }

    /// The status with numeric code `code`, if it is one of ours.
    pub fn from_code(code: u32) -> Option<Status> {
        match code {
            0 => Some(Status::Ok),
            1 => Some(Status::Bad),
            2 => Some(Status::Fail),
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Status::Ok => "0 (ok)",
            Status::Bad => "1 (malformed request)",
            Status::Fail => "2 (not found or failed)",
        };
        f.write_str(text)
    }
}

/// A well-formed request, borrowing its strings from the decoded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// Store a session (whose descriptor follows) under an endpoint.
    SaveEndp {
        /// Time to live in seconds, 1 ..= [`MAX_TTL`].
        ttl: u32,
        /// Endpoint label.
        endp: &'a [u8],
        /// Endpoint properties.
        endp_prop: &'a [u8],
    },
    /// Take a session cached under an endpoint.
    FindEndp {
        /// Endpoint label.
        endp: &'a [u8],
    },
    /// Bind a destination to an endpoint.
    SaveDest {
        /// Time to live in seconds, 1 ..= [`MAX_TTL`].
        ttl: u32,
        /// Destination label.
        dest: &'a [u8],
        /// Destination properties.
        dest_prop: &'a [u8],
        /// Endpoint label.
        endp: &'a [u8],
    },
    /// Take a session for a destination.
    FindDest {
        /// Destination label.
        dest: &'a [u8],
    },
    /// Our extension: ask for counters (`request=stats`, nothing else).
    Stats,
    /// Our extension: ask what is cached (`request=list`, optionally
    /// `limit`): see [`Listing`].
    List {
        /// How many endpoints, destinations, and bindings per destination
        /// to show (`None`: [`DEFAULT_LIST_LIMIT`]).
        limit: Option<u32>,
    },
}

impl Request<'_> {
    /// The kind of this request.
    pub fn kind(&self) -> RequestKind {
        match self {
            Request::SaveEndp { .. } => RequestKind::SaveEndp,
            Request::FindEndp { .. } => RequestKind::FindEndp,
            Request::SaveDest { .. } => RequestKind::SaveDest,
            Request::FindDest { .. } => RequestKind::FindDest,
            Request::Stats => RequestKind::Stats,
            Request::List { .. } => RequestKind::List,
        }
    }
}

/// What kind of request a message was, as far as it could be recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `request=save_endp`.
    SaveEndp,
    /// `request=find_endp`.
    FindEndp,
    /// `request=save_dest`.
    SaveDest,
    /// `request=find_dest`.
    FindDest,
    /// `request=stats` (our extension).
    Stats,
    /// `request=list` (our extension).
    List,
    /// `request=` something else.
    Unknown,
    /// The message did not start with a `request` attribute.
    Missing,
}

impl RequestKind {
    /// The request name on the wire, or `"(unknown)"` / `"(missing)"`.
    pub fn name(self) -> &'static str {
        match self {
            RequestKind::SaveEndp => "save_endp",
            RequestKind::FindEndp => "find_endp",
            RequestKind::SaveDest => "save_dest",
            RequestKind::FindDest => "find_dest",
            RequestKind::Stats => "stats",
            RequestKind::List => "list",
            RequestKind::Unknown => "(unknown)",
            RequestKind::Missing => "(missing)",
        }
    }

    /// The kind named `name` on the wire ([`RequestKind::Unknown`] if none).
    pub fn from_wire(name: &[u8]) -> RequestKind {
        match name {
            b"save_endp" => RequestKind::SaveEndp,
            b"find_endp" => RequestKind::FindEndp,
            b"save_dest" => RequestKind::SaveDest,
            b"find_dest" => RequestKind::FindDest,
            b"stats" => RequestKind::Stats,
            b"list" => RequestKind::List,
            _ => RequestKind::Unknown,
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A successfully parsed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The request.
    pub request: Request<'a>,
    /// The name of the first attribute after the expected ones, if any
    /// (tolerated, worth a warning).
    pub extra: Option<&'a [u8]>,
}

/// Why a request is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestErrorReason<'a> {
    /// The first attribute is not `request`: this is its name (`None` for
    /// an empty message).
    NoRequest {
        /// The name found instead.
        found: Option<&'a [u8]>,
    },
    /// The request name is not one we know.
    UnknownRequest {
        /// The request name received.
        name: &'a [u8],
    },
    /// The message ended where this attribute was expected.
    MissingAttribute {
        /// The expected attribute name.
        expected: &'static str,
    },
    /// Another attribute came where this one was expected.
    UnexpectedAttribute {
        /// The expected attribute name.
        expected: &'static str,
        /// The name received instead.
        found: &'a [u8],
    },
    /// The `ttl` value is not an integer from 1 to 2^31 - 1.
    BadTtl {
        /// The value received.
        value: &'a [u8],
    },
    /// The `limit` value of a `list` request is not an unsigned integer.
    BadLimit {
        /// The value received.
        value: &'a [u8],
    },
}

/// A malformed request: what it was meant to be and what is wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestError<'a> {
    /// The request kind, as far as recognised.
    pub kind: RequestKind,
    /// What is wrong.
    pub reason: RequestErrorReason<'a>,
}

impl RequestError<'_> {
    /// The request kind, as far as recognised (selects the reply shape of
    /// [`encode_malformed`]).
    pub fn kind(&self) -> RequestKind {
        self.kind
    }
}

impl fmt::Display for RequestError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RequestErrorReason::NoRequest { found: None } => {
                f.write_str("empty message where a request was expected")
            }
            RequestErrorReason::NoRequest { found: Some(name) } => write!(
                f,
                "unexpected attribute {} where attribute request was expected",
                Printable(name)
            ),
            RequestErrorReason::UnknownRequest { name } => {
                write!(f, "unrecognized request: \"{}\"", Printable(name))
            }
            RequestErrorReason::MissingAttribute { expected } => {
                write!(f, "{}: missing attribute {expected}", self.kind)
            }
            RequestErrorReason::UnexpectedAttribute { expected, found } => write!(
                f,
                "{}: unexpected attribute {} where attribute {expected} was expected",
                self.kind,
                Printable(found)
            ),
            RequestErrorReason::BadTtl { value } => {
                write!(f, "{}: bad ttl value \"{}\"", self.kind, Printable(value))
            }
            RequestErrorReason::BadLimit { value } => {
                write!(f, "{}: bad limit value \"{}\"", self.kind, Printable(value))
            }
        }
    }
}

impl std::error::Error for RequestError<'_> {}

/// Parses a request message strictly (see the module documentation).
///
/// ```
/// use scache_proto::attr::{Decoded, Decoder, Limits};
/// use scache_proto::message::{parse_request, Request, RequestKind};
///
/// let mut decoder = Decoder::new(Limits::default());
/// let wire = b"request\0save_dest\0ttl\x002\0label\0dest\0property\0p\0label\0endp\0\0";
/// let Decoded::Complete { message, .. } = decoder.decode(wire) else { panic!() };
/// let parsed = parse_request(&message).unwrap();
/// assert_eq!(
///     parsed.request,
///     Request::SaveDest { ttl: 2, dest: b"dest", dest_prop: b"p", endp: b"endp" }
/// );
/// assert_eq!(parsed.extra, None);
///
/// let wire = b"request\0find_endp\0property\0x\0\0";
/// let Decoded::Complete { message, .. } = decoder.decode(wire) else { panic!() };
/// let err = parse_request(&message).unwrap_err();
/// assert_eq!(err.kind(), RequestKind::FindEndp);
/// ```
pub fn parse_request<'a>(msg: &Message<'a>) -> Result<Parsed<'a>, RequestError<'a>> {
    let (first, name) = match msg.attr(0) {
        Some(attr) => attr,
        None => {
            return Err(RequestError {
                kind: RequestKind::Missing,
                reason: RequestErrorReason::NoRequest { found: None },
            })
        }
    };
    if first != ATTR_REQUEST.as_bytes() {
        return Err(RequestError {
            kind: RequestKind::Missing,
            reason: RequestErrorReason::NoRequest { found: Some(first) },
        });
    }
    let kind = RequestKind::from_wire(name);
    let mut fields = Fields { msg, next: 1, kind };
    let request = match kind {
        RequestKind::SaveEndp => {
            let ttl = fields.ttl()?;
            let endp = fields.expect(ATTR_LABEL)?;
            let endp_prop = fields.expect(ATTR_PROPERTY)?;
            Request::SaveEndp {
                ttl,
                endp,
                endp_prop,
            }
        }
        RequestKind::FindEndp => Request::FindEndp {
            endp: fields.expect(ATTR_LABEL)?,
        },
        RequestKind::SaveDest => {
            let ttl = fields.ttl()?;
            let dest = fields.expect(ATTR_LABEL)?;
            let dest_prop = fields.expect(ATTR_PROPERTY)?;
            let endp = fields.expect(ATTR_LABEL)?;
            Request::SaveDest {
                ttl,
                dest,
                dest_prop,
                endp,
            }
        }
        RequestKind::FindDest => Request::FindDest {
            dest: fields.expect(ATTR_LABEL)?,
        },
        RequestKind::Stats => Request::Stats,
        RequestKind::List => match msg.attr(fields.next) {
            Some((name, value)) if name == ATTR_LIMIT.as_bytes() => {
                fields.next += 1;
                match parse_unsigned(value) {
                    Some(limit) => Request::List { limit: Some(limit) },
                    None => {
                        return Err(RequestError {
                            kind,
                            reason: RequestErrorReason::BadLimit { value },
                        })
                    }
                }
            }
            _ => Request::List { limit: None },
        },
        RequestKind::Unknown | RequestKind::Missing => {
            return Err(RequestError {
                kind: RequestKind::Unknown,
                reason: RequestErrorReason::UnknownRequest { name },
            })
        }
    };
    let extra = msg.attr(fields.next).map(|(name, _)| name);
    Ok(Parsed { request, extra })
}

/// Sequential, strict access to the attributes of a request.
struct Fields<'m, 'a> {
    msg: &'m Message<'a>,
    next: usize,
    kind: RequestKind,
}

impl<'a> Fields<'_, 'a> {
    fn expect(&mut self, expected: &'static str) -> Result<&'a [u8], RequestError<'a>> {
        let reason = match self.msg.attr(self.next) {
            Some((name, value)) if name == expected.as_bytes() => {
                self.next += 1;
                return Ok(value);
            }
            Some((found, _)) => RequestErrorReason::UnexpectedAttribute { expected, found },
            None => RequestErrorReason::MissingAttribute { expected },
        };
        Err(RequestError {
            kind: self.kind,
            reason,
        })
    }

    fn ttl(&mut self) -> Result<u32, RequestError<'a>> {
        let value = self.expect(ATTR_TTL)?;
        parse_ttl(value).ok_or(RequestError {
            kind: self.kind,
            reason: RequestErrorReason::BadTtl { value },
        })
    }
}

/// Parses an unsigned decimal number the way Postfix's `%u` reader does,
/// minus its sign wrap-around: optional leading white space, optional `+`,
/// digits, nothing after; at most `u32::MAX`.
pub fn parse_unsigned(value: &[u8]) -> Option<u32> {
    let start = value
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let mut digits = &value[start..];
    if let [b'+', rest @ ..] = digits {
        digits = rest;
    }
    if digits.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    let mut overflow = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u32::from(b - b'0')))
        {
            Some(v) => n = v,
            None => overflow = true,
        }
    }
    (!overflow).then_some(n)
}

/// Parses a `ttl` value: [`parse_unsigned`] syntax, value 1 ..= [`MAX_TTL`].
pub fn parse_ttl(value: &[u8]) -> Option<u32> {
    parse_unsigned(value).filter(|&ttl| (1..=MAX_TTL).contains(&ttl))
}

// ---------------------------------------------------------------------------
// Server-side encoders.

/// Server greeting: `protocol\0connection_cache_protocol\0\0`.
pub fn encode_greeting(out: &mut Vec<u8>) {
    put_attr(out, ATTR_PROTOCOL.as_bytes(), PROTOCOL_NAME.as_bytes());
    put_end(out);
}

/// What our daemon sends instead of the greeting to a client its access
/// control refuses, just before it closes the connection:
/// `refused\0<reason>\0\0`. A Postfix client reports it as an unexpected
/// attribute where `protocol` was expected; ours as
/// [`ReplyError::Refused`].
pub fn encode_refusal(out: &mut Vec<u8>, reason: &[u8]) {
    put_attr(out, ATTR_REFUSED.as_bytes(), reason);
    put_end(out);
}

/// `status\0<n>\0`, for each status: the replies are built from whole
/// byte strings rather than attribute by attribute (they are on the
/// daemon's busiest path).
const STATUS_ATTR: [&[u8]; 3] = [b"status\x000\0", b"status\x001\0", b"status\x002\0"];
/// `status\0<n>\0property\0`, for each status.
const STATUS_PROPERTY: [&[u8]; 3] = [
    b"status\x000\0property\0",
    b"status\x001\0property\0",
    b"status\x002\0property\0",
];

/// A status-only reply (`save_endp`, `save_dest`): `status\0<n>\0\0`.
pub fn encode_status(out: &mut Vec<u8>, status: Status) {
    out.extend_from_slice(STATUS_ATTR[status as usize]);
    out.push(0);
}

/// The sync message around descriptor passing: `dummy\0\0\0`.
pub fn encode_dummy(out: &mut Vec<u8>) {
    out.extend_from_slice(b"dummy\0\0\0");
}

/// `find_endp` reply: `status\0<n>\0property\0<endp_prop>\0\0`.
pub fn encode_find_endp_reply(out: &mut Vec<u8>, status: Status, endp_prop: &[u8]) {
    debug_assert!(is_valid_value(endp_prop), "NUL in a property");
    out.extend_from_slice(STATUS_PROPERTY[status as usize]);
    out.extend_from_slice(endp_prop);
    out.extend_from_slice(b"\0\0");
}

/// `find_dest` reply:
/// `status\0<n>\0property\0<dest_prop>\0property\0<endp_prop>\0\0`.
pub fn encode_find_dest_reply(
    out: &mut Vec<u8>,
    status: Status,
    dest_prop: &[u8],
    endp_prop: &[u8],
) {
    debug_assert!(is_valid_value(dest_prop) && is_valid_value(endp_prop));
    out.extend_from_slice(STATUS_PROPERTY[status as usize]);
    out.extend_from_slice(dest_prop);
    out.extend_from_slice(b"\0property\0");
    out.extend_from_slice(endp_prop);
    out.extend_from_slice(b"\0\0");
}

/// The reply to a malformed request of `kind`, shaped as Postfix 3.7's
/// daemon shapes it:
///
/// | kind | bytes |
/// |---|---|
/// | `save_endp`, `save_dest`, unknown name | `status\01\0\0` |
/// | `find_endp` | `status\01\0property\0\0\0` |
/// | `find_dest` | `status\01\0property\0\0property\0\0\0` |
/// | no `request` first ([`RequestKind::Missing`]) | `status\01\0\0` (Postfix sends nothing and then reads the rest as a new request) |
/// | `stats` (cannot be malformed), `list` (bad `limit`) | `status\01\0\0` |
pub fn encode_malformed(out: &mut Vec<u8>, kind: RequestKind) {
    match kind {
        RequestKind::FindEndp => encode_find_endp_reply(out, Status::Bad, b""),
        RequestKind::FindDest => encode_find_dest_reply(out, Status::Bad, b"", b""),
        RequestKind::SaveEndp
        | RequestKind::SaveDest
        | RequestKind::Stats
        | RequestKind::List
        | RequestKind::Unknown
        | RequestKind::Missing => encode_status(out, Status::Bad),
    }
}

/// The kind of the request a [`Decoder`](crate::attr::Decoder) just
/// rejected as over a limit, from its first attribute
/// ([`Decoder::rejected_head`](crate::attr::Decoder::rejected_head)), so
/// that [`encode_malformed`] can give the reply the shape a Postfix client
/// expects (a `find_endp` client fails on a bare `status`).
/// [`RequestKind::Missing`] when the first attribute is not a complete
/// `request`.
///
/// ```
/// use scache_proto::attr::{Decoded, Decoder, Limits};
/// use scache_proto::message::{rejected_kind, RequestKind};
///
/// let mut d = Decoder::new(Limits { max_value_len: 16, ..Limits::default() });
/// let r = d.decode(b"request\0find_endp\0label\0far too long a label\0\0");
/// assert!(matches!(r, Decoded::Rejected { .. }));
/// assert_eq!(rejected_kind(&d), RequestKind::FindEndp);
/// ```
pub fn rejected_kind(decoder: &crate::attr::Decoder) -> RequestKind {
    match decoder.rejected_head() {
        Some((name, value)) if name == ATTR_REQUEST.as_bytes() => RequestKind::from_wire(value),
        _ => RequestKind::Missing,
    }
}

/// Our `stats` reply: `status\00\0` then one attribute per counter (decimal
/// value), then the terminator.
pub fn encode_stats_reply(out: &mut Vec<u8>, counters: &[(&str, u64)]) {
    put_attr(out, ATTR_STATUS.as_bytes(), Status::Ok.as_wire());
    for (name, value) in counters {
        put_attr(out, name.as_bytes(), value.to_string().as_bytes());
    }
    put_end(out);
}

// ---------------------------------------------------------------------------
// `list`: what is cached.

/// What a `list` request returns: the cached endpoints and destinations,
/// bounded by the request's `limit`, as the server chose and ordered them
/// (ours: most sessions first).
///
/// On the wire, after `status=0`:
///
/// ```text
/// endpoints=<all endpoints>  destinations=<all destinations>
/// then per endpoint shown:    endpoint=<label> sessions=<n> oldest_age=<ms, or empty: unknown> ttl_left=<ms>
/// then per destination shown: destination=<label> sessions=<n> bindings=<all its bindings>
///                             and per binding shown: binding=<endpoint label> ttl_left=<ms>
/// ```
///
/// ```
/// use std::time::Duration;
/// use scache_proto::attr::{Decoded, Decoder, Limits};
/// use scache_proto::message::{encode_list_reply, parse_reply, Listing, ListedEndpoint, Reply, RequestKind};
///
/// let listing = Listing {
///     endpoints_total: 1,
///     destinations_total: 0,
///     endpoints: vec![ListedEndpoint {
///         label: b"smtp\n192.0.2.1\n25\n".to_vec(),
///         sessions: 2,
///         oldest_age: Some(Duration::from_millis(1500)),
///         ttl_left: Duration::from_millis(1900),
///     }],
///     destinations: vec![],
/// };
/// let mut wire = Vec::new();
/// encode_list_reply(&mut wire, &listing);
/// let mut d = Decoder::new(Limits::default());
/// let Decoded::Complete { message, .. } = d.decode(&wire) else { panic!() };
/// let Ok(Reply::List { listing: back, .. }) = parse_reply(RequestKind::List, &message) else { panic!() };
/// assert_eq!(back, listing);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// Endpoints with sessions in the cache (shown or not).
    pub endpoints_total: u64,
    /// Destinations with bindings in the cache (shown or not).
    pub destinations_total: u64,
    /// The endpoints shown.
    pub endpoints: Vec<ListedEndpoint>,
    /// The destinations shown.
    pub destinations: Vec<ListedDestination>,
}

/// One endpoint of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedEndpoint {
    /// The endpoint label.
    pub label: Vec<u8>,
    /// Sessions cached under it.
    pub sessions: u64,
    /// Age of its oldest session (`None`: unknown).
    pub oldest_age: Option<Duration>,
    /// Time until its last session expires.
    pub ttl_left: Duration,
}

/// One destination of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedDestination {
    /// The destination label.
    pub label: Vec<u8>,
    /// Sessions a `find_dest` could take through its bindings.
    pub sessions: u64,
    /// All its bindings (shown or not).
    pub bindings_total: u64,
    /// The bindings shown, in order.
    pub bindings: Vec<ListedBinding>,
}

/// One binding of a [`ListedDestination`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedBinding {
    /// The endpoint label it names.
    pub endpoint: Vec<u8>,
    /// Time until it expires.
    pub ttl_left: Duration,
}

fn millis(d: Duration) -> String {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).to_string()
}

/// Our `list` reply (`status=0` and the listing; see [`Listing`]).
pub fn encode_list_reply(out: &mut Vec<u8>, listing: &Listing) {
    put_attr(out, ATTR_STATUS.as_bytes(), Status::Ok.as_wire());
    put_attr(
        out,
        b"endpoints",
        listing.endpoints_total.to_string().as_bytes(),
    );
    put_attr(
        out,
        b"destinations",
        listing.destinations_total.to_string().as_bytes(),
    );
    for e in &listing.endpoints {
        put_attr(out, b"endpoint", &e.label);
        put_attr(out, b"sessions", e.sessions.to_string().as_bytes());
        let age = e.oldest_age.map(millis).unwrap_or_default();
        put_attr(out, b"oldest_age", age.as_bytes());
        put_attr(out, b"ttl_left", millis(e.ttl_left).as_bytes());
    }
    for d in &listing.destinations {
        put_attr(out, b"destination", &d.label);
        put_attr(out, b"sessions", d.sessions.to_string().as_bytes());
        put_attr(out, b"bindings", d.bindings_total.to_string().as_bytes());
        for b in &d.bindings {
            put_attr(out, b"binding", &b.endpoint);
            put_attr(out, b"ttl_left", millis(b.ttl_left).as_bytes());
        }
    }
    put_end(out);
}

/// The decoding limits a client needs for the reply to a `list` request
/// with `limit` (`None`: [`DEFAULT_LIST_LIMIT`]), starting from its usual
/// ones: room for every attribute the reply can hold, and values of at
/// least 1 MiB (labels as long as a server keeps).
pub fn list_reply_limits(base: crate::attr::Limits, limit: Option<u32>) -> crate::attr::Limits {
    let n = u64::from(limit.unwrap_or(DEFAULT_LIST_LIMIT).min(MAX_LIST_LIMIT));
    // 3 + 4 per endpoint + 3 per destination + 2 per binding (n per
    // destination).
    let attrs = 3 + 4 * n + 3 * n + 2 * n * n;
    crate::attr::Limits {
        max_attrs: base
            .max_attrs
            .max(usize::try_from(attrs).unwrap_or(usize::MAX)),
        max_value_len: base.max_value_len.max(1 << 20),
        ..base
    }
}

/// Parses the attributes of a `list` reply after `status` (unknown
/// attributes are skipped, so that a newer server may add some).
fn parse_listing(msg: &Message<'_>) -> Result<Listing, ReplyError> {
    fn number(name: &'static str, value: &[u8]) -> Result<u64, ReplyError> {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ReplyError::BadNumber {
                name,
                value: lossy(value),
            })
    }
    fn ms(name: &'static str, value: &[u8]) -> Result<Duration, ReplyError> {
        number(name, value).map(Duration::from_millis)
    }
    #[derive(PartialEq)]
    enum At {
        Top,
        Endpoint,
        Destination,
        Binding,
    }
    let mut listing = Listing::default();
    let mut at = At::Top;
    for (name, value) in msg.iter().skip(1) {
        match (name, &at) {
            (b"endpoints", At::Top) => listing.endpoints_total = number("endpoints", value)?,
            (b"destinations", At::Top) => {
                listing.destinations_total = number("destinations", value)?
            }
            (b"endpoint", _) => {
                listing.endpoints.push(ListedEndpoint {
                    label: value.to_vec(),
                    ..ListedEndpoint::default()
                });
                at = At::Endpoint;
            }
            (b"destination", _) => {
                listing.destinations.push(ListedDestination {
                    label: value.to_vec(),
                    ..ListedDestination::default()
                });
                at = At::Destination;
            }
            (b"binding", At::Destination | At::Binding) => {
                if let Some(d) = listing.destinations.last_mut() {
                    d.bindings.push(ListedBinding {
                        endpoint: value.to_vec(),
                        ..ListedBinding::default()
                    });
                }
                at = At::Binding;
            }
            (b"sessions", At::Endpoint) => {
                if let Some(e) = listing.endpoints.last_mut() {
                    e.sessions = number("sessions", value)?;
                }
            }
            (b"oldest_age", At::Endpoint) => {
                if let Some(e) = listing.endpoints.last_mut() {
                    e.oldest_age = if value.is_empty() {
                        None
                    } else {
                        Some(ms("oldest_age", value)?)
                    };
                }
            }
            (b"ttl_left", At::Endpoint) => {
                if let Some(e) = listing.endpoints.last_mut() {
                    e.ttl_left = ms("ttl_left", value)?;
                }
            }
            (b"sessions", At::Destination) => {
                if let Some(d) = listing.destinations.last_mut() {
                    d.sessions = number("sessions", value)?;
                }
            }
            (b"bindings", At::Destination) => {
                if let Some(d) = listing.destinations.last_mut() {
                    d.bindings_total = number("bindings", value)?;
                }
            }
            (b"ttl_left", At::Binding) => {
                if let Some(b) = listing
                    .destinations
                    .last_mut()
                    .and_then(|d| d.bindings.last_mut())
                {
                    b.ttl_left = ms("ttl_left", value)?;
                }
            }
            _ => {}
        }
    }
    Ok(listing)
}

// ---------------------------------------------------------------------------
// Client-side encoders and reply parsers.

/// Why a request could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A label or property contains a NUL byte, which the framing cannot
    /// carry.
    ContainsNul {
        /// Which field.
        field: &'static str,
    },
    /// The time to live is 0 or larger than [`MAX_TTL`].
    BadTtl {
        /// The value given.
        ttl: u32,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::ContainsNul { field } => write!(f, "{field} contains a NUL byte"),
            EncodeError::BadTtl { ttl } => {
                write!(f, "ttl {ttl} is not between 1 and {MAX_TTL} seconds")
            }
        }
    }
}

impl std::error::Error for EncodeError {}

/// Appends the wire form of `request` to `out` (on error `out` is left as
/// it was).
///
/// ```
/// use scache_proto::message::{encode_request, Request};
///
/// let mut out = Vec::new();
/// encode_request(&mut out, &Request::SaveEndp { ttl: 2, endp: b"e", endp_prop: b"p" }).unwrap();
/// assert_eq!(out, b"request\0save_endp\0ttl\x002\0label\0e\0property\0p\0\0");
/// ```
pub fn encode_request(out: &mut Vec<u8>, request: &Request<'_>) -> Result<(), EncodeError> {
    fn check(field: &'static str, value: &[u8]) -> Result<(), EncodeError> {
        if is_valid_value(value) {
            Ok(())
        } else {
            Err(EncodeError::ContainsNul { field })
        }
    }
    fn check_ttl(ttl: u32) -> Result<(), EncodeError> {
        if (1..=MAX_TTL).contains(&ttl) {
            Ok(())
        } else {
            Err(EncodeError::BadTtl { ttl })
        }
    }
    let req = ATTR_REQUEST.as_bytes();
    match *request {
        Request::SaveEndp {
            ttl,
            endp,
            endp_prop,
        } => {
            check_ttl(ttl)?;
            check("endpoint label", endp)?;
            check("endpoint properties", endp_prop)?;
            put_attr(out, req, b"save_endp");
            put_attr(out, ATTR_TTL.as_bytes(), ttl.to_string().as_bytes());
            put_attr(out, ATTR_LABEL.as_bytes(), endp);
            put_attr(out, ATTR_PROPERTY.as_bytes(), endp_prop);
        }
        Request::FindEndp { endp } => {
            check("endpoint label", endp)?;
            put_attr(out, req, b"find_endp");
            put_attr(out, ATTR_LABEL.as_bytes(), endp);
        }
        Request::SaveDest {
            ttl,
            dest,
            dest_prop,
            endp,
        } => {
            check_ttl(ttl)?;
            check("destination label", dest)?;
            check("destination properties", dest_prop)?;
            check("endpoint label", endp)?;
            put_attr(out, req, b"save_dest");
            put_attr(out, ATTR_TTL.as_bytes(), ttl.to_string().as_bytes());
            put_attr(out, ATTR_LABEL.as_bytes(), dest);
            put_attr(out, ATTR_PROPERTY.as_bytes(), dest_prop);
            put_attr(out, ATTR_LABEL.as_bytes(), endp);
        }
        Request::FindDest { dest } => {
            check("destination label", dest)?;
            put_attr(out, req, b"find_dest");
            put_attr(out, ATTR_LABEL.as_bytes(), dest);
        }
        Request::Stats => put_attr(out, req, b"stats"),
        Request::List { limit } => {
            put_attr(out, req, b"list");
            if let Some(limit) = limit {
                put_attr(out, ATTR_LIMIT.as_bytes(), limit.to_string().as_bytes());
            }
        }
    }
    put_end(out);
    Ok(())
}

/// A reply from the server, parsed for the request kind it answers.
#[derive(Debug, Clone)]
pub enum Reply<'a> {
    /// `save_endp` (after the descriptor) or `save_dest`.
    Status(Status),
    /// `find_endp`.
    FindEndp {
        /// Reply status.
        status: Status,
        /// Endpoint properties (empty unless found).
        endp_prop: &'a [u8],
    },
    /// `find_dest`.
    FindDest {
        /// Reply status.
        status: Status,
        /// Destination properties (empty unless found).
        dest_prop: &'a [u8],
        /// Endpoint properties (empty unless found).
        endp_prop: &'a [u8],
    },
    /// `stats`.
    Stats {
        /// Reply status.
        status: Status,
        /// The attributes after `status`.
        counters: Attrs<'a>,
    },
    /// `list` (with [`Status::Ok`], the listing; otherwise empty).
    List {
        /// Reply status.
        status: Status,
        /// What the server listed.
        listing: Listing,
    },
}

/// Why a server message is not what the protocol expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The message ended where this attribute was expected.
    Missing {
        /// Expected attribute name.
        expected: &'static str,
    },
    /// Another attribute came where this one was expected.
    Unexpected {
        /// Expected attribute name.
        expected: &'static str,
        /// Name received (lossy text).
        found: String,
    },
    /// A `status` value that is not a number we know.
    BadStatus {
        /// Value received (lossy text).
        value: String,
    },
    /// A value that must be a number is not one.
    BadNumber {
        /// The attribute's name.
        name: &'static str,
        /// Value received (lossy text).
        value: String,
    },
    /// The greeting does not name the connection cache protocol.
    BadGreeting {
        /// Protocol name received (lossy text).
        protocol: String,
    },
    /// The server sent a refusal ([`encode_refusal`]) instead of the
    /// greeting: its access control does not allow this client.
    Refused {
        /// The reason the server gave (lossy text).
        reason: String,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Missing { expected } => write!(f, "missing attribute {expected} in reply"),
            ReplyError::Unexpected { expected, found } => write!(
                f,
                "unexpected attribute {found} in reply where {expected} was expected"
            ),
            ReplyError::BadStatus { value } => write!(f, "bad status value \"{value}\" in reply"),
            ReplyError::BadNumber { name, value } => {
                write!(f, "bad {name} value \"{value}\" in reply")
            }
            ReplyError::BadGreeting { protocol } => {
                write!(f, "unexpected protocol \"{protocol}\" in server greeting")
            }
            ReplyError::Refused { reason } => {
                write!(f, "connection refused by the server: {reason}")
            }
        }
    }
}

impl std::error::Error for ReplyError {}

fn lossy(s: &[u8]) -> String {
    Printable(s).to_string()
}

fn expect_attr<'a>(
    msg: &Message<'a>,
    i: usize,
    expected: &'static str,
) -> Result<&'a [u8], ReplyError> {
    match msg.attr(i) {
        Some((name, value)) if name == expected.as_bytes() => Ok(value),
        Some((name, _)) => Err(ReplyError::Unexpected {
            expected,
            found: lossy(name),
        }),
        None => Err(ReplyError::Missing { expected }),
    }
}

fn expect_status(msg: &Message<'_>) -> Result<Status, ReplyError> {
    let value = expect_attr(msg, 0, ATTR_STATUS)?;
    parse_unsigned(value)
        .and_then(Status::from_code)
        .ok_or_else(|| ReplyError::BadStatus {
            value: lossy(value),
        })
}

/// Parses the server's reply to a request of `kind` (strictly, like
/// Postfix's client: expected attributes in order, extra ones after them
/// ignored). For [`RequestKind::SaveEndp`] this is the final status, after
/// the descriptor was sent. `Unknown` and `Missing` are parsed as a bare
/// status.
pub fn parse_reply<'a>(kind: RequestKind, msg: &Message<'a>) -> Result<Reply<'a>, ReplyError> {
    let status = expect_status(msg)?;
    Ok(match kind {
        RequestKind::FindEndp => Reply::FindEndp {
            status,
            endp_prop: expect_attr(msg, 1, ATTR_PROPERTY)?,
        },
        RequestKind::FindDest => Reply::FindDest {
            status,
            dest_prop: expect_attr(msg, 1, ATTR_PROPERTY)?,
            endp_prop: expect_attr(msg, 2, ATTR_PROPERTY)?,
        },
        RequestKind::Stats => {
            let mut counters = msg.iter();
            counters.next();
            Reply::Stats { status, counters }
        }
        RequestKind::List => Reply::List {
            status,
            listing: if status == Status::Ok {
                parse_listing(msg)?
            } else {
                Listing::default()
            },
        },
        RequestKind::SaveEndp
        | RequestKind::SaveDest
        | RequestKind::Unknown
        | RequestKind::Missing => Reply::Status(status),
    })
}

/// Checks a server greeting (`protocol=connection_cache_protocol` first).
/// A refusal (`refused=<reason>`) is [`ReplyError::Refused`].
pub fn parse_greeting(msg: &Message<'_>) -> Result<(), ReplyError> {
    if let Some((name, reason)) = msg.attr(0) {
        if name == ATTR_REFUSED.as_bytes() {
            return Err(ReplyError::Refused {
                reason: lossy(reason),
            });
        }
    }
    let protocol = expect_attr(msg, 0, ATTR_PROTOCOL)?;
    if protocol == PROTOCOL_NAME.as_bytes() {
        Ok(())
    } else {
        Err(ReplyError::BadGreeting {
            protocol: lossy(protocol),
        })
    }
}

/// Whether `msg` is the `dummy` sync message (its first attribute is
/// `dummy`; as in Postfix, the value and any later attributes are ignored).
pub fn is_dummy(msg: &Message<'_>) -> bool {
    matches!(msg.attr(0), Some((name, _)) if name == ATTR_DUMMY.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_syntax() {
        for (text, want) in [
            (&b"1"[..], Some(1)),
            (b"300", Some(300)),
            (b"+5", Some(5)),
            (b" \t\n\x0b\x0c\r7", Some(7)),
            (b"007", Some(7)),
            (b"2147483647", Some(MAX_TTL)),
            (b"000000000000000000002", Some(2)),
            (b"2147483648", None),
            (b"4294967295", None),
            (b"4294967296", None),
            (b"4294967297", None),
            (b"99999999999999999999999", None),
            (b"0", None),
            (b"-5", None),
            (b"-0", None),
            (b"", None),
            (b" ", None),
            (b"+", None),
            (b"++5", None),
            (b"+-5", None),
            (b"5 ", None),
            (b"5x", None),
            (b"0x10", None),
            (b"1.5", None),
            (b"5\n", None),
        ] {
            assert_eq!(parse_ttl(text), want, "{:?}", Printable(text));
        }
    }

    #[test]
    fn malformed_shapes() {
        let mut out = Vec::new();
        for (kind, want) in [
            (RequestKind::SaveEndp, &b"status\x001\x00\x00"[..]),
            (RequestKind::SaveDest, b"status\x001\x00\x00"),
            (RequestKind::Unknown, b"status\x001\x00\x00"),
            (RequestKind::Missing, b"status\x001\x00\x00"),
            (RequestKind::Stats, b"status\x001\x00\x00"),
            (RequestKind::List, b"status\x001\x00\x00"),
            (
                RequestKind::FindEndp,
                b"status\x001\x00property\x00\x00\x00",
            ),
            (
                RequestKind::FindDest,
                b"status\x001\x00property\x00\x00property\x00\x00\x00",
            ),
        ] {
            out.clear();
            encode_malformed(&mut out, kind);
            assert_eq!(out, want, "{kind}");
        }
    }

    #[test]
    fn list_requests() {
        use crate::attr::{Decoded, Decoder, Limits};
        let mut d = Decoder::new(Limits::default());
        for (wire, want) in [
            (&b"request\0list\0\0"[..], Ok(Request::List { limit: None })),
            (
                b"request\0list\0limit\x00007\0\0",
                Ok(Request::List { limit: Some(7) }),
            ),
            (b"request\0list\0limit\0x\0\0", Err(RequestKind::List)),
            (b"request\0list\0limit\0-1\0\0", Err(RequestKind::List)),
        ] {
            let Decoded::Complete { message, .. } = d.decode(wire) else {
                panic!()
            };
            assert_eq!(
                parse_request(&message)
                    .map(|p| p.request)
                    .map_err(|e| e.kind()),
                want,
                "{:?}",
                Printable(wire)
            );
        }
        // Anything else after `request=list` is an extra attribute.
        let Decoded::Complete { message, .. } = d.decode(b"request\0list\0x\0y\0\0") else {
            panic!()
        };
        let parsed = parse_request(&message).unwrap();
        assert_eq!(parsed.request, Request::List { limit: None });
        assert_eq!(parsed.extra, Some(&b"x"[..]));
        let mut out = Vec::new();
        encode_request(&mut out, &Request::List { limit: Some(3) }).unwrap();
        assert_eq!(out, b"request\0list\0limit\x003\0\0");
    }

    #[test]
    fn listing_round_trip_and_limits() {
        use crate::attr::{Decoded, Decoder, Limits};
        let listing = Listing {
            endpoints_total: 9,
            destinations_total: 4,
            endpoints: vec![
                ListedEndpoint {
                    label: b"e\n1".to_vec(),
                    sessions: 3,
                    oldest_age: None,
                    ttl_left: Duration::from_millis(5),
                },
                ListedEndpoint {
                    label: b"e2".to_vec(),
                    sessions: 1,
                    oldest_age: Some(Duration::from_millis(1234)),
                    ttl_left: Duration::ZERO,
                },
            ],
            destinations: vec![ListedDestination {
                label: b"d".to_vec(),
                sessions: 4,
                bindings_total: 3,
                bindings: vec![
                    ListedBinding {
                        endpoint: b"e\n1".to_vec(),
                        ttl_left: Duration::from_millis(7),
                    },
                    ListedBinding {
                        endpoint: b"e2".to_vec(),
                        ttl_left: Duration::from_millis(8),
                    },
                ],
            }],
        };
        let mut wire = Vec::new();
        encode_list_reply(&mut wire, &listing);
        let mut d = Decoder::new(list_reply_limits(Limits::default(), Some(2)));
        let Decoded::Complete { message, .. } = d.decode(&wire) else {
            panic!()
        };
        let Ok(Reply::List {
            status,
            listing: back,
        }) = parse_reply(RequestKind::List, &message)
        else {
            panic!()
        };
        assert_eq!(status, Status::Ok);
        assert_eq!(back, listing);
        // A bad number is a reply error; status 1 gives an empty listing.
        let Decoded::Complete { message, .. } = d.decode(b"status\x000\0endpoints\0x\0\0") else {
            panic!()
        };
        assert!(parse_reply(RequestKind::List, &message).is_err());
        let Decoded::Complete { message, .. } = d.decode(b"status\x001\0\0") else {
            panic!()
        };
        assert!(matches!(
            parse_reply(RequestKind::List, &message),
            Ok(Reply::List {
                status: Status::Bad,
                ..
            })
        ));
        let l = list_reply_limits(Limits::default(), Some(50));
        assert_eq!(l.max_attrs, 3 + 7 * 50 + 2 * 2500);
        assert!(list_reply_limits(Limits::default(), Some(u32::MAX)).max_attrs > 1 << 30);
    }

    #[test]
    fn encode_request_rejects_nul_and_bad_ttl() {
        let mut out = b"keep".to_vec();
        let e = encode_request(&mut out, &Request::FindEndp { endp: b"a\0b" }).unwrap_err();
        assert_eq!(
            e,
            EncodeError::ContainsNul {
                field: "endpoint label"
            }
        );
        let e = encode_request(
            &mut out,
            &Request::SaveDest {
                ttl: 0,
                dest: b"d",
                dest_prop: b"",
                endp: b"e",
            },
        )
        .unwrap_err();
        assert_eq!(e, EncodeError::BadTtl { ttl: 0 });
        assert_eq!(out, b"keep");
    }
}
