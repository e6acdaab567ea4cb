//! The raw protocol as a test client sees it: read one attr0 message at a
//! time from a blocking socket, without reading past it (a descriptor may
//! follow), and split messages into attributes.

use std::io::{self, Read};

use scache_proto::attr::{Decoded, Decoder, Limits};

/// Generous bounds for reading what a daemon sends (a `stats` reply has a
/// few dozen attributes).
const READ_LIMITS: Limits = Limits {
    max_name_len: 1024,
    max_value_len: 1 << 20,
    max_attrs: 1024,
};

/// Reads exactly one message, through its terminator, one byte at a time
/// so that nothing after it is consumed. End of file or a read error
/// (including a read timeout) before the terminator is an error that
/// shows what was read.
pub fn read_message(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut decoder = Decoder::new(READ_LIMITS);
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("EOF after {:?}", String::from_utf8_lossy(&got)),
                ))
            }
            Ok(_) => got.push(byte[0]),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{e} after {:?}", String::from_utf8_lossy(&got)),
                ))
            }
        }
        match decoder.decode(&byte) {
            Decoded::Partial => {}
            Decoded::Complete { .. } => return Ok(got),
            Decoded::Rejected { error, .. } => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, error))
            }
        }
    }
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
}
