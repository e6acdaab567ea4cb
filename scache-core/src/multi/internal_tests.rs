//! Unit tests of `MultiCache` internals that the public API cannot reach:
//! the index-space checks (with a small index space) and the bound on the
//! label order's stale entries. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::clock::ManualClock;

const TTL: Duration = Duration::from_secs(10);

/// A cache whose slabs may hold `cap` records each (labels: `cap - 2`).
fn small(clock: &ManualClock, cap: usize) -> MultiCache<u32, &ManualClock> {
    let mut c = MultiCache::new(clock);
    c.index_cap = cap;
    c
}

fn label(i: usize) -> Vec<u8> {
    format!("label-{i}").into_bytes()
}

#[test]
fn save_endp_is_refused_when_the_session_index_space_is_full() {
    let clock = ManualClock::new();
    let mut c = small(&clock, 10);
    for fd in 0..10 {
        c.save_endp(TTL, b"e", b"", fd).unwrap();
    }
    let refused = c.save_endp(TTL, b"e", b"", 99).unwrap_err();
    assert_eq!((refused.fd, refused.error), (99, CacheError::Full));
    assert_eq!(c.stats().refused_saves, 1);
    assert_eq!(c.size().sess_count, 10);
    // Room again once a session leaves.
    c.take_endp(b"e").unwrap();
    c.save_endp(TTL, b"e", b"", 100).unwrap();
    c.check_invariants();
}

#[test]
fn save_endp_is_refused_when_the_label_index_space_is_full() {
    let clock = ManualClock::new();
    let mut c = small(&clock, 10);
    // Labels may number at most cap - 2 = 8.
    for i in 0..8 {
        c.save_endp(TTL, &label(i), b"", i as u32).unwrap();
    }
    let refused = c.save_endp(TTL, &label(8), b"", 8).unwrap_err();
    assert_eq!(refused.error, CacheError::Full);
    assert_eq!(c.stats().refused_saves, 1);
    assert_eq!(c.size().endp_count, 8);
    c.check_invariants();
}

#[test]
fn save_dest_is_refused_when_the_binding_index_space_is_full() {
    let clock = ManualClock::new();
    let mut c = small(&clock, 10);
    for i in 0..10 {
        let prop = format!("p{i}");
        let outcome = c.save_dest(TTL, b"d", prop.as_bytes(), b"e").unwrap();
        assert_eq!(outcome, SaveDestOutcome::Added);
    }
    assert_eq!(c.save_dest(TTL, b"d", b"p10", b"e"), Err(CacheError::Full));
    assert_eq!(c.stats().refused_saves, 1);
    assert_eq!(c.binding_count(), 10);
    c.check_invariants();
}

#[test]
fn save_dest_is_refused_when_the_label_index_space_is_full() {
    let clock = ManualClock::new();
    let mut c = small(&clock, 10);
    // One endpoint label plus seven destination labels: 8 = cap - 2.
    for i in 0..7 {
        c.save_dest(TTL, &label(i), b"", b"e").unwrap();
    }
    assert_eq!(
        c.save_dest(TTL, &label(7), b"", b"e"),
        Err(CacheError::Full)
    );
    assert_eq!(c.stats().refused_saves, 1);
    assert_eq!(c.size().dest_count, 7);
    c.check_invariants();
}

/// Descriptors of departed sessions, with why they left.
type Gone = Arc<Mutex<Vec<(u32, DepartureCause)>>>;

/// A cache of capacity `cap` whose departing sessions are recorded.
fn recorded(clock: &ManualClock, cap: usize) -> (MultiCache<u32, &ManualClock>, Gone) {
    let mut c = small(clock, cap);
    let gone = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&gone);
    c.set_departure_hook(move |d| sink.lock().unwrap().push((d.fd, d.cause)));
    (c, gone)
}

#[test]
fn put_back_closes_the_session_when_the_session_index_space_is_full() {
    let clock = ManualClock::new();
    let (mut c, gone) = recorded(&clock, 10);
    for fd in 0..10 {
        c.save_endp(TTL, b"e", b"", fd).unwrap();
    }
    let taken = c.take_endp(b"e").unwrap();
    c.save_endp(TTL, b"e", b"", 10).unwrap();
    assert_eq!(c.put_back(taken), None);
    assert_eq!(
        *gone.lock().unwrap(),
        [(0, DepartureCause::Evicted(EvictionCause::SessionLimit))]
    );
    let stats = c.stats();
    assert_eq!((stats.refused_saves, stats.put_backs), (1, 1));
    assert_eq!(stats.sess_count, 10);
    c.check_invariants();
}

#[test]
fn put_back_closes_the_session_when_the_label_index_space_is_full() {
    let clock = ManualClock::new();
    let (mut c, gone) = recorded(&clock, 10);
    for i in 0..8 {
        c.save_endp(TTL, &label(i), b"", i as u32).unwrap();
    }
    // Taking label 0's only session frees its label; a new label takes
    // its place, and there is no room for label 0 again.
    let taken = c.take_endp(&label(0)).unwrap();
    c.save_endp(TTL, &label(8), b"", 8).unwrap();
    assert_eq!(c.put_back(taken), None);
    assert_eq!(
        *gone.lock().unwrap(),
        [(0, DepartureCause::Evicted(EvictionCause::SessionLimit))]
    );
    assert_eq!(c.stats().refused_saves, 1);
    c.check_invariants();
}

#[test]
fn put_back_fits_while_the_index_space_has_room() {
    let clock = ManualClock::new();
    let (mut c, gone) = recorded(&clock, 10);
    // Six labels in use (more than half the cap, fewer than cap - 2), and
    // nine sessions once one is taken.
    for i in 0..6 {
        c.save_endp(TTL, &label(i), b"", i as u32).unwrap();
    }
    for fd in 6..10 {
        c.save_endp(TTL, &label(5), b"", fd).unwrap();
    }
    let taken = c.take_endp(&label(5)).unwrap();
    assert_eq!(taken.fd, 5);
    let handle = c.put_back(taken).expect("room for it");
    assert_eq!(c.session_fd(handle), Some(&5));
    assert!(gone.lock().unwrap().is_empty());
    assert_eq!(c.stats().refused_saves, 0);
    assert_eq!(c.size().sess_count, 10);
    c.check_invariants();
}

#[test]
fn the_label_order_keeps_stale_entries_until_they_outnumber_the_live_ones() {
    let clock = ManualClock::new();
    let limits = Limits {
        max_labels: Some(100),
        ..Limits::NONE
    };
    let mut c: MultiCache<u32, &ManualClock> = MultiCache::with_limits(&clock, limits);
    // Two endpoint labels and one destination label in use: the order is
    // swept when it grows past 2 * (2 + 1) + 64 = 70 entries.
    c.save_endp(TTL, b"e0", b"", 0).unwrap();
    c.save_endp(TTL, b"e1", b"", 1).unwrap();
    c.save_dest(TTL, b"d", b"", b"e0").unwrap();
    assert_eq!(c.lru.len(), 3);
    let mut want = 3;
    let mut sweeps = 0;
    for _ in 0..200 {
        // A refresh stamps the destination label again: one more entry,
        // the previous one stale.
        assert_eq!(
            c.save_dest(TTL, b"d", b"", b"e0"),
            Ok(SaveDestOutcome::Refreshed)
        );
        want += 1;
        if want > 70 {
            want = 3;
            sweeps += 1;
        }
        assert_eq!(c.lru.len(), want);
    }
    assert_eq!(sweeps, 2);
    c.check_invariants();
}

#[test]
fn the_label_order_is_swept_against_the_labels_in_use_now() {
    let clock = ManualClock::new();
    let limits = Limits {
        max_labels: Some(200),
        ..Limits::NONE
    };
    let mut c: MultiCache<u32, &ManualClock> = MultiCache::with_limits(&clock, limits);
    for i in 0..100 {
        c.save_endp(TTL, &label(i), b"", i as u32).unwrap();
    }
    assert_eq!(c.lru.len(), 100);
    // Ninety-nine labels go out of use: their entries are stale, and the
    // threshold falls to 2 * 1 + 64 = 66, far below the order's length.
    for i in 1..100 {
        c.take_endp(&label(i)).unwrap();
    }
    assert_eq!(c.lru.len(), 100);
    // The next save sweeps down to the one live entry.
    c.save_endp(TTL, &label(0), b"", 100).unwrap();
    assert_eq!(c.lru.len(), 1);
    c.check_invariants();
}

#[test]
fn taken_sessions_show_their_label_bytes_when_debugged() {
    let clock = ManualClock::new();
    let mut c = small(&clock, 10);
    c.save_endp(TTL, b"ab", b"p", 7).unwrap();
    let taken = c.take_endp(b"ab").unwrap();
    let text = format!("{taken:?}");
    assert!(text.contains("endp_label: [97, 98]"), "{text}");
    let long = vec![b'x'; INLINE_LABEL + 1];
    c.save_endp(TTL, &long, b"", 8).unwrap();
    let taken = c.take_endp(&long).unwrap();
    assert_eq!(taken.endp_label(), &long[..]);
    assert!(format!("{taken:?}").contains("endp_label: [120, 120,"));
}

#[test]
fn enabling_the_label_limit_orders_only_the_labels_in_use() {
    let clock = ManualClock::new();
    let mut c: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    // "e" is named by a binding but holds no session: not in use.
    c.save_dest(TTL, b"d", b"", b"e").unwrap();
    c.save_endp(TTL, b"f", b"", 1).unwrap();
    assert!(c.lru.is_empty());
    c.set_limits(Limits {
        max_labels: Some(10),
        ..Limits::NONE
    });
    assert_eq!(c.lru.len(), 2);
    c.check_invariants();
}

/// The label indexes hash with the 32 bits a label record keeps, repeated
/// in both halves of the table's hash: the record gives back the exact
/// value, and distinct labels get distinct hashes (not all one bucket).
#[test]
fn label_hashes_keep_32_bits_in_both_halves() {
    assert_eq!(table_hash(0x1234_5678), 0x1234_5678_1234_5678);
    assert_eq!(table_hash(0xffff_ffff), u64::MAX);
    let clock = ManualClock::new();
    let c: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    let hashes: std::collections::HashSet<u64> =
        (0..100).map(|i| c.label_hash(&label(i))).collect();
    assert_eq!(hashes.len(), 100);
    for h in hashes {
        assert_eq!(h, table_hash(h as u32));
    }
}

/// The invariant checker notices a label list whose first record does not
/// name the last, and a destination record that lost its marker.
#[test]
fn check_invariants_notices_a_broken_label_list() {
    fn record_of(c: &MultiCache<u32, &ManualClock>, kind: Kind) -> usize {
        c.labels.iter().find(|(_, l)| l.kind() == kind).unwrap().0
    }
    fn check_fails(c: &MultiCache<u32, &ManualClock>) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.check_invariants())).is_err()
    }
    let clock = ManualClock::new();
    let mut c = MultiCache::new(&clock);
    for fd in 0..3 {
        c.save_endp(TTL, b"e", b"", fd).unwrap();
    }
    c.save_dest(TTL, b"d", b"", b"e").unwrap();
    c.check_invariants();
    let head = c.labels[record_of(&c, Kind::Endp)].list.head as usize;
    let good = c.sessions[head].label_link;
    // The first record names its successor instead of the last.
    c.sessions[head].label_link.prev = good.next;
    assert!(check_fails(&c), "a first record not naming the last passed");
    c.sessions[head].label_link = good;
    c.check_invariants();
    let d = record_of(&c, Kind::Dest);
    c.labels[d].refs = 0;
    assert!(
        check_fails(&c),
        "a destination label without its marker passed"
    );
}
