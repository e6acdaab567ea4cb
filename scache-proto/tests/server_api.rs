//! The server connection's defaults and texts: the output high-water mark,
//! close reasons, its Debug. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

use scache_core::Instant;
use scache_proto::attr::{put_attr, put_end, Limits};
use scache_proto::message::Status;
use scache_proto::server::{Backend, CloseReason, ServerConn, DEFAULT_OUTPUT_HIGH_WATER};

/// A cache that never has anything.
struct Empty;

impl Backend for Empty {
    type Fd = ();
    type Session = ();
    fn save_endp(&mut self, _: u32, _: &[u8], _: &[u8], _: ()) -> Status {
        Status::Ok
    }
    fn find_endp(&mut self, _: &[u8]) -> Option<()> {
        None
    }
    fn save_dest(&mut self, _: u32, _: &[u8], _: &[u8], _: &[u8]) -> Status {
        Status::Ok
    }
    fn find_dest(&mut self, _: &[u8]) -> Option<()> {
        None
    }
    fn endp_prop<'s>(&self, _: &'s ()) -> &'s [u8] {
        b""
    }
    fn dest_prop<'s>(&self, _: &'s ()) -> &'s [u8] {
        b""
    }
    fn put_back(&mut self, _: ()) {}
    fn stats(&mut self, _: &mut Vec<u8>) {}
}

#[test]
fn input_pauses_once_64_kib_of_replies_wait() {
    assert_eq!(DEFAULT_OUTPUT_HIGH_WATER, 64 * 1024);
    let mut conn: ServerConn<()> = ServerConn::new(Limits::default(), Instant::ZERO);
    let mut request = Vec::new();
    put_attr(&mut request, b"request", b"find_endp");
    put_attr(&mut request, b"label", b"e");
    put_end(&mut request);
    // Each miss is answered with status 2 and an empty property; nothing
    // is written out, so the replies pile up.
    let mut answered = 0;
    while conn.wants_input() {
        conn.handle_input(Instant::ZERO, &mut Empty, &request, None);
        answered += 1;
        assert!(answered < 100_000, "input never paused");
    }
    let waiting = conn.poll_output().len();
    assert!(waiting >= DEFAULT_OUTPUT_HIGH_WATER, "{waiting}");
    assert!(waiting < DEFAULT_OUTPUT_HIGH_WATER + 64, "{waiting}");
    assert!(answered > 1_000, "{answered}");
    // Once written, input is wanted again.
    conn.handle_output_sent(Instant::ZERO, waiting, &mut Empty);
    assert!(conn.wants_input());
}

#[test]
fn close_reasons_display() {
    for (reason, text) in [
        (CloseReason::PeerClosed, "peer closed the connection"),
        (
            CloseReason::ProtocolViolation("request instead of dummy".into()),
            "protocol violation: request instead of dummy",
        ),
        (CloseReason::SendFailed, "cannot send file descriptor"),
        (CloseReason::Timeout, "timeout in the middle of an exchange"),
    ] {
        assert_eq!(reason.to_string(), text);
    }
}

#[test]
fn a_connection_debugs_its_phase_and_buffers() {
    // The greeting (36 bytes) is queued from the start.
    let conn: ServerConn<()> = ServerConn::new(Limits::default(), Instant::ZERO);
    assert_eq!(
        format!("{conn:?}"),
        "ServerConn { phase: Request, pending: 0, output: 36, timeout: None }"
    );
}
