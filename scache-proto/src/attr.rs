//! The "attr0" framing: attribute lists of NUL-terminated strings.
//!
//! A message is a list of `name \0 value \0` pairs closed by one extra `\0`
//! (an empty name):
//!
//! ```text
//! request\0find_endp\0label\0smtp:192.0.2.1:25\0\0
//! ```
//!
//! Names and values are arbitrary bytes except NUL (newlines included:
//! Postfix's labels are multi-line). This module has two halves:
//!
//! - [`Decoder`]: an incremental decoder fed whatever bytes arrived (one byte
//!   at a time or many messages at once). It yields one complete message at
//!   a time, enforces [`Limits`] without buffering oversized data, and never
//!   panics on any input.
//! - [`put_attr`] / [`put_end`]: an encoder appending to a caller-owned
//!   buffer.
//!
//! ```
//! use scache_proto::attr::{put_attr, put_end, Decoded, Decoder, Limits};
//!
//! let mut wire = Vec::new();
//! put_attr(&mut wire, b"request", b"find_endp");
//! put_attr(&mut wire, b"label", b"line one\nline two");
//! put_end(&mut wire);
//! assert_eq!(wire, b"request\0find_endp\0label\0line one\nline two\0\0");
//!
//! let mut decoder = Decoder::new(Limits::default());
//! // Feed the bytes in two arbitrary pieces.
//! assert!(matches!(decoder.decode(&wire[..10]), Decoded::Partial));
//! let Decoded::Complete { used, message } = decoder.decode(&wire[10..]) else {
//!     panic!("complete");
//! };
//! assert_eq!(used, wire.len() - 10);
//! assert_eq!(message.len(), 2);
//! assert_eq!(message.attr(1), Some((&b"label"[..], &b"line one\nline two"[..])));
//! ```
#![forbid(unsafe_code)]

use std::fmt;

/// Bounds the [`Decoder`] enforces on every message.
///
/// Postfix's own reader has none; ours must, so that a peer cannot make the
/// daemon buffer without bound. A message over a limit is skipped (not
/// buffered) up to its terminator and reported as one [`DecodeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest attribute name accepted, in bytes (NUL excluded).
    pub max_name_len: usize,
    /// Longest attribute value accepted, in bytes (NUL excluded).
    pub max_value_len: usize,
    /// Most name/value pairs accepted in one message.
    pub max_attrs: usize,
}

impl Default for Limits {
    /// Names up to 256 bytes, values up to 64 KiB, 32 attributes.
    fn default() -> Self {
        Limits {
            max_name_len: 256,
            max_value_len: 64 * 1024,
            max_attrs: 32,
        }
    }
}

/// Why a message was rejected by the [`Decoder`]. The message was consumed
/// whole (up to its terminator), so the stream is still in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// An attribute name was longer than [`Limits::max_name_len`].
    NameTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// An attribute value was longer than [`Limits::max_value_len`].
    ValueTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The message had more than [`Limits::max_attrs`] attributes.
    TooManyAttributes {
        /// The limit in force.
        limit: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::NameTooLong { limit } => {
                write!(f, "attribute name longer than {limit} bytes")
            }
            DecodeError::ValueTooLong { limit } => {
                write!(f, "attribute value longer than {limit} bytes")
            }
            DecodeError::TooManyAttributes { limit } => {
                write!(f, "more than {limit} attributes in one message")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// An incremental, reusable decoder of attr0 messages.
///
/// It keeps one byte buffer holding the current message as it came (its
/// strings with their NULs) and one vector with the position of every
/// string's NUL; both are cleared, not freed, between messages, so a
/// long-lived decoder allocates nothing in steady state. Each call looks
/// for NULs in one pass over machine words and copies what it consumed in
/// one piece.
///
/// Call [`Decoder::decode`] with the bytes at hand; it consumes bytes up to
/// and including the terminator of *one* message and says what happened
/// ([`Decoded`]). Unconsumed bytes (the start of the next pipelined
/// message) are the caller's to feed again.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    /// The current message's bytes so far, NULs included (only what is
    /// kept: an oversized message is not).
    buf: Vec<u8>,
    /// Position in `buf` of the NUL ending every completed string (names
    /// and values alternating). Unused while skipping an oversized message.
    ends: Vec<usize>,
    /// Length of the string being read (counted even while skipping).
    cur_len: usize,
    /// Whether the string being read is a name (else a value).
    at_name: bool,
    /// Completed name/value pairs in the current message.
    attrs: usize,
    /// Set when the current message broke a limit: the rest of it is
    /// skipped and this error is reported at its terminator.
    error: Option<DecodeError>,
    /// A complete message is held in `buf`/`ends` (cleared on the next
    /// `decode` call).
    ready: bool,
    /// The last message was rejected; `buf`/`ends` hold at most its first
    /// attribute (cleared on the next `decode` call).
    rejected: bool,
    /// Some byte of the current (incomplete) message has been consumed.
    started: bool,
}

impl Decoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            buf: Vec::new(),
            ends: Vec::new(),
            cur_len: 0,
            at_name: true,
            attrs: 0,
            error: None,
            ready: false,
            rejected: false,
            started: false,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Enforces `limits` from now on. Meant for use between messages (a
    /// client expecting a larger reply, such as `list`); in the middle of
    /// one, what was counted so far is checked against the new limits.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Whether part of a message has been consumed but not its terminator
    /// (an EOF now would cut a message short).
    pub fn in_message(&self) -> bool {
        self.started
    }

    /// Bytes of message data currently held. Bounded by the limits: an
    /// oversized message is skipped, not held.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// Forgets any partial or complete message.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.ends.clear();
        self.cur_len = 0;
        self.at_name = true;
        self.attrs = 0;
        self.error = None;
        self.ready = false;
        self.rejected = false;
        self.started = false;
    }

    /// Consumes bytes of `input` up to and including the end of one message,
    /// and says what it found (see [`Decoded`]). Never panics, whatever the
    /// input.
    pub fn decode(&mut self, input: &[u8]) -> Decoded<'_> {
        match self.decode_one(input) {
            (_, None) => Decoded::Partial,
            (used, Some(Ok(()))) => Decoded::Complete {
                used,
                message: Message {
                    buf: &self.buf,
                    ends: &self.ends,
                },
            },
            (used, Some(Err(error))) => Decoded::Rejected { used, error },
        }
    }

    /// The decoding loop: bytes consumed, and the outcome once a message
    /// ended.
    ///
    /// Bytes consumed from `input` are copied into `buf` once, at the end
    /// (or when the message turns out to be over a limit); positions pushed
    /// to `ends` meanwhile already count them.
    fn decode_one(&mut self, input: &[u8]) -> (usize, Option<Result<(), DecodeError>>) {
        if self.ready || self.rejected {
            self.reset();
        }
        if input.is_empty() {
            return (0, None);
        }
        if !self.started {
            if let Some(used) = self.decode_whole(input) {
                return (used, Some(Ok(())));
            }
        }
        self.started = true;
        let mut pos = 0;
        let mut done = None;
        // One pass over the input for all its NULs, stopping at the
        // message's terminator.
        for nul_pos in Nuls::new(input) {
            self.cur_len = self.cur_len.saturating_add(nul_pos - pos);
            if self.error.is_none() && self.cur_len > self.string_limit() {
                self.copy(&input[..pos]);
                self.skip_rest(self.string_error());
            }
            pos = nul_pos + 1;
            // Where this NUL lands in `buf` once copied.
            let in_buf = self.buf.len() + nul_pos;
            if let Some(outcome) = self.end_string(in_buf) {
                done = Some(outcome);
                break;
            }
        }
        if done.is_none() {
            // The rest is part of a string not ended yet.
            self.cur_len = self.cur_len.saturating_add(input.len() - pos);
            if self.error.is_none() && self.cur_len > self.string_limit() {
                self.copy(&input[..pos]);
                self.skip_rest(self.string_error());
            }
            pos = input.len();
        }
        if self.error.is_none() && !self.rejected {
            self.copy(&input[..pos]);
        }
        (pos, done)
    }

    /// The common case, in one tight pass: `input` starts with a whole
    /// message within the limits. Then it is kept (one copy) and its
    /// length returned. Otherwise nothing changes and `None` says to take
    /// the general way.
    fn decode_whole(&mut self, input: &[u8]) -> Option<usize> {
        /// What one NUL means for the message.
        enum Step {
            More,
            End(usize),
            Give,
        }
        let limits = self.limits;
        let mut start = 0;
        let mut at_name = true;
        let mut attrs = 0;
        let ends = &mut self.ends;
        let mut on_nul = |nul: usize| -> Step {
            let len = nul - start;
            if at_name {
                if len == 0 {
                    return Step::End(nul + 1);
                }
                if len > limits.max_name_len || attrs >= limits.max_attrs {
                    return Step::Give;
                }
            } else {
                if len > limits.max_value_len {
                    return Step::Give;
                }
                attrs += 1;
            }
            ends.push(nul);
            at_name = !at_name;
            start = nul + 1;
            Step::More
        };
        let mut outcome = None;
        let words = input.chunks_exact(8);
        let tail_at = input.len() - words.remainder().len();
        'scan: {
            for (w, word) in words.enumerate() {
                let mut mask = Nuls::nul_mask(u64::from_le_bytes([
                    word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
                ]));
                while mask != 0 {
                    let nul = w * 8 + (mask.trailing_zeros() / 8) as usize;
                    mask &= mask - 1;
                    match on_nul(nul) {
                        Step::More => {}
                        Step::End(used) => {
                            outcome = Some(used);
                            break 'scan;
                        }
                        Step::Give => break 'scan,
                    }
                }
            }
            for (i, &b) in input[tail_at..].iter().enumerate() {
                if b == 0 {
                    match on_nul(tail_at + i) {
                        Step::More => {}
                        Step::End(used) => {
                            outcome = Some(used);
                            break 'scan;
                        }
                        Step::Give => break 'scan,
                    }
                }
            }
        }
        match outcome {
            Some(used) => {
                self.buf.extend_from_slice(&input[..used]);
                self.ready = true;
                Some(used)
            }
            None => {
                self.ends.clear();
                None
            }
        }
    }

    /// Appends consumed bytes to the kept message (not while skipping).
    fn copy(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The length limit of the string being read.
    fn string_limit(&self) -> usize {
        if self.at_name {
            self.limits.max_name_len
        } else {
            self.limits.max_value_len
        }
    }

    /// The error for a string over [`Decoder::string_limit`].
    fn string_error(&self) -> DecodeError {
        if self.at_name {
            DecodeError::NameTooLong {
                limit: self.limits.max_name_len,
            }
        } else {
            DecodeError::ValueTooLong {
                limit: self.limits.max_value_len,
            }
        }
    }

    /// The message completed by the last [`Decoder::decode`] call, if that
    /// call returned [`Decoded::Complete`] (`None` at any other time).
    pub fn message(&self) -> Option<Message<'_>> {
        self.ready.then_some(Message {
            buf: &self.buf,
            ends: &self.ends,
        })
    }

    /// The first attribute of the message rejected by the last
    /// [`Decoder::decode`] call (the one that returned
    /// [`Decoded::Rejected`]), if it was complete and within the limits. A
    /// server uses it to shape its "malformed" reply after the request
    /// kind, e.g. with [`crate::message::rejected_kind`].
    pub fn rejected_head(&self) -> Option<(&[u8], &[u8])> {
        if !self.rejected || self.ends.len() < 2 {
            return None;
        }
        let (name_end, value_end) = (self.ends[0], self.ends[1]);
        Some((
            self.buf.get(..name_end)?,
            self.buf.get(name_end + 1..value_end)?,
        ))
    }

    /// Enters skip mode: drops what was kept of this message, except its
    /// first attribute if complete (see [`Decoder::rejected_head`]).
    fn skip_rest(&mut self, error: DecodeError) {
        if self.ends.len() >= 2 {
            let keep = self.ends[1] + 1;
            self.buf.truncate(keep);
            self.ends.truncate(2);
        } else {
            self.buf.clear();
            self.ends.clear();
        }
        self.error = Some(error);
    }

    /// A NUL ended the current string; it sits at `in_buf` in `buf` (once
    /// copied). Returns the outcome when it was the message terminator.
    fn end_string(&mut self, in_buf: usize) -> Option<Result<(), DecodeError>> {
        let len = std::mem::take(&mut self.cur_len);
        if self.at_name {
            if len == 0 {
                // The terminator: an empty name.
                self.started = false;
                return Some(match self.error.take() {
                    Some(e) => {
                        self.rejected = true;
                        self.at_name = true;
                        self.attrs = 0;
                        Err(e)
                    }
                    None => {
                        self.ready = true;
                        Ok(())
                    }
                });
            }
            if self.error.is_none() && self.attrs >= self.limits.max_attrs {
                let limit = self.limits.max_attrs;
                self.skip_rest(DecodeError::TooManyAttributes { limit });
            }
            self.at_name = false;
        } else {
            self.at_name = true;
            self.attrs = self.attrs.saturating_add(1);
        }
        if self.error.is_none() {
            self.ends.push(in_buf);
        }
        None
    }
}

/// The position of the first NUL byte of `bytes`, found sixteen bytes at
/// a time as two machine words (the strings of a request are short: a
/// call costs a few instructions per word, where a general search routine
/// pays more to set up than to search).
#[inline]
pub(crate) fn find_nul(bytes: &[u8]) -> Option<usize> {
    let word = |eight: &[u8]| u64::from_le_bytes(eight.try_into().unwrap_or([0xff; 8]));
    let first = |mask: u64| (mask.trailing_zeros() / 8) as usize;
    let mut pairs = bytes.chunks_exact(16);
    let mut at = 0;
    for pair in &mut pairs {
        let low = Nuls::nul_mask(word(&pair[..8]));
        let high = Nuls::nul_mask(word(&pair[8..]));
        if low | high != 0 {
            return Some(
                at + if low != 0 {
                    first(low)
                } else {
                    8 + first(high)
                },
            );
        }
        at += 16;
    }
    let mut rest = pairs.remainder();
    if let Some((eight, tail)) = rest.split_first_chunk::<8>() {
        let mask = Nuls::nul_mask(u64::from_le_bytes(*eight));
        if mask != 0 {
            return Some(at + first(mask));
        }
        at += 8;
        rest = tail;
    }
    rest.iter().position(|&b| b == 0).map(|i| at + i)
}

/// The positions of the NUL bytes of a slice, in order, found eight bytes
/// at a time: the strings of a message are short (labels of a few dozen
/// bytes), so one pass over machine words beats a search call per string.
struct Nuls<'a> {
    input: &'a [u8],
    /// Offset of the word in `mask`.
    base: usize,
    /// One high bit per NUL byte of the current word not yet returned.
    mask: u64,
}

impl<'a> Nuls<'a> {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

    fn new(input: &'a [u8]) -> Nuls<'a> {
        let mut nuls = Nuls {
            input,
            base: 0,
            mask: 0,
        };
        nuls.mask = nuls.word_mask(0);
        nuls
    }

    /// Exactly the high bits of the NUL bytes of `word` set. No carry
    /// crosses bytes: each byte's low seven bits plus 0x7f is at most 0xfe.
    fn nul_mask(word: u64) -> u64 {
        !(((word & Self::LOW7) + Self::LOW7) | word | Self::LOW7)
    }

    /// The NUL bytes of the word at `at` (up to eight bytes, padded with
    /// non-NULs): exactly their high bits set.
    fn word_mask(&self, at: usize) -> u64 {
        let rest = &self.input[at.min(self.input.len())..];
        let word = match rest.first_chunk::<8>() {
            Some(w) => u64::from_le_bytes(*w),
            None => {
                // The last, short word: its bytes, then 0xff padding.
                let mut word = u64::MAX;
                for (i, &b) in rest.iter().enumerate() {
                    word &= !(0xff << (8 * i));
                    word |= u64::from(b) << (8 * i);
                }
                word
            }
        };
        Self::nul_mask(word)
    }
}

impl Iterator for Nuls<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.base += 8;
            if self.base >= self.input.len() {
                return None;
            }
            self.mask = self.word_mask(self.base);
        }
        let at = self.base + (self.mask.trailing_zeros() / 8) as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// What one [`Decoder::decode`] call found, in the manner of httparse's
/// `Status`: a complete message, a message cut short, or a message over
/// the limits.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'d> {
    /// A complete message: `used` bytes were consumed, through its
    /// terminator. It is borrowed from the decoder until the next call
    /// ([`Decoder::message`] gives it again).
    Complete {
        /// Bytes of the input consumed.
        used: usize,
        /// The message.
        message: Message<'d>,
    },
    /// All of the input was consumed and the message is not complete: feed
    /// more.
    Partial,
    /// A complete message broke a [`Limits`] bound. It was skipped (not
    /// buffered) through its terminator, so the stream is still in sync.
    Rejected {
        /// Bytes of the input consumed.
        used: usize,
        /// Which bound it broke.
        error: DecodeError,
    },
}

/// One decoded attribute list, borrowed from its [`Decoder`].
#[derive(Clone, Copy)]
pub struct Message<'a> {
    buf: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Message<'a> {
    /// Number of attributes (name/value pairs).
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// Whether the message has no attribute (a bare terminator).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th attribute as `(name, value)`.
    pub fn attr(&self, i: usize) -> Option<(&'a [u8], &'a [u8])> {
        let name = self.string(i.checked_mul(2)?)?;
        let value = self.string(i * 2 + 1)?;
        Some((name, value))
    }

    /// The value of the first attribute called `name`.
    pub fn get(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// All attributes in order.
    pub fn iter(&self) -> Attrs<'a> {
        Attrs {
            msg: *self,
            next: 0,
        }
    }

    fn string(&self, k: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(k)?;
        let start = match k {
            0 => 0,
            _ => *self.ends.get(k - 1)? + 1,
        };
        self.buf.get(start..end)
    }
}

impl fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|(n, v)| format!("{}={}", Printable(n), Printable(v))),
            )
            .finish()
    }
}

impl<'a> IntoIterator for Message<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Attrs<'a>;
    fn into_iter(self) -> Attrs<'a> {
        self.iter()
    }
}

/// Iterator over the attributes of a [`Message`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    msg: Message<'a>,
    next: usize,
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.msg.attr(self.next)?;
        self.next += 1;
        Some(item)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.msg.len().saturating_sub(self.next);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Attrs<'_> {}

/// Appends one attribute (`name \0 value \0`) to `out`.
///
/// Neither `name` nor `value` may contain a NUL byte, and `name` must not be
/// empty (that would be the list terminator): such input would be framed
/// wrongly. Check untrusted input with [`is_valid_value`] first (the request
/// encoders in [`crate::message`] do).
pub fn put_attr(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    debug_assert!(
        !name.is_empty() && is_valid_value(name),
        "bad attribute name"
    );
    debug_assert!(is_valid_value(value), "NUL in attribute value");
    out.reserve(name.len() + value.len() + 2);
    out.extend_from_slice(name);
    out.push(0);
    out.extend_from_slice(value);
    out.push(0);
}

/// Appends the list terminator (one NUL) to `out`.
pub fn put_end(out: &mut Vec<u8>) {
    out.push(0);
}

/// Whether `s` can travel as an attribute value (it has no NUL byte).
pub fn is_valid_value(s: &[u8]) -> bool {
    !s.contains(&0)
}

/// Displays bytes for a log line: printable ASCII as is, everything else
/// escaped (`\n`, `\xNN`), cut after 100 bytes like Postfix's `%.100s`.
#[derive(Clone, Copy)]
pub struct Printable<'a>(pub &'a [u8]);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MAX: usize = 100;
        for &b in self.0.iter().take(MAX) {
            match b {
                b'\n' => f.write_str("\\n")?,
                b'\t' => f.write_str("\\t")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => fmt::Write::write_char(f, b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        if self.0.len() > MAX {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<Vec<(Vec<u8>, Vec<u8>)>, DecodeError>;

    fn decode_all(dec: &mut Decoder, mut input: &[u8]) -> Vec<Outcome> {
        let mut out = Vec::new();
        while !input.is_empty() {
            match dec.decode(input) {
                Decoded::Partial => input = &[],
                Decoded::Complete { used, message } => {
                    out.push(Ok(message
                        .iter()
                        .map(|(n, v)| (n.to_vec(), v.to_vec()))
                        .collect()));
                    input = &input[used..];
                }
                Decoded::Rejected { used, error } => {
                    out.push(Err(error));
                    input = &input[used..];
                }
            }
        }
        out
    }

    /// The outcome of one call, with the bytes it consumed.
    fn step(d: &mut Decoder, input: &[u8]) -> (usize, Option<Outcome>) {
        match d.decode(input) {
            Decoded::Partial => (input.len(), None),
            Decoded::Complete { used, message } => (
                used,
                Some(Ok(message
                    .iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect())),
            ),
            Decoded::Rejected { used, error } => (used, Some(Err(error))),
        }
    }

    #[test]
    fn empty_message() {
        let mut d = Decoder::new(Limits::default());
        assert_eq!(step(&mut d, b"\0"), (1, Some(Ok(vec![]))));
        assert!(d.message().is_some_and(|m| m.is_empty()));
        assert!(!d.in_message());
    }

    #[test]
    fn empty_value_is_not_terminator() {
        let mut d = Decoder::new(Limits::default());
        assert_eq!(step(&mut d, b"dummy\0\0"), (7, None));
        assert!(d.in_message());
        assert!(d.message().is_none());
        assert_eq!(
            step(&mut d, b"\0"),
            (1, Some(Ok(vec![(b"dummy".to_vec(), vec![])])))
        );
        let msg = d.message().expect("complete");
        assert_eq!(msg.attr(0), Some((&b"dummy"[..], &b""[..])));
        assert_eq!(msg.attr(1), None);
    }

    #[test]
    fn limits_skip_whole_message() {
        let limits = Limits {
            max_name_len: 4,
            max_value_len: 3,
            max_attrs: 2,
        };
        let mut d = Decoder::new(limits);
        let input = b"abcde\0v\0\0name\0vvvv\0\0a\0b\0c\0d\0e\0f\0\0ok\0yes\0\0";
        let got = decode_all(&mut d, input);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Err(DecodeError::NameTooLong { limit: 4 }));
        assert_eq!(got[1], Err(DecodeError::ValueTooLong { limit: 3 }));
        assert_eq!(got[2], Err(DecodeError::TooManyAttributes { limit: 2 }));
        assert_eq!(got[3], Ok(vec![(b"ok".to_vec(), b"yes".to_vec())]));
    }

    #[test]
    fn oversized_value_with_nul_flood_stays_in_sync() {
        let limits = Limits {
            max_name_len: 8,
            max_value_len: 8,
            max_attrs: 4,
        };
        let mut d = Decoder::new(limits);
        // The value is too long; the skipped part still alternates names and
        // values, so "x\0\0" inside is value-then-name... and the message
        // ends at the first empty name.
        let mut input = b"n\0".to_vec();
        input.extend(std::iter::repeat(b'v').take(100));
        input.extend_from_slice(b"\0x\0y\0\0n\0v\0\0");
        let got = decode_all(&mut d, &input);
        assert_eq!(
            got,
            vec![
                Err(DecodeError::ValueTooLong { limit: 8 }),
                Ok(vec![(b"n".to_vec(), b"v".to_vec())])
            ]
        );
        assert!(d.buf.capacity() <= 64);
    }

    #[test]
    fn rejected_head_keeps_first_attribute() {
        let limits = Limits {
            max_name_len: 16,
            max_value_len: 9,
            max_attrs: 4,
        };
        let mut d = Decoder::new(limits);
        let (_, r) = step(&mut d, b"request\0find_endp\0label\0abcdefghij\0\0");
        assert_eq!(r, Some(Err(DecodeError::ValueTooLong { limit: 9 })));
        assert_eq!(
            d.rejected_head(),
            Some((&b"request"[..], &b"find_endp"[..]))
        );
        assert!(d.message().is_none());
        // Too long at the first attribute: nothing kept.
        let (_, r) = step(&mut d, b"request\0find_endp_with_long_name\0\0");
        assert!(matches!(r, Some(Err(_))));
        assert_eq!(d.rejected_head(), None);
        // Cleared by the next call.
        let (_, r) = step(&mut d, b"\0");
        assert_eq!(r, Some(Ok(vec![])));
        assert_eq!(d.rejected_head(), None);
    }

    #[test]
    fn nuls_are_found_exactly() {
        let cases: [&[u8]; 7] = [
            b"",
            b"\0",
            b"abc",
            b"a\0\0b\0\x01\0\x80\0\xff",
            b"\0\x01\0\x01\0\x01\0\x01\0\x01\0\x01\0\x01\0",
            b"12345678\0abcdefgh\0",
            b"\x01\x00\x7f\x00\x80\x00\xfe\x00\xff\x00",
        ];
        for input in cases {
            let want: Vec<usize> = (0..input.len()).filter(|&i| input[i] == 0).collect();
            assert_eq!(Nuls::new(input).collect::<Vec<_>>(), want, "{input:?}");
        }
        // Every byte value next to NULs, at every offset of a word.
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut input = vec![b; 24];
                input[at] = 0;
                let want: Vec<usize> = (0..input.len()).filter(|&i| input[i] == 0).collect();
                assert_eq!(Nuls::new(&input).collect::<Vec<_>>(), want, "{b} at {at}");
            }
        }
    }

    /// find_nul finds the first NUL wherever it is: in the first or the
    /// second word of a pair, in the last word, in the bytes after it, or
    /// nowhere.
    #[test]
    fn find_nul_is_the_first_nul() {
        for len in 0..40 {
            for b in [1u8, 0x7f, 0x80, 0xff] {
                let mut input = vec![b; len];
                assert_eq!(find_nul(&input), None, "{len} {b}");
                for at in (0..len).rev() {
                    input[at] = 0;
                    assert_eq!(find_nul(&input), Some(at), "{len} {b} {at}");
                    if at + 2 < len {
                        input[at + 2] = 0;
                        assert_eq!(find_nul(&input), Some(at), "{len} {b} {at}+2");
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn find_nul_agrees_with_position(input in proptest::collection::vec(
            proptest::prop_oneof![3 => proptest::num::u8::ANY, 1 => proptest::strategy::Just(0u8)],
            0..80,
        )) {
            proptest::prop_assert_eq!(find_nul(&input), input.iter().position(|&b| b == 0));
        }
    }

    #[test]
    fn printable() {
        assert_eq!(Printable(b"a\nb\x01\\").to_string(), "a\\nb\\x01\\\\");
        assert_eq!(Printable(&[b'x'; 150]).to_string().len(), 103);
    }
}
