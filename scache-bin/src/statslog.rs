//! The statistics lines Postfix's scache logs every
//! `connection_cache_status_update_time` and at exit
//! (`scache_status_dump()` in Postfix's `scache.c`), byte for byte:
//!
//! ```text
//! statistics: start interval Nov 28 09:43:01
//! statistics: domain lookup hits=12 miss=3 success=80%
//! statistics: address lookup hits=5 miss=5 success=50%
//! statistics: max simultaneous domains=2 addresses=3 connection=7
//! ```
//!
//! The first line appears when any counter is non-zero, each other line
//! when its own counters are non-zero. The start time is `ctime()` without
//! the weekday and the year (local time, day space-padded); `success` is
//! `hits*100/(hits+miss)` rounded down.
#![forbid(unsafe_code)]

use std::time::SystemTime;

use crate::logging::LocalTime;

/// Counters of one statistics interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalStats {
    /// Destination lookups (`find_dest`) that returned a connection.
    pub dest_hits: u64,
    /// Destination lookups that found nothing.
    pub dest_miss: u64,
    /// Endpoint lookups (`find_endp`) that returned a connection.
    pub endp_hits: u64,
    /// Endpoint lookups that found nothing.
    pub endp_miss: u64,
    /// Largest number of destinations with a binding, sampled after saves.
    pub max_dest: u64,
    /// Largest number of endpoints with a session, sampled after saves.
    pub max_endp: u64,
    /// Largest number of cached sessions, sampled after saves.
    pub max_sess: u64,
    /// When the interval started.
    pub start: SystemTime,
}

impl IntervalStats {
    /// An empty interval starting at `start`.
    pub fn new(start: SystemTime) -> IntervalStats {
        IntervalStats {
            dest_hits: 0,
            dest_miss: 0,
            endp_hits: 0,
            endp_miss: 0,
            max_dest: 0,
            max_endp: 0,
            max_sess: 0,
            start,
        }
    }

    /// Counts a `find_dest` answer.
    pub fn record_dest_lookup(&mut self, hit: bool) {
        if hit {
            self.dest_hits = self.dest_hits.saturating_add(1);
        } else {
            self.dest_miss = self.dest_miss.saturating_add(1);
        }
    }

    /// Counts a `find_endp` answer (not the inner lookups of `find_dest`).
    pub fn record_endp_lookup(&mut self, hit: bool) {
        if hit {
            self.endp_hits = self.endp_hits.saturating_add(1);
        } else {
            self.endp_miss = self.endp_miss.saturating_add(1);
        }
    }

    /// Samples the cache size after a successful `save_dest`, as Postfix
    /// does: destinations and endpoints (not sessions).
    pub fn sample_after_save_dest(&mut self, dest_count: u64, endp_count: u64) {
        self.max_dest = self.max_dest.max(dest_count);
        self.max_endp = self.max_endp.max(endp_count);
    }

    /// Samples the cache size after a successful `save_endp`, as Postfix
    /// does: endpoints and sessions (not destinations).
    pub fn sample_after_save_endp(&mut self, endp_count: u64, sess_count: u64) {
        self.max_endp = self.max_endp.max(endp_count);
        self.max_sess = self.max_sess.max(sess_count);
    }

    /// True when no counter is non-zero (nothing would be logged).
    pub fn is_empty(&self) -> bool {
        self.dest_hits == 0
            && self.dest_miss == 0
            && self.endp_hits == 0
            && self.endp_miss == 0
            && self.max_dest == 0
            && self.max_endp == 0
            && self.max_sess == 0
    }

    /// The lines Postfix would log for this interval, start time in local
    /// time. Log each at info level.
    pub fn lines(&self) -> Vec<String> {
        self.lines_at(&LocalTime::from_system_time(self.start))
    }

    /// [`lines`](Self::lines) with the start time already converted.
    pub fn lines_at(&self, start: &LocalTime) -> Vec<String> {
        let mut lines = Vec::new();
        if self.is_empty() {
            return lines;
        }
        lines.push(format!(
            "statistics: start interval {}",
            start.syslog_stamp()
        ));
        if self.dest_hits != 0 || self.dest_miss != 0 {
            lines.push(format!(
                "statistics: domain lookup hits={} miss={} success={}%",
                self.dest_hits,
                self.dest_miss,
                success(self.dest_hits, self.dest_miss)
            ));
        }
        if self.endp_hits != 0 || self.endp_miss != 0 {
            lines.push(format!(
                "statistics: address lookup hits={} miss={} success={}%",
                self.endp_hits,
                self.endp_miss,
                success(self.endp_hits, self.endp_miss)
            ));
        }
        if self.max_dest != 0 || self.max_endp != 0 || self.max_sess != 0 {
            lines.push(format!(
                "statistics: max simultaneous domains={} addresses={} connection={}",
                self.max_dest, self.max_endp, self.max_sess
            ));
        }
        lines
    }

    /// Starts a new interval at `now` with every counter at zero.
    pub fn reset(&mut self, now: SystemTime) {
        *self = IntervalStats::new(now);
    }

    /// [`lines`](Self::lines), then [`reset`](Self::reset): what Postfix does
    /// at each status update and at exit.
    pub fn take_lines(&mut self, now: SystemTime) -> Vec<String> {
        let lines = self.lines();
        self.reset(now);
        lines
    }
}

/// `hits * 100 / (hits + miss)`, integer division (`hits + miss > 0`).
fn success(hits: u64, miss: u64) -> u64 {
    let total = u128::from(hits) + u128::from(miss);
    if total == 0 {
        return 0;
    }
    u64::try_from(u128::from(hits) * 100 / total).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const NOV_28: LocalTime = LocalTime {
        year: 2026,
        month: 10,
        mday: 28,
        hour: 9,
        minute: 43,
        second: 1,
    };

    fn stats() -> IntervalStats {
        IntervalStats::new(UNIX_EPOCH)
    }

    #[test]
    fn empty_interval_logs_nothing() {
        assert!(stats().lines_at(&NOV_28).is_empty());
        assert!(stats().lines().is_empty());
    }

    #[test]
    fn all_four_lines() {
        let mut s = stats();
        for _ in 0..12 {
            s.record_dest_lookup(true);
        }
        for _ in 0..3 {
            s.record_dest_lookup(false);
        }
        for _ in 0..5 {
            s.record_endp_lookup(true);
            s.record_endp_lookup(false);
        }
        s.sample_after_save_dest(2, 1);
        s.sample_after_save_endp(3, 7);
        s.sample_after_save_endp(1, 2);
        assert_eq!(
            s.lines_at(&NOV_28),
            vec![
                "statistics: start interval Nov 28 09:43:01",
                "statistics: domain lookup hits=12 miss=3 success=80%",
                "statistics: address lookup hits=5 miss=5 success=50%",
                "statistics: max simultaneous domains=2 addresses=3 connection=7",
            ]
        );
    }

    #[test]
    fn start_line_day_is_space_padded_like_ctime() {
        let mut s = stats();
        s.record_endp_lookup(false);
        let early = LocalTime {
            month: 0,
            mday: 5,
            hour: 0,
            minute: 0,
            second: 9,
            ..NOV_28
        };
        assert_eq!(
            s.lines_at(&early),
            vec![
                "statistics: start interval Jan  5 00:00:09",
                "statistics: address lookup hits=0 miss=1 success=0%",
            ]
        );
    }

    #[test]
    fn each_line_only_with_its_counters() {
        let mut s = stats();
        s.record_dest_lookup(false);
        assert_eq!(
            s.lines_at(&NOV_28),
            vec![
                "statistics: start interval Nov 28 09:43:01",
                "statistics: domain lookup hits=0 miss=1 success=0%",
            ]
        );
        let mut s = stats();
        s.sample_after_save_endp(1, 1);
        assert_eq!(
            s.lines_at(&NOV_28),
            vec![
                "statistics: start interval Nov 28 09:43:01",
                "statistics: max simultaneous domains=0 addresses=1 connection=1",
            ]
        );
        let mut s = stats();
        s.sample_after_save_dest(1, 0);
        assert_eq!(
            s.lines_at(&NOV_28)[1],
            "statistics: max simultaneous domains=1 addresses=0 connection=0"
        );
    }

    #[test]
    fn success_rounds_down() {
        assert_eq!(success(2, 1), 66);
        assert_eq!(success(1, 2), 33);
        assert_eq!(success(1, 0), 100);
        assert_eq!(success(0, 7), 0);
        assert_eq!(success(199, 1), 99);
        assert_eq!(success(u64::MAX, u64::MAX), 50);
        let mut s = stats();
        s.record_dest_lookup(true);
        s.record_dest_lookup(true);
        s.record_dest_lookup(false);
        assert_eq!(
            s.lines_at(&NOV_28)[1],
            "statistics: domain lookup hits=2 miss=1 success=66%"
        );
    }

    #[test]
    fn samples_keep_the_maximum() {
        let mut s = stats();
        s.sample_after_save_endp(4, 9);
        s.sample_after_save_endp(2, 3);
        s.sample_after_save_dest(5, 1);
        assert_eq!((s.max_dest, s.max_endp, s.max_sess), (5, 4, 9));
    }

    #[test]
    fn reset_and_take() {
        let mut s = stats();
        s.record_dest_lookup(true);
        let later = UNIX_EPOCH + Duration::from_secs(600);
        let lines = s.take_lines(later);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("statistics: start interval "));
        assert_eq!(lines[0].len(), "statistics: start interval ".len() + 15);
        assert_eq!(s, IntervalStats::new(later));
        assert!(s.take_lines(later).is_empty());
    }

    #[test]
    fn lines_use_local_time_of_start() {
        let start = UNIX_EPOCH + Duration::from_secs(1_795_863_467);
        let mut s = IntervalStats::new(start);
        s.record_endp_lookup(true);
        let expected = LocalTime::from_system_time(start).syslog_stamp();
        assert_eq!(
            s.lines()[0],
            format!("statistics: start interval {expected}")
        );
    }
}
