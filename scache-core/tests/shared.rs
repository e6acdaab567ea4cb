//! SharedCache: many threads on one cache, the departure hook, liveness at
//! checkout, and expiry with no traffic.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use scache_core::{
    probe_fd, CacheError, ConnectionCache, DepartureCause, EvictionCause, Limits, Liveness,
    ManualClock, MonotonicClock, MultiCache, SharedCache,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A descriptor stand-in that can cross threads and records its drop.
#[derive(Debug)]
struct Tok {
    id: u32,
    dropped: Arc<Mutex<Vec<u32>>>,
}

impl Drop for Tok {
    fn drop(&mut self) {
        self.dropped.lock().unwrap().push(self.id);
    }
}

#[derive(Clone, Default)]
struct Drops(Arc<Mutex<Vec<u32>>>);

impl Drops {
    fn tok(&self, id: u32) -> Tok {
        Tok {
            id,
            dropped: Arc::clone(&self.0),
        }
    }
    fn take(&self) -> Vec<u32> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Tests that open descriptors or count them run one at a time (the count
/// is the process's).
static FDS: Mutex<()> = Mutex::new(());

fn fds_lock() -> std::sync::MutexGuard<'static, ()> {
    FDS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn shared_cache_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<SharedCache<std::os::fd::OwnedFd>>();
    check::<SharedCache<std::net::TcpStream, MonotonicClock>>();
    check::<SharedCache<Tok, Arc<ManualClock>>>();
    check::<MonotonicClock>();
    check::<ManualClock>();
    fn clone_copy<T: Clone + Copy + Send + Sync>() {}
    clone_copy::<MonotonicClock>();
}

#[test]
fn errors_convert_into_boxed_errors() {
    fn first_save(
        cache: &mut impl ConnectionCache<Fd = u32>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        cache.save_endp(secs(2), b"e", b"", 1)?;
        Ok(())
    }
    let clock = ManualClock::new();
    let limits = Limits {
        max_label_len: Some(0),
        ..Limits::NONE
    };
    let mut cache: MultiCache<u32, _> = MultiCache::with_limits(&clock, limits);
    let err = first_save(&mut cache).unwrap_err();
    assert!(err.downcast_ref::<CacheError>().is_some(), "{err}");
}

#[test]
fn same_semantics_as_multicache_in_virtual_time() {
    let clock = Arc::new(ManualClock::new());
    let drops = Drops::default();
    let cache = SharedCache::new(Arc::clone(&clock));
    cache.save_dest(secs(2), b"d", b"dp", b"e").unwrap();
    cache.save_endp(secs(2), b"e", b"p1", drops.tok(1)).unwrap();
    cache.save_endp(secs(3), b"e", b"p2", drops.tok(2)).unwrap();
    assert_eq!(cache.size().map(|s| s.sess_count), Some(2));
    let found = cache.find_dest(b"d").unwrap().expect("bound");
    assert_eq!((found.fd.id, &found.dest_prop[..]), (1, &b"dp"[..]));
    drop(found);
    clock.advance(secs(2));
    // The binding expired; the second session has one second left.
    assert!(cache.find_dest(b"d").unwrap().is_none());
    assert_eq!(cache.find_endp(b"e").unwrap().map(|f| f.fd.id), Some(2));
    assert_eq!(drops.take(), vec![1, 2]);
    let stats = cache.stats();
    assert_eq!(
        (stats.dest_hits, stats.dest_misses, stats.endp_hits),
        (1, 1, 1)
    );
    // Through the trait as well.
    let mut as_trait: Box<dyn ConnectionCache<Fd = Tok, Error = CacheError>> = Box::new(cache);
    as_trait
        .save_endp(secs(1), b"x", b"", drops.tok(3))
        .unwrap();
    assert_eq!(as_trait.size().map(|s| s.sess_count), Some(1));
    drop(as_trait);
    assert_eq!(drops.take(), vec![3]);
}

/// Eight threads save and take sessions on one cache at once: every
/// session is taken exactly once or is still cached at the end; none is
/// lost or duplicated.
#[test]
fn many_threads_one_cache() {
    const THREADS: u32 = 8;
    const PER_THREAD: u32 = 2_000;
    let drops = Drops::default();
    let cache = Arc::new(SharedCache::<Tok>::new(MonotonicClock::new()));
    let taken = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = Arc::clone(&cache);
            let taken = Arc::clone(&taken);
            let drops = drops.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..PER_THREAD {
                    let id = t * PER_THREAD + i;
                    // Eight endpoints shared by all threads.
                    let endp = format!("smtp\n192.0.2.{}\n25\n", i % 8);
                    cache
                        .save_endp(secs(3600), endp.as_bytes(), b"", drops.tok(id))
                        .unwrap();
                    if i % 3 != 0 {
                        let other = format!("smtp\n192.0.2.{}\n25\n", (i + t) % 8);
                        if let Some(found) = cache.find_endp(other.as_bytes()).unwrap() {
                            mine.push(found.fd.id);
                            std::mem::forget(found.fd);
                        }
                    }
                }
                taken.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let taken = std::mem::take(&mut *taken.lock().unwrap());
    let unique: BTreeSet<u32> = taken.iter().copied().collect();
    assert_eq!(unique.len(), taken.len(), "a session was taken twice");
    let stats = cache.stats();
    assert_eq!(
        taken.len() + stats.sess_count,
        (THREADS * PER_THREAD) as usize,
        "taken + cached = saved"
    );
    assert_eq!(stats.endp_hits as usize, taken.len());
    assert!(drops.take().is_empty(), "nothing was dropped while cached");
    cache.clear();
    let closed: BTreeSet<u32> = drops.take().into_iter().collect();
    assert_eq!(closed.len(), stats.sess_count);
    assert!(closed.is_disjoint(&unique));
}

#[test]
fn departure_hook_gets_every_session_that_leaves_unfound() {
    let clock = Arc::new(ManualClock::new());
    let limits = Limits {
        max_sessions_per_endpoint: Some(1),
        ..Limits::NONE
    };
    let cache = SharedCache::with_limits(Arc::clone(&clock), limits);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    cache.set_departure_hook(move |d| {
        tx.lock()
            .unwrap()
            .send((d.fd, d.endp, d.endp_prop, d.cause))
            .unwrap();
    });
    cache.save_endp(secs(2), b"e1", b"p1", 1u32).unwrap();
    // A second session under e1 evicts the first (endpoint limit).
    cache.save_endp(secs(5), b"e1", b"p2", 2).unwrap();
    assert_eq!(
        rx.try_recv().unwrap(),
        (
            1,
            b"e1".to_vec(),
            b"p1".to_vec(),
            DepartureCause::Evicted(EvictionCause::EndpointLimit)
        )
    );
    cache.save_endp(secs(1), b"e2", b"p3", 3).unwrap();
    // Found sessions do not go to the hook.
    assert_eq!(cache.find_endp(b"e1").unwrap().map(|f| f.fd), Some(2));
    cache.save_endp(secs(1), b"e1", b"p4", 4).unwrap();
    assert!(rx.try_recv().is_err());
    clock.advance(secs(1));
    assert_eq!(cache.expire_due(), 2);
    let mut expired: Vec<_> = rx.try_iter().map(|d| (d.0, d.3)).collect();
    expired.sort_by_key(|e| e.0);
    assert_eq!(
        expired,
        vec![(3, DepartureCause::Expired), (4, DepartureCause::Expired)]
    );
    cache.save_endp(secs(9), b"e3", b"p5", 5).unwrap();
    cache.save_endp(secs(9), b"e4", b"p6", 6).unwrap();
    cache.clear();
    let shut: Vec<_> = rx.try_iter().map(|d| (d.0, d.3)).collect();
    assert_eq!(
        shut,
        vec![(5, DepartureCause::Shutdown), (6, DepartureCause::Shutdown)]
    );
    // Still cached when the cache is dropped: shutdown too.
    cache.save_endp(secs(9), b"e5", b"p7", 7).unwrap();
    drop(cache);
    assert_eq!(rx.try_recv().unwrap().3, DepartureCause::Shutdown);
    // After removing the hook, departing sessions are simply dropped.
    let drops = Drops::default();
    let cache = SharedCache::new(Arc::clone(&clock));
    cache.set_departure_hook(|_| panic!("removed"));
    cache.remove_departure_hook();
    cache.save_endp(secs(1), b"e", b"", drops.tok(8)).unwrap();
    clock.advance(secs(1));
    cache.expire_due();
    assert_eq!(drops.take(), vec![8]);
}

/// The hook runs outside the cache's lock: it may use the cache itself.
#[test]
fn departure_hook_may_use_the_cache() {
    let clock = Arc::new(ManualClock::new());
    let cache = Arc::new(SharedCache::new(Arc::clone(&clock)));
    let weak: Weak<SharedCache<u32, Arc<ManualClock>>> = Arc::downgrade(&cache);
    let seen = Arc::new(AtomicUsize::new(usize::MAX));
    let seen_in_hook = Arc::clone(&seen);
    cache.set_departure_hook(move |_| {
        if let Some(cache) = weak.upgrade() {
            seen_in_hook.store(cache.stats().sess_count, Ordering::SeqCst);
        }
    });
    cache.save_endp(secs(1), b"e", b"", 1).unwrap();
    cache.save_endp(secs(5), b"e", b"", 2).unwrap();
    clock.advance(secs(1));
    cache.expire_due();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

#[test]
fn multicache_departure_hook_and_put_back_after_deadline() {
    let clock = ManualClock::new();
    let mut cache: MultiCache<u32, _> = MultiCache::new(&clock);
    let (tx, rx) = mpsc::channel();
    cache.set_departure_hook(move |d| tx.send((d.fd, d.cause)).unwrap());
    cache.save_endp(secs(2), b"e", b"", 1).unwrap();
    let taken = cache.take_endp(b"e").unwrap();
    clock.advance(secs(2));
    assert!(cache.put_back(taken).is_none());
    assert_eq!(rx.try_recv().unwrap(), (1, DepartureCause::Expired));
    cache.save_endp(secs(2), b"e", b"", 2).unwrap();
    cache.evict_soonest(EvictionCause::FdPressure);
    assert_eq!(
        rx.try_recv().unwrap(),
        (2, DepartureCause::Evicted(EvictionCause::FdPressure))
    );
    // Removed by the owner: not the hook's.
    let h = cache.save_endp(secs(2), b"e", b"", 3).unwrap();
    assert_eq!(
        cache
            .remove_session(h, EvictionCause::PeerClosed)
            .map(|f| f.fd),
        Some(3)
    );
    drop(cache);
    assert!(rx.try_recv().is_err());
}

#[test]
fn probe_tells_idle_closed_and_chatty_peers_apart() {
    let _fds = fds_lock();
    let (mut server, client) = UnixStream::pair().unwrap();
    assert_eq!(probe_fd(client.as_fd()), Liveness::Alive);
    server.write_all(b"421 4.4.2 idle too long\r\n").unwrap();
    assert_eq!(probe_fd(client.as_fd()), Liveness::Unread);
    let (server2, client2) = UnixStream::pair().unwrap();
    drop(server2);
    assert_eq!(probe_fd(client2.as_fd()), Liveness::Closed);
    drop(server);
    // A peer that spoke and hung up is closed (as the daemon counts it).
    assert_eq!(probe_fd(client.as_fd()), Liveness::Closed);
    let (a, b) = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| {
            let c = std::net::TcpStream::connect(l.local_addr()?)?;
            Ok((l.accept()?.0, c))
        })
        .unwrap();
    assert_eq!(probe_fd(b.as_fd()), Liveness::Alive);
    a.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(probe_fd(b.as_fd()), Liveness::Closed);
}

/// With liveness checks on, dead sessions are skipped (and closed) at
/// checkout, by endpoint and by destination, and counted as evicted.
#[test]
fn liveness_at_checkout_skips_dead_sessions() {
    let _fds = fds_lock();
    let before = open_fds();
    let clock = Arc::new(ManualClock::new());
    let cache: SharedCache<UnixStream, _> = SharedCache::new(Arc::clone(&clock));
    cache.check_liveness();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    cache.set_departure_hook(move |d| tx.lock().unwrap().send((d.endp_prop, d.cause)).unwrap());
    let mut peers = Vec::new();
    let mut save = |prop: &[u8], state: Liveness| {
        let (mut peer, mine) = UnixStream::pair().unwrap();
        match state {
            Liveness::Alive => peers.push(peer),
            Liveness::Unread => {
                peer.write_all(b"421 bye\r\n").unwrap();
                peers.push(peer);
            }
            Liveness::Closed => drop(peer),
        }
        cache.save_endp(secs(60), b"e", prop, mine).unwrap();
    };
    save(b"closed", Liveness::Closed);
    save(b"chatty", Liveness::Unread);
    save(b"good", Liveness::Alive);
    save(b"closed2", Liveness::Closed);
    cache.save_dest(secs(60), b"d", b"", b"e").unwrap();
    let found = cache.find_endp(b"e").unwrap().expect("a live one");
    assert_eq!(found.endp_prop, b"good");
    let departed: Vec<_> = rx.try_iter().collect();
    assert_eq!(
        departed,
        vec![
            (
                b"closed".to_vec(),
                DepartureCause::Evicted(EvictionCause::PeerClosed)
            ),
            (
                b"chatty".to_vec(),
                DepartureCause::Evicted(EvictionCause::PeerData)
            )
        ]
    );
    // By destination: the last one is dead too: a miss, and it is gone.
    assert!(cache.find_dest(b"d").unwrap().is_none());
    let stats = cache.stats();
    assert_eq!(stats.evicted_sessions_for(EvictionCause::PeerClosed), 2);
    assert_eq!(stats.evicted_sessions_for(EvictionCause::PeerData), 1);
    assert_eq!(
        (stats.endp_hits, stats.dest_misses, stats.sess_count),
        (1, 1, 0)
    );
    drop(found);
    drop(rx);
    drop(peers);
    drop(cache);
    assert_eq!(open_fds(), before, "descriptors leaked");
}

/// One line of setup, and a session whose time is up is dropped within
/// 100 ms with no other operation on the cache.
#[test]
fn background_expiry_drops_sessions_with_no_traffic() {
    let drops = Drops::default();
    let cache = Arc::new(SharedCache::<Tok>::new(MonotonicClock::new()));
    let expiry = cache.expire_in_background();
    assert!(expiry.is_running());
    let saved = Instant::now();
    cache
        .save_endp(Duration::from_millis(200), b"e", b"", drops.tok(1))
        .unwrap();
    let deadline = saved + Duration::from_millis(200);
    let gone_at = loop {
        if drops.0.lock().unwrap().contains(&1) {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(5),
            "never dropped"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    // MonotonicClock counts whole milliseconds, so the cache's deadline
    // can fall up to 1 ms before the one measured here, never more.
    let resolution = Duration::from_millis(1);
    assert!(
        gone_at + resolution >= deadline,
        "dropped {:?} early",
        deadline - gone_at
    );
    let late = gone_at.saturating_duration_since(deadline);
    assert!(late < Duration::from_millis(100), "dropped {late:?} late");
    assert_eq!(cache.stats().expired_sessions, 1);
    // Stopped with its guard: nothing expires by itself any more.
    drop(expiry);
    cache
        .save_endp(Duration::from_millis(10), b"e", b"", drops.tok(2))
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(drops.take(), vec![1], "expired with the thread stopped");
    assert_eq!(cache.expire_due(), 1);
}

/// The guard keeps the cache alive; dropping both closes what is cached.
#[test]
fn background_expiry_guard_and_cache_drop_cleanly() {
    let hooked = Arc::new(AtomicBool::new(false));
    let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
    let h = Arc::clone(&hooked);
    cache.set_departure_hook(move |d| {
        assert_eq!(d.cause, DepartureCause::Shutdown);
        h.store(true, Ordering::SeqCst);
    });
    let expiry = cache.expire_in_background();
    cache.save_endp(secs(60), b"e", b"", 1).unwrap();
    drop(cache);
    assert!(!hooked.load(Ordering::SeqCst), "the guard keeps it alive");
    drop(expiry);
    assert!(
        hooked.load(Ordering::SeqCst),
        "closed at the last reference"
    );
}
