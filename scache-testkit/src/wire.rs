//! The raw protocol as a test client sees it: read one attr0 message at a
//! time from a blocking socket, without reading past it (a descriptor may
//! follow), and split messages into attributes.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use scache_proto::attr::{Decoded, Decoder, Limits};

/// Generous bounds for reading what a daemon sends (a `stats` reply has a
/// few dozen attributes).
const READ_LIMITS: Limits = Limits {
    max_name_len: 1024,
    max_value_len: 1 << 20,
    max_attrs: 1024,
};

/// A read that stopped before the end of a message: why, and the bytes
/// read before it.
#[derive(Debug)]
pub struct Incomplete {
    /// `UnexpectedEof` for end of file; `InvalidData` when the bytes are
    /// not a message within generous limits; otherwise the read's error
    /// (`WouldBlock` or `TimedOut` for a read timeout).
    pub error: io::Error,
    /// What was read before it.
    pub partial: Vec<u8>,
}

impl From<Incomplete> for io::Error {
    fn from(i: Incomplete) -> io::Error {
        io::Error::new(
            i.error.kind(),
            format!(
                "{} after {:?}",
                i.error,
                String::from_utf8_lossy(&i.partial)
            ),
        )
    }
}

/// Reads exactly one message, through its terminator, one byte at a time
/// so that nothing after it is consumed. End of file or a read error
/// (including a read timeout) before the terminator is an error that
/// shows what was read. An interrupted read is retried.
pub fn read_message(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    read_message_or_partial(reader).map_err(io::Error::from)
}

/// [`read_message`], but an error keeps the bytes read before it apart,
/// for tests that classify what a daemon did (closed, went silent, sent
/// half a message).
pub fn read_message_or_partial(reader: &mut impl Read) -> Result<Vec<u8>, Incomplete> {
    let mut decoder = Decoder::new(READ_LIMITS);
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => {
                return Err(Incomplete {
                    error: io::Error::new(io::ErrorKind::UnexpectedEof, "EOF"),
                    partial: got,
                })
            }
            Ok(_) => got.push(byte[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                return Err(Incomplete {
                    error,
                    partial: got,
                })
            }
        }
        match decoder.decode(&byte) {
            Decoded::Partial => {}
            Decoded::Complete { .. } => return Ok(got),
            Decoded::Rejected { error, .. } => {
                return Err(Incomplete {
                    error: io::Error::new(io::ErrorKind::InvalidData, error),
                    partial: got,
                })
            }
        }
    }
}

/// [`read_message`] on a socket with `timeout` as its read timeout (kept
/// afterwards).
pub fn read_message_within(sock: &UnixStream, timeout: Duration) -> io::Result<Vec<u8>> {
    sock.set_read_timeout(Some(timeout))?;
    let mut reader = sock;
    read_message(&mut reader)
}

/// A message written as text, `name=value` pairs separated by single
/// spaces: `text_message("request=find_endp label=x")` is
/// `request\0find_endp\0label\0x\0\0`. For messages whose names and
/// values hold neither a space nor `=` (a value may be empty:
/// `property=`); panics on a pair without `=`.
pub fn text_message(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for pair in text.split(' ').filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("{pair:?} is not name=value"));
        for part in [name, value] {
            out.extend_from_slice(part.as_bytes());
            out.push(0);
        }
    }
    out.push(0);
    out
}

/// The attributes of one whole message (as read by [`read_message`]).
/// Panics if `msg` is not exactly one well-formed message.
pub fn attrs(msg: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut decoder = Decoder::new(READ_LIMITS);
    match decoder.decode(msg) {
        Decoded::Complete { used, message } if used == msg.len() => message
            .iter()
            .map(|(n, v)| (n.to_vec(), v.to_vec()))
            .collect(),
        other => panic!(
            "not one whole message ({other:?}): {:?}",
            String::from_utf8_lossy(msg)
        ),
    }
}

/// The attributes of one message as text (lossy UTF-8), for assertions.
pub fn text_attrs(msg: &[u8]) -> Vec<(String, String)> {
    attrs(msg)
        .into_iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(&n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect()
}

/// The numeric attributes of a message (a `stats` reply) by name; values
/// that are not numbers are left out.
pub fn numbers(msg: &[u8]) -> BTreeMap<String, u64> {
    text_attrs(msg)
        .into_iter()
        .filter_map(|(n, v)| Some((n, v.parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_message_and_no_more() {
        let mut input: &[u8] = b"status\x000\0property\0a\nb\0\0dummy\0\0\0";
        let first = read_message(&mut input).unwrap();
        assert_eq!(first, b"status\x000\0property\0a\nb\0\0");
        assert_eq!(
            attrs(&first),
            vec![
                (b"status".to_vec(), b"0".to_vec()),
                (b"property".to_vec(), b"a\nb".to_vec())
            ]
        );
        assert_eq!(input, b"dummy\0\0\0");
        assert_eq!(read_message(&mut input).unwrap(), b"dummy\0\0\0");
        let err = read_message(&mut input).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // An empty value is not the terminator.
        let mut input: &[u8] = b"dummy\0\0";
        assert!(read_message(&mut input).is_err());
    }

    #[test]
    fn an_incomplete_read_keeps_what_came_before() {
        let mut input: &[u8] = b"status\x000\0prop";
        let i = read_message_or_partial(&mut input).unwrap_err();
        assert_eq!(i.error.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(i.partial, b"status\x000\0prop");
        let e = io::Error::from(i);
        assert!(e.to_string().contains("status"), "{e}");
    }

    #[test]
    fn text_message_writes_attr0() {
        assert_eq!(
            text_message("request=find_endp label=x property="),
            b"request\0find_endp\0label\0x\0property\0\0\0"
        );
        assert_eq!(text_message(""), b"\0");
    }

    #[test]
    fn numbers_keeps_the_numeric_attributes() {
        let n = numbers(b"status\x000\0sess_count\x003\0name\0x\0\0");
        assert_eq!(n.get("status"), Some(&0));
        assert_eq!(n.get("sess_count"), Some(&3));
        assert_eq!(n.get("name"), None);
    }
}
