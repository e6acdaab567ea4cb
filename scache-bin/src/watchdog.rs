//! The `daemon_timeout` watchdog.
//!
//! Postfix daemons arm `alarm(daemon_timeout / 3)` and die with
//! `fatal: watchdog timeout` when three alarms pass without the event loop
//! turning once. A hung loop cannot read a timer descriptor, so ours is a
//! small thread watching a counter the loop increments every turn; the loop
//! never sleeps longer than a third of the limit.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Starts the watchdog thread: if `heartbeat` does not change for `limit`,
/// the process logs `fatal: watchdog timeout` and exits with status 1.
pub fn start(limit: Duration, heartbeat: Arc<AtomicU64>) {
    let step = (limit / 3).max(Duration::from_millis(10));
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut last = heartbeat.load(Ordering::Relaxed);
            let mut trips = 0;
            loop {
                std::thread::sleep(step);
                let now = heartbeat.load(Ordering::Relaxed);
                if now != last {
                    last = now;
                    trips = 0;
                    continue;
                }
                trips += 1;
                if trips >= 3 {
                    crate::logging::fatal("watchdog timeout");
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("cannot start the watchdog thread: {e}");
    }
}
