//! The Display and source() of the protocol's error types: what a log line
//! or an error chain shows. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

use std::error::Error;
use std::io;
use std::time::Duration;

use scache_proto::attr::DecodeError;
use scache_proto::client::ProtocolError;
use scache_proto::message::{EncodeError, ReplyError, RequestKind, Status};
use scache_proto::ClientError;

#[test]
fn client_errors_display_and_chain() {
    let cases: Vec<(ClientError, &str, Option<&str>)> = vec![
        (
            ClientError::Disabled,
            "connection caching is disabled",
            None,
        ),
        (
            ClientError::Unavailable {
                retry_in: Duration::from_millis(1_500),
            },
            "connection cache unavailable after repeated failures; next try in 1.5s",
            None,
        ),
        (
            ClientError::Invalid(EncodeError::BadTtl { ttl: 0 }),
            "invalid request: ttl 0 is not between 1 and 2147483647 seconds",
            Some("ttl 0 is not between 1 and 2147483647 seconds"),
        ),
        (
            ClientError::Io(io::Error::other("boom")),
            "boom",
            Some("boom"),
        ),
        (ClientError::Timeout, "timeout", None),
        (ClientError::Closed, "connection closed by server", None),
        (
            ClientError::Protocol(ProtocolError::UnexpectedData),
            "protocol error: unexpected data from server",
            Some("unexpected data from server"),
        ),
    ];
    for (error, text, source) in cases {
        assert_eq!(error.to_string(), text);
        assert_eq!(
            error.source().map(|s| s.to_string()).as_deref(),
            source,
            "{error:?}"
        );
    }
}

#[test]
fn protocol_errors_display() {
    let cases = [
        (
            ProtocolError::Decode(DecodeError::TooManyAttributes { limit: 3 }),
            "undecodable server message: more than 3 attributes in one message",
        ),
        (
            ProtocolError::Reply(ReplyError::Missing { expected: "status" }),
            "missing attribute status in reply",
        ),
        (
            ProtocolError::ExpectedDummy,
            "server did not send the dummy message",
        ),
        (
            ProtocolError::UnexpectedDescriptor,
            "unexpected file descriptor from server",
        ),
        (
            ProtocolError::OutOfSequence,
            "client exchange driven out of sequence",
        ),
    ];
    for (error, text) in cases {
        assert_eq!(error.to_string(), text);
    }
}

#[test]
fn message_errors_and_names_display() {
    assert_eq!(
        EncodeError::ContainsNul { field: "label" }.to_string(),
        "label contains a NUL byte"
    );
    let replies = [
        (
            ReplyError::Unexpected {
                expected: "status",
                found: "x".into(),
            },
            "unexpected attribute x in reply where status was expected",
        ),
        (
            ReplyError::BadStatus { value: "9".into() },
            "bad status value \"9\" in reply",
        ),
        (
            ReplyError::BadGreeting {
                protocol: "smtp".into(),
            },
            "unexpected protocol \"smtp\" in server greeting",
        ),
    ];
    for (error, text) in replies {
        assert_eq!(error.to_string(), text);
    }
    assert_eq!(Status::Ok.to_string(), "0 (ok)");
    assert_eq!(Status::Fail.to_string(), "2 (not found or failed)");
    for (kind, name) in [
        (RequestKind::SaveEndp, "save_endp"),
        (RequestKind::FindEndp, "find_endp"),
        (RequestKind::SaveDest, "save_dest"),
        (RequestKind::FindDest, "find_dest"),
        (RequestKind::Stats, "stats"),
        (RequestKind::Unknown, "(unknown)"),
        (RequestKind::Missing, "(missing)"),
    ] {
        assert_eq!(kind.to_string(), name);
        assert_eq!(kind.name(), name);
        if !name.starts_with('(') {
            assert_eq!(RequestKind::from_wire(name.as_bytes()), kind);
        }
    }
    assert_eq!(RequestKind::from_wire(b"save"), RequestKind::Unknown);
}

#[test]
fn a_broken_exchange_says_why() {
    use scache_proto::attr::Limits;
    use scache_proto::client::{ClientExchange, Step};
    let mut ex = ClientExchange::new(Limits::default());
    assert_eq!(ex.error(), None);
    let mut out = Vec::new();
    let err = ex
        .handle_bytes(b"protocol\0smtp\0\0", &mut out)
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::Reply(ReplyError::BadGreeting {
            protocol: "smtp".into()
        })
    );
    assert!(matches!(ex.poll_step(), Step::Broken));
    assert_eq!(ex.error(), Some(&err));
}

#[test]
fn start_errors_display() {
    use scache_proto::client::StartError;
    assert_eq!(
        StartError::NotIdle.to_string(),
        "an operation is already in progress"
    );
    assert_eq!(
        StartError::Invalid(EncodeError::ContainsNul { field: "label" }).to_string(),
        "label contains a NUL byte"
    );
}
