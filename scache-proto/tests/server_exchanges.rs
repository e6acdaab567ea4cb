//! The sans-I/O server connection driven through whole exchanges, with
//! the daemon's own backend (scache-bin's CacheBackend) over a cache in
//! virtual time: every step of `docs/protocol.md` as the
//! connection sees it (output, phase, descriptors to send, notices,
//! timeouts, put-backs). The daemon's own tests cover the same through
//! sockets; these run in scache-proto's suite, so that mutation testing of
//! server.rs sees them (see docs/testing.md).

use std::rc::Rc;
use std::time::Duration;

use scache_bin::backend::CacheBackend;
use scache_core::{Instant, ManualClock, MultiCache};
use scache_proto::attr::{put_attr, put_end, Limits};
use scache_proto::message::RequestKind;
use scache_proto::server::{Backend, CloseReason, Notice, Phase, ServerConn};

/// The daemon's own backend over a cache in virtual time; descriptors are
/// numbers.
type Mem = CacheBackend<u32, Rc<ManualClock>>;
type Taken = scache_core::Taken<u32>;

fn mem() -> Mem {
    let clock = Rc::new(ManualClock::new());
    CacheBackend::new(MultiCache::new(clock), Duration::from_secs(60), false)
}

/// Caches session `fd` under `endp` (as a save_endp exchange would).
fn cached(mem: &mut Mem, endp: &[u8], endp_prop: &[u8], fd: u32) {
    Backend::save_endp(mem, 60, endp, endp_prop, fd);
}

fn sess_count(mem: &Mem) -> usize {
    mem.sess_count()
}

fn put_backs(mem: &Mem) -> u64 {
    mem.cache().stats().put_backs
}

fn msg(attrs: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in attrs {
        put_attr(&mut out, n.as_bytes(), v.as_bytes());
    }
    put_end(&mut out);
    out
}

const DUMMY: &[u8] = b"dummy\0\0\0";

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// A connection whose greeting has been written.
fn conn(mem: &mut Mem) -> ServerConn<Taken> {
    let mut c = ServerConn::new(Limits::default(), t(0));
    assert_eq!(c.poll_output(), b"protocol\0connection_cache_protocol\0\0");
    assert!(!c.is_idle(), "the greeting is waiting");
    let n = c.poll_output().len();
    c.handle_output_sent(t(0), n, mem);
    assert!(c.is_idle());
    c
}

/// Takes what the connection wrote.
fn written(c: &mut ServerConn<Taken>, mem: &mut Mem, now: Instant) -> Vec<u8> {
    let out = c.poll_output().to_vec();
    c.handle_output_sent(now, out.len(), mem);
    out
}

#[test]
fn save_endp_then_find_endp_hand_the_descriptor_over() {
    let mut mem = mem();
    let mut c = conn(&mut mem);
    let save = msg(&[
        ("request", "save_endp"),
        ("ttl", "2"),
        ("label", "e"),
        ("property", "p"),
    ]);
    c.handle_input(t(1), &mut mem, &save, None);
    assert_eq!(written(&mut c, &mut mem, t(1)), DUMMY);
    assert_eq!(c.phase(), Phase::AwaitFd);
    assert_eq!(c.requests(), 0, "counted when the descriptor arrives");
    assert!(!c.is_idle());
    c.handle_input(t(2), &mut mem, b"\0", Some(7));
    assert_eq!(written(&mut c, &mut mem, t(2)), b"status\x000\0\0");
    assert_eq!(c.requests(), 1);
    assert_eq!(sess_count(&mem), 1);
    assert!(c.is_idle());

    c.handle_input(
        t(3),
        &mut mem,
        &msg(&[("request", "find_endp"), ("label", "e")]),
        None,
    );
    assert_eq!(
        written(&mut c, &mut mem, t(3)),
        b"status\x000\0property\0p\0\0"
    );
    assert_eq!(c.phase(), Phase::AwaitDummyBeforeFd);
    assert!(c.poll_fd_to_send().is_none());
    c.handle_input(t(4), &mut mem, DUMMY, None);
    assert_eq!(c.phase(), Phase::SendFd);
    assert!(!c.wants_input());
    assert_eq!(c.poll_fd_to_send().map(|s| s.fd), Some(7));
    let sent = c.handle_fd_sent(t(5), &mut mem).expect("the session");
    assert_eq!(sent.fd, 7);
    assert!(c.handle_fd_sent(t(5), &mut mem).is_none(), "only once");
    assert_eq!(c.phase(), Phase::AwaitDummyAfterFd);
    c.handle_input(t(6), &mut mem, DUMMY, None);
    assert_eq!(c.phase(), Phase::Request);
    assert!(c.is_idle());
    assert_eq!(c.requests(), 2);
    assert_eq!(c.poll_notice(), None);
    assert_eq!(put_backs(&mem), 0);
}

#[test]
fn find_dest_and_stats_replies() {
    let mut mem = mem();
    cached(&mut mem, b"e", b"ep", 3);
    let mut c = conn(&mut mem);
    let save_dest = msg(&[
        ("request", "save_dest"),
        ("ttl", "5"),
        ("label", "d"),
        ("property", "dp"),
        ("label", "e"),
    ]);
    c.handle_input(t(1), &mut mem, &save_dest, None);
    assert_eq!(written(&mut c, &mut mem, t(1)), b"status\x000\0\0");
    c.handle_input(
        t(1),
        &mut mem,
        &msg(&[("request", "find_dest"), ("label", "x")]),
        None,
    );
    assert_eq!(
        written(&mut c, &mut mem, t(1)),
        b"status\x002\0property\0\0property\0\0\0"
    );
    c.handle_input(
        t(1),
        &mut mem,
        &msg(&[("request", "find_dest"), ("label", "d")]),
        None,
    );
    assert_eq!(
        written(&mut c, &mut mem, t(1)),
        b"status\x000\0property\0dp\0property\0ep\0\0"
    );
    // Dummy, descriptor and closing dummy all in one go.
    c.handle_input(t(2), &mut mem, DUMMY, None);
    assert_eq!(c.handle_fd_sent(t(2), &mut mem).map(|s| s.fd), Some(3));
    c.handle_input(t(2), &mut mem, DUMMY, None);
    c.handle_input(t(2), &mut mem, &msg(&[("request", "stats")]), None);
    // status 0, then the backend's counters, then the terminator.
    let stats = written(&mut c, &mut mem, t(2));
    assert!(stats.starts_with(b"status\x000\0uptime\0"), "{stats:?}");
    assert!(stats.ends_with(b"\0\0"));
    let text = String::from_utf8_lossy(&stats).into_owned();
    assert!(text.contains("\0dest_hits\x001\0"), "{text:?}");
    assert_eq!(c.requests(), 4);
}

#[test]
fn a_missing_descriptor_is_status_2_and_a_stray_one_is_dropped() {
    let mut mem = mem();
    let mut c = conn(&mut mem);
    let save = msg(&[
        ("request", "save_endp"),
        ("ttl", "2"),
        ("label", "e"),
        ("property", ""),
    ]);
    c.handle_input(t(1), &mut mem, &save, None);
    written(&mut c, &mut mem, t(1));
    // The data byte without its descriptor.
    c.handle_input(t(2), &mut mem, b"\0", None);
    assert_eq!(written(&mut c, &mut mem, t(2)), b"status\x002\0\0");
    assert_eq!(c.poll_notice(), Some(Notice::NoDescriptor));
    assert_eq!(c.requests(), 1);
    assert!(c.is_idle());
    // A descriptor nobody asked for, with a request after it.
    let find = msg(&[("request", "find_endp"), ("label", "e")]);
    c.handle_input(t(3), &mut mem, &find, Some(9));
    assert_eq!(c.poll_notice(), Some(Notice::UnexpectedDescriptor));
    assert_eq!(
        written(&mut c, &mut mem, t(3)),
        b"status\x002\0property\0\0\0"
    );
    assert_eq!(sess_count(&mem), 0);
}

#[test]
fn malformed_and_extra_attributes_are_noticed() {
    let mut mem = mem();
    let mut c = conn(&mut mem);
    c.handle_input(t(1), &mut mem, &msg(&[("request", "find_endp")]), None);
    assert_eq!(
        written(&mut c, &mut mem, t(1)),
        b"status\x001\0property\0\0\0"
    );
    assert_eq!(
        c.poll_notice(),
        Some(Notice::Malformed {
            kind: RequestKind::FindEndp,
            reason: "find_endp: missing attribute label".into()
        })
    );
    let extra = msg(&[("request", "find_endp"), ("label", "e"), ("more", "x")]);
    c.handle_input(t(2), &mut mem, &extra, None);
    assert_eq!(
        c.poll_notice(),
        Some(Notice::ExtraAttribute {
            kind: RequestKind::FindEndp,
            name: "more".into()
        })
    );
    assert_eq!(c.requests(), 2);
}

#[test]
fn a_peer_stalled_in_an_exchange_times_out_and_the_session_goes_back() {
    let mut mem = mem();
    cached(&mut mem, b"e", b"", 4);
    let mut c = conn(&mut mem);
    // No timeout set: never.
    c.handle_input(t(10), &mut mem, b"request\0fi", None);
    assert_eq!(c.poll_timeout(), None);
    c.set_timeout(Some(Duration::from_secs(2)));
    assert!(!c.is_idle(), "in the middle of a message");
    assert_eq!(c.poll_timeout(), Some(t(2_010)));
    c.handle_input(t(20), &mut mem, b"nd_endp\0label\0e\0\0", None);
    written(&mut c, &mut mem, t(30));
    assert_eq!(c.phase(), Phase::AwaitDummyBeforeFd);
    assert_eq!(c.poll_timeout(), Some(t(2_030)));
    // Writing nothing is no progress.
    c.handle_output_sent(t(1_000), 0, &mut mem);
    assert_eq!(c.poll_timeout(), Some(t(2_030)));
    assert!(!c.handle_timeout(t(2_029), &mut mem));
    assert_eq!(c.close_reason(), None);
    assert!(c.handle_timeout(t(2_030), &mut mem));
    assert_eq!(c.phase(), Phase::Closed);
    assert_eq!(c.close_reason(), Some(&CloseReason::Timeout));
    assert_eq!(put_backs(&mem), 1);
    assert_eq!(sess_count(&mem), 1, "back in the cache");
    assert_eq!(c.poll_notice(), Some(Notice::SessionPutBack));
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.wants_input());
    // Closed stays closed, with its first reason.
    c.handle_close(&mut mem, CloseReason::PeerClosed);
    assert_eq!(c.close_reason(), Some(&CloseReason::Timeout));
}

#[test]
fn an_idle_connection_never_times_out() {
    let mut mem = mem();
    let mut c = conn(&mut mem);
    c.set_timeout(Some(Duration::from_secs(1)));
    assert_eq!(c.poll_timeout(), None);
    assert!(!c.handle_timeout(t(1_000_000), &mut mem));
    assert_eq!(c.phase(), Phase::Request);
}

#[test]
fn a_failed_send_or_a_wrong_dummy_closes_the_connection() {
    let mut mem = mem();
    cached(&mut mem, b"e", b"", 5);
    cached(&mut mem, b"e", b"", 6);
    let find = msg(&[("request", "find_endp"), ("label", "e")]);

    let mut c = conn(&mut mem);
    c.handle_input(t(1), &mut mem, &find, None);
    c.handle_input(t(1), &mut mem, DUMMY, None);
    c.handle_fd_send_failed(&mut mem);
    assert_eq!(c.close_reason(), Some(&CloseReason::SendFailed));
    assert_eq!(put_backs(&mem), 1);

    let mut c = conn(&mut mem);
    c.handle_input(t(1), &mut mem, &find, None);
    c.handle_fd_send_failed(&mut mem);
    assert_eq!(c.close_reason(), None, "no descriptor was due");
    c.handle_input(t(1), &mut mem, &find, None);
    assert_eq!(
        c.close_reason(),
        Some(&CloseReason::ProtocolViolation(
            "expected dummy message before descriptor".into()
        ))
    );
    assert_eq!(put_backs(&mem), 2);
}

#[test]
fn input_pauses_at_a_chosen_high_water_mark() {
    let mut mem = mem();
    let mut c = conn(&mut mem);
    c.set_output_high_water(100);
    let find = msg(&[("request", "find_endp"), ("label", "e")]);
    let reply_len = b"status\x002\0property\0\0\0".len();
    let mut answered = 0;
    while c.wants_input() {
        c.handle_input(t(1), &mut mem, &find, None);
        answered += 1;
    }
    assert_eq!(answered, 100usize.div_ceil(reply_len));
    // Input that arrives meanwhile is kept and served once there is room.
    c.handle_input(t(1), &mut mem, &find, None);
    assert_eq!(c.requests(), answered as u64);
    written(&mut c, &mut mem, t(2));
    assert_eq!(c.requests(), answered as u64 + 1);
}

#[test]
fn output_written_in_pieces_keeps_the_rest() {
    let mut mem = mem();
    let mut c: ServerConn<Taken> = ServerConn::new(Limits::default(), t(0));
    let greeting = c.poll_output().to_vec();
    c.handle_output_sent(t(0), 10, &mut mem);
    assert_eq!(c.poll_output(), &greeting[10..]);
    c.handle_output_sent(t(0), 0, &mut mem);
    assert_eq!(c.poll_output(), &greeting[10..]);
    c.handle_output_sent(t(0), greeting.len() - 10, &mut mem);
    assert!(c.poll_output().is_empty());
    assert!(c.is_idle());
}

#[test]
fn the_descriptor_waits_until_the_reply_is_written() {
    let mut mem = mem();
    cached(&mut mem, b"e", b"", 8);
    let mut c = conn(&mut mem);
    c.handle_input(
        t(1),
        &mut mem,
        &msg(&[("request", "find_endp"), ("label", "e")]),
        None,
    );
    // The client's dummy arrives before the reply was written out.
    c.handle_input(t(1), &mut mem, DUMMY, None);
    assert_eq!(c.phase(), Phase::SendFd);
    assert!(c.poll_fd_to_send().is_none());
    written(&mut c, &mut mem, t(2));
    assert_eq!(c.poll_fd_to_send().map(|s| s.fd), Some(8));
}

#[test]
fn anything_but_a_dummy_after_the_descriptor_closes_the_connection() {
    let mut mem = mem();
    cached(&mut mem, b"e", b"", 2);
    let mut c = conn(&mut mem);
    let find = msg(&[("request", "find_endp"), ("label", "e")]);
    c.handle_input(t(1), &mut mem, &find, None);
    written(&mut c, &mut mem, t(1));
    c.handle_input(t(1), &mut mem, DUMMY, None);
    assert_eq!(c.handle_fd_sent(t(1), &mut mem).map(|s| s.fd), Some(2));
    c.handle_input(t(2), &mut mem, &find, None);
    assert_eq!(
        c.close_reason(),
        Some(&CloseReason::ProtocolViolation(
            "expected dummy message after descriptor".into()
        ))
    );
    // The descriptor was handed over: nothing goes back.
    assert_eq!(put_backs(&mem), 0);
}

/// The same after the descriptor, for messages the fast path leaves to the
/// general way: a dummy with a further attribute is a dummy; a request
/// with an extra attribute is not.
#[test]
fn after_the_descriptor_the_general_way_tells_a_dummy_from_the_rest() {
    let mut mem = mem();
    cached(&mut mem, b"e", b"", 2);
    cached(&mut mem, b"e", b"", 3);
    let mut c = conn(&mut mem);
    let find = msg(&[("request", "find_endp"), ("label", "e")]);
    let hand_over = |c: &mut ServerConn<Taken>, mem: &mut Mem, fd: u32| {
        c.handle_input(t(1), mem, &find, None);
        written(c, mem, t(1));
        c.handle_input(t(1), mem, DUMMY, None);
        assert_eq!(c.handle_fd_sent(t(1), mem).map(|s| s.fd), Some(fd));
        assert_eq!(c.phase(), Phase::AwaitDummyAfterFd);
    };
    hand_over(&mut c, &mut mem, 2);
    c.handle_input(t(2), &mut mem, &msg(&[("dummy", ""), ("more", "x")]), None);
    assert_eq!(c.phase(), Phase::Request);
    assert_eq!(c.close_reason(), None);

    hand_over(&mut c, &mut mem, 3);
    let find_extra = msg(&[("request", "find_endp"), ("label", "e"), ("more", "x")]);
    c.handle_input(t(2), &mut mem, &find_extra, None);
    assert_eq!(c.phase(), Phase::Closed);
    assert_eq!(
        c.close_reason(),
        Some(&CloseReason::ProtocolViolation(
            "expected dummy message after descriptor".into()
        ))
    );
    assert_eq!(put_backs(&mem), 0);
}

#[test]
fn a_request_over_the_limits_and_the_next_one_in_the_same_read() {
    let mut mem = mem();
    let mut c: ServerConn<Taken> = ServerConn::new(
        Limits {
            max_value_len: 9,
            ..Limits::default()
        },
        t(0),
    );
    let n = c.poll_output().len();
    c.handle_output_sent(t(0), n, &mut mem);
    let mut input = msg(&[("request", "find_endp"), ("label", "far too long")]);
    input.extend(msg(&[("request", "find_endp"), ("label", "e")]));
    c.handle_input(t(1), &mut mem, &input, None);
    assert_eq!(
        written(&mut c, &mut mem, t(1)),
        b"status\x001\0property\0\0\0status\x002\0property\0\0\0"
    );
    assert_eq!(c.requests(), 2);
    assert!(matches!(
        c.poll_notice(),
        Some(Notice::Malformed {
            kind: RequestKind::FindEndp,
            ..
        })
    ));
}
