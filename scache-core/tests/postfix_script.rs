//! Replays, in virtual time, the scenario of Postfix's own multi-session
//! cache regression test (the `save_dest`/`save_endp`/`find_dest`/`sleep`
//! script run by Postfix's scache test driver), asserting the outcome of
//! every step: what each save did, what each lookup returned, the sizes,
//! and exactly which descriptors were closed when.
//!
//! Postfix's driver closes a descriptor as soon as a lookup returns it, and
//! its `sleep` runs the timers; the harness below does the same.

mod common;

use std::rc::Rc;
use std::time::Duration;

use common::{DropLog, Tok};
use scache_core::{
    CacheSize, Clock, ConnectionCache, Instant, ManualClock, MultiCache, SaveDestOutcome,
};

struct Script {
    clock: Rc<ManualClock>,
    log: DropLog,
    cache: MultiCache<Tok, Rc<ManualClock>>,
}

const ADDED: SaveDestOutcome = SaveDestOutcome::Added;
const REFRESHED: SaveDestOutcome = SaveDestOutcome::Refreshed;

impl Script {
    fn new() -> Script {
        let clock = Rc::new(ManualClock::new());
        Script {
            cache: MultiCache::new(Rc::clone(&clock)),
            clock,
            log: DropLog::new(),
        }
    }

    fn save_dest(&mut self, ttl: u64, dest: &str, prop: &str, endp: &str) -> SaveDestOutcome {
        self.cache
            .save_dest(
                Duration::from_secs(ttl),
                dest.as_bytes(),
                prop.as_bytes(),
                endp.as_bytes(),
            )
            .unwrap()
    }

    fn save_endp(&mut self, ttl: u64, endp: &str, prop: &str, fd: u32) {
        let tok = self.log.tok(fd);
        self.cache
            .save_endp(
                Duration::from_secs(ttl),
                endp.as_bytes(),
                prop.as_bytes(),
                tok,
            )
            .unwrap();
    }

    /// Looks up through the trait (as Postfix's generic API) and closes what
    /// was found, as Postfix's driver does.
    fn find_dest(&mut self, dest: &str) -> Option<(String, String, u32)> {
        let found = ConnectionCache::find_dest(&mut self.cache, dest.as_bytes()).unwrap()?;
        Some((
            String::from_utf8(found.dest_prop.clone()).unwrap(),
            String::from_utf8(found.endp_prop.clone()).unwrap(),
            found.fd.id,
        ))
    }

    /// Lets time pass and runs the timers.
    fn sleep(&mut self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
        self.cache.expire_due();
    }

    fn t(&self) -> u64 {
        self.clock.now().as_millis()
    }

    fn closed(&self) -> Vec<u32> {
        self.log.take()
    }

    fn size(&self) -> (usize, usize, usize) {
        let CacheSize {
            dest_count,
            endp_count,
            sess_count,
        } = self.cache.size();
        (dest_count, endp_count, sess_count)
    }

    fn bindings(&self) -> usize {
        self.cache.binding_count()
    }

    fn next_deadline_s(&self) -> Option<f64> {
        self.cache
            .next_deadline()
            .map(|d: Instant| d.as_millis() as f64 / 1000.0)
    }
}

#[test]
fn postfix_multi_cache_script() {
    let mut s = Script::new();

    // --- Destination name space collision: one binding refreshed twice. ---
    assert_eq!(s.save_dest(2, "a_dest", "a_prop", "b_endp"), ADDED); // t=0
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 1));
    assert_eq!(s.next_deadline_s(), Some(2.0));
    s.sleep(1000);
    assert_eq!(s.save_dest(2, "a_dest", "a_prop", "b_endp"), REFRESHED); // t=1
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 1));
    assert_eq!(s.next_deadline_s(), Some(3.0));
    s.sleep(1000);
    assert_eq!(s.save_dest(2, "a_dest", "a_prop", "b_endp"), REFRESHED); // t=2
    assert_eq!(s.next_deadline_s(), Some(4.0));
    // "sleep 2", split to check both sides of the deadline.
    s.sleep(1999);
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 1));
    s.sleep(1);
    assert_eq!(s.t(), 4000);
    assert_eq!((s.size(), s.bindings()), ((0, 0, 0), 0)); // expired; a_dest gone
    assert_eq!(s.next_deadline_s(), None);
    assert_eq!(s.closed(), Vec::<u32>::new());

    // --- Another destination collision: three bindings, own clocks. ---
    assert_eq!(s.save_dest(2, "a_dest", "a_prop", "b_endp"), ADDED); // t=4, exp 6
    s.sleep(1000);
    assert_eq!(s.save_dest(2, "a_dest", "a_prop2", "b_endp"), ADDED); // t=5, exp 7
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 2));
    s.sleep(1000); // t=6: (b_endp, a_prop) expires
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 1));
    assert_eq!(s.save_dest(2, "a_dest", "a_prop2", "b_endp2"), ADDED); // t=6, exp 8
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 2));
    assert_eq!(s.next_deadline_s(), Some(7.0));
    s.sleep(2000); // t=8: both expire
    assert_eq!((s.size(), s.bindings()), ((0, 0, 0), 0));
    assert_eq!(s.closed(), Vec::<u32>::new());

    // --- Endpoint name space collision: two sessions expire together. ---
    s.save_endp(2, "b_endp", "b_prop", 12); // t=8, exp 10
    s.save_endp(2, "b_endp", "b_prop", 13);
    assert_eq!(s.size(), (0, 1, 2));
    assert_eq!(s.closed(), Vec::<u32>::new());
    s.sleep(3000); // t=11
    assert_eq!(s.closed(), vec![12, 13]); // closed in the order saved
    assert_eq!(s.size(), (0, 0, 0));

    // --- Combined collision with lookups. ---
    assert_eq!(s.save_dest(2, "a_dest", "a_prop", "b_endp"), ADDED); // t=11
    assert_eq!(s.save_dest(2, "a_dest", "a_prop2", "b_endp"), ADDED);
    assert_eq!(s.save_dest(2, "a_dest", "a_prop2", "b_endp2"), ADDED);
    s.save_endp(2, "b_endp", "b_prop", 12);
    s.save_endp(2, "b_endp", "b_prop", 13);
    assert_eq!((s.size(), s.bindings()), ((1, 1, 2), 3));
    let hit = |d: &str, fd| Some((d.to_string(), "b_prop".to_string(), fd));
    assert_eq!(s.find_dest("a_dest"), hit("a_prop", 12)); // first binding, FIFO
    assert_eq!(s.closed(), vec![12]);
    assert_eq!(s.find_dest("a_dest"), hit("a_prop", 13));
    assert_eq!(s.closed(), vec![13]);
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 3)); // b_endp is gone
    assert_eq!(s.find_dest("a_dest"), None); // b_endp empty, b_endp2 never had any
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 3)); // bindings all still there
    assert_eq!(s.closed(), Vec::<u32>::new());

    // --- Another combined collision: the third binding serves. ---
    s.save_endp(2, "b_endp2", "b_prop", 12);
    s.save_endp(2, "b_endp2", "b_prop", 13);
    s.save_endp(2, "b_endp2", "b_prop", 14);
    assert_eq!(s.size(), (1, 1, 3));
    assert_eq!(s.find_dest("a_dest"), hit("a_prop2", 12));
    assert_eq!(s.find_dest("a_dest"), hit("a_prop2", 13));
    assert_eq!(s.find_dest("a_dest"), hit("a_prop2", 14));
    assert_eq!(s.closed(), vec![12, 13, 14]);
    assert_eq!(s.find_dest("a_dest"), None);
    assert_eq!((s.size(), s.bindings()), ((1, 0, 0), 3));
    assert_eq!(s.t(), 11000);

    let stats = s.cache.stats();
    assert_eq!((stats.dest_hits, stats.dest_misses), (5, 2));
    assert_eq!((stats.endp_hits, stats.endp_misses), (0, 0)); // inner lookups don't count
    assert_eq!((stats.dest_saves, stats.dest_refreshes), (9, 2));
    assert_eq!(stats.endp_saves, 7);
    assert_eq!((stats.expired_sessions, stats.expired_bindings), (2, 4));
    assert_eq!(stats.evictions_total(), 0);
    assert_eq!(
        (
            stats.peak_dest_count,
            stats.peak_endp_count,
            stats.peak_sess_count
        ),
        (1, 1, 3)
    );

    // Postfix's exit handler drops the three remaining bindings; here the
    // cache is simply dropped, and there is no session left to close.
    drop(s.cache);
    assert_eq!(s.log.take(), Vec::<u32>::new());
}

/// The same script's expiry steps without calling `expire`: every operation
/// expires what is due first, so expired entries are never returned even if
/// the caller never drives the timers.
#[test]
fn expiry_happens_inside_operations() {
    let clock = Rc::new(ManualClock::new());
    let log = DropLog::new();
    let mut cache: MultiCache<Tok, _> = MultiCache::new(Rc::clone(&clock));
    let ttl = Duration::from_secs(2);
    cache
        .save_dest(ttl, b"a_dest", b"a_prop", b"b_endp")
        .unwrap();
    cache
        .save_endp(ttl, b"b_endp", b"b_prop", log.tok(12))
        .unwrap();
    cache
        .save_endp(ttl, b"b_endp", b"b_prop", log.tok(13))
        .unwrap();
    clock.advance(Duration::from_secs(2));
    // Not yet expired: nobody asked.
    assert_eq!(cache.size().sess_count, 2);
    assert!(ConnectionCache::find_dest(&mut cache, b"a_dest")
        .unwrap()
        .is_none());
    assert_eq!(log.take(), vec![12, 13]);
    assert_eq!(cache.size(), CacheSize::default());
    assert_eq!(cache.binding_count(), 0);
}
