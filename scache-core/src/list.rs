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

/// The head of one label's list: first record and length. The last
/// record is found through the first: the first record's `prev` names the
/// last (itself when alone), every other `prev` its predecessor, and the
/// last record's `next` is [`NIL`]. So a walk from `head` along `next` ends
/// at `NIL`, and the head takes 8 bytes rather than 12 (one per label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) head: u32,
    pub(crate) len: u32,
}

impl Chain {
    pub(crate) const EMPTY: Chain = Chain { head: NIL, len: 0 };

    /// Appends `idx` (not in any label list) at the end.
    #[inline]
    pub(crate) fn push_back<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) {
        let head = self.head;
        if head == NIL {
            *nodes[idx as usize].label_link_mut() = Link {
                prev: idx,
                next: NIL,
            };
            self.head = idx;
        } else {
            let old_tail = nodes[head as usize].label_link().prev;
            *nodes[idx as usize].label_link_mut() = Link {
                prev: old_tail,
                next: NIL,
            };
            nodes[old_tail as usize].label_link_mut().next = idx;
            nodes[head as usize].label_link_mut().prev = idx;
        }
        self.len += 1;
    }

    /// Inserts `idx` (not in any label list) at the front.
    pub(crate) fn push_front<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) {
        let old_head = self.head;
        if old_head == NIL {
            *nodes[idx as usize].label_link_mut() = Link {
                prev: idx,
                next: NIL,
            };
        } else {
            let tail = nodes[old_head as usize].label_link().prev;
            *nodes[idx as usize].label_link_mut() = Link {
                prev: tail,
                next: old_head,
            };
            nodes[old_head as usize].label_link_mut().prev = idx;
        }
        self.head = idx;
        self.len += 1;
    }

    /// Removes `idx`, which must be in this list.
    #[inline]
    pub(crate) fn unlink<T: Node>(&mut self, nodes: &mut Slab<T>, idx: u32) {
        let Link { prev, next } = nodes[idx as usize].label_link();
        if self.head == idx {
            // `prev` is the last record; the next one (if any) becomes the
            // first and so names it.
            self.head = next;
            if next != NIL {
                nodes[next as usize].label_link_mut().prev = prev;
            }
        } else {
            nodes[prev as usize].label_link_mut().next = next;
            let successor = if next == NIL { self.head } else { next };
            // The last record leaving: the first now names its predecessor.
            nodes[successor as usize].label_link_mut().prev = prev;
        }
        *nodes[idx as usize].label_link_mut() = Link::DETACHED;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    struct Rec {
        link: Link,
    }

    impl Node for Rec {
        fn label_link(&self) -> Link {
            self.link
        }
        fn label_link_mut(&mut self) -> &mut Link {
            &mut self.link
        }
        fn timer_link(&self) -> Link {
            Link::DETACHED
        }
        fn timer_link_mut(&mut self) -> &mut Link {
            unreachable!("label lists only")
        }
        fn deadline(&self) -> Instant {
            Instant::ZERO
        }
        fn seq(&self) -> u64 {
            0
        }
    }

    /// Walks the chain forwards, checking every `prev` (the first names the
    /// last) and the length.
    fn contents(chain: &Chain, nodes: &Slab<Rec>) -> Vec<u32> {
        let mut out = Vec::new();
        let mut idx = chain.head;
        while idx != NIL {
            let link = nodes[idx as usize].link;
            if let Some(&before) = out.last() {
                assert_eq!(link.prev, before, "prev of {idx}");
            }
            out.push(idx);
            idx = link.next;
        }
        if let Some(&last) = out.last() {
            assert_eq!(
                nodes[chain.head as usize].link.prev, last,
                "first names last"
            );
        }
        assert_eq!(out.len(), chain.len as usize);
        out
    }

    /// Pushes at both ends and unlinks at the front, back and middle agree
    /// with a `VecDeque`.
    #[test]
    fn chain_behaves_as_a_deque() {
        let mut nodes = Slab::new();
        let mut chain = Chain::EMPTY;
        let mut model = VecDeque::new();
        let mut rng = crate::test_rng(99);
        let mut next = || rng() as usize;
        for round in 0..4_000 {
            let grow = (round / 400) % 2 == 0;
            if model.is_empty() || (grow && next() % 3 != 0) || next() % 4 == 0 {
                let idx = to_u32(nodes.insert(Rec {
                    link: Link::DETACHED,
                }));
                if next() % 2 == 0 {
                    chain.push_back(&mut nodes, idx);
                    model.push_back(idx);
                } else {
                    chain.push_front(&mut nodes, idx);
                    model.push_front(idx);
                }
            } else {
                let at = match next() % 3 {
                    0 => 0,
                    1 => model.len() - 1,
                    _ => next() % model.len(),
                };
                let idx = model.remove(at).unwrap();
                chain.unlink(&mut nodes, idx);
                assert_eq!(nodes[idx as usize].link, Link::DETACHED);
                nodes.remove(idx as usize);
            }
            assert_eq!(contents(&chain, &nodes), Vec::from(model.clone()));
        }
        while let Some(idx) = model.pop_back() {
            chain.unlink(&mut nodes, idx);
        }
        assert_eq!(chain, Chain::EMPTY);
    }
}
