//! The daemon's side of the cache: the core cache holding watched
//! descriptors, Postfix's interval statistics, and the counters that the
//! `stats` request reports.

use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime};

use nix::sys::epoll::EpollFlags;
use scache_core::{Clock, EvictionCause, Instant, MultiCache, SessionHandle};
use scache_proto::attr::put_attr;
use scache_proto::message::Status;
use scache_proto::server::Backend;

use crate::daemon::SESSION_TOKEN_BIT;
use crate::statslog::IntervalStats;
use crate::watched::WatchedFd;

/// The daemon's monotonic clock (milliseconds since start).
#[derive(Debug, Clone, Copy)]
pub struct MonoClock {
    origin: std::time::Instant,
}

impl MonoClock {
    /// A clock whose origin is now.
    pub fn new() -> MonoClock {
        MonoClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl Default for MonoClock {
    fn default() -> Self {
        MonoClock::new()
    }
}

impl Clock for MonoClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.origin.elapsed().as_millis() as u64)
    }
}

/// A session taken out of the cache while it is being handed over.
pub type Taken = scache_core::Taken<WatchedFd>;

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
}

/// The cache as the protocol machine sees it.
pub struct CacheBackend {
    cache: MultiCache<WatchedFd, MonoClock>,
    ttl_limit: u32,
    watch: bool,
    started: SystemTime,
    /// Postfix's per-interval statistics (logged and reset every
    /// `connection_cache_status_update_time`).
    pub interval: IntervalStats,
    /// Daemon-level counters.
    pub counters: DaemonCounters,
}

impl CacheBackend {
    /// Wraps `cache`; TTLs are capped at `ttl_limit`; `watch` turns
    /// dead-connection eviction on.
    pub fn new(
        cache: MultiCache<WatchedFd, MonoClock>,
        ttl_limit: Duration,
        watch: bool,
    ) -> CacheBackend {
        let started = SystemTime::now();
        CacheBackend {
            cache,
            ttl_limit: ttl_limit.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
            watch,
            started,
            interval: IntervalStats::new(started),
            counters: DaemonCounters::default(),
        }
    }

    /// The cache itself.
    pub fn cache(&self) -> &MultiCache<WatchedFd, MonoClock> {
        &self.cache
    }

    /// When the cache next has something to expire.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.cache.next_deadline()
    }

    /// Expires what is due.
    pub fn expire(&mut self) {
        self.cache.expire_due();
    }

    /// Cached sessions now.
    pub fn sess_count(&self) -> usize {
        self.cache.size().sess_count
    }

    /// A watched session's descriptor reported activity: its peer hung up
    /// or spoke (an idle SMTP server only speaks to say goodbye, `421`).
    pub fn on_session_event(&mut self, handle: u64, flags: EpollFlags) {
        let cause = if flags
            .intersects(EpollFlags::EPOLLRDHUP | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR)
        {
            EvictionCause::PeerClosed
        } else {
            EvictionCause::PeerData
        };
        if let Some(removed) = self
            .cache
            .remove_session(SessionHandle::from_u64(handle), cause)
        {
            log::debug!("evicted cached connection: {}", cause_text(cause));
            drop(removed);
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

    /// Closes every cached descriptor (at exit).
    pub fn close_all(&mut self) {
        self.cache.clear();
    }

    fn ttl(&self, ttl: u32) -> Duration {
        Duration::from_secs(u64::from(ttl.min(self.ttl_limit)))
    }
}

fn cause_text(cause: EvictionCause) -> &'static str {
    match cause {
        EvictionCause::PeerClosed => "peer closed the connection",
        EvictionCause::PeerData => "peer sent data (shutdown notice?)",
        _ => "evicted",
    }
}

impl Backend for CacheBackend {
    type Fd = OwnedFd;
    type Session = Taken;

    fn save_endp(&mut self, ttl: u32, endp: &[u8], endp_prop: &[u8], fd: OwnedFd) -> Status {
        let ttl = self.ttl(ttl);
        match self
            .cache
            .save_endp(ttl, endp, endp_prop, WatchedFd::new(fd))
        {
            Ok(handle) => {
                self.watch(handle);
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

    fn find_endp(&mut self, endp: &[u8]) -> Option<Taken> {
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

    fn find_dest(&mut self, dest: &[u8]) -> Option<Taken> {
        let found = self.cache.take_dest(dest);
        self.interval.record_dest_lookup(found.is_some());
        found
    }

    fn endp_prop<'s>(&self, session: &'s Taken) -> &'s [u8] {
        &session.endp_prop
    }

    fn dest_prop<'s>(&self, session: &'s Taken) -> &'s [u8] {
        session.dest_prop.as_deref().unwrap_or(b"")
    }

    fn put_back(&mut self, session: Taken) {
        if let Some(handle) = self.cache.put_back(session) {
            self.watch(handle);
        }
    }

    fn stats(&mut self, out: &mut Vec<u8>) {
        let s = self.cache.stats();
        let size = self.cache.size();
        let mut num = |name: &str, v: u64| put_attr(out, name.as_bytes(), v.to_string().as_bytes());
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
    }
}

impl CacheBackend {
    /// Registers a cached session's descriptor for dead-peer events.
    fn watch(&mut self, handle: SessionHandle) {
        if !self.watch {
            return;
        }
        let token = SESSION_TOKEN_BIT | handle.as_u64();
        if let Some(fd) = self.cache.session_fd_mut(handle) {
            if !fd.watch(token) {
                self.counters.unwatched_saves += 1;
            }
        }
    }
}
