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

/// Decodes one complete message from `wire` and hands it to `check`.
fn with_message(wire: &[u8], check: impl FnOnce(scache_proto::attr::Message<'_>)) {
    let mut d = Decoder::new(Limits::default());
    let Decoded::Complete { message, .. } = d.decode(wire) else {
        panic!("complete");
    };
    check(message);
}

#[test]
fn messages_answer_lookups_by_name() {
    with_message(b"request\0find_endp\0label\0a\nb\0label\0second\0\0", |m| {
        assert!(!m.is_empty());
        assert_eq!(m.len(), 3);
        assert_eq!(m.get(b"request"), Some(&b"find_endp"[..]));
        // The first of two attributes with the same name.
        assert_eq!(m.get(b"label"), Some(&b"a\nb"[..]));
        assert_eq!(m.get(b"absent"), None);
        assert_eq!(
            format!("{m:?}"),
            r#"["request=find_endp", "label=a\\nb", "label=second"]"#
        );
        let mut it = m.iter();
        assert_eq!(it.size_hint(), (3, Some(3)));
        assert_eq!(it.len(), 3);
        it.next();
        assert_eq!(it.size_hint(), (2, Some(2)));
        it.by_ref().count();
        assert_eq!(it.size_hint(), (0, Some(0)));
        assert_eq!(m.into_iter().count(), 3);
    });
    with_message(b"\0", |m| {
        assert!(m.is_empty());
        assert_eq!(m.get(b"request"), None);
        assert_eq!(m.iter().size_hint(), (0, Some(0)));
    });
}

#[test]
fn printable_escapes_and_cuts_after_100_bytes() {
    use scache_proto::attr::Printable;
    assert_eq!(
        Printable(b"a\tb\nc\\d\x7f\x00").to_string(),
        r"a\tb\nc\\d\x7f\x00"
    );
    assert_eq!(format!("{:?}", Printable(b"x\ty")), r#""x\ty""#);
    // Exactly 100 bytes: all shown, no ellipsis; 101: cut after 100.
    assert_eq!(Printable(&[b'x'; 100]).to_string(), "x".repeat(100));
    assert_eq!(
        Printable(&[b'x'; 101]).to_string(),
        format!("{}...", "x".repeat(100))
    );
}
