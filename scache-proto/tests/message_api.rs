//! The request/reply layer's small pieces: status wire values, the server
//! encoders the daemon does not use on its hot path, the kind of a
//! rejected request, error texts built from received bytes. Written to pin
//! what cargo-mutants found untested (see docs/testing.md).

use scache_proto::attr::{Decoded, Decoder, Limits, Message};
use scache_proto::message::{
    encode_greeting, encode_stats_reply, parse_greeting, parse_reply, parse_request, rejected_kind,
    ReplyError, RequestKind, Status,
};

fn with_message(wire: &[u8], check: impl FnOnce(Message<'_>)) {
    let mut d = Decoder::new(Limits::default());
    let Decoded::Complete { message, .. } = d.decode(wire) else {
        panic!("complete: {wire:?}");
    };
    check(message);
}

#[test]
fn statuses_have_their_wire_digits() {
    for (status, wire, code) in [
        (Status::Ok, b"0", 0),
        (Status::Bad, b"1", 1),
        (Status::Fail, b"2", 2),
    ] {
        assert_eq!(status.as_wire(), wire);
        assert_eq!(Status::from_code(code), Some(status));
    }
    assert_eq!(Status::from_code(3), None);
    assert_eq!(Status::Bad.to_string(), "1 (malformed request)");
}

#[test]
fn greeting_and_stats_reply_bytes() {
    let mut out = Vec::new();
    encode_greeting(&mut out);
    assert_eq!(out, b"protocol\0connection_cache_protocol\0\0");
    with_message(&out, |m| assert_eq!(parse_greeting(&m), Ok(())));
    let mut out = Vec::new();
    encode_stats_reply(&mut out, &[("sess_count", 3), ("endp_hits", 12)]);
    assert_eq!(out, b"status\x000\0sess_count\x003\0endp_hits\x0012\0\0");
}

#[test]
fn a_rejected_message_not_led_by_request_is_of_missing_kind() {
    let mut d = Decoder::new(Limits {
        max_value_len: 9,
        ..Limits::default()
    });
    let r = d.decode(b"label\0find\0label\0far too long\0\0");
    assert!(matches!(r, Decoded::Rejected { .. }));
    assert_eq!(d.rejected_head(), Some((&b"label"[..], &b"find"[..])));
    assert_eq!(rejected_kind(&d), RequestKind::Missing);
    let r = d.decode(b"request\0stats\0label\0far too long\0\0");
    assert!(matches!(r, Decoded::Rejected { .. }));
    assert_eq!(rejected_kind(&d), RequestKind::Stats);
}

#[test]
fn malformed_requests_say_what_is_wrong() {
    let cases: [(&[u8], &str); 6] = [
        (b"\0", "empty message where a request was expected"),
        (
            b"label\0x\0\0",
            "unexpected attribute label where attribute request was expected",
        ),
        (
            b"request\0save\tit\0\0",
            "unrecognized request: \"save\\tit\"",
        ),
        (
            b"request\0find_endp\0\0",
            "find_endp: missing attribute label",
        ),
        (
            b"request\0find_dest\0lab\nel\0x\0\0",
            "find_dest: unexpected attribute lab\\nel where attribute label was expected",
        ),
        (
            b"request\0save_dest\0ttl\0-1\0\0",
            "save_dest: bad ttl value \"-1\"",
        ),
    ];
    for (wire, text) in cases {
        with_message(wire, |m| {
            let err = parse_request(&m).expect_err("malformed");
            assert_eq!(err.to_string(), text);
        });
    }
}

#[test]
fn reply_errors_show_what_was_received() {
    with_message(b"bogus\nname\0x\0\0", |m| {
        assert_eq!(
            parse_reply(RequestKind::SaveEndp, &m).unwrap_err(),
            ReplyError::Unexpected {
                expected: "status",
                found: "bogus\\nname".into()
            }
        );
    });
    with_message(b"status\x009\x01\0\0", |m| {
        assert_eq!(
            parse_reply(RequestKind::SaveDest, &m).unwrap_err(),
            ReplyError::BadStatus {
                value: "9\\x01".into()
            }
        );
    });
    with_message(b"protocol\0smtp\0\0", |m| {
        assert_eq!(
            parse_greeting(&m),
            Err(ReplyError::BadGreeting {
                protocol: "smtp".into()
            })
        );
    });
}
