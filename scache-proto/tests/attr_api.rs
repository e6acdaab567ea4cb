//! The attr0 decoder's accessors and error texts, which the codec's
//! property tests do not look at. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

use scache_proto::attr::{DecodeError, Decoded, Decoder, Limits};

#[test]
fn decode_errors_say_which_limit() {
    assert_eq!(
        DecodeError::NameTooLong { limit: 8 }.to_string(),
        "attribute name longer than 8 bytes"
    );
    assert_eq!(
        DecodeError::ValueTooLong { limit: 65536 }.to_string(),
        "attribute value longer than 65536 bytes"
    );
    assert_eq!(
        DecodeError::TooManyAttributes { limit: 32 }.to_string(),
        "more than 32 attributes in one message"
    );
}

#[test]
fn a_decoder_reports_its_limits() {
    let limits = Limits {
        max_name_len: 5,
        max_value_len: 7,
        max_attrs: 3,
    };
    assert_eq!(Decoder::new(limits).limits(), limits);
    assert_eq!(
        Decoder::new(Limits::default()).limits(),
        Limits {
            max_name_len: 256,
            max_value_len: 64 * 1024,
            max_attrs: 32,
        }
    );
}

#[test]
fn buffered_len_counts_the_bytes_held_of_the_current_message() {
    let limits = Limits {
        max_name_len: 16,
        max_value_len: 10,
        max_attrs: 4,
    };
    let mut d = Decoder::new(limits);
    assert_eq!(d.buffered_len(), 0);
    assert!(matches!(d.decode(b"request\0find"), Decoded::Partial));
    assert_eq!(d.buffered_len(), 12);
    assert!(matches!(d.decode(b"_endp\0"), Decoded::Partial));
    assert_eq!(d.buffered_len(), 18);
    // Over the value limit: only the first attribute stays held, however
    // much of the message goes by.
    assert!(matches!(d.decode(b"label\0"), Decoded::Partial));
    assert!(matches!(d.decode(&[b'x'; 100]), Decoded::Partial));
    assert_eq!(d.buffered_len(), 18);
    let Decoded::Rejected { error, .. } = d.decode(b"\0\0") else {
        panic!("rejected");
    };
    assert_eq!(error, DecodeError::ValueTooLong { limit: 10 });
    assert_eq!(d.buffered_len(), 18);
    // A complete message is held (terminator included) until the next call.
    assert!(matches!(d.decode(b"a\0b\0\0"), Decoded::Complete { .. }));
    assert_eq!(d.buffered_len(), 5);
    d.reset();
    assert_eq!(d.buffered_len(), 0);
}
