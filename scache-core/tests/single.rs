//! The single-session cache (Postfix's `scache_single`).

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{DropLog, Tok};
use scache_core::{CacheSize, ConnectionCache, Instant, ManualClock, SingleCache};

fn setup() -> (Rc<ManualClock>, DropLog, SingleCache<Tok, Rc<ManualClock>>) {
    let clock = Rc::new(ManualClock::new());
    (Rc::clone(&clock), DropLog::new(), SingleCache::new(clock))
}

fn size(d: usize, e: usize, s: usize) -> CacheSize {
    CacheSize {
        dest_count: d,
        endp_count: e,
        sess_count: s,
    }
}

const TTL: Duration = Duration::from_secs(2);

#[test]
fn a_save_replaces_and_closes_the_previous_session() {
    let (_clock, log, mut c) = setup();
    c.save_endp(TTL, b"e1", b"p1", log.tok(1)).unwrap();
    assert_eq!(c.size(), size(0, 1, 1));
    c.save_endp(TTL, b"e2", b"p2", log.tok(2)).unwrap();
    assert_eq!(log.take(), vec![1]);
    assert_eq!(c.size(), size(0, 1, 1));
    assert!(c.find_endp(b"e1").unwrap().is_none());
    let found = c.find_endp(b"e2").unwrap().unwrap();
    assert_eq!((found.fd.id, &found.endp_prop[..]), (2, &b"p2"[..]));
    assert_eq!(c.size(), size(0, 0, 0));
    assert!(c.find_endp(b"e2").unwrap().is_none());
}

#[test]
fn a_label_mismatch_leaves_the_session_cached() {
    let (_clock, log, mut c) = setup();
    c.save_endp(TTL, b"e1", b"", log.tok(1)).unwrap();
    assert!(c.find_endp(b"other").unwrap().is_none());
    assert_eq!(c.size(), size(0, 1, 1));
    assert_eq!(log.take(), Vec::<u32>::new());
}

#[test]
fn find_dest_needs_matching_label_and_the_bound_endpoint_session() {
    let (_clock, log, mut c) = setup();
    c.save_dest(TTL, b"d", b"dp", b"e1").unwrap();
    assert!(c.find_dest(b"d").unwrap().is_none()); // no session at all
    c.save_endp(TTL, b"e2", b"ep", log.tok(2)).unwrap();
    assert!(c.find_dest(b"d").unwrap().is_none()); // session under another endpoint
    assert_eq!(c.size(), size(1, 1, 1));
    c.save_endp(TTL, b"e1", b"ep", log.tok(1)).unwrap();
    assert_eq!(log.take(), vec![2]);
    assert!(c.find_dest(b"x").unwrap().is_none()); // other destination
    let found = c.find_dest(b"d").unwrap().unwrap();
    assert_eq!(
        (found.fd.id, &found.dest_prop[..], &found.endp_prop[..]),
        (1, &b"dp"[..], &b"ep"[..])
    );
    // The binding stays; the session is gone.
    assert_eq!(c.size(), size(1, 0, 0));
    assert!(c.find_dest(b"d").unwrap().is_none());
}

#[test]
fn save_dest_replaces_or_refreshes_the_binding() {
    let (clock, log, mut c) = setup();
    c.save_dest(TTL, b"d1", b"p", b"e").unwrap();
    c.save_dest(TTL, b"d2", b"p", b"e").unwrap();
    c.save_endp(Duration::from_secs(10), b"e", b"", log.tok(1))
        .unwrap();
    assert!(c.find_dest(b"d1").unwrap().is_none());
    // Same binding again one second later: only the deadline moves.
    clock.advance(Duration::from_secs(1));
    c.save_dest(TTL, b"d2", b"p", b"e").unwrap();
    assert_eq!(c.next_deadline(), Some(Instant::from_millis(3000)));
    clock.advance(Duration::from_millis(1999));
    assert_eq!(c.expire_due(), 0);
    assert!(c.find_dest(b"d2").unwrap().is_some());
}

#[test]
fn session_and_binding_expire_on_their_own() {
    let (clock, log, mut c) = setup();
    c.save_dest(Duration::from_secs(3), b"d", b"", b"e")
        .unwrap();
    c.save_endp(Duration::from_secs(1), b"e", b"", log.tok(1))
        .unwrap();
    assert_eq!(c.next_deadline(), Some(Instant::from_millis(1000)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.expire_due(), 1);
    assert_eq!(log.take(), vec![1]);
    assert_eq!(c.size(), size(1, 0, 0));
    assert_eq!(c.next_deadline(), Some(Instant::from_millis(3000)));
    // Operations expire first, without an explicit call.
    c.save_endp(Duration::from_secs(5), b"e", b"", log.tok(2))
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(c.find_dest(b"d").unwrap().is_none());
    assert_eq!(c.size(), size(0, 1, 1));
    assert_eq!(log.take(), Vec::<u32>::new());
    // Dropping the cache closes the session.
    drop(c);
    assert_eq!(log.take(), vec![2]);
}

#[test]
fn the_clock_never_goes_back() {
    let (clock, log, mut c) = setup();
    clock.set(Instant::from_millis(5000));
    c.save_endp(TTL, b"e", b"", log.tok(1)).unwrap();
    clock.set(Instant::ZERO);
    assert_eq!(c.expire_due(), 0);
    assert_eq!(c.now(), Instant::from_millis(5000));
    assert_eq!(c.expire(Instant::from_millis(7000)), 1);
    assert_eq!(log.take(), vec![1]);
}
