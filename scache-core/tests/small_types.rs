//! The small public types around the caches: clocks, instants, eviction
//! causes and their names, departure causes, errors, the liveness probe.
//! Written to pin what cargo-mutants found untested (see docs/testing.md).

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use scache_core::{
    probe, probe_fd, CacheError, Clock, ConnectionCache, DepartureCause, EvictionCause, Instant,
    Limits, Liveness, ManualClock, MonotonicClock, MultiCache, Stats,
};

#[test]
fn saturating_duration_since_is_the_difference_or_zero() {
    let a = Instant::from_millis(1_500);
    let b = Instant::from_millis(4_250);
    assert_eq!(b.saturating_duration_since(a), Duration::from_millis(2_750));
    assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    assert_eq!(a.saturating_duration_since(a), Duration::ZERO);
    assert_eq!(
        Instant::from_millis(u64::MAX).saturating_duration_since(Instant::ZERO),
        Duration::from_millis(u64::MAX)
    );
}

#[test]
fn saturating_add_adds_whole_milliseconds_and_saturates() {
    let t = Instant::from_millis(10);
    assert_eq!(t.saturating_add(Duration::from_millis(5)).as_millis(), 15);
    assert_eq!(t.saturating_add(Duration::from_micros(999)).as_millis(), 10);
    assert_eq!(t.saturating_add(Duration::MAX).as_millis(), u64::MAX);
}

/// Reads `clock` through the trait, so that the impl under test is the one
/// for `C` itself (not an auto-deref to the inner clock).
fn now_of<C: Clock>(clock: C) -> Instant {
    clock.now()
}

#[test]
fn clock_impls_for_references_and_pointers_read_the_inner_clock() {
    let manual = ManualClock::new();
    manual.set(Instant::from_millis(42_000));
    assert_eq!(now_of(&manual), Instant::from_millis(42_000));

    let rc = Rc::new(ManualClock::new());
    rc.advance(Duration::from_millis(1_234));
    assert_eq!(now_of(Rc::clone(&rc)), Instant::from_millis(1_234));
    let rc_dyn: Rc<dyn Clock> = rc;
    assert_eq!(now_of(rc_dyn), Instant::from_millis(1_234));

    let arc = Arc::new(ManualClock::new());
    arc.advance(Duration::from_secs(7));
    assert_eq!(now_of(Arc::clone(&arc)), Instant::from_millis(7_000));
    let arc_dyn: Arc<dyn Clock + Send + Sync> = arc;
    assert_eq!(now_of(arc_dyn), Instant::from_millis(7_000));
}

#[test]
fn a_cache_reads_time_through_an_arc_clock() {
    let clock = Arc::new(ManualClock::new());
    clock.set(Instant::from_millis(5_000));
    let mut cache: MultiCache<u32, Arc<ManualClock>> = MultiCache::new(Arc::clone(&clock));
    cache
        .save_endp(Duration::from_secs(2), b"e", b"", 1)
        .unwrap();
    assert_eq!(cache.next_deadline(), Some(Instant::from_millis(7_000)));
}

#[test]
fn monotonic_clock_counts_milliseconds_from_its_creation() {
    let started = std::time::Instant::now();
    let clock = MonotonicClock::new();
    // A fresh clock starts at its origin: it cannot have counted more
    // than the time since `started`.
    let first = clock.now().as_millis();
    assert!(
        u128::from(first) <= started.elapsed().as_millis(),
        "{first}"
    );
    std::thread::sleep(Duration::from_millis(30));
    let now = clock.now().as_millis();
    let hi = started.elapsed().as_millis() as u64;
    assert!(now >= 30, "slept 30 ms, the clock says {now} ms");
    assert!(now <= hi + 1, "clock says {now} ms, {hi} ms have passed");
    // Copies read the same timeline.
    let copy = clock;
    assert!(copy.now().as_millis() >= now);
    let other_started = std::time::Instant::now();
    let other = MonotonicClock::default();
    assert!(u128::from(other.now().as_millis()) <= other_started.elapsed().as_millis() + 1);
}

#[test]
fn eviction_causes_have_positions_and_names() {
    let names = [
        "session_limit",
        "endpoint_limit",
        "destination_limit",
        "label_limit",
        "peer_closed",
        "peer_data",
        "fd_pressure",
        "caller",
    ];
    assert_eq!(EvictionCause::ALL.len(), EvictionCause::COUNT);
    for (i, cause) in EvictionCause::ALL.into_iter().enumerate() {
        assert_eq!(cause.index(), i, "{cause:?}");
        assert_eq!(cause.as_str(), names[i]);
        assert_eq!(cause.to_string(), names[i]);
    }
}

#[test]
fn per_cause_counters_are_read_at_the_causes_position() {
    let mut stats = Stats::default();
    for (i, cause) in EvictionCause::ALL.into_iter().enumerate() {
        stats.evicted_sessions[i] = 10 + i as u64;
        stats.evicted_bindings[i] = 100 + i as u64;
        assert_eq!(stats.evicted_sessions_for(cause), 10 + i as u64);
        assert_eq!(stats.evicted_bindings_for(cause), 100 + i as u64);
    }
    assert_eq!(
        stats.evictions_total(),
        (10..18).sum::<u64>() + (100..108).sum::<u64>()
    );
}

#[test]
fn removing_a_session_counts_it_under_the_callers_cause() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    for cause in EvictionCause::ALL {
        let h = cache
            .save_endp(Duration::from_secs(5), b"e", b"", 1)
            .unwrap();
        cache.remove_session(h, cause).unwrap();
        let h = cache
            .save_endp(Duration::from_secs(5), b"e", b"", 2)
            .unwrap();
        assert_eq!(cache.evict_soonest(cause), Some(h));
    }
    let stats = cache.stats();
    for cause in EvictionCause::ALL {
        assert_eq!(stats.evicted_sessions_for(cause), 2, "{cause}");
    }
}

#[test]
fn departure_causes_display() {
    assert_eq!(DepartureCause::Expired.to_string(), "expired");
    assert_eq!(DepartureCause::Shutdown.to_string(), "shutdown");
    assert_eq!(
        DepartureCause::Evicted(EvictionCause::PeerData).to_string(),
        "evicted (peer_data)"
    );
}

#[test]
fn cache_errors_display_and_refused_sessions_debug_without_the_descriptor() {
    assert_eq!(
        CacheError::LabelTooLong { len: 9, max: 4 }.to_string(),
        "label too long: 9 bytes, limit 4"
    );
    assert_eq!(
        CacheError::PropTooLong { len: 7, max: 3 }.to_string(),
        "property too long: 7 bytes, limit 3"
    );
    assert_eq!(CacheError::Full.to_string(), "cache index space exhausted");

    // The descriptor type needs no Debug: the refusal shows only its error
    // (what `unwrap` prints).
    struct NotDebug;
    let clock = ManualClock::new();
    let limits = Limits {
        max_label_len: Some(1),
        ..Limits::NONE
    };
    let mut cache: MultiCache<NotDebug, &ManualClock> = MultiCache::with_limits(&clock, limits);
    let refused = cache
        .save_endp(Duration::from_secs(1), b"long", b"", NotDebug)
        .unwrap_err();
    assert_eq!(
        format!("{refused:?}"),
        "RefusedSession { error: LabelTooLong { len: 4, max: 1 }, .. }"
    );
    assert_eq!(
        refused.to_string(),
        "session not cached: label too long: 4 bytes, limit 1"
    );
    let source = std::error::Error::source(&refused).expect("the cache error");
    assert_eq!(source.to_string(), "label too long: 4 bytes, limit 1");
}

#[test]
fn probing_does_not_consume_what_the_peer_sent() {
    let (mut server, mut client) = UnixStream::pair().unwrap();
    server.write_all(b"421 4.3.2 bye\r\n").unwrap();
    assert_eq!(probe(&client), Liveness::Unread);
    assert_eq!(probe_fd(client.as_fd()), Liveness::Unread);
    drop(server);
    // Data then end of file: still closed, and the data still there.
    assert_eq!(probe(&client), Liveness::Closed);
    let mut got = String::new();
    client.read_to_string(&mut got).unwrap();
    assert_eq!(got, "421 4.3.2 bye\r\n");
}

#[test]
fn a_pipe_whose_writer_is_gone_is_closed() {
    // poll(2) reports POLLHUP without POLLIN on an empty pipe whose write
    // end is closed: hang-up alone must read as closed.
    let (r, w) = nix::unistd::pipe().unwrap();
    assert_eq!(probe(&r), Liveness::Alive);
    drop(w);
    assert_eq!(probe(&r), Liveness::Closed);

    // A pipe with data and a writer: readable, not a socket: unread data.
    let (r, w) = nix::unistd::pipe().unwrap();
    nix::unistd::write(&w, b"x").unwrap();
    assert_eq!(probe(&r), Liveness::Unread);
    // Data and hang-up together: closed.
    drop(w);
    assert_eq!(probe(&r), Liveness::Closed);
}

#[test]
fn trait_size_reports_the_caches_counts() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    let c: &mut dyn ConnectionCache<Fd = u32, Error = CacheError> = &mut cache;
    c.save_dest(Duration::from_secs(1), b"d", b"", b"e")
        .unwrap();
    c.save_endp(Duration::from_secs(1), b"e", b"", 3).unwrap();
    let size = c.size().expect("a local cache knows its size");
    assert_eq!(
        (size.dest_count, size.endp_count, size.sess_count),
        (1, 1, 1)
    );
}

#[test]
fn session_fd_names_a_cached_session_until_it_leaves() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    let h = cache
        .save_endp(Duration::from_secs(5), b"e", b"", 7)
        .unwrap();
    assert_eq!(cache.session_fd(h), Some(&7));
    *cache.session_fd_mut(h).expect("cached") = 9;
    assert_eq!(cache.session_fd(h), Some(&9));
    let found = ConnectionCache::find_endp(&mut cache, b"e")
        .unwrap()
        .unwrap();
    assert_eq!(found.fd, 9);
    assert_eq!(cache.session_fd(h), None);
    assert!(cache.session_fd_mut(h).is_none());
}

#[test]
fn session_fds_lists_every_cached_session_by_its_handle() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    let ttl = Duration::from_secs(5);
    let a = cache.save_endp(ttl, b"e", b"", 1).unwrap();
    let b = cache.save_endp(ttl, b"e", b"", 2).unwrap();
    let c = cache.save_endp(ttl, b"f", b"", 3).unwrap();
    cache.save_dest(ttl, b"d", b"", b"f").unwrap();
    // The one taken is no longer listed; the others are, under handles
    // that name them.
    assert_eq!(
        cache.take_endp(b"f").map(|t| t.into_found_endp().fd),
        Some(3)
    );
    let mut listed: Vec<_> = cache.session_fds().map(|(h, &fd)| (h, fd)).collect();
    listed.sort_by_key(|&(_, fd)| fd);
    assert_eq!(listed, [(a, 1), (b, 2)]);
    for (h, fd) in listed {
        assert_eq!(cache.session_fd(h), Some(&fd));
    }
    assert!(!cache.contains_session(c));
    cache.clear();
    assert_eq!(cache.session_fds().count(), 0);
}

#[test]
fn multi_cache_debug_shows_its_sizes_and_limits() {
    let clock = ManualClock::new();
    let limits = Limits {
        max_sessions: Some(3),
        ..Limits::NONE
    };
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::with_limits(&clock, limits);
    cache
        .save_dest(Duration::from_secs(5), b"d", b"", b"e")
        .unwrap();
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 1)
        .unwrap();
    let text = format!("{cache:?}");
    for part in [
        "MultiCache {",
        "dest_count: 1",
        "endp_count: 1",
        "sess_count: 1",
        "binding_count: 1",
        "max_sessions: Some(3)",
    ] {
        assert!(text.contains(part), "{part} not in {text}");
    }
}

#[test]
fn a_removed_departure_hook_is_no_longer_called() {
    use std::sync::mpsc;
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    let (tx, rx) = mpsc::channel();
    cache.set_departure_hook(move |d| tx.send(d.fd).unwrap());
    cache
        .save_endp(Duration::from_secs(1), b"e", b"", 1)
        .unwrap();
    clock.advance(Duration::from_secs(1));
    cache.expire_due();
    assert_eq!(rx.try_recv(), Ok(1));
    cache.remove_departure_hook();
    cache
        .save_endp(Duration::from_secs(1), b"e", b"", 2)
        .unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.expire_due(), 1);
    // The hook (and its sender) is gone: dropped, not called.
    assert_eq!(rx.try_recv(), Err(mpsc::TryRecvError::Disconnected));
}

#[test]
fn a_removed_liveness_probe_is_no_longer_asked() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    cache.set_liveness_probe(|_| Liveness::Closed);
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 1)
        .unwrap();
    assert!(ConnectionCache::find_endp(&mut cache, b"e")
        .unwrap()
        .is_none());
    assert_eq!(
        cache
            .stats()
            .evicted_sessions_for(EvictionCause::PeerClosed),
        1
    );
    cache.remove_liveness_probe();
    cache
        .save_endp(Duration::from_secs(5), b"e", b"", 2)
        .unwrap();
    let found = ConnectionCache::find_endp(&mut cache, b"e").unwrap();
    assert_eq!(found.map(|f| f.fd), Some(2));
}

#[test]
fn the_label_limit_evicts_the_least_recently_saved_to_label_wherever_it_sits() {
    let clock = ManualClock::new();
    let limits = Limits {
        max_labels: Some(3),
        ..Limits::NONE
    };
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::with_limits(&clock, limits);
    let ttl = Duration::from_secs(60);
    let a = cache.save_endp(ttl, b"a", b"", 1).unwrap();
    let b = cache.save_endp(ttl, b"b", b"", 2).unwrap();
    let c = cache.save_endp(ttl, b"c", b"", 3).unwrap();
    // Saving to "a" and "b" again leaves "c" (the last label created) the
    // least recently saved-to.
    let a2 = cache.save_endp(ttl, b"a", b"", 4).unwrap();
    let b2 = cache.save_endp(ttl, b"b", b"", 5).unwrap();
    cache.save_endp(ttl, b"d", b"", 6).unwrap();
    assert!(!cache.contains_session(c));
    for h in [a, b, a2, b2] {
        assert!(cache.contains_session(h));
    }
    // Then "a", now the oldest.
    cache.save_endp(ttl, b"e", b"", 7).unwrap();
    assert!(!cache.contains_session(a) && !cache.contains_session(a2));
    assert!(cache.contains_session(b) && cache.contains_session(b2));
    let evicted: Vec<_> = cache.drain_evictions().collect();
    assert_eq!(evicted.len(), 3, "{evicted:?}");
    assert!(evicted.iter().all(|e| e.cause == EvictionCause::LabelLimit));
}

#[test]
fn a_dead_session_at_checkout_gives_way_to_the_next_one() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    cache.set_liveness_probe(|&fd| {
        if fd == 1 {
            Liveness::Closed
        } else {
            Liveness::Alive
        }
    });
    let ttl = Duration::from_secs(5);
    cache.save_endp(ttl, b"e", b"", 1).unwrap();
    cache.save_endp(ttl, b"e", b"", 2).unwrap();
    let found = ConnectionCache::find_endp(&mut cache, b"e").unwrap();
    assert_eq!(found.map(|f| f.fd), Some(2));
    assert_eq!(
        cache
            .stats()
            .evicted_sessions_for(EvictionCause::PeerClosed),
        1
    );
}

#[test]
fn eviction_records_and_evict_soonest_name_the_evicted_session() {
    let clock = ManualClock::new();
    let limits = Limits {
        max_sessions: Some(1),
        ..Limits::NONE
    };
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::with_limits(&clock, limits);
    let ttl = Duration::from_secs(5);
    let first = cache.save_endp(ttl, b"e", b"", 1).unwrap();
    let second = cache.save_endp(ttl, b"e", b"", 2).unwrap();
    let third = cache.save_endp(ttl, b"e", b"", 3).unwrap();
    let evicted: Vec<_> = cache.drain_evictions().map(|e| e.evicted).collect();
    assert_eq!(
        evicted,
        [
            scache_core::Evicted::Session(first),
            scache_core::Evicted::Session(second)
        ]
    );
    assert_eq!(cache.evict_soonest(EvictionCause::Caller), Some(third));
}

#[test]
fn dropping_a_cache_hands_what_it_still_holds_to_the_departure_hook() {
    use std::sync::mpsc;
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    let (tx, rx) = mpsc::channel();
    cache.set_departure_hook(move |d| tx.send((d.fd, d.endp, d.cause)).unwrap());
    cache
        .save_endp(Duration::from_secs(9), b"late", b"", 1)
        .unwrap();
    cache
        .save_endp(Duration::from_secs(3), b"soon", b"", 2)
        .unwrap();
    drop(cache);
    let got: Vec<_> = rx.try_iter().collect();
    assert_eq!(
        got,
        [
            (2, b"soon".to_vec(), DepartureCause::Shutdown),
            (1, b"late".to_vec(), DepartureCause::Shutdown)
        ]
    );
}

#[test]
fn single_cache_counts_what_expired_and_debugs_its_state() {
    use scache_core::SingleCache;
    let clock = ManualClock::new();
    let mut c: SingleCache<u32, &ManualClock> = SingleCache::new(&clock);
    c.save_dest(Duration::from_secs(1), b"d", b"", b"e")
        .unwrap();
    c.save_endp(Duration::from_secs(2), b"e", b"", 5).unwrap();
    assert_eq!(
        format!("{c:?}"),
        "SingleCache { now: Instant(0), has_session: true, has_binding: true, .. }"
    );
    // Only the binding is due: one entry.
    assert_eq!(c.expire(Instant::from_millis(1_000)), 1);
    assert_eq!(
        format!("{c:?}"),
        "SingleCache { now: Instant(1000), has_session: true, has_binding: false, .. }"
    );
    c.save_dest(Duration::from_secs(1), b"d", b"", b"e")
        .unwrap();
    // Both due: two entries.
    assert_eq!(c.expire(Instant::from_millis(2_000)), 2);
}

#[test]
fn shared_cache_bindings_through_the_trait() {
    use scache_core::SharedCache;
    let mut cache = SharedCache::<u32, ManualClock>::new(ManualClock::new());
    let c: &mut dyn ConnectionCache<Fd = u32, Error = CacheError> = &mut cache;
    c.save_dest(Duration::from_secs(5), b"d", b"dp", b"e")
        .unwrap();
    c.save_endp(Duration::from_secs(5), b"e", b"ep", 4).unwrap();
    let found = c.find_dest(b"d").unwrap().expect("bound and cached");
    assert_eq!(
        (found.fd, &found.dest_prop[..], &found.endp_prop[..]),
        (4, &b"dp"[..], &b"ep"[..])
    );
    assert_eq!(cache.stats().binding_count, 1);
}

#[test]
fn single_cache_rebinding_to_another_endpoint_replaces_the_binding() {
    use scache_core::SingleCache;
    let clock = ManualClock::new();
    let mut c: SingleCache<u32, &ManualClock> = SingleCache::new(&clock);
    c.save_dest(Duration::from_secs(5), b"d", b"p", b"e1")
        .unwrap();
    c.save_dest(Duration::from_secs(5), b"d", b"p", b"e2")
        .unwrap();
    c.save_endp(Duration::from_secs(5), b"e2", b"", 7).unwrap();
    let found = c.find_dest(b"d").unwrap().map(|f| f.fd);
    assert_eq!(found, Some(7));
}

#[test]
fn a_descriptor_that_is_not_open_is_closed() {
    // poll(2) answers POLLNVAL for a number no open descriptor can have
    // (far above any RLIMIT_NOFILE): no usable connection.
    // SAFETY: the descriptor is only handed to poll(2), which reports it
    // as invalid; it is never read, written or closed.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(1 << 30) };
    assert_eq!(probe_fd(fd), Liveness::Closed);
}
