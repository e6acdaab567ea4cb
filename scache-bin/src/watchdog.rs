//! The `daemon_timeout` watchdog.
//!
//! Postfix daemons arm `alarm(daemon_timeout / 3)` and die with
//! `fatal: watchdog timeout` when three alarms pass without the event loop
//! turning once. Ours does the same with a POSIX interval timer delivering
//! SIGALRM: the loop counts its turns ([`pat`]) and the handler compares
//! the count with the one it saw at the previous alarm. The loop never
//! sleeps longer than a third of the limit, so an idle loop still turns.
//!
//! A signal, not a thread: once a process has a second thread, glibc runs
//! every blocking system call (`recvmsg`, `send`, `epoll_wait`, `close`)
//! through its thread-cancellation bookkeeping, about 5 % of the daemon's
//! instructions per request. The handler only reads and writes atomics until
//! it decides to die; then, like Postfix's, it logs the fatal error from the
//! signal handler. Should that logging itself hang (the loop may be stuck
//! inside the logger), the alarms that keep coming end the process with
//! `_exit(1)` a few seconds later.

#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::libc;
use nix::sys::signal::{
    self, SaFlags, SigAction, SigEvent, SigHandler, SigSet, SigevNotify, Signal,
};
use nix::sys::timer::{Expiration, Timer, TimerSetTimeFlags};
use nix::time::ClockId;

/// Turns of the event loop ([`pat`]).
static TURNS: AtomicU64 = AtomicU64::new(0);
/// `TURNS` at the previous alarm.
static SEEN: AtomicU64 = AtomicU64::new(0);
/// Alarms in a row with no turn.
static TRIPS: AtomicU32 = AtomicU32::new(0);
/// The fatal error is being logged.
static DYING: AtomicBool = AtomicBool::new(false);
/// Alarms since `DYING` was set; the process ends at [`GRACE_ALARMS`].
static DYING_ALARMS: AtomicU32 = AtomicU32::new(0);
/// Alarms allowed for logging the fatal error (see [`start`]).
static GRACE_ALARMS: AtomicU32 = AtomicU32::new(1);

/// Alarms without a turn that end the process.
const TRIPS_LIMIT: u32 = 3;
/// How long the fatal error may take to log (master mode sleeps one second
/// after it, as Postfix does).
const GRACE: Duration = Duration::from_secs(5);

/// The armed watchdog; dropping it stops the alarms.
#[derive(Debug)]
pub struct Watchdog {
    _timer: Timer,
}

/// Records one turn of the event loop. Call it at least once per third of
/// the limit.
pub fn pat() {
    TURNS.fetch_add(1, Ordering::Relaxed);
}

/// The interval between alarms for a `limit`: a third of it, at least 10 ms.
pub fn step(limit: Duration) -> Duration {
    (limit / 3).max(Duration::from_millis(10))
}

/// Arms the watchdog: if [`pat`] is not called for `limit` (three alarms
/// a third of `limit` apart), the process logs `fatal: watchdog timeout` and
/// exits with status 1.
pub fn start(limit: Duration) -> io::Result<Watchdog> {
    let step = step(limit);
    let grace = (GRACE.as_millis() / step.as_millis().max(1)).clamp(1, 1000) as u32;
    GRACE_ALARMS.store(grace, Ordering::Relaxed);
    SEEN.store(TURNS.load(Ordering::Relaxed), Ordering::Relaxed);
    TRIPS.store(0, Ordering::Relaxed);
    // SA_NODEFER: an alarm that comes while the handler is logging the fatal
    // error runs the handler again, which then ends the process.
    let action = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::SA_RESTART | SaFlags::SA_NODEFER,
        SigSet::empty(),
    );
    // SAFETY: `on_alarm` only touches atomics until it decides to end the
    // process (the same trade Postfix makes, see the module comment), and no
    // other code of this process handles SIGALRM.
    #[allow(unsafe_code)]
    unsafe { signal::sigaction(Signal::SIGALRM, &action) }.map_err(io::Error::from)?;
    let mut timer = Timer::new(
        ClockId::CLOCK_MONOTONIC,
        SigEvent::new(SigevNotify::SigevSignal {
            signal: Signal::SIGALRM,
            si_value: 0,
        }),
    )
    .map_err(io::Error::from)?;
    timer
        .set(
            Expiration::Interval(step.into()),
            TimerSetTimeFlags::empty(),
        )
        .map_err(io::Error::from)?;
    Ok(Watchdog { _timer: timer })
}

/// What an alarm means, given the turn counts: the decision of the handler,
/// apart from the logging.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The loop turned, or has not been stuck long enough.
    Fine,
    /// Three alarms without a turn: log the fatal error.
    Timeout,
    /// Logging the fatal error did not end the process in time.
    ExitNow,
}

fn on_alarm_verdict() -> Verdict {
    if DYING.load(Ordering::Relaxed) {
        let n = DYING_ALARMS.fetch_add(1, Ordering::Relaxed) + 1;
        return if n >= GRACE_ALARMS.load(Ordering::Relaxed) {
            Verdict::ExitNow
        } else {
            Verdict::Fine
        };
    }
    let turns = TURNS.load(Ordering::Relaxed);
    if SEEN.swap(turns, Ordering::Relaxed) != turns {
        TRIPS.store(0, Ordering::Relaxed);
        return Verdict::Fine;
    }
    if TRIPS.fetch_add(1, Ordering::Relaxed) + 1 < TRIPS_LIMIT {
        return Verdict::Fine;
    }
    DYING.store(true, Ordering::Relaxed);
    Verdict::Timeout
}

extern "C" fn on_alarm(_: libc::c_int) {
    match on_alarm_verdict() {
        Verdict::Fine => {}
        Verdict::Timeout => crate::logging::fatal("watchdog timeout"),
        Verdict::ExitNow => {
            // SAFETY: `_exit` is async-signal-safe and takes no pointers.
            #[allow(unsafe_code)]
            unsafe {
                libc::_exit(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handler's decisions, driven by hand (the statics are this
    /// test's alone: no other test arms the watchdog in this process).
    #[test]
    fn three_alarms_without_a_turn_time_out_then_grace_ends() {
        GRACE_ALARMS.store(2, Ordering::Relaxed);
        SEEN.store(TURNS.load(Ordering::Relaxed), Ordering::Relaxed);
        pat();
        assert_eq!(on_alarm_verdict(), Verdict::Fine, "the loop turned");
        assert_eq!(
            on_alarm_verdict(),
            Verdict::Fine,
            "first alarm without a turn"
        );
        pat();
        assert_eq!(on_alarm_verdict(), Verdict::Fine, "a turn resets the trips");
        assert_eq!(on_alarm_verdict(), Verdict::Fine);
        assert_eq!(on_alarm_verdict(), Verdict::Fine);
        assert_eq!(on_alarm_verdict(), Verdict::Timeout, "third alarm in a row");
        pat();
        assert_eq!(
            on_alarm_verdict(),
            Verdict::Fine,
            "logging has a grace alarm"
        );
        assert_eq!(
            on_alarm_verdict(),
            Verdict::ExitNow,
            "then the process ends"
        );
    }

    #[test]
    fn step_is_a_third_with_a_floor() {
        assert_eq!(step(Duration::from_secs(18000)), Duration::from_secs(6000));
        assert_eq!(step(Duration::from_millis(3)), Duration::from_millis(10));
    }
}
