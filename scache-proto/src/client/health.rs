//! When a client tries the daemon, and when it stops trying for a while:
//! the recovery policy of both clients, without I/O (time is passed in).

use std::time::{Duration, Instant};

use super::{ClientError, Recovery};

/// How many tries an operation gets now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tries {
    /// All is well: a try, and after a failure a pause and a second try
    /// (as Postfix's client).
    Two,
    /// Just out of a pause after repeated failures: one try; a failure
    /// starts a longer pause.
    One,
}

/// The daemon's standing with one client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Health {
    /// Operations that failed in a row (after their retries).
    failures: u32,
    /// Until when operations fail fast.
    paused_until: Option<Instant>,
    /// Caching is off for good.
    disabled: bool,
}

impl Health {
    /// Whether an operation may talk to the daemon at `now`, and how many
    /// tries it gets.
    pub(crate) fn admit(&self, now: Instant) -> Result<Tries, ClientError> {
        if self.disabled {
            return Err(ClientError::Disabled);
        }
        match self.paused_until {
            Some(until) if now < until => Err(ClientError::Unavailable {
                retry_in: until - now,
            }),
            _ if self.failures > 0 => Ok(Tries::One),
            _ => Ok(Tries::Two),
        }
    }

    /// An operation succeeded (the daemon answered).
    pub(crate) fn succeeded(&mut self) {
        if self.failures > 0 {
            log::info!("connection cache reachable again");
        }
        self.failures = 0;
        self.paused_until = None;
    }

    /// An operation failed after its tries, at `now`.
    pub(crate) fn failed(&mut self, now: Instant, recovery: Recovery) {
        self.failures = self.failures.saturating_add(1);
        match recovery {
            Recovery::Never => {
                log::warn!("disabling connection caching");
                self.disabled = true;
            }
            Recovery::Backoff { first, max } => {
                let pause = backoff(first, max, self.failures);
                log::warn!(
                    "suspending connection caching for {:.1}s after {} failed operation(s)",
                    pause.as_secs_f64(),
                    self.failures
                );
                self.paused_until = Some(now + pause);
            }
        }
    }

    /// Whether caching is off for good.
    pub(crate) fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Until when operations fail fast, if they do.
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }
}

/// The pause after `failures` failed operations in a row: `first`, doubled
/// for each failure after the first, at most `max`.
fn backoff(first: Duration, max: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(32);
    first
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(max)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let max = Duration::from_secs(60);
        let pauses: Vec<u64> = (1..=9).map(|n| backoff(S, max, n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(S, max, u32::MAX), max);
        assert_eq!(backoff(Duration::MAX, max, 1), max);
    }

    #[test]
    fn pause_then_one_try_then_healthy() {
        let t0 = Instant::now();
        let recovery = Recovery::default();
        let mut h = Health::default();
        assert_eq!(h.admit(t0).unwrap(), Tries::Two);
        h.failed(t0, recovery);
        match h.admit(t0 + S / 2) {
            Err(ClientError::Unavailable { retry_in }) => assert_eq!(retry_in, S / 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.admit(t0 + S).unwrap(), Tries::One);
        h.failed(t0 + S, recovery);
        assert!(h.admit(t0 + S + S).is_err(), "the second pause is 2 s");
        assert_eq!(h.admit(t0 + 3 * S).unwrap(), Tries::One);
        h.succeeded();
        assert_eq!(h.admit(t0 + 3 * S).unwrap(), Tries::Two);
        assert_eq!(h.paused_until(), None);
        assert!(!h.is_disabled());
    }

    #[test]
    fn never_disables_for_good() {
        let t0 = Instant::now();
        let mut h = Health::default();
        h.failed(t0, Recovery::Never);
        assert!(h.is_disabled());
        assert!(matches!(
            h.admit(t0 + Duration::from_secs(3600)),
            Err(ClientError::Disabled)
        ));
    }
}
