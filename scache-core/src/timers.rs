//! Expiry bookkeeping without scans (crate-internal).
//!
//! Records saved with the same TTL expire in the order they were saved, as
//! long as time does not go backwards (the cache clamps its clock). So each
//! distinct TTL gets one intrusive FIFO queue: appending and removing are
//! O(1) and the queue stays sorted by `(deadline, seq)`. The queue heads are
//! kept in an ordered map keyed by the head's `(deadline, seq)`; records
//! whose deadline is out of order for any queue (sessions put back after a
//! lookup) sit alone in the same map. The earliest entry of the map is the
//! next record to expire, found in O(log k) where k is the number of
//! distinct TTLs in use plus put-back records.
//!
//! Queue links end in tagged sentinels (`TAG | queue id`) rather than
//! [`NIL`](crate::list::NIL), so removing a queue's head or tail finds its
//! queue without storing the queue id in every record. Lone records have
//! both links set to [`LONE`].

use std::collections::BTreeMap;

use hashbrown::HashMap;
use slab::Slab;

use crate::clock::Instant;
use crate::list::{Link, Node, MAX_INDEX};

/// Set on link values that name a queue rather than a record (no index
/// reaches it: see [`MAX_INDEX`]).
const TAG: u32 = 1 << 31;
const _: () = assert!(MAX_INDEX < TAG);
/// The link value of records that sit alone in the ordered map.
const LONE: u32 = u32::MAX;
/// The TTL of a lone record whose TTL is not known.
const UNKNOWN_TTL: u64 = u64::MAX;

#[derive(Debug, Clone, Copy)]
struct Queue {
    ttl_ms: u64,
    head: u32,
    tail: u32,
}

/// What an entry of the ordered map stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The head of this queue.
    Queue(u32),
    /// This record, alone, with its TTL in milliseconds if known
    /// ([`UNKNOWN_TTL`] otherwise): the TTL is not needed for expiry, only
    /// to tell the record's age ([`Timers::ttl_table`]).
    Lone(u32, u64),
}

/// The expiry order of one kind of record (sessions, or bindings).
#[derive(Debug, Default)]
pub(crate) struct Timers {
    queues: Slab<Queue>,
    by_ttl: HashMap<u64, u32>,
    order: Order,
    /// The queue of the last push: the next push usually has the same TTL
    /// (checked against the queue's own TTL before use).
    hint: u32,
    /// An empty queue kept because it was the only one: a cache whose
    /// records all share one TTL, emptied and refilled in turn (the
    /// daemon's save, find cycle), keeps its queue instead of making it
    /// anew each time. Only ever the sole queue, so a record in the middle
    /// of a queue still knows its TTL when there is one queue in use.
    idle: Option<u32>,
}

impl Timers {
    /// Appends `idx` to the queue of `ttl_ms`. Its deadline must not be
    /// earlier than that of the queue's last record (true when
    /// `deadline = now + ttl` with a non-decreasing `now`).
    #[inline]
    pub(crate) fn push<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32, ttl_ms: u64) {
        let qid = self.queue_of(ttl_ms);
        let sentinel = TAG | qid;
        let queue = &mut self.queues[qid as usize];
        if queue.head == LONE {
            queue.head = idx;
            queue.tail = idx;
            *nodes[idx as usize].timer_link_mut() = Link {
                prev: sentinel,
                next: sentinel,
            };
            let node = &nodes[idx as usize];
            self.order
                .insert((node.deadline(), node.seq()), Slot::Queue(qid));
        } else {
            let old_tail = queue.tail;
            debug_assert!(
                (
                    nodes[old_tail as usize].deadline(),
                    nodes[old_tail as usize].seq()
                ) < (nodes[idx as usize].deadline(), nodes[idx as usize].seq())
            );
            queue.tail = idx;
            nodes[old_tail as usize].timer_link_mut().next = idx;
            *nodes[idx as usize].timer_link_mut() = Link {
                prev: old_tail,
                next: sentinel,
            };
        }
    }

    /// The queue of `ttl_ms`, made if need be.
    #[inline]
    fn queue_of(&mut self, ttl_ms: u64) -> u32 {
        let q = match self.queues.get(self.hint as usize) {
            Some(queue) if queue.ttl_ms == ttl_ms => self.hint,
            _ => match self.by_ttl.get(&ttl_ms) {
                Some(&q) => q,
                None => {
                    if let Some(idle) = self.idle.take() {
                        // Another TTL: the kept queue goes.
                        let queue = self.queues.remove(idle as usize);
                        self.by_ttl.remove(&queue.ttl_ms);
                    }
                    let q = crate::list::to_u32(self.queues.insert(Queue {
                        ttl_ms,
                        head: LONE,
                        tail: LONE,
                    }));
                    self.by_ttl.insert(ttl_ms, q);
                    q
                }
            },
        };
        if self.idle == Some(q) {
            self.idle = None;
        }
        self.hint = q;
        q
    }

    /// Records `idx` alone, in order of its own `(deadline, seq)`, with its
    /// TTL in milliseconds if known (for its age only).
    pub(crate) fn push_lone<T: Node>(
        &mut self,
        nodes: &mut Slab<T>,
        idx: u32,
        ttl_ms: Option<u64>,
    ) {
        let node = &mut nodes[idx as usize];
        *node.timer_link_mut() = Link {
            prev: LONE,
            next: LONE,
        };
        self.order.insert(
            (node.deadline(), node.seq()),
            Slot::Lone(idx, ttl_ms.unwrap_or(UNKNOWN_TTL)),
        );
    }

    /// Forgets `idx`, which must have been pushed and not yet removed.
    /// Returns its TTL in milliseconds when that is known without a walk:
    /// a lone record's own, or its queue's when the record is the queue's
    /// head or tail, or when only one queue exists (the daemon's usual
    /// case: every TTL capped at the same limit).
    #[inline]
    pub(crate) fn remove<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) -> Option<u64> {
        let Link { prev, next } = nodes[idx as usize].timer_link();
        *nodes[idx as usize].timer_link_mut() = Link::DETACHED;
        if prev == LONE {
            let key = (nodes[idx as usize].deadline(), nodes[idx as usize].seq());
            return match self.order.remove(&key) {
                Some(Slot::Lone(_, ttl)) if ttl != UNKNOWN_TTL => Some(ttl),
                _ => None,
            };
        }
        if prev & TAG != 0 {
            // The head of its queue: the queue's key in the map changes.
            let qid = prev & !TAG;
            let ttl = self.queues[qid as usize].ttl_ms;
            let key = (nodes[idx as usize].deadline(), nodes[idx as usize].seq());
            self.order.remove(&key);
            if next & TAG != 0 {
                // It was alone: the queue goes away, unless it is the only
                // one (see `idle`).
                if self.by_ttl.len() == 1 {
                    let queue = &mut self.queues[qid as usize];
                    queue.head = LONE;
                    queue.tail = LONE;
                    self.idle = Some(qid);
                } else {
                    let queue = self.queues.remove(qid as usize);
                    self.by_ttl.remove(&queue.ttl_ms);
                }
            } else {
                self.queues[qid as usize].head = next;
                let new_head = &mut nodes[next as usize];
                new_head.timer_link_mut().prev = prev;
                self.order
                    .insert((new_head.deadline(), new_head.seq()), Slot::Queue(qid));
            }
            return Some(ttl);
        }
        nodes[prev as usize].timer_link_mut().next = next;
        if next & TAG != 0 {
            let queue = &mut self.queues[(next & !TAG) as usize];
            queue.tail = prev;
            Some(queue.ttl_ms)
        } else {
            nodes[next as usize].timer_link_mut().prev = prev;
            if self.by_ttl.len() == 1 {
                self.by_ttl.keys().next().copied()
            } else {
                None
            }
        }
    }

    /// The TTL in milliseconds of every record, indexed like `nodes`
    /// (`u64::MAX` where unknown or unused): one walk over every queue,
    /// O(records). For a listing, never on a hot path.
    pub(crate) fn ttl_table<T: Node>(&self, nodes: &Slab<T>) -> Vec<u64> {
        let mut table = vec![UNKNOWN_TTL; nodes.capacity()];
        for (_, q) in &self.queues {
            let mut idx = q.head;
            while idx & TAG == 0 {
                table[idx as usize] = q.ttl_ms;
                idx = nodes[idx as usize].timer_link().next;
            }
        }
        for slot in self.order.values() {
            if let Slot::Lone(idx, ttl) = *slot {
                table[idx as usize] = ttl;
            }
        }
        table
    }

    /// The record that expires first (earliest deadline, then lowest
    /// sequence number) and its deadline.
    pub(crate) fn first(&self) -> Option<(Instant, u32)> {
        self.order.first().map(|(&(deadline, _), &slot)| {
            let idx = match slot {
                Slot::Queue(q) => self.queues[q as usize].head,
                Slot::Lone(idx, _) => idx,
            };
            (deadline, idx)
        })
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.first().map(|(&(d, _), _)| d)
    }

    /// Forgets everything (the records are dropped by the caller).
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
        self.by_ttl.clear();
        self.order.clear();
        self.idle = None;
    }

    /// Number of queues in use (for tests): the kept empty queue is not.
    #[cfg(test)]
    pub(crate) fn queue_count(&self) -> usize {
        self.queues.len() - usize::from(self.idle.is_some())
    }
}

/// Key of the ordered map: a record's `(deadline, seq)`.
type Key = (Instant, u64);

/// The ordered map of queue heads and lone records. It usually holds one
/// entry per TTL in use (one or two), and every save and lookup moves an
/// entry; a sorted vector does that without the allocation and tree work
/// of a `BTreeMap`. Past [`Order::PROMOTE`] entries (many TTLs, many
/// records put back) it becomes a `BTreeMap`, so every operation stays
/// O(log k); it goes back below [`Order::DEMOTE`].
#[derive(Debug)]
enum Order {
    /// Sorted by key, largest first: the earliest entry is the last.
    Small(Vec<(Key, Slot)>),
    Large(BTreeMap<Key, Slot>),
}

impl Default for Order {
    fn default() -> Self {
        Order::Small(Vec::new())
    }
}

impl Order {
    const PROMOTE: usize = 32;
    const DEMOTE: usize = 8;

    fn insert(&mut self, key: Key, slot: Slot) {
        match self {
            Order::Small(v) if v.len() < Self::PROMOTE => {
                let at = v.partition_point(|(k, _)| *k > key);
                v.insert(at, (key, slot));
            }
            Order::Small(v) => {
                let mut map: BTreeMap<Key, Slot> = v.drain(..).collect();
                map.insert(key, slot);
                *self = Order::Large(map);
            }
            Order::Large(map) => {
                map.insert(key, slot);
            }
        }
    }

    fn remove(&mut self, key: &Key) -> Option<Slot> {
        match self {
            Order::Small(v) => {
                // Usually the earliest entry: the last one.
                if v.last().is_some_and(|(k, _)| k == key) {
                    v.pop().map(|(_, slot)| slot)
                } else if let Ok(at) = v.binary_search_by(|(k, _)| key.cmp(k)) {
                    Some(v.remove(at).1)
                } else {
                    None
                }
            }
            Order::Large(map) => {
                let slot = map.remove(key);
                if map.len() < Self::DEMOTE {
                    let v = std::mem::take(map).into_iter().rev().collect();
                    *self = Order::Small(v);
                }
                slot
            }
        }
    }

    /// Every slot, in no particular order.
    fn values(&self) -> Box<dyn Iterator<Item = &Slot> + '_> {
        match self {
            Order::Small(v) => Box::new(v.iter().map(|(_, s)| s)),
            Order::Large(map) => Box::new(map.values()),
        }
    }

    fn first(&self) -> Option<(&Key, &Slot)> {
        match self {
            Order::Small(v) => v.last().map(|(k, s)| (k, s)),
            Order::Large(map) => map.first_key_value(),
        }
    }

    fn clear(&mut self) {
        *self = Order::default();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Order::Small(v) => v.len(),
            Order::Large(map) => map.len(),
        }
    }
}

#[cfg(test)]
mod order_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The order agrees with a BTreeMap through growth past the promotion
    /// threshold and shrinking back.
    #[test]
    fn order_behaves_as_an_ordered_map() {
        let mut order = Order::default();
        let mut model = BTreeMap::new();
        let mut next = crate::test_rng(12345);
        for round in 0..5_000 {
            let key = (Instant::from_millis(next() % 50), next() % 8);
            let grow = (round / 500) % 2 == 0;
            if grow || model.is_empty() || next() % 3 == 0 {
                if let std::collections::btree_map::Entry::Vacant(e) = model.entry(key) {
                    e.insert(Slot::Lone(round, 1));
                    order.insert(key, Slot::Lone(round, 1));
                }
            } else {
                let victim = if next() % 2 == 0 {
                    *model.keys().next().unwrap()
                } else {
                    *model.keys().nth((next() as usize) % model.len()).unwrap()
                };
                assert_eq!(order.remove(&victim), model.remove(&victim));
            }
            assert_eq!(order.len(), model.len());
            assert_eq!(order.first(), model.first_key_value(), "round {round}");
            // Removing what is not there changes nothing.
            assert_eq!(order.remove(&(Instant::from_millis(999), 0)), None);
            assert_eq!(order.values().count(), model.len());
            assert_eq!(order.len(), model.len());
        }
        assert!(matches!(order, Order::Small(_) | Order::Large(_)));
        order.clear();
        assert_eq!(order.first(), None);
    }
}
