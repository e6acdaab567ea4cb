//! Time, injected by the caller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A point in time on a cache's clock: milliseconds since the clock's origin.
///
/// The cache never reads a wall clock; it asks its [`Clock`] for the current
/// `Instant` and treats time as non-decreasing (a clock that goes backwards is
/// clamped to the latest time already seen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Instant {
        Instant(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

/// A source of the current time, supplied by the cache's owner.
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for std::rc::Rc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// The real clock: milliseconds since the moment it was created, read from
/// the operating system's monotonic clock (`CLOCK_MONOTONIC`, the one
/// [`std::time::Instant`] reads).
///
/// Cheap to copy and to share between threads (`Copy + Send + Sync`); every
/// copy reads the same timeline. Reading it is all it does: a cache still
/// gets its time only through [`Clock::now`]. One reading costs one
/// `clock_gettime` (no system call: the vDSO answers) and integer
/// arithmetic.
///
/// ```
/// use scache_core::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock::new();
/// let a = clock.now();
/// std::thread::sleep(std::time::Duration::from_millis(5));
/// assert!(clock.now() > a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    /// The monotonic clock's reading at creation, in milliseconds.
    origin_ms: u64,
}

impl MonotonicClock {
    /// A clock whose origin ([`Instant::ZERO`]) is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            origin_ms: monotonic_ms(),
        }
    }
}

/// The system's monotonic clock in milliseconds.
fn monotonic_ms() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux; a failure reads as the origin.
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        // A monotonic reading in milliseconds stays far below u64::MAX
        // (584 million years): plain arithmetic, read once per loop turn.
        Ok(t) => t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000,
        Err(_) => 0,
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant(monotonic_ms().saturating_sub(self.origin_ms))
    }
}

/// A clock that only moves when told to: for tests and simulations.
///
/// It is `Send + Sync`, so one clock can drive a cache shared between
/// threads (a [`SharedCache`](crate::SharedCache)) in virtual time.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock standing at the origin.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Instant) {
        self.now.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        Instant(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `CLOCK_MONOTONIC` in milliseconds, read directly.
    fn reading_ms() -> u128 {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
        Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32).as_millis()
    }

    #[test]
    fn monotonic_ms_is_the_system_reading_in_milliseconds() {
        // Whole seconds count 1000 ms each, nanoseconds their millions:
        // the value lies between two direct readings taken around it.
        for _ in 0..3 {
            let before = reading_ms();
            let ms = u128::from(monotonic_ms());
            let after = reading_ms();
            assert!(
                (before..=after).contains(&ms),
                "{before} <= {ms} <= {after}"
            );
            std::thread::sleep(Duration::from_millis(3));
        }
    }
}
