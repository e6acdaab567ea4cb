//! The one adapter between the protocol machine and the cache: a
//! [`MultiCache`] behind [`Backend`], with the daemon's rules on top.
//!
//! - TTLs are capped at `connection_cache_ttl_limit`;
//! - cache outcomes map to wire statuses (a refused save is status 2);
//! - Postfix's interval statistics and our `stats` counters are kept;
//! - for the daemon's dead-peer watch, every session stored (saved or put
//!   back) is remembered until the driver takes the list
//!   ([`take_stored`](CacheBackend::take_stored)) and registers them with
//!   its event loop; events on them come back through
//!   [`on_peer_event`](CacheBackend::on_peer_event).
//!
//! It is generic over the descriptor type and the clock, so the daemon
//! runs it with `OwnedFd` and the real clock, and the fuzz targets drive
//! the very same code with tokens and virtual time.
#![forbid(unsafe_code)]

use std::time::{Duration, SystemTime};

use std::os::fd::{AsFd, AsRawFd};

use scache_core::{
    Clock, Departure, DepartureCause, EvictionCause, Instant, MultiCache, SessionHandle,
};
use scache_proto::attr::put_attr;
use scache_proto::message::{ListedBinding, ListedDestination, ListedEndpoint, Listing, Status};
use scache_proto::server::Backend;

use crate::statslog::IntervalStats;

/// A session taken out of the cache while it is being handed over.
pub type Taken<F> = scache_core::Taken<F>;

/// Counters kept by the daemon itself (the cache keeps its own).
#[derive(Debug, Clone, Default)]
pub struct DaemonCounters {
    /// Client connections accepted.
    pub clients_accepted: u64,
    /// Client connections refused by access control.
    pub clients_refused: u64,
    /// Client connections open now (set by the event loop).
    pub clients_current: u64,
    /// Sessions saved without dead-peer watching (not pollable).
    pub unwatched_saves: u64,
    /// Times the event loop rebuilt its epoll instance to drop the
    /// registrations left by sessions handed over (set by the event loop).
    pub watch_rebuilds: u64,
}

/// The cache as the protocol machine sees it.
pub struct CacheBackend<F, C> {
    cache: MultiCache<F, C>,
    ttl_limit: u32,
    watch: bool,
    /// Sessions stored since the driver last asked (only when watching).
    stored: Vec<SessionHandle>,
    started: SystemTime,
    /// Postfix's per-interval statistics (logged and reset every
    /// `connection_cache_status_update_time`).
    pub interval: IntervalStats,
    /// Daemon-level counters.
    pub counters: DaemonCounters,
}

impl<F, C: Clock> CacheBackend<F, C> {
    /// Wraps `cache`; TTLs are capped at `ttl_limit` (at least 1 s); `watch`
    /// turns on the list of stored sessions for dead-peer watching.
    pub fn new(cache: MultiCache<F, C>, ttl_limit: Duration, watch: bool) -> CacheBackend<F, C> {
        let started = SystemTime::now();
        CacheBackend {
            cache,
            ttl_limit: ttl_limit.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
            watch,
            stored: Vec::new(),
            started,
            interval: IntervalStats::new(started),
            counters: DaemonCounters::default(),
        }
    }

    /// The cache itself.
    pub fn cache(&self) -> &MultiCache<F, C> {
        &self.cache
    }

    /// The cache itself, to change its settings (limits, departure hook).
    pub fn cache_mut(&mut self) -> &mut MultiCache<F, C> {
        &mut self.cache
    }

    /// When the cache next has something to expire.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.cache.next_deadline()
    }

    /// Expires what is due at `now`.
    pub fn expire(&mut self, now: Instant) {
        self.cache.expire(now);
    }

    /// Cached sessions now.
    pub fn sess_count(&self) -> usize {
        self.cache.size().sess_count
    }

    /// The sessions stored (saved or put back) since the last call, for the
    /// driver to watch; some may have left the cache already (their
    /// handles are stale). Always empty when watching is off.
    pub fn take_stored(&mut self) -> std::vec::Drain<'_, SessionHandle> {
        self.stored.drain(..)
    }

    /// Hands each session stored since the last call and still cached to
    /// `watch` (its handle and descriptor); counts those `watch` could not
    /// watch (it returns false) in [`DaemonCounters::unwatched_saves`].
    pub fn watch_stored(&mut self, mut watch: impl FnMut(SessionHandle, &F) -> bool) {
        if self.stored.is_empty() {
            return;
        }
        let mut unwatched = 0;
        for &handle in &self.stored {
            if let Some(fd) = self.cache.session_fd(handle) {
                if !watch(handle, fd) {
                    unwatched += 1;
                }
            }
        }
        self.stored.clear();
        self.counters.unwatched_saves += unwatched;
    }

    /// The descriptor of a cached session (to register it for events).
    pub fn session_fd(&self, handle: SessionHandle) -> Option<&F> {
        self.cache.session_fd(handle)
    }

    /// A watched session's peer hung up (`PeerClosed`) or spoke
    /// (`PeerData`: an idle SMTP server only speaks to say goodbye,
    /// `421`): the session is evicted. Returns whether it was still cached.
    pub fn on_peer_event(&mut self, handle: SessionHandle, cause: EvictionCause) -> bool {
        match self.cache.remove_session(handle, cause) {
            Some(removed) => {
                log::debug!("evicted cached connection: {}", cause_text(cause));
                drop(removed);
                true
            }
            None => false,
        }
    }

    /// Closes the session closest to expiry to free a descriptor.
    pub fn evict_for_fds(&mut self) -> bool {
        let evicted = self
            .cache
            .evict_soonest(EvictionCause::FdPressure)
            .is_some();
        if evicted {
            log::warn!("descriptor limit reached: evicted the cached connection closest to expiry");
        }
        evicted
    }

    /// Logs Postfix's statistics lines for the interval and starts a new one.
    pub fn log_interval_stats(&mut self) {
        for line in self.interval.take_lines(SystemTime::now()) {
            log::info!("{line}");
        }
    }

    /// The live counters, in the order of the `stats` reply (see
    /// docs/protocol.md): the daemon's own and the cache's.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let s = self.cache.stats();
        let size = self.cache.size();
        let mut out: Vec<(String, u64)> = Vec::with_capacity(40);
        let mut num = |name: &str, v: u64| out.push((name.to_string(), v));
        num(
            "uptime",
            self.started.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        );
        num("clients", self.counters.clients_current);
        num("clients_accepted", self.counters.clients_accepted);
        num("clients_refused", self.counters.clients_refused);
        num("dest_count", size.dest_count as u64);
        num("endp_count", size.endp_count as u64);
        num("sess_count", size.sess_count as u64);
        num("binding_count", s.binding_count as u64);
        num("peak_dest_count", s.peak_dest_count as u64);
        num("peak_endp_count", s.peak_endp_count as u64);
        num("peak_sess_count", s.peak_sess_count as u64);
        num("peak_binding_count", s.peak_binding_count as u64);
        num("endp_hits", s.endp_hits);
        num("endp_misses", s.endp_misses);
        num("dest_hits", s.dest_hits);
        num("dest_misses", s.dest_misses);
        num("saves_endp", s.endp_saves);
        num("saves_dest", s.dest_saves);
        num("dest_refreshes", s.dest_refreshes);
        num("refused_saves", s.refused_saves);
        num("put_backs", s.put_backs);
        num("expired_sessions", s.expired_sessions);
        num("expired_bindings", s.expired_bindings);
        for cause in EvictionCause::ALL {
            if !matches!(
                cause,
                EvictionCause::DestinationLimit | EvictionCause::Caller
            ) {
                num(
                    &format!("evicted_sessions_{cause}"),
                    s.evicted_sessions_for(cause),
                );
            }
        }
        for cause in [EvictionCause::DestinationLimit, EvictionCause::LabelLimit] {
            num(
                &format!("evicted_bindings_{cause}"),
                s.evicted_bindings_for(cause),
            );
        }
        num("unwatched_saves", self.counters.unwatched_saves);
        num("watch_rebuilds", self.counters.watch_rebuilds);
        out
    }

    /// Closes every cached descriptor (at exit).
    pub fn close_all(&mut self) {
        self.cache.clear();
        self.stored.clear();
    }

    /// A client's TTL (seconds, positive) capped at the limit.
    fn ttl(&self, ttl: u32) -> Duration {
        Duration::from_secs(u64::from(ttl.min(self.ttl_limit)))
    }

    fn stored(&mut self, handle: SessionHandle) {
        if self.watch {
            self.stored.push(handle);
        }
    }
}

/// The departure hook of `scache_quit_before_close = yes`: a session that
/// leaves the cache without being found (expired, evicted by a limit or
/// for descriptors, still cached at exit) gets `QUIT\r\n`, sent without
/// blocking and without `SIGPIPE` (best effort: a full socket buffer or a
/// peer that is gone simply means no `QUIT`), and is then closed. A session
/// whose peer closed or spoke gets nothing: it is not in a state to take a
/// command (the daemon's dead-peer watch removes those without the hook
/// anyway). Whatever the descriptor speaks gets these bytes, so this is for
/// caches of SMTP and LMTP sessions only.
pub fn quit_before_close<F: AsFd>(departure: Departure<F>) {
    let peer_gone = matches!(
        departure.cause,
        DepartureCause::Evicted(EvictionCause::PeerClosed | EvictionCause::PeerData)
    );
    if !peer_gone {
        let sent = nix::sys::socket::send(
            departure.fd.as_fd().as_raw_fd(),
            b"QUIT\r\n",
            nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        );
        log::debug!(
            "QUIT before closing a cached connection ({}): {sent:?}",
            departure.cause
        );
    }
    drop(departure);
}

fn cause_text(cause: EvictionCause) -> &'static str {
    match cause {
        EvictionCause::PeerClosed => "peer closed the connection",
        EvictionCause::PeerData => "peer sent data (shutdown notice?)",
        _ => "evicted",
    }
}

impl<F, C: Clock> Backend for CacheBackend<F, C> {
    type Fd = F;
    type Session = Taken<F>;

    fn save_endp(&mut self, ttl: u32, endp: &[u8], endp_prop: &[u8], fd: F) -> Status {
        let ttl = self.ttl(ttl);
        match self.cache.save_endp(ttl, endp, endp_prop, fd) {
            Ok(handle) => {
                self.stored(handle);
                let size = self.cache.size();
                self.interval
                    .sample_after_save_endp(size.endp_count as u64, size.sess_count as u64);
                Status::Ok
            }
            Err(refused) => {
                log::warn!("save_endp: session not cached: {}", refused.error);
                Status::Fail
            }
        }
    }

    fn find_endp(&mut self, endp: &[u8]) -> Option<Taken<F>> {
        let found = self.cache.take_endp(endp);
        self.interval.record_endp_lookup(found.is_some());
        found
    }

    fn save_dest(&mut self, ttl: u32, dest: &[u8], dest_prop: &[u8], endp: &[u8]) -> Status {
        let ttl = self.ttl(ttl);
        match self.cache.save_dest(ttl, dest, dest_prop, endp) {
            Ok(_) => {
                let size = self.cache.size();
                self.interval
                    .sample_after_save_dest(size.dest_count as u64, size.endp_count as u64);
                Status::Ok
            }
            Err(e) => {
                log::warn!("save_dest: binding not cached: {e}");
                Status::Fail
            }
        }
    }

    fn find_dest(&mut self, dest: &[u8]) -> Option<Taken<F>> {
        let found = self.cache.take_dest(dest);
        self.interval.record_dest_lookup(found.is_some());
        found
    }

    fn endp_prop<'s>(&self, session: &'s Taken<F>) -> &'s [u8] {
        &session.endp_prop
    }

    fn dest_prop<'s>(&self, session: &'s Taken<F>) -> &'s [u8] {
        session.dest_prop.as_deref().unwrap_or(b"")
    }

    fn put_back(&mut self, session: Taken<F>) {
        if let Some(handle) = self.cache.put_back(session) {
            self.stored(handle);
        }
    }

    fn stats(&mut self, out: &mut Vec<u8>) {
        for (name, value) in self.counters() {
            put_attr(out, name.as_bytes(), value.to_string().as_bytes());
        }
    }

    /// Endpoints by sessions (most first), destinations by the sessions
    /// reachable through their bindings, then by label; at most `limit` of
    /// each and `limit` bindings per destination (in their order).
    fn list(&mut self, limit: usize) -> Listing {
        self.cache.expire_due();
        let view = self.cache.view();
        let mut endpoints = view.endpoints;
        endpoints.sort_unstable_by(|a, b| b.sessions.cmp(&a.sessions).then(a.label.cmp(b.label)));
        let mut destinations: Vec<(usize, scache_core::DestinationView<'_>)> = view
            .destinations
            .into_iter()
            .map(|d| (d.sessions(), d))
            .collect();
        destinations.sort_unstable_by(|(sa, a), (sb, b)| {
            sb.cmp(sa)
                .then(b.bindings.len().cmp(&a.bindings.len()))
                .then(a.label.cmp(b.label))
        });
        Listing {
            endpoints_total: endpoints.len() as u64,
            destinations_total: destinations.len() as u64,
            endpoints: endpoints
                .iter()
                .take(limit)
                .map(|e| ListedEndpoint {
                    label: e.label.to_vec(),
                    sessions: e.sessions as u64,
                    oldest_age: e.oldest_age,
                    ttl_left: e.ttl_left,
                })
                .collect(),
            destinations: destinations
                .iter()
                .take(limit)
                .map(|(sessions, d)| ListedDestination {
                    label: d.label.to_vec(),
                    sessions: *sessions as u64,
                    bindings_total: d.bindings.len() as u64,
                    bindings: d
                        .bindings
                        .iter()
                        .take(limit)
                        .map(|b| ListedBinding {
                            endpoint: b.endpoint.to_vec(),
                            ttl_left: b.ttl_left,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scache_core::ManualClock;

    fn backend(limit_secs: u64) -> CacheBackend<u32, &'static ManualClock> {
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        CacheBackend::new(
            MultiCache::new(clock),
            Duration::from_secs(limit_secs),
            true,
        )
    }

    #[test]
    fn ttl_is_capped_at_the_limit() {
        for (limit, asked, got) in [(2, 1, 1), (2, 2, 2), (2, 3, 2), (2, u32::MAX, 2), (0, 5, 1)] {
            assert_eq!(
                backend(limit).ttl(asked),
                Duration::from_secs(got),
                "limit {limit}s, asked {asked}s"
            );
        }
    }

    #[test]
    fn saved_session_expires_at_the_capped_ttl() {
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        let mut b = CacheBackend::new(MultiCache::new(clock), Duration::from_secs(2), false);
        assert_eq!(b.save_endp(3600, b"e", b"p", 7), Status::Ok);
        clock.advance(Duration::from_millis(1999));
        b.expire(clock.now());
        assert_eq!(b.sess_count(), 1);
        clock.advance(Duration::from_millis(1));
        b.expire(clock.now());
        assert_eq!(b.sess_count(), 0);
        // Bindings are capped the same way.
        assert_eq!(b.save_dest(3600, b"d", b"", b"e"), Status::Ok);
        clock.advance(Duration::from_secs(2));
        b.expire(clock.now());
        assert_eq!(b.cache().binding_count(), 0);
    }

    #[test]
    fn stored_sessions_are_listed_only_when_watching() {
        let mut b = backend(2);
        assert_eq!(b.save_endp(2, b"e", b"", 1), Status::Ok);
        let taken = b.find_endp(b"e").expect("cached");
        b.put_back(taken);
        let stored: Vec<_> = b.take_stored().collect();
        assert_eq!(stored.len(), 2);
        assert!(!b.cache().contains_session(stored[0]));
        assert!(b.cache().contains_session(stored[1]));
        assert_eq!(b.take_stored().count(), 0);
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        let mut quiet = CacheBackend::new(MultiCache::new(clock), Duration::from_secs(2), false);
        assert_eq!(quiet.save_endp(2, b"e", b"", 1), Status::Ok);
        assert_eq!(quiet.take_stored().count(), 0);
    }

    #[test]
    fn peer_events_evict_by_cause() {
        let mut b = backend(2);
        b.save_endp(2, b"e", b"", 1);
        b.save_endp(2, b"e", b"", 2);
        let handles: Vec<_> = b.take_stored().collect();
        assert!(b.on_peer_event(handles[0], EvictionCause::PeerClosed));
        assert!(!b.on_peer_event(handles[0], EvictionCause::PeerClosed));
        assert!(b.on_peer_event(handles[1], EvictionCause::PeerData));
        let s = b.cache().stats();
        assert_eq!(s.evicted_sessions_for(EvictionCause::PeerClosed), 1);
        assert_eq!(s.evicted_sessions_for(EvictionCause::PeerData), 1);
        assert_eq!(b.sess_count(), 0);
    }

    #[test]
    fn refused_save_is_status_2() {
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        let limits = scache_core::Limits {
            max_label_len: Some(4),
            ..scache_core::Limits::NONE
        };
        let mut b: CacheBackend<u32, _> = CacheBackend::new(
            MultiCache::with_limits(clock, limits),
            Duration::from_secs(2),
            true,
        );
        assert_eq!(b.save_endp(2, b"too long", b"", 1), Status::Fail);
        assert_eq!(b.save_dest(2, b"d", b"", b"too long"), Status::Fail);
        assert_eq!(b.take_stored().count(), 0);
        assert_eq!(b.save_endp(2, b"ok", b"", 1), Status::Ok);
    }

    #[test]
    fn list_sorts_by_sessions_and_bounds_everything() {
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        let mut b = CacheBackend::new(MultiCache::new(clock), Duration::from_secs(2), false);
        for (label, n) in [
            (&b"one"[..], 1),
            (b"three", 3),
            (b"two", 2),
            (b"also_two", 2),
        ] {
            for i in 0..n {
                assert_eq!(b.save_endp(2, label, b"", i), Status::Ok);
            }
        }
        for endp in [&b"one"[..], b"two", b"three", b"gone"] {
            assert_eq!(b.save_dest(2, b"d", b"", endp), Status::Ok);
        }
        assert_eq!(b.save_dest(2, b"small", b"", b"one"), Status::Ok);
        clock.advance(Duration::from_millis(250));
        let all = b.list(10);
        let labels: Vec<&[u8]> = all.endpoints.iter().map(|e| &e.label[..]).collect();
        assert_eq!(labels, vec![&b"three"[..], b"also_two", b"two", b"one"]);
        assert_eq!(
            all.endpoints[0].oldest_age,
            Some(Duration::from_millis(250))
        );
        assert_eq!(all.endpoints[0].ttl_left, Duration::from_millis(1750));
        assert_eq!(all.destinations[0].label, b"d");
        assert_eq!(all.destinations[0].sessions, 6);
        let bound: Vec<&[u8]> = all.destinations[0]
            .bindings
            .iter()
            .map(|b| &b.endpoint[..])
            .collect();
        assert_eq!(bound, vec![&b"one"[..], b"two", b"three", b"gone"]);
        let two = b.list(2);
        assert_eq!((two.endpoints_total, two.destinations_total), (4, 2));
        assert_eq!(two.endpoints.len(), 2);
        assert_eq!(two.destinations[0].bindings.len(), 2);
        assert_eq!(two.destinations[0].bindings_total, 4);
        assert_eq!(b.list(0).endpoints.len(), 0);
    }

    /// What the far end of a socketpair received (non-blocking).
    fn received(far: &std::os::unix::net::UnixStream) -> Vec<u8> {
        use std::io::Read;
        far.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while let Ok(n) = (&*far).read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn quit_before_close_by_cause() {
        use std::os::unix::net::UnixStream;
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        let limits = scache_core::Limits {
            max_sessions_per_endpoint: Some(1),
            ..scache_core::Limits::NONE
        };
        let mut b: CacheBackend<std::os::fd::OwnedFd, _> = CacheBackend::new(
            MultiCache::with_limits(clock, limits),
            Duration::from_secs(2),
            true,
        );
        b.cache_mut().set_departure_hook(quit_before_close);
        let mut fars = Vec::new();
        let mut save = |b: &mut CacheBackend<_, _>, label: &[u8], ttl| {
            let (near, far) = UnixStream::pair().unwrap();
            assert_eq!(b.save_endp(ttl, label, b"", near.into()), Status::Ok);
            fars.push(far);
        };
        save(&mut b, b"expires", 1); // 0
        save(&mut b, b"limit", 2); // 1: evicted by the next
        save(&mut b, b"limit", 2); // 2: still cached at exit
        save(&mut b, b"pressure", 2); // 3: evicted for descriptors
        save(&mut b, b"peer", 2); // 4: its peer hangs up
        save(&mut b, b"taken", 2); // 5: found: the taker's, no QUIT
        clock.advance(Duration::from_secs(1));
        b.expire(clock.now());
        let handles: Vec<_> = b.take_stored().collect();
        assert!(b.on_peer_event(handles[4], EvictionCause::PeerClosed));
        let taken = b.find_endp(b"taken").unwrap();
        drop(taken);
        // The soonest of what is left ("limit" and "pressure", same deadline):
        // the one saved first.
        assert!(b.evict_for_fds());
        b.close_all();
        let got: Vec<Vec<u8>> = fars.iter().map(received).collect();
        let quit = b"QUIT\r\n".to_vec();
        assert_eq!(
            got,
            vec![
                quit.clone(),
                quit.clone(),
                quit.clone(),
                quit,
                vec![],
                vec![]
            ]
        );
    }

    #[test]
    fn evict_for_fds_takes_the_soonest() {
        let mut b = backend(5);
        assert!(!b.evict_for_fds());
        b.save_endp(5, b"late", b"", 1);
        b.save_endp(1, b"soon", b"", 2);
        assert!(b.evict_for_fds());
        assert!(b.find_endp(b"soon").is_none());
        assert!(b.find_endp(b"late").is_some());
        assert_eq!(
            b.cache()
                .stats()
                .evicted_sessions_for(EvictionCause::FdPressure),
            1
        );
    }

    #[test]
    fn next_deadline_is_the_caches() {
        let clock: &'static ManualClock = Box::leak(Box::new(ManualClock::new()));
        let mut b = CacheBackend::new(MultiCache::new(clock), Duration::from_secs(10), false);
        assert_eq!(b.next_deadline(), None);
        clock.advance(Duration::from_secs(5));
        assert_eq!(b.save_endp(3, b"e", b"", 1), Status::Ok);
        assert_eq!(b.next_deadline(), Some(Instant::from_millis(8_000)));
        b.expire(Instant::from_millis(8_000));
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn watch_stored_hands_over_the_sessions_still_cached() {
        let mut b = backend(5);
        for fd in 1..=4 {
            assert_eq!(b.save_endp(5, b"e", b"", fd), Status::Ok);
        }
        // The oldest leaves before the driver looks: its handle is stale.
        assert_eq!(b.find_endp(b"e").map(|t| t.fd), Some(1));
        let mut seen = Vec::new();
        b.watch_stored(|handle, &fd| {
            seen.push((handle, fd));
            fd != 3
        });
        assert_eq!(
            seen.iter().map(|&(_, fd)| fd).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        for &(handle, fd) in &seen {
            assert_eq!(b.session_fd(handle), Some(&fd));
        }
        // Only the one the driver could not watch is counted.
        assert_eq!(b.counters.unwatched_saves, 1);
        // The list was consumed.
        b.watch_stored(|_, _| panic!("nothing new was stored"));
        assert_eq!(b.save_endp(5, b"e", b"", 5), Status::Ok);
        b.watch_stored(|_, _| false);
        assert_eq!(b.counters.unwatched_saves, 2);
        // A handle that left the cache has no descriptor.
        let (gone, _) = seen[0];
        assert!(b.find_endp(b"e").is_some());
        assert_eq!(b.session_fd(gone), None);
    }

    #[test]
    fn logging_the_interval_statistics_starts_a_new_interval() {
        let mut b = backend(5);
        assert_eq!(b.save_endp(5, b"e", b"", 1), Status::Ok);
        assert!(b.find_endp(b"e").is_some());
        assert!(b.find_dest(b"d").is_none());
        assert!(!b.interval.is_empty());
        b.log_interval_stats();
        assert!(b.interval.is_empty());
    }

    #[test]
    fn close_all_empties_the_cache_and_the_stored_list() {
        let mut b = backend(5);
        assert_eq!(b.save_endp(5, b"e", b"", 1), Status::Ok);
        assert_eq!(b.save_endp(5, b"f", b"", 2), Status::Ok);
        assert_eq!(b.save_dest(5, b"d", b"", b"e"), Status::Ok);
        b.close_all();
        assert_eq!(b.sess_count(), 0);
        assert_eq!(b.cache().binding_count(), 0);
        assert_eq!(b.take_stored().count(), 0);
        assert_eq!(b.next_deadline(), None);
    }

    #[test]
    fn peer_events_are_logged_with_their_cause() {
        assert_eq!(
            cause_text(EvictionCause::PeerClosed),
            "peer closed the connection"
        );
        assert_eq!(
            cause_text(EvictionCause::PeerData),
            "peer sent data (shutdown notice?)"
        );
        assert_eq!(cause_text(EvictionCause::Caller), "evicted");
    }

    #[test]
    fn stats_reply_names_every_counter_once() {
        let mut b = backend(5);
        assert_eq!(b.save_endp(5, b"e", b"", 1), Status::Ok);
        assert_eq!(b.save_endp(5, b"e", b"", 2), Status::Ok);
        let handles: Vec<_> = b.take_stored().collect();
        assert!(b.on_peer_event(handles[0], EvictionCause::PeerData));
        let mut out = Vec::new();
        Backend::stats(&mut b, &mut out);
        scache_proto::attr::put_end(&mut out);
        // More than the default 32 attributes, as docs/protocol.md says.
        let mut decoder = scache_proto::attr::Decoder::new(scache_proto::attr::Limits {
            max_attrs: 1024,
            ..Default::default()
        });
        let scache_proto::attr::Decoded::Complete { message, .. } = decoder.decode(&out) else {
            panic!("one complete message");
        };
        let names: Vec<String> = message
            .iter()
            .map(|(n, _)| String::from_utf8(n.to_vec()).unwrap())
            .collect();
        let want = [
            "uptime",
            "clients",
            "clients_accepted",
            "clients_refused",
            "dest_count",
            "endp_count",
            "sess_count",
            "binding_count",
            "peak_dest_count",
            "peak_endp_count",
            "peak_sess_count",
            "peak_binding_count",
            "endp_hits",
            "endp_misses",
            "dest_hits",
            "dest_misses",
            "saves_endp",
            "saves_dest",
            "dest_refreshes",
            "refused_saves",
            "put_backs",
            "expired_sessions",
            "expired_bindings",
            "evicted_sessions_session_limit",
            "evicted_sessions_endpoint_limit",
            "evicted_sessions_label_limit",
            "evicted_sessions_peer_closed",
            "evicted_sessions_peer_data",
            "evicted_sessions_fd_pressure",
            "evicted_bindings_destination_limit",
            "evicted_bindings_label_limit",
            "unwatched_saves",
            "watch_rebuilds",
        ];
        assert_eq!(names, want);
        assert_eq!(message.get(b"saves_endp"), Some(&b"2"[..]));
        assert_eq!(message.get(b"sess_count"), Some(&b"1"[..]));
        assert_eq!(message.get(b"evicted_sessions_peer_data"), Some(&b"1"[..]));
    }
}
