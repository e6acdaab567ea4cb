//! Unit tests of `MultiCache` beyond Postfix's semantics: bounds and
//! evictions, handles, put-back, clock clamping, counters.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{DropLog, Tok};
use scache_core::{
    CacheError, CacheSize, Clock, ConnectionCache, Evicted, Eviction, EvictionCause, Instant,
    Limits, ManualClock, MultiCache, SaveDestOutcome, SessionHandle, SingleCache,
};

type Cache = MultiCache<Tok, Rc<ManualClock>>;

struct T {
    clock: Rc<ManualClock>,
    log: DropLog,
    cache: Cache,
}

fn setup(limits: Limits) -> T {
    let clock = Rc::new(ManualClock::new());
    T {
        cache: MultiCache::with_limits(Rc::clone(&clock), limits),
        clock,
        log: DropLog::new(),
    }
}

/// An eviction record, as `drain_evictions` yields it.
fn ev(evicted: Evicted, cause: EvictionCause) -> Eviction {
    Eviction { evicted, cause }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl T {
    fn save(&mut self, ttl: u64, endp: &str, id: u32) -> SessionHandle {
        let tok = self.log.tok(id);
        self.cache
            .save_endp(secs(ttl), endp.as_bytes(), b"prop", tok)
            .unwrap()
    }

    fn bind(&mut self, ttl: u64, dest: &str, prop: &str, endp: &str) -> SaveDestOutcome {
        self.cache
            .save_dest(secs(ttl), dest.as_bytes(), prop.as_bytes(), endp.as_bytes())
            .unwrap()
    }

    fn find(&mut self, endp: &str) -> Option<u32> {
        let found = ConnectionCache::find_endp(&mut self.cache, endp.as_bytes()).unwrap()?;
        let id = found.fd.id;
        drop(found);
        self.log.take(); // the caller closes what it found: not under test here
        Some(id)
    }

    fn evictions(&mut self) -> Vec<Eviction> {
        self.cache.drain_evictions().collect()
    }

    fn advance_ms(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }
}

#[test]
fn session_limit_evicts_the_session_closest_to_expiry() {
    let mut t = setup(Limits {
        max_sessions: Some(2),
        ..Limits::NONE
    });
    let _h1 = t.save(3, "e1", 1); // deadline 3
    let h2 = t.save(1, "e2", 2); // deadline 1: soonest
    assert!(t.evictions().is_empty());
    let _h3 = t.save(2, "e1", 3);
    assert_eq!(t.log.take(), vec![2]);
    assert_eq!(
        t.evictions(),
        vec![ev(Evicted::Session(h2), EvictionCause::SessionLimit)]
    );
    assert!(!t.cache.contains_session(h2));
    assert_eq!(
        t.cache.size(),
        CacheSize {
            dest_count: 0,
            endp_count: 1,
            sess_count: 2
        }
    );
    let stats = t.cache.stats();
    assert_eq!(stats.evicted_sessions_for(EvictionCause::SessionLimit), 1);
    assert_eq!(stats.evictions_total(), 1);
}

#[test]
fn session_limit_ties_go_to_the_session_saved_first() {
    let mut t = setup(Limits {
        max_sessions: Some(3),
        ..Limits::NONE
    });
    // Same deadline (t=3) reached through different TTLs: the one saved
    // first (the longest TTL) goes first.
    t.save(3, "a", 1);
    t.advance_ms(1000);
    t.save(2, "b", 2);
    t.advance_ms(1000);
    t.save(1, "c", 3);
    t.save(5, "d", 4);
    assert_eq!(t.log.take(), vec![1]);
    t.save(5, "d", 5);
    assert_eq!(t.log.take(), vec![2]);
    t.save(5, "d", 6);
    assert_eq!(t.log.take(), vec![3]);
}

#[test]
fn endpoint_limit_evicts_the_endpoints_oldest_session() {
    let mut t = setup(Limits {
        max_sessions_per_endpoint: Some(2),
        ..Limits::NONE
    });
    let h1 = t.save(2, "e", 1);
    t.save(2, "e", 2);
    t.save(2, "other", 3);
    t.save(2, "e", 4);
    assert_eq!(t.log.take(), vec![1]);
    assert_eq!(
        t.evictions(),
        vec![ev(Evicted::Session(h1), EvictionCause::EndpointLimit)]
    );
    assert_eq!(t.find("e"), Some(2));
    assert_eq!(t.find("e"), Some(4));
    assert_eq!(t.find("other"), Some(3));
}

#[test]
fn destination_limit_drops_the_oldest_binding_but_refresh_adds_nothing() {
    let mut t = setup(Limits {
        max_bindings_per_destination: Some(2),
        ..Limits::NONE
    });
    assert_eq!(t.bind(2, "d", "p", "e1"), SaveDestOutcome::Added);
    assert_eq!(t.bind(2, "d", "p", "e2"), SaveDestOutcome::Added);
    assert_eq!(t.bind(2, "d", "p", "e1"), SaveDestOutcome::Refreshed);
    assert!(t.evictions().is_empty());
    assert_eq!(t.bind(2, "d", "p", "e3"), SaveDestOutcome::Added);
    assert_eq!(
        t.evictions(),
        vec![ev(Evicted::Binding, EvictionCause::DestinationLimit)]
    );
    assert_eq!(t.cache.binding_count(), 2);
    // e1's binding went: a session there is not found through d.
    t.save(2, "e1", 1);
    assert!(ConnectionCache::find_dest(&mut t.cache, b"d")
        .unwrap()
        .is_none());
    t.save(2, "e2", 2);
    let found = ConnectionCache::find_dest(&mut t.cache, b"d")
        .unwrap()
        .unwrap();
    assert_eq!(found.fd.id, 2);
}

#[test]
fn label_limit_drops_the_least_recently_saved_to_label_and_all_under_it() {
    let mut t = setup(Limits {
        max_labels: Some(2),
        ..Limits::NONE
    });
    let h1 = t.save(2, "e1", 1);
    let h2 = t.save(2, "e1", 2);
    t.bind(2, "d1", "p", "e1");
    t.bind(2, "d1", "q", "e1");
    // e1 is touched again: d1 becomes the least recently saved-to.
    let h3 = t.save(2, "e1", 3);
    t.save(2, "e2", 4);
    assert_eq!(t.log.take(), Vec::<u32>::new());
    let binding = ev(Evicted::Binding, EvictionCause::LabelLimit);
    assert_eq!(t.evictions(), vec![binding, binding]);
    assert_eq!(
        t.cache.size(),
        CacheSize {
            dest_count: 0,
            endp_count: 2,
            sess_count: 4
        }
    );
    // Now e1 is the oldest: a new destination pushes it out, every session.
    t.bind(2, "d2", "p", "e2");
    assert_eq!(t.log.take(), vec![1, 2, 3]);
    let by_label = |h| ev(Evicted::Session(h), EvictionCause::LabelLimit);
    assert_eq!(
        t.evictions(),
        vec![by_label(h1), by_label(h2), by_label(h3)]
    );
    assert_eq!(
        t.cache.size(),
        CacheSize {
            dest_count: 1,
            endp_count: 1,
            sess_count: 1
        }
    );
    // Saving to a label already in use never evicts.
    t.save(2, "e2", 5);
    t.bind(2, "d2", "other", "e9");
    assert!(t.evictions().is_empty());
    t.cache.check_invariants();
}

#[test]
fn zero_count_limits_mean_one() {
    let mut t = setup(Limits {
        max_sessions: Some(0),
        max_labels: Some(0),
        ..Limits::NONE
    });
    t.save(2, "a", 1);
    t.save(2, "a", 2);
    assert_eq!(t.log.take(), vec![1]);
    t.save(2, "b", 3);
    assert_eq!(t.log.take(), vec![2]);
    assert_eq!(t.cache.size().sess_count, 1);
}

#[test]
fn too_long_labels_and_props_are_refused_and_the_fd_comes_back() {
    let mut t = setup(Limits {
        max_label_len: Some(4),
        max_prop_len: Some(3),
        ..Limits::NONE
    });
    let refused = t
        .cache
        .save_endp(secs(2), b"12345", b"p", t.log.tok(7))
        .unwrap_err();
    assert_eq!(refused.error, CacheError::LabelTooLong { len: 5, max: 4 });
    assert_eq!(refused.fd.id, 7);
    assert_eq!(t.log.take(), Vec::<u32>::new()); // not closed by the cache
    assert_eq!(
        refused.to_string(),
        "session not cached: label too long: 5 bytes, limit 4"
    );
    drop(refused);
    assert_eq!(t.log.take(), vec![7]);

    let refused = t
        .cache
        .save_endp(secs(2), b"1234", b"long", t.log.tok(8))
        .unwrap_err();
    assert_eq!(refused.error, CacheError::PropTooLong { len: 4, max: 3 });
    drop(refused);

    assert_eq!(
        t.cache.save_dest(secs(2), b"d", b"p", b"toolong"),
        Err(CacheError::LabelTooLong { len: 7, max: 4 })
    );
    assert_eq!(
        t.cache.save_dest(secs(2), b"d", b"long", b"e"),
        Err(CacheError::PropTooLong { len: 4, max: 3 })
    );
    // Through the trait, the refused descriptor is closed.
    assert_eq!(
        ConnectionCache::save_endp(&mut t.cache, secs(2), b"12345", b"", t.log.tok(9)),
        Err(CacheError::LabelTooLong { len: 5, max: 4 })
    );
    assert_eq!(t.log.take(), vec![8, 9]);
    assert_eq!(t.cache.stats().refused_saves, 5);
    assert_eq!(t.cache.size(), CacheSize::default());
}

#[test]
fn handles_are_stable_round_trip_and_go_stale() {
    let mut t = setup(Limits::NONE);
    let h1 = t.save(2, "e", 1);
    let h2 = t.save(2, "e", 2);
    assert_ne!(h1, h2);
    for h in [h1, h2] {
        assert_eq!(SessionHandle::from_u64(h.as_u64()), h);
        assert_eq!(SessionHandle::from(u64::from(h)), h);
        assert_eq!(h.as_u64() >> 63, 0);
    }
    // Remove the second (a peer hang-up): the fd comes back to the caller.
    let removed = t
        .cache
        .remove_session(h2, EvictionCause::PeerClosed)
        .unwrap();
    assert_eq!((removed.fd.id, &removed.endp_prop[..]), (2, &b"prop"[..]));
    drop(removed);
    assert_eq!(t.log.take(), vec![2]);
    assert!(t
        .cache
        .remove_session(h2, EvictionCause::PeerClosed)
        .is_none());
    assert_eq!(
        t.cache
            .stats()
            .evicted_sessions_for(EvictionCause::PeerClosed),
        1
    );
    assert!(t.evictions().is_empty(), "caller removals are not recorded");
    // The slot is reused by the next save, but the old handle stays stale.
    let h3 = t.save(2, "e", 3);
    assert_ne!(h3, h2);
    assert!(!t.cache.contains_session(h2));
    assert!(t.cache.contains_session(h3));
    // A lookup makes the handle stale too.
    assert_eq!(t.find("e"), Some(1));
    assert!(!t.cache.contains_session(h1));
    assert!(t.cache.remove_session(h1, EvictionCause::Caller).is_none());
    // An arbitrary u64 is just a handle to nothing.
    assert!(!t.cache.contains_session(SessionHandle::from_u64(u64::MAX)));
    assert!(t
        .cache
        .remove_session(SessionHandle::from_u64(12345 << 32), EvictionCause::Caller)
        .is_none());
}

#[test]
fn expired_sessions_have_stale_handles() {
    let mut t = setup(Limits::NONE);
    let h = t.save(1, "e", 1);
    t.advance_ms(1000);
    assert!(t
        .cache
        .remove_session(h, EvictionCause::PeerClosed)
        .is_none());
    assert_eq!(t.log.take(), vec![1]);
    assert_eq!(t.cache.stats().expired_sessions, 1);
}

#[test]
fn put_back_goes_to_the_front_with_its_remaining_time() {
    let mut t = setup(Limits::NONE);
    let h1 = t.save(2, "e", 1); // deadline 2000
    t.advance_ms(500);
    t.save(2, "e", 2); // deadline 2500
    let taken = t.cache.take_endp(b"e").unwrap();
    assert_eq!(taken.fd.id, 1);
    assert_eq!(taken.endp_label(), b"e");
    assert_eq!(taken.deadline(), Instant::from_millis(2000));
    t.advance_ms(500);
    let h1b = t.cache.put_back(taken).unwrap();
    assert_ne!(h1b, h1);
    assert!(!t.cache.contains_session(h1));
    assert!(t.cache.contains_session(h1b));
    assert_eq!(t.cache.next_deadline(), Some(Instant::from_millis(2000)));
    // It is first in line again.
    let taken = t.cache.take_endp(b"e").unwrap();
    assert_eq!(taken.fd.id, 1);
    t.cache.put_back(taken).unwrap();
    // And it expires at its original deadline, before session 2.
    t.advance_ms(1000); // t=2000
    assert_eq!(t.cache.expire_due(), 1);
    assert_eq!(t.log.take(), vec![1]);
    assert_eq!(t.find("e"), Some(2));
    assert_eq!(t.cache.stats().put_backs, 2);
}

#[test]
fn put_back_after_the_deadline_closes_the_session() {
    let mut t = setup(Limits::NONE);
    t.bind(5, "d", "dp", "e");
    t.save(1, "e", 1);
    let taken = t.cache.take_dest(b"d").unwrap();
    assert_eq!(taken.dest_prop.as_deref(), Some(&b"dp"[..]));
    assert_eq!(taken.endp_label(), b"e");
    t.advance_ms(1000);
    assert_eq!(t.cache.put_back(taken), None);
    assert_eq!(t.log.take(), vec![1]);
    let stats = t.cache.stats();
    assert_eq!((stats.put_backs, stats.expired_sessions), (1, 1));
    assert_eq!(
        t.cache.size(),
        CacheSize {
            dest_count: 1,
            endp_count: 0,
            sess_count: 0
        }
    );
}

#[test]
fn put_back_restores_a_label_that_disappeared() {
    let mut t = setup(Limits::NONE);
    t.save(2, "e", 1);
    let taken = t.cache.take_endp(b"e").unwrap();
    assert_eq!(t.cache.size(), CacheSize::default());
    t.cache.put_back(taken).unwrap();
    assert_eq!(
        t.cache.size(),
        CacheSize {
            dest_count: 0,
            endp_count: 1,
            sess_count: 1
        }
    );
    // Taken converts to the trait's result types.
    let found = t.cache.take_endp(b"e").unwrap().into_found_dest();
    assert_eq!((found.fd.id, found.dest_prop.len()), (1, 0));
    t.cache.check_invariants();
}

#[test]
fn evict_soonest_closes_the_earliest_session() {
    let mut t = setup(Limits::NONE);
    assert_eq!(t.cache.evict_soonest(EvictionCause::FdPressure), None);
    t.save(3, "a", 1);
    let h2 = t.save(1, "b", 2);
    t.bind(1, "d", "p", "a"); // bindings do not count
    assert_eq!(t.cache.evict_soonest(EvictionCause::FdPressure), Some(h2));
    assert_eq!(t.log.take(), vec![2]);
    assert_eq!(
        t.cache
            .stats()
            .evicted_sessions_for(EvictionCause::FdPressure),
        1
    );
    assert_eq!(t.cache.binding_count(), 1);
}

#[test]
fn the_clock_never_goes_back() {
    let mut t = setup(Limits::NONE);
    t.clock.set(Instant::from_millis(5000));
    t.save(2, "e", 1); // deadline 7000
    t.clock.set(Instant::from_millis(1000)); // backwards: treated as 5000
    t.save(1, "e", 2); // deadline 6000, not 2000
    assert_eq!(t.cache.now(), Instant::from_millis(5000));
    assert_eq!(t.cache.next_deadline(), Some(Instant::from_millis(6000)));
    // expire() with an earlier time is clamped too.
    assert_eq!(t.cache.expire(Instant::from_millis(0)), 0);
    t.clock.set(Instant::from_millis(6000));
    assert_eq!(t.cache.expire_due(), 1);
    assert_eq!(t.log.take(), vec![2]);
    // A caller-supplied time ahead of the clock moves the cache forward.
    assert_eq!(t.cache.expire(Instant::from_millis(7000)), 1);
    assert_eq!(t.log.take(), vec![1]);
    assert_eq!(t.cache.now(), Instant::from_millis(7000));
}

#[test]
fn zero_ttl_expires_at_the_next_operation() {
    let mut t = setup(Limits::NONE);
    t.cache
        .save_endp(Duration::ZERO, b"e", b"", t.log.tok(1))
        .unwrap();
    assert_eq!(t.cache.size().sess_count, 1);
    assert_eq!(t.cache.next_deadline(), Some(Instant::ZERO));
    assert_eq!(t.find("e"), None);
    assert_eq!(t.cache.stats().expired_sessions, 1);
}

#[test]
fn sub_second_ttls_and_many_queues() {
    let mut t = setup(Limits::NONE);
    for (id, ms) in [(1, 1500), (2, 700), (3, 1500), (4, 1), (5, 700)] {
        t.cache
            .save_endp(Duration::from_millis(ms), b"e", b"", t.log.tok(id))
            .unwrap();
    }
    assert_eq!(t.cache.next_deadline(), Some(Instant::from_millis(1)));
    t.advance_ms(1);
    assert_eq!(t.cache.expire_due(), 1);
    t.advance_ms(699);
    assert_eq!(t.cache.expire_due(), 2);
    t.advance_ms(800);
    assert_eq!(t.cache.expire_due(), 2);
    assert_eq!(t.log.take(), vec![4, 2, 5, 1, 3]);
    assert_eq!(t.cache.next_deadline(), None);
}

#[test]
fn peaks_are_sampled_after_saves_and_reset() {
    let mut t = setup(Limits::NONE);
    t.save(2, "a", 1);
    t.save(2, "b", 2);
    t.bind(2, "d", "p", "a");
    assert_eq!(t.find("a"), Some(1));
    let s = t.cache.stats();
    assert_eq!(
        (
            s.peak_dest_count,
            s.peak_endp_count,
            s.peak_sess_count,
            s.peak_binding_count
        ),
        (1, 2, 2, 1)
    );
    assert_eq!(
        (s.dest_count, s.endp_count, s.sess_count, s.binding_count),
        (1, 1, 1, 1)
    );
    t.cache.reset_peaks();
    let s = t.cache.stats();
    assert_eq!(
        (
            s.peak_dest_count,
            s.peak_endp_count,
            s.peak_sess_count,
            s.peak_binding_count
        ),
        (0, 0, 0, 0)
    );
    t.save(2, "b", 3);
    let s = t.cache.stats();
    assert_eq!(
        (s.peak_dest_count, s.peak_endp_count, s.peak_sess_count),
        (1, 1, 2)
    );
    assert_eq!(
        (s.endp_hits, s.endp_misses, s.endp_saves, s.dest_saves),
        (1, 0, 3, 1)
    );
}

#[test]
fn eviction_records_are_capped_until_drained() {
    let mut t = setup(Limits {
        max_sessions: Some(1),
        ..Limits::NONE
    });
    let n = Cache::EVICTION_LOG_CAP as u32 + 10;
    for id in 0..=n {
        t.save(2, "e", id);
    }
    assert_eq!(t.cache.drain_evictions().count(), Cache::EVICTION_LOG_CAP);
    assert_eq!(t.cache.stats().unreported_evictions, 10);
    t.save(2, "e", n + 1);
    assert_eq!(t.cache.drain_evictions().count(), 1);
}

#[test]
fn clear_closes_everything() {
    let mut t = setup(Limits::NONE);
    t.save(2, "a", 1);
    t.save(2, "b", 2);
    t.bind(2, "d", "p", "a");
    t.cache.clear();
    let mut closed = t.log.take();
    closed.sort_unstable();
    assert_eq!(closed, vec![1, 2]);
    assert_eq!(t.cache.size(), CacheSize::default());
    assert_eq!(t.cache.next_deadline(), None);
    t.cache.check_invariants();
    t.save(2, "a", 3);
    assert_eq!(t.find("a"), Some(3));
}

#[test]
fn dropping_the_cache_closes_every_session() {
    let mut t = setup(Limits::NONE);
    for id in 0..100 {
        t.save(2, if id % 2 == 0 { "a" } else { "b" }, id);
    }
    drop(t.cache);
    let mut closed = t.log.take();
    closed.sort_unstable();
    assert_eq!(closed, (0..100).collect::<Vec<_>>());
}

#[test]
fn expiry_order_at_scale() {
    // 20k sessions over 50 labels with mixed TTLs: expiring closes them in
    // deadline order and leaves nothing behind.
    let mut t = setup(Limits::NONE);
    let mut want = Vec::new();
    for id in 0..20_000u32 {
        let ttl = u64::from(1 + id % 3) * 1000;
        t.cache
            .save_endp(
                Duration::from_millis(ttl),
                format!("e{}", id % 50).as_bytes(),
                b"",
                t.log.tok(id),
            )
            .unwrap();
        want.push((t.clock.now().as_millis() + ttl, id));
        if id % 1000 == 999 {
            t.advance_ms(100);
        }
    }
    want.sort_unstable();
    let mut steps = 0;
    while let Some(due) = t.cache.next_deadline() {
        t.clock.set(due);
        assert!(t.cache.expire_due() > 0);
        steps += 1;
    }
    assert!(steps > 3);
    assert_eq!(
        t.log.take(),
        want.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );
    assert_eq!(t.cache.size(), CacheSize::default());
    t.cache.check_invariants();
}

#[test]
fn both_caches_fit_one_trait_object() {
    let clock = Rc::new(ManualClock::new());
    let log = DropLog::new();
    let caches: Vec<Box<dyn ConnectionCache<Fd = Tok, Error = CacheError>>> = vec![
        Box::new(MultiCache::new(Rc::clone(&clock))),
        Box::new(SingleCache::new(Rc::clone(&clock))),
    ];
    for mut cache in caches {
        cache.save_dest(secs(2), b"d", b"dp", b"e").unwrap();
        cache.save_endp(secs(2), b"e", b"ep", log.tok(1)).unwrap();
        let found = cache.find_dest(b"d").unwrap().unwrap();
        assert_eq!(
            (found.fd.id, &found.dest_prop[..], &found.endp_prop[..]),
            (1, &b"dp"[..], &b"ep"[..])
        );
        assert_eq!(
            cache.size(),
            Some(CacheSize {
                dest_count: 1,
                endp_count: 0,
                sess_count: 0
            })
        );
    }
    assert_eq!(clock.now(), Instant::ZERO);
}

#[test]
fn label_order_stays_exact_across_sweeps() {
    let mut t = setup(Limits {
        max_labels: Some(3),
        ..Limits::NONE
    });
    // Thousands of saves to three labels: the lazy order is swept many times.
    for round in 0..2000u32 {
        for (k, label) in ["a", "b", "c"].iter().enumerate() {
            let h = t.save(100, label, round * 3 + k as u32);
            if round > 0 {
                // Keep one session per label: take the older one.
                assert!(t.find(label).is_some());
            }
            assert!(t.cache.contains_session(h));
        }
    }
    t.cache.check_invariants();
    // Touch order now: b, c, a; so b is the least recently saved-to.
    t.save(100, "b", 10_000);
    t.save(100, "c", 10_001);
    t.save(100, "a", 10_002);
    t.log.take();
    t.save(100, "d", 10_003);
    let mut closed = t.log.take();
    closed.sort_unstable();
    assert_eq!(closed.len(), 2); // b's two sessions
    assert!(closed.contains(&10_000));
    assert_eq!(t.find("b"), None);
    assert!(t.find("c").is_some());
    t.cache.check_invariants();
}

#[test]
fn enabling_the_label_limit_later_keeps_the_save_order() {
    let mut t = setup(Limits::NONE);
    t.save(100, "a", 1);
    t.bind(100, "d", "p", "a");
    t.save(100, "b", 2);
    t.save(100, "a", 3); // a is now the most recently saved-to; d the least
    t.cache.set_limits(Limits {
        max_labels: Some(3),
        ..Limits::NONE
    });
    t.cache.check_invariants();
    t.save(100, "c", 4);
    assert_eq!(
        t.evictions(),
        vec![ev(Evicted::Binding, EvictionCause::LabelLimit)]
    );
    t.save(100, "e", 5);
    assert_eq!(t.log.take(), vec![2]); // then b
    t.cache.set_limits(Limits::NONE);
    t.cache.check_invariants();
}

// ----- the read-only view ------------------------------------------------

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// (label, sessions, oldest age, ttl left) of every endpoint, by label.
fn endpoints(t: &T) -> Vec<(String, usize, Option<Duration>, Duration)> {
    let mut v: Vec<_> = t
        .cache
        .view()
        .endpoints
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(e.label).into_owned(),
                e.sessions,
                e.oldest_age,
                e.ttl_left,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn view_tells_ages_from_the_expiry_queues() {
    let mut t = setup(Limits::NONE);
    t.save(10, "a", 1);
    t.clock.advance(ms(1000));
    t.save(10, "a", 2);
    t.save(5, "b", 3);
    t.clock.advance(ms(500));
    t.save(3, "b", 4);
    t.clock.advance(ms(250));
    assert_eq!(
        endpoints(&t),
        vec![
            ("a".into(), 2, Some(ms(1750)), ms(9250)),
            ("b".into(), 2, Some(ms(750)), ms(4250)),
        ]
    );
    // Bindings in order, each with its own time left.
    t.bind(10, "d", "p1", "b");
    t.clock.advance(ms(100));
    t.bind(4, "d", "p2", "a");
    t.bind(4, "d", "p3", "nowhere");
    let view = t.cache.view();
    assert_eq!(view.destinations.len(), 1);
    let d = &view.destinations[0];
    assert_eq!(d.label, b"d");
    let got: Vec<_> = d
        .bindings
        .iter()
        .map(|b| (b.endpoint, b.endpoint_sessions, b.ttl_left))
        .collect();
    assert_eq!(
        got,
        vec![
            (&b"b"[..], 2, ms(9900)),
            (&b"a"[..], 2, ms(4000)),
            (&b"nowhere"[..], 0, ms(4000)),
        ]
    );
    assert_eq!(d.sessions(), 4);
    // Expired entries are gone from the view once expired.
    t.clock.advance(ms(10_000));
    t.cache.expire_due();
    let view = t.cache.view();
    assert!(view.endpoints.is_empty() && view.destinations.is_empty());
}

#[test]
fn view_knows_the_age_of_a_session_put_back() {
    // One TTL in use (the daemon's case): always known.
    let mut t = setup(Limits::NONE);
    t.save(2, "e", 1);
    t.save(2, "f", 2);
    t.save(2, "e", 3);
    t.clock.advance(ms(700));
    let taken = t.cache.take_endp(b"e").unwrap(); // the middle of its queue
    t.cache.put_back(taken);
    assert_eq!(endpoints(&t)[0], ("e".into(), 2, Some(ms(700)), ms(1300)));
    // Several TTLs, taken from the middle of a queue: unknown, and left out
    // of the oldest age.
    let mut t = setup(Limits::NONE);
    t.save(2, "x", 1);
    t.save(2, "e", 2);
    t.save(2, "y", 3);
    t.save(9, "z", 4);
    t.clock.advance(ms(100));
    t.save(2, "e", 5);
    t.clock.advance(ms(100));
    let taken = t.cache.take_endp(b"e").unwrap();
    t.cache.put_back(taken);
    let e = endpoints(&t).into_iter().find(|e| e.0 == "e").unwrap();
    assert_eq!(e, ("e".into(), 2, Some(ms(100)), ms(1900)));
    // At the head of its queue: known.
    let mut t = setup(Limits::NONE);
    t.save(2, "e", 1);
    t.save(9, "z", 2);
    t.clock.advance(ms(300));
    let taken = t.cache.take_endp(b"e").unwrap();
    t.cache.put_back(taken);
    assert_eq!(endpoints(&t)[0], ("e".into(), 1, Some(ms(300)), ms(1700)));
    // Taken again from where it was put back (alone in the expiry order):
    // still known, and still after a second put-back.
    t.clock.advance(ms(200));
    let taken = t.cache.take_endp(b"e").unwrap();
    t.cache.put_back(taken);
    assert_eq!(endpoints(&t)[0], ("e".into(), 1, Some(ms(500)), ms(1500)));
    t.cache.check_invariants();
}
