//! Intrusive doubly-linked lists over slab indices (crate-internal).
//!
//! Records (sessions, bindings) live in a `Slab` and carry two [`Link`]s: one
//! for the list of their label (per-endpoint FIFO, per-destination bindings)
//! and one for their expiry queue. A [`Chain`] is a list head. Indices are
//! `u32`; [`NIL`] marks "no neighbour" in label lists. Expiry queues end in
//! tagged sentinels instead (see `timers.rs`).

use slab::Slab;

use crate::clock::Instant;

/// "No neighbour".
pub(crate) const NIL: u32 = u32::MAX;

/// Slab indices (records and expiry queues) must stay below this value:
/// the expiry queues tag their sentinel links with the top bit.
pub(crate) const MAX_INDEX: u32 = (1 << 31) - 1;

/// The two neighbours of a record in one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) prev: u32,
    pub(crate) next: u32,
}

impl Link {
    pub(crate) const DETACHED: Link = Link {
        prev: NIL,
        next: NIL,
    };
}

/// A record that can sit in a label list and in an expiry queue.
pub(crate) trait Node {
    fn label_link(&self) -> Link;
    fn label_link_mut(&mut self) -> &mut Link;
    fn timer_link(&self) -> Link;
    fn timer_link_mut(&mut self) -> &mut Link;
    /// When the record expires.
    fn deadline(&self) -> Instant;
    /// Insertion sequence number: ties between equal deadlines are broken by it.
    fn seq(&self) -> u64;
}

/// Converts a slab index to the `u32` stored in links.
#[inline]
pub(crate) fn to_u32(idx: usize) -> u32 {
    debug_assert!(idx < MAX_INDEX as usize);
    idx as u32
}

/// The head of one label's list: first, last and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) head: u32,
    pub(crate) tail: u32,
    pub(crate) len: u32,
}

impl Chain {
    pub(crate) const EMPTY: Chain = Chain {
        head: NIL,
        tail: NIL,
        len: 0,
    };

    /// Appends `idx` (not in any label list) at the end.
    pub(crate) fn push_back<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) {
        let old_tail = self.tail;
        *nodes[idx as usize].label_link_mut() = Link {
            prev: old_tail,
            next: NIL,
        };
        if old_tail == NIL {
            self.head = idx;
        } else {
            nodes[old_tail as usize].label_link_mut().next = idx;
        }
        self.tail = idx;
        self.len += 1;
    }

    /// Inserts `idx` (not in any label list) at the front.
    pub(crate) fn push_front<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) {
        let old_head = self.head;
        *nodes[idx as usize].label_link_mut() = Link {
            prev: NIL,
            next: old_head,
        };
        if old_head == NIL {
            self.tail = idx;
        } else {
            nodes[old_head as usize].label_link_mut().prev = idx;
        }
        self.head = idx;
        self.len += 1;
    }

    /// Removes `idx`, which must be in this list.
    pub(crate) fn unlink<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) {
        let Link { prev, next } = nodes[idx as usize].label_link();
        if prev == NIL {
            self.head = next;
        } else {
            nodes[prev as usize].label_link_mut().next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            nodes[next as usize].label_link_mut().prev = prev;
        }
        *nodes[idx as usize].label_link_mut() = Link::DETACHED;
        self.len -= 1;
    }
}
