//! SharedCache's background expiry thread and its guard (what reaches the
//! departure hook, what dropping the guard waits for, what the guard
//! reports), and SharedCache's own accessors. Written to pin what cargo-mutants found untested (see
//! docs/testing.md).

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use scache_core::{
    CacheError, ConnectionCache, DepartureCause, Limits, Liveness, ManualClock, MonotonicClock,
    SharedCache,
};

/// Polls `cond` every 5 ms until it holds or `limit` passes.
fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sessions_expired_by_the_thread_reach_the_departure_hook() {
    let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    cache.set_departure_hook(move |d| {
        let _ = tx.lock().unwrap().send((d.fd, d.cause));
    });
    let expiry = cache.expire_in_background();
    cache
        .save_endp(Duration::from_millis(20), b"e", b"", 7)
        .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok((7, DepartureCause::Expired))
    );
    assert_eq!(cache.stats().sess_count, 0);
    drop(expiry);
}

#[test]
fn dropping_the_guard_waits_for_the_thread_to_stop() {
    let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
    let (started_tx, started_rx) = mpsc::channel();
    let started_tx = std::sync::Mutex::new(started_tx);
    // The hook runs on the expiry thread and takes a while.
    cache.set_departure_hook(move |_| {
        let _ = started_tx.lock().unwrap().send(());
        std::thread::sleep(Duration::from_millis(300));
    });
    let expiry = cache.expire_in_background();
    assert_eq!(format!("{expiry:?}"), "BackgroundExpiry { running: true }");
    cache
        .save_endp(Duration::from_millis(1), b"e", b"", 1)
        .unwrap();
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the thread expired the session");
    // The thread is inside the hook, holding its reference to the cache:
    // dropping the guard returns only once the thread has let go of it.
    drop(expiry);
    assert_eq!(Arc::strong_count(&cache), 1);
}

#[test]
fn the_guard_reports_a_thread_that_died() {
    let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
    // A hook that panics ends the expiry thread (the panic message below
    // is expected).
    cache.set_departure_hook(|_| panic!("hook panics on purpose"));
    let expiry = cache.expire_in_background();
    assert!(expiry.is_running());
    cache
        .save_endp(Duration::from_millis(1), b"e", b"", 1)
        .unwrap();
    assert!(
        eventually(Duration::from_secs(10), || !expiry.is_running()),
        "the expiry thread should have ended with its hook's panic"
    );
    assert_eq!(format!("{expiry:?}"), "BackgroundExpiry { running: false }");
}

// ----- SharedCache's own accessors ------------------------------------

#[test]
fn shared_cache_limits_can_be_read_and_changed() {
    let limits = Limits {
        max_sessions: Some(2),
        ..Limits::NONE
    };
    let cache = SharedCache::<u32, ManualClock>::with_limits(ManualClock::new(), limits);
    assert_eq!(cache.limits(), limits);
    let tighter = Limits {
        max_sessions: Some(1),
        ..Limits::NONE
    };
    cache.set_limits(tighter);
    assert_eq!(cache.limits(), tighter);
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 1)
        .unwrap();
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 2)
        .unwrap();
    assert_eq!(cache.stats().sess_count, 1);
}

#[test]
fn shared_cache_liveness_probe_is_asked_at_checkout() {
    let cache = SharedCache::<u32, ManualClock>::new(ManualClock::new());
    cache.set_liveness_probe(|&fd| {
        if fd == 1 {
            Liveness::Unread
        } else {
            Liveness::Alive
        }
    });
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 1)
        .unwrap();
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 2)
        .unwrap();
    let found = cache.find_endp(b"e").unwrap().map(|f| f.fd);
    assert_eq!(found, Some(2));
}

#[test]
fn shared_cache_through_the_trait_and_debug() {
    let mut cache = SharedCache::<u32, ManualClock>::new(ManualClock::new());
    {
        let c: &mut dyn ConnectionCache<Fd = u32, Error = CacheError> = &mut cache;
        c.save_endp(Duration::from_secs(5), b"e", b"p", 9).unwrap();
        let found = c.find_endp(b"e").unwrap().expect("cached");
        assert_eq!((found.fd, &found.endp_prop[..]), (9, &b"p"[..]));
    }
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 3)
        .unwrap();
    let text = format!("{cache:?}");
    assert!(
        text.starts_with("SharedCache { cache: MultiCache {"),
        "{text}"
    );
    assert!(text.contains("sess_count: 1"), "{text}");
    assert!(text.ends_with("has_hook: false }"), "{text}");
}
