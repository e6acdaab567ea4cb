//! The single-session cache (Postfix's `scache_single`).

use std::fmt;
use std::time::Duration;

use crate::cache::{CacheSize, ConnectionCache, FoundDest, FoundEndp};
use crate::clock::{Clock, Instant};
use crate::error::CacheError;

struct SingleEndp<F> {
    label: Vec<u8>,
    prop: Vec<u8>,
    fd: F,
    deadline: Instant,
}

struct SingleDest {
    label: Vec<u8>,
    prop: Vec<u8>,
    endp: Vec<u8>,
    deadline: Instant,
}

/// A cache of at most one session and one destination binding, as Postfix's
/// `scache_single` (what a delivery agent uses when it keeps its own last
/// connection).
///
/// - `save_endp` replaces the cached session, whatever its label; the
///   replaced descriptor is dropped (closed).
/// - `find_endp` hands out the session only if its label matches; otherwise
///   the session stays.
/// - `save_dest` replaces the binding (or, when label, properties and
///   endpoint are all the same, only renews its deadline, which amounts to
///   the same).
/// - `find_dest` succeeds only if the destination label matches and the
///   bound endpoint still holds the cached session; the binding stays.
/// - The session and the binding each expire on their own deadline; every
///   operation first expires what is due (time clamped to never go back).
///
/// Saves never fail; the error type is [`CacheError`] only so that this cache
/// and [`MultiCache`](crate::MultiCache) fit the same `dyn ConnectionCache`.
pub struct SingleCache<F, C> {
    clock: C,
    last_now: Instant,
    endp: Option<SingleEndp<F>>,
    dest: Option<SingleDest>,
}

impl<F, C> fmt::Debug for SingleCache<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleCache")
            .field("now", &self.last_now)
            .field("has_session", &self.endp.is_some())
            .field("has_binding", &self.dest.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, C: Clock> SingleCache<F, C> {
    /// An empty cache reading time from `clock`.
    pub fn new(clock: C) -> SingleCache<F, C> {
        let last_now = clock.now();
        SingleCache {
            clock,
            last_now,
            endp: None,
            dest: None,
        }
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The latest time the cache has seen.
    pub fn now(&self) -> Instant {
        self.last_now
    }

    /// Current sizes: at most one session and one binding, as of the last
    /// operation.
    pub fn size(&self) -> CacheSize {
        let has_session = usize::from(self.endp.is_some());
        CacheSize {
            dest_count: usize::from(self.dest.is_some()),
            endp_count: has_session,
            sess_count: has_session,
        }
    }

    /// The earlier of the session's and the binding's deadlines.
    pub fn next_deadline(&self) -> Option<Instant> {
        let e = self.endp.as_ref().map(|e| e.deadline);
        let d = self.dest.as_ref().map(|d| d.deadline);
        match (e, d) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires what is due at `now` (clamped to the latest time seen);
    /// returns how many entries (0, 1 or 2) expired.
    pub fn expire(&mut self, now: Instant) -> usize {
        let now = now.max(self.last_now);
        self.last_now = now;
        let mut n = 0;
        if self.endp.as_ref().is_some_and(|e| e.deadline <= now) {
            self.endp = None;
            n += 1;
        }
        if self.dest.as_ref().is_some_and(|d| d.deadline <= now) {
            self.dest = None;
            n += 1;
        }
        n
    }

    /// [`expire`](SingleCache::expire) at the clock's current time.
    pub fn expire_due(&mut self) -> usize {
        let now = self.clock.now();
        self.expire(now)
    }

    fn tick(&mut self) -> Instant {
        self.expire_due();
        self.last_now
    }

    fn take_endp(&mut self, endp: &[u8]) -> Option<SingleEndp<F>> {
        if self.endp.as_ref().is_some_and(|e| e.label == endp) {
            self.endp.take()
        } else {
            None
        }
    }
}

impl<F, C: Clock> ConnectionCache for SingleCache<F, C> {
    type Fd = F;
    type Error = CacheError;

    fn save_endp(
        &mut self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: F,
    ) -> Result<(), CacheError> {
        let now = self.tick();
        // Close the replaced session before taking the new one, as Postfix.
        self.endp = None;
        self.endp = Some(SingleEndp {
            label: endp.to_vec(),
            prop: endp_prop.to_vec(),
            fd,
            deadline: now.saturating_add(ttl),
        });
        Ok(())
    }

    fn find_endp(&mut self, endp: &[u8]) -> Result<Option<FoundEndp<F>>, CacheError> {
        self.tick();
        Ok(self.take_endp(endp).map(|e| FoundEndp {
            endp_prop: e.prop,
            fd: e.fd,
        }))
    }

    fn save_dest(
        &mut self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<(), CacheError> {
        let now = self.tick();
        let deadline = now.saturating_add(ttl);
        match &mut self.dest {
            Some(d) if d.label == dest && d.prop == dest_prop && d.endp == endp => {
                d.deadline = deadline;
            }
            slot => {
                *slot = Some(SingleDest {
                    label: dest.to_vec(),
                    prop: dest_prop.to_vec(),
                    endp: endp.to_vec(),
                    deadline,
                });
            }
        }
        Ok(())
    }

    fn find_dest(&mut self, dest: &[u8]) -> Result<Option<FoundDest<F>>, CacheError> {
        self.tick();
        let Some(binding) = self.dest.as_ref().filter(|d| d.label == dest) else {
            return Ok(None);
        };
        // The two fields are disjoint: the binding stays borrowed while the
        // session is taken.
        match self.endp.take() {
            Some(e) if e.label == binding.endp => Ok(Some(FoundDest {
                dest_prop: binding.prop.clone(),
                endp_prop: e.prop,
                fd: e.fd,
            })),
            other => {
                self.endp = other;
                Ok(None)
            }
        }
    }

    fn size(&self) -> Option<CacheSize> {
        Some(SingleCache::size(self))
    }
}
