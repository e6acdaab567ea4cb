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
    order: BTreeMap<(Instant, u64), Slot>,
}

impl Timers {
    /// Appends `idx` to the queue of `ttl_ms`. Its deadline must not be
    /// earlier than that of the queue's last record (true when
    /// `deadline = now + ttl` with a non-decreasing `now`).
    pub(crate) fn push<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32, ttl_ms: u64) {
        let qid = match self.by_ttl.get(&ttl_ms) {
            Some(&q) => q,
            None => {
                let q = crate::list::to_u32(self.queues.insert(Queue {
                    ttl_ms,
                    head: LONE,
                    tail: LONE,
                }));
                self.by_ttl.insert(ttl_ms, q);
                q
            }
        };
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
                // It was alone: the queue goes away.
                let queue = self.queues.remove(qid as usize);
                self.by_ttl.remove(&queue.ttl_ms);
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
            let mut only = self.queues.iter();
            match (only.next(), only.next()) {
                (Some((_, q)), None) => Some(q.ttl_ms),
                _ => None,
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
        self.order.first_key_value().map(|(&(deadline, _), &slot)| {
            let idx = match slot {
                Slot::Queue(q) => self.queues[q as usize].head,
                Slot::Lone(idx, _) => idx,
            };
            (deadline, idx)
        })
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.order.first_key_value().map(|(&(d, _), _)| d)
    }

    /// Forgets everything (the records are dropped by the caller).
    pub(crate) fn clear(&mut self) {
        self.queues.clear();
        self.by_ttl.clear();
        self.order.clear();
    }

    /// Number of queues in use (for tests).
    #[cfg(test)]
    pub(crate) fn queue_count(&self) -> usize {
        self.queues.len()
    }
}
