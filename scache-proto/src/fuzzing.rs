//! The bodies of the fuzz targets, as plain functions.
//!
//! `fuzz/fuzz_targets/<name>.rs` calls [`decoder`], [`request_parser`] or
//! [`client_exchange`] with libFuzzer's input; this crate's
//! `tests/fuzz_corpus.rs` replays every file of `fuzz/corpus/<name>/`
//! through the same function, so the stable toolchain checks the corpus on
//! every test run. Each function panics (assertion failure) when an
//! invariant breaks, and must never panic otherwise, whatever the input.
#![forbid(unsafe_code)]

use crate::attr::{put_attr, put_end, DecodeError, Decoder, Limits, Message};
use crate::client::{ClientExchange, Step};
use crate::message::{
    encode_malformed, encode_request, is_dummy, parse_greeting, parse_reply, parse_request,
    parse_ttl, Reply, RequestKind, Status, MAX_TTL,
};

/// The body of a fuzz target.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (as in `fuzz/fuzz_targets/<name>.rs` and
/// `fuzz/corpus/<name>/`) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("decoder", decoder),
    ("request_parser", request_parser),
    ("client_exchange", client_exchange),
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
            let (used, done) = dec.decode(&piece[pos..]);
            assert!(used <= rest, "consumed more than given");
            match &done {
                None => assert_eq!(used, rest, "incomplete but input left over"),
                Some(_) => assert!(used > 0, "a message from no bytes"),
            }
            pos += used;
            match done {
                None => {}
                Some(Ok(())) => {
                    let msg = dec.message();
                    check_message(&msg, limits);
                    events.push(Ok(msg
                        .iter()
                        .map(|(n, v)| (n.to_vec(), v.to_vec()))
                        .collect()));
                }
                Some(Err(e)) => {
                    assert!(!e.to_string().is_empty());
                    assert!(dec.message().is_empty());
                    if let Some((name, value)) = dec.rejected_head() {
                        assert!(!name.is_empty() && name.len() <= limits.max_name_len);
                        assert!(value.len() <= limits.max_value_len);
                    }
                    events.push(Err(e));
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
        let (used, done) = dec.decode(&data[pos..]);
        pos += used;
        if let Some(Ok(())) = done {
            check_request(&dec.message());
        }
    }
}

const ALL_KINDS: [RequestKind; 7] = [
    RequestKind::SaveEndp,
    RequestKind::FindEndp,
    RequestKind::SaveDest,
    RequestKind::FindDest,
    RequestKind::Stats,
    RequestKind::Unknown,
    RequestKind::Missing,
];

fn expected_attrs(kind: RequestKind) -> usize {
    match kind {
        RequestKind::SaveEndp => 4,
        RequestKind::SaveDest => 5,
        RequestKind::FindEndp | RequestKind::FindDest => 2,
        _ => 1,
    }
}

fn decode_one(wire: &[u8], limits: Limits) -> Decoder {
    let mut dec = Decoder::new(limits);
    let (used, done) = dec.decode(wire);
    assert_eq!(used, wire.len());
    assert_eq!(done, Some(Ok(())));
    dec
}

fn check_request(msg: &Message<'_>) {
    match parse_request(msg) {
        Ok(parsed) => {
            let kind = parsed.request.kind();
            let expected = expected_attrs(kind);
            assert_eq!(parsed.extra.is_some(), msg.len() > expected);
            if let Some(extra) = parsed.extra {
                assert_eq!(Some(extra), msg.attr(expected).map(|(n, _)| n));
            }
            let mut wire = Vec::new();
            encode_request(&mut wire, &parsed.request).expect("parsed request re-encodes");
            let dec = decode_one(&wire, Limits::default());
            let again = parse_request(&dec.message()).expect("re-encoded request parses");
            assert_eq!(again.request, parsed.request);
            assert_eq!(again.extra, None);
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let mut wire = Vec::new();
            encode_malformed(&mut wire, e.kind());
            let dec = decode_one(&wire, Limits::default());
            let status = match parse_reply(e.kind(), &dec.message()).expect("malformed reply") {
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
                Reply::Stats { status, .. } => status,
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
    use crate::message::Request;
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    let input = &input[..input.len().min(MAX_INPUT)];
    // Bits 0-1: operation; bit 3: `stats` instead; bit 2: no built-in
    // greeting; bits 4-7: chunk size - 1.
    let chunk = usize::from(selector >> 4) + 1;
    let request = if selector & 8 != 0 {
        Request::Stats
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
        ex.on_bytes(b"protocol\0connection_cache_protocol\0\0", &mut out)
            .expect("greeting");
    }
    for piece in input.chunks(chunk) {
        match ex.step() {
            Step::Idle => {
                out.clear();
                ex.start(&request, &mut out).expect("start when idle");
                assert!(!out.is_empty());
            }
            Step::SendFd => ex.on_fd_sent().expect("fd sent when asked"),
            Step::RecvFd => {
                ex.on_fd_received(&mut out).expect("fd received when asked");
            }
            Step::Done => {
                assert!(ex.take_outcome().is_some());
            }
            Step::Broken => {
                assert!(ex.error().is_some());
                return;
            }
            Step::ReadBytes => {}
        }
        let step = ex.step();
        let result = ex.on_bytes(piece, &mut out);
        if step != Step::ReadBytes {
            assert!(result.is_err());
        }
        if result.is_err() {
            assert_eq!(ex.step(), Step::Broken);
        }
    }
}
