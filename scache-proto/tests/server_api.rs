//! The server connection's defaults and texts: the output high-water mark,
//! close reasons, its Debug. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

use std::rc::Rc;
use std::time::Duration;

use scache_bin::backend::CacheBackend;
use scache_core::{Instant, ManualClock, MultiCache};
use scache_proto::attr::{put_attr, put_end, Limits};
use scache_proto::server::{CloseReason, ServerConn, DEFAULT_OUTPUT_HIGH_WATER};

/// The daemon's backend over an empty cache: every find misses.
fn empty() -> CacheBackend<u32, Rc<ManualClock>> {
    let clock = Rc::new(ManualClock::new());
    CacheBackend::new(MultiCache::new(clock), Duration::from_secs(60), false)
}

#[test]
fn input_pauses_once_64_kib_of_replies_wait() {
    assert_eq!(DEFAULT_OUTPUT_HIGH_WATER, 64 * 1024);
    let mut backend = empty();
    let mut conn = ServerConn::new(Limits::default(), Instant::ZERO);
    let mut request = Vec::new();
    put_attr(&mut request, b"request", b"find_endp");
    put_attr(&mut request, b"label", b"e");
    put_end(&mut request);
    // Each miss is answered with status 2 and an empty property; nothing
    // is written out, so the replies pile up.
    let mut answered = 0;
    while conn.wants_input() {
        conn.handle_input(Instant::ZERO, &mut backend, &request, None);
        answered += 1;
        assert!(answered < 100_000, "input never paused");
    }
    let waiting = conn.poll_output().len();
    assert!(waiting >= DEFAULT_OUTPUT_HIGH_WATER, "{waiting}");
    assert!(waiting < DEFAULT_OUTPUT_HIGH_WATER + 64, "{waiting}");
    assert!(answered > 1_000, "{answered}");
    // Once written, input is wanted again.
    conn.handle_output_sent(Instant::ZERO, waiting, &mut backend);
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
    let conn: ServerConn<scache_core::Taken<u32>> =
        ServerConn::new(Limits::default(), Instant::ZERO);
    assert_eq!(
        format!("{conn:?}"),
        "ServerConn { phase: Request, pending: 0, output: 36, timeout: None }"
    );
}
