//! Property test: random operation sequences, with random clock advances,
//! TTLs, removals, put-backs and limits, run against both `MultiCache` and a
//! deliberately naive reference model (vectors and linear scans). After
//! every step the results, sizes, next deadline, counters, eviction records
//! and exactly which descriptors were closed (and in which order) must agree.

mod common;

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use common::{DropLog, Tok};
use proptest::prelude::*;
use scache_core::{
    CacheSize, ConnectionCache, Evicted, EvictionCause, Instant, Limits, ManualClock, MultiCache,
    SaveDestOutcome, SessionHandle, Stats, Taken,
};

/// Small alphabets so that labels collide, in both name spaces; lengths
/// differ so that length limits bite, and the last one is too long to be
/// stored inline.
const LABELS: [&[u8]; 4] = [
    b"a",
    b"bb",
    b"ccc",
    b"smtp\n*\n*\n*\n*\n2001:db8:1234:5678:9abc:def0:1234:5678\n25\nmay\n*\n*\n",
];
const PROPS: [&[u8]; 4] = [b"", b"p", b"pp", b"ppp"];
const CAUSES: [EvictionCause; 4] = [
    EvictionCause::PeerClosed,
    EvictionCause::PeerData,
    EvictionCause::FdPressure,
    EvictionCause::Caller,
];

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    SaveEndp {
        ttl: u64,
        endp: usize,
        prop: usize,
    },
    SaveDest {
        ttl: u64,
        dest: usize,
        prop: usize,
        endp: usize,
    },
    FindEndp {
        endp: usize,
        keep: bool,
    },
    FindDest {
        dest: usize,
        keep: bool,
    },
    PutBack(usize),
    DropHeld(usize),
    Remove(usize, usize),
    EvictSoonest(usize),
    Expire,
    SetMaxLabels(Option<usize>),
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => prop_oneof![Just(1000u64), Just(2000), Just(3000)],
        1 => 0u64..=3000,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop_oneof![0u64..=100, Just(500), Just(1000), 0u64..=3500].prop_map(Op::Advance),
        5 => (ttl(), label(), 0..4usize).prop_map(|(ttl, endp, prop)| Op::SaveEndp { ttl, endp, prop }),
        4 => (ttl(), label(), 0..4usize, label())
            .prop_map(|(ttl, dest, prop, endp)| Op::SaveDest { ttl, dest, prop, endp }),
        2 => (label(), any::<bool>()).prop_map(|(endp, keep)| Op::FindEndp { endp, keep }),
        3 => (label(), any::<bool>()).prop_map(|(dest, keep)| Op::FindDest { dest, keep }),
        1 => any::<usize>().prop_map(Op::PutBack),
        1 => any::<usize>().prop_map(Op::DropHeld),
        1 => (any::<usize>(), 0..CAUSES.len()).prop_map(|(i, c)| Op::Remove(i, c)),
        1 => (0..CAUSES.len()).prop_map(Op::EvictSoonest),
        1 => Just(Op::Expire),
        1 => prop::option::of(0..=4usize).prop_map(Op::SetMaxLabels),
    ]
}

/// Mostly short labels, sometimes the long one.
fn label() -> impl Strategy<Value = usize> {
    prop_oneof![6 => 0..3usize, 1 => Just(3usize)]
}

fn limits() -> impl Strategy<Value = Limits> {
    let count = || prop::option::weighted(0.3, 0..=4usize);
    let len = || prop::option::weighted(0.2, prop_oneof![0..=4usize, Just(100usize)]);
    (count(), count(), count(), count(), len(), len()).prop_map(|(s, pe, pd, l, ll, pl)| Limits {
        max_sessions: s,
        max_sessions_per_endpoint: pe,
        max_bindings_per_destination: pd,
        max_labels: l,
        max_label_len: ll,
        max_prop_len: pl,
    })
}

// ----- the reference model ---------------------------------------------------

#[derive(Debug, Clone)]
struct MSession {
    tok: u32,
    prop: Vec<u8>,
    deadline: u64,
    seq: u64,
    handle_no: usize,
}

#[derive(Debug, Clone)]
struct MBinding {
    endp: Vec<u8>,
    prop: Vec<u8>,
    deadline: u64,
    seq: u64,
}

#[derive(Debug, Clone)]
struct MTaken {
    tok: u32,
    prop: Vec<u8>,
    endp: Vec<u8>,
    deadline: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameSpace {
    Endp,
    Dest,
}

/// The model eviction record: the session's handle number, or a binding.
type MEviction = (Option<usize>, EvictionCause);

#[derive(Debug, Default)]
struct Model {
    now: u64,
    seq: u64,
    limits: Limits,
    /// Endpoint labels in use, each with its FIFO of sessions (never empty).
    endps: Vec<(Vec<u8>, Vec<MSession>)>,
    /// Destination labels in use, each with its bindings (never empty).
    dests: Vec<(Vec<u8>, Vec<MBinding>)>,
    /// Labels in use, least recently saved-to first.
    lru: Vec<(NameSpace, Vec<u8>)>,
    next_handle_no: usize,
    dropped: Vec<u32>,
    evictions: Vec<MEviction>,
    stats: Stats,
}

fn count(limit: Option<usize>) -> Option<usize> {
    limit.map(|n| n.max(1))
}

impl Model {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn endp_pos(&self, label: &[u8]) -> Option<usize> {
        self.endps.iter().position(|(l, _)| l == label)
    }

    fn dest_pos(&self, label: &[u8]) -> Option<usize> {
        self.dests.iter().position(|(l, _)| l == label)
    }

    fn lru_touch(&mut self, ns: NameSpace, label: &[u8]) {
        self.lru.retain(|(n, l)| !(*n == ns && l == label));
        self.lru.push((ns, label.to_vec()));
    }

    fn lru_forget(&mut self, ns: NameSpace, label: &[u8]) {
        self.lru.retain(|(n, l)| !(*n == ns && l == label));
    }

    /// Removes session `i` of endpoint `e`; forgets the label if emptied.
    fn take_session(&mut self, e: usize, i: usize) -> MSession {
        let s = self.endps[e].1.remove(i);
        if self.endps[e].1.is_empty() {
            let (label, _) = self.endps.remove(e);
            self.lru_forget(NameSpace::Endp, &label);
        }
        s
    }

    fn take_binding(&mut self, d: usize, i: usize) -> MBinding {
        let b = self.dests[d].1.remove(i);
        if self.dests[d].1.is_empty() {
            let (label, _) = self.dests.remove(d);
            self.lru_forget(NameSpace::Dest, &label);
        }
        b
    }

    /// Position of the session with the earliest (deadline, seq).
    fn soonest_session(&self) -> Option<(usize, usize)> {
        let mut best: Option<((u64, u64), (usize, usize))> = None;
        for (e, (_, list)) in self.endps.iter().enumerate() {
            for (i, s) in list.iter().enumerate() {
                let key = (s.deadline, s.seq);
                if best.map_or(true, |(k, _)| key < k) {
                    best = Some((key, (e, i)));
                }
            }
        }
        best.map(|(_, pos)| pos)
    }

    fn soonest_binding(&self) -> Option<(usize, usize)> {
        let mut best: Option<((u64, u64), (usize, usize))> = None;
        for (d, (_, list)) in self.dests.iter().enumerate() {
            for (i, b) in list.iter().enumerate() {
                let key = (b.deadline, b.seq);
                if best.map_or(true, |(k, _)| key < k) {
                    best = Some((key, (d, i)));
                }
            }
        }
        best.map(|(_, pos)| pos)
    }

    fn expire(&mut self) -> usize {
        let mut n = 0;
        while let Some((e, i)) = self.soonest_session() {
            if self.endps[e].1[i].deadline > self.now {
                break;
            }
            let s = self.take_session(e, i);
            self.dropped.push(s.tok);
            self.stats.expired_sessions += 1;
            n += 1;
        }
        while let Some((d, i)) = self.soonest_binding() {
            if self.dests[d].1[i].deadline > self.now {
                break;
            }
            self.take_binding(d, i);
            self.stats.expired_bindings += 1;
            n += 1;
        }
        n
    }

    fn sess_count(&self) -> usize {
        self.endps.iter().map(|(_, l)| l.len()).sum()
    }

    fn binding_count(&self) -> usize {
        self.dests.iter().map(|(_, l)| l.len()).sum()
    }

    fn size(&self) -> CacheSize {
        CacheSize {
            dest_count: self.dests.len(),
            endp_count: self.endps.len(),
            sess_count: self.sess_count(),
        }
    }

    fn sample_peaks(&mut self) {
        let size = self.size();
        let bindings = self.binding_count();
        let st = &mut self.stats;
        st.peak_dest_count = st.peak_dest_count.max(size.dest_count);
        st.peak_endp_count = st.peak_endp_count.max(size.endp_count);
        st.peak_sess_count = st.peak_sess_count.max(size.sess_count);
        st.peak_binding_count = st.peak_binding_count.max(bindings);
    }

    fn next_deadline(&self) -> Option<u64> {
        let s = self
            .endps
            .iter()
            .flat_map(|(_, l)| l.iter().map(|s| s.deadline));
        let b = self
            .dests
            .iter()
            .flat_map(|(_, l)| l.iter().map(|b| b.deadline));
        s.chain(b).min()
    }

    fn evict_session(&mut self, e: usize, i: usize, cause: EvictionCause) {
        let s = self.take_session(e, i);
        self.dropped.push(s.tok);
        self.evictions.push((Some(s.handle_no), cause));
        self.stats.evicted_sessions[cause.index()] += 1;
    }

    fn evict_binding(&mut self, d: usize, i: usize, cause: EvictionCause) {
        self.take_binding(d, i);
        self.evictions.push((None, cause));
        self.stats.evicted_bindings[cause.index()] += 1;
    }

    fn make_room_for_label(&mut self, ns: NameSpace, label: &[u8]) {
        let Some(max) = count(self.limits.max_labels) else {
            return;
        };
        let in_use = match ns {
            NameSpace::Endp => self.endp_pos(label).is_some(),
            NameSpace::Dest => self.dest_pos(label).is_some(),
        };
        if in_use {
            return;
        }
        while self.endps.len() + self.dests.len() >= max && !self.lru.is_empty() {
            let (ns, victim) = self.lru[0].clone();
            match ns {
                NameSpace::Endp => {
                    while let Some(e) = self.endp_pos(&victim) {
                        self.evict_session(e, 0, EvictionCause::LabelLimit);
                    }
                }
                NameSpace::Dest => {
                    while let Some(d) = self.dest_pos(&victim) {
                        self.evict_binding(d, 0, EvictionCause::LabelLimit);
                    }
                }
            }
        }
    }

    fn make_room_for_session(&mut self, endp: &[u8]) {
        if let Some(max) = count(self.limits.max_sessions_per_endpoint) {
            while let Some(e) = self.endp_pos(endp) {
                if self.endps[e].1.len() < max {
                    break;
                }
                self.evict_session(e, 0, EvictionCause::EndpointLimit);
            }
        }
        if let Some(max) = count(self.limits.max_sessions) {
            while self.sess_count() >= max {
                let (e, i) = self.soonest_session().unwrap();
                self.evict_session(e, i, EvictionCause::SessionLimit);
            }
        }
        self.make_room_for_label(NameSpace::Endp, endp);
    }

    fn too_long(&self, labels: &[&[u8]], prop: &[u8]) -> bool {
        labels
            .iter()
            .any(|l| self.limits.max_label_len.is_some_and(|m| l.len() > m))
            || self.limits.max_prop_len.is_some_and(|m| prop.len() > m)
    }

    /// Returns the handle number, or `None` when refused.
    fn save_endp(&mut self, ttl: u64, endp: &[u8], prop: &[u8], tok: u32) -> Option<usize> {
        self.expire();
        if self.too_long(&[endp], prop) {
            self.stats.refused_saves += 1;
            self.dropped.push(tok); // the test drops what comes back
            return None;
        }
        self.make_room_for_session(endp);
        let handle_no = self.next_handle_no;
        self.next_handle_no += 1;
        let s = MSession {
            tok,
            prop: prop.to_vec(),
            deadline: self.now + ttl,
            seq: self.next_seq(),
            handle_no,
        };
        match self.endp_pos(endp) {
            Some(e) => self.endps[e].1.push(s),
            None => self.endps.push((endp.to_vec(), vec![s])),
        }
        self.lru_touch(NameSpace::Endp, endp);
        self.stats.endp_saves += 1;
        self.sample_peaks();
        Some(handle_no)
    }

    fn save_dest(
        &mut self,
        ttl: u64,
        dest: &[u8],
        prop: &[u8],
        endp: &[u8],
    ) -> Option<SaveDestOutcome> {
        self.expire();
        if self.too_long(&[dest, endp], prop) {
            self.stats.refused_saves += 1;
            return None;
        }
        let deadline = self.now + ttl;
        if let Some(d) = self.dest_pos(dest) {
            if let Some(i) = self.dests[d]
                .1
                .iter()
                .position(|b| b.endp == endp && b.prop == prop)
            {
                let seq = self.next_seq();
                let b = &mut self.dests[d].1[i];
                b.deadline = deadline;
                b.seq = seq;
                self.lru_touch(NameSpace::Dest, dest);
                self.stats.dest_saves += 1;
                self.stats.dest_refreshes += 1;
                self.sample_peaks();
                return Some(SaveDestOutcome::Refreshed);
            }
        }
        if let Some(max) = count(self.limits.max_bindings_per_destination) {
            while let Some(d) = self.dest_pos(dest) {
                if self.dests[d].1.len() < max {
                    break;
                }
                self.evict_binding(d, 0, EvictionCause::DestinationLimit);
            }
        }
        self.make_room_for_label(NameSpace::Dest, dest);
        let b = MBinding {
            endp: endp.to_vec(),
            prop: prop.to_vec(),
            deadline,
            seq: self.next_seq(),
        };
        match self.dest_pos(dest) {
            Some(d) => self.dests[d].1.push(b),
            None => self.dests.push((dest.to_vec(), vec![b])),
        }
        self.lru_touch(NameSpace::Dest, dest);
        self.stats.dest_saves += 1;
        self.sample_peaks();
        Some(SaveDestOutcome::Added)
    }

    fn find_endp(&mut self, endp: &[u8]) -> Option<MTaken> {
        self.expire();
        let Some(e) = self.endp_pos(endp) else {
            self.stats.endp_misses += 1;
            return None;
        };
        self.stats.endp_hits += 1;
        let label = self.endps[e].0.clone();
        let s = self.take_session(e, 0);
        Some(MTaken {
            tok: s.tok,
            prop: s.prop,
            endp: label,
            deadline: s.deadline,
        })
    }

    fn find_dest(&mut self, dest: &[u8]) -> Option<(Vec<u8>, MTaken)> {
        self.expire();
        if let Some(d) = self.dest_pos(dest) {
            for b in self.dests[d].1.clone() {
                if let Some(e) = self.endp_pos(&b.endp) {
                    self.stats.dest_hits += 1;
                    let s = self.take_session(e, 0);
                    return Some((
                        b.prop,
                        MTaken {
                            tok: s.tok,
                            prop: s.prop,
                            endp: b.endp,
                            deadline: s.deadline,
                        },
                    ));
                }
            }
        }
        self.stats.dest_misses += 1;
        None
    }

    fn put_back(&mut self, t: MTaken) -> Option<usize> {
        self.expire();
        self.stats.put_backs += 1;
        if t.deadline <= self.now {
            self.stats.expired_sessions += 1;
            self.dropped.push(t.tok);
            return None;
        }
        self.make_room_for_session(&t.endp);
        let handle_no = self.next_handle_no;
        self.next_handle_no += 1;
        let s = MSession {
            tok: t.tok,
            prop: t.prop,
            deadline: t.deadline,
            seq: self.next_seq(),
            handle_no,
        };
        match self.endp_pos(&t.endp) {
            Some(e) => self.endps[e].1.insert(0, s),
            None => self.endps.push((t.endp.clone(), vec![s])),
        }
        self.lru_touch(NameSpace::Endp, &t.endp);
        self.sample_peaks();
        Some(handle_no)
    }

    fn find_handle(&self, handle_no: usize) -> Option<(usize, usize)> {
        self.endps.iter().enumerate().find_map(|(e, (_, list))| {
            list.iter()
                .position(|s| s.handle_no == handle_no)
                .map(|i| (e, i))
        })
    }

    fn remove(&mut self, handle_no: usize, cause: EvictionCause) -> Option<(u32, Vec<u8>)> {
        self.expire();
        let (e, i) = self.find_handle(handle_no)?;
        let s = self.take_session(e, i);
        self.stats.evicted_sessions[cause.index()] += 1;
        self.dropped.push(s.tok); // the test drops what comes back
        Some((s.tok, s.prop))
    }

    fn evict_soonest(&mut self, cause: EvictionCause) -> Option<usize> {
        self.expire();
        let (e, i) = self.soonest_session()?;
        let s = self.take_session(e, i);
        self.stats.evicted_sessions[cause.index()] += 1;
        self.dropped.push(s.tok);
        Some(s.handle_no)
    }
}

// ----- the runner --------------------------------------------------------------

struct Held {
    taken: Taken<Tok>,
    model: MTaken,
}

fn run(limits: Limits, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let clock = Rc::new(ManualClock::new());
    let log = DropLog::new();
    let mut cache: MultiCache<Tok, _> = MultiCache::with_limits(Rc::clone(&clock), limits);
    let mut model = Model {
        limits,
        ..Model::default()
    };
    let mut held: Vec<Held> = Vec::new();
    // Handle number -> handle, and back.
    let mut handles: Vec<SessionHandle> = Vec::new();
    let mut handle_nos: HashMap<SessionHandle, usize> = HashMap::new();
    let mut next_tok = 0u32;
    let mut limits_changed = false;

    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                model.now += ms;
            }
            Op::SaveEndp { ttl, endp, prop } => {
                next_tok += 1;
                let got = cache
                    .save_endp(
                        Duration::from_millis(ttl),
                        LABELS[endp],
                        PROPS[prop],
                        log.tok(next_tok),
                    )
                    .map_err(|refused| drop(refused.fd));
                let want = model.save_endp(ttl, LABELS[endp], PROPS[prop], next_tok);
                prop_assert_eq!(got.is_ok(), want.is_some(), "{}", ctx);
                if let (Ok(h), Some(no)) = (got, want) {
                    prop_assert_eq!(no, handles.len());
                    handles.push(h);
                    prop_assert!(handle_nos.insert(h, no).is_none(), "handle reused: {}", ctx);
                }
            }
            Op::SaveDest {
                ttl,
                dest,
                prop,
                endp,
            } => {
                let got = cache
                    .save_dest(
                        Duration::from_millis(ttl),
                        LABELS[dest],
                        PROPS[prop],
                        LABELS[endp],
                    )
                    .ok();
                let want = model.save_dest(ttl, LABELS[dest], PROPS[prop], LABELS[endp]);
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::FindEndp { endp, keep } => {
                let want = model.find_endp(LABELS[endp]);
                if keep {
                    let got = cache.take_endp(LABELS[endp]);
                    prop_assert_eq!(got.is_some(), want.is_some(), "{}", ctx);
                    if let (Some(taken), Some(m)) = (got, want) {
                        prop_assert_eq!(taken.fd.id, m.tok, "{}", ctx);
                        prop_assert_eq!(&taken.endp_prop, &m.prop, "{}", ctx);
                        prop_assert_eq!(taken.endp_label(), &m.endp[..], "{}", ctx);
                        prop_assert_eq!(taken.dest_prop.as_ref(), None, "{}", ctx);
                        prop_assert_eq!(taken.deadline(), Instant::from_millis(m.deadline));
                        held.push(Held { taken, model: m });
                    }
                } else {
                    let got = ConnectionCache::find_endp(&mut cache, LABELS[endp]).unwrap();
                    prop_assert_eq!(got.is_some(), want.is_some(), "{}", ctx);
                    if let (Some(found), Some(m)) = (got, want) {
                        prop_assert_eq!(found.fd.id, m.tok, "{}", ctx);
                        prop_assert_eq!(&found.endp_prop, &m.prop, "{}", ctx);
                        model.dropped.push(m.tok); // dropped right here
                    }
                }
            }
            Op::FindDest { dest, keep } => {
                let want = model.find_dest(LABELS[dest]);
                if keep {
                    let got = cache.take_dest(LABELS[dest]);
                    prop_assert_eq!(got.is_some(), want.is_some(), "{}", ctx);
                    if let (Some(taken), Some((dest_prop, m))) = (got, want) {
                        prop_assert_eq!(taken.fd.id, m.tok, "{}", ctx);
                        prop_assert_eq!(&taken.endp_prop, &m.prop, "{}", ctx);
                        prop_assert_eq!(taken.dest_prop.as_ref(), Some(&dest_prop), "{}", ctx);
                        prop_assert_eq!(taken.endp_label(), &m.endp[..], "{}", ctx);
                        prop_assert_eq!(taken.deadline(), Instant::from_millis(m.deadline));
                        held.push(Held { taken, model: m });
                    }
                } else {
                    let got = ConnectionCache::find_dest(&mut cache, LABELS[dest]).unwrap();
                    prop_assert_eq!(got.is_some(), want.is_some(), "{}", ctx);
                    if let (Some(found), Some((dest_prop, m))) = (got, want) {
                        prop_assert_eq!(found.fd.id, m.tok, "{}", ctx);
                        prop_assert_eq!(&found.endp_prop, &m.prop, "{}", ctx);
                        prop_assert_eq!(&found.dest_prop, &dest_prop, "{}", ctx);
                        model.dropped.push(m.tok);
                    }
                }
            }
            Op::PutBack(i) => {
                if !held.is_empty() {
                    let h = held.remove(i % held.len());
                    let got = cache.put_back(h.taken);
                    let want = model.put_back(h.model);
                    prop_assert_eq!(got.is_some(), want.is_some(), "{}", ctx);
                    if let (Some(h), Some(no)) = (got, want) {
                        prop_assert_eq!(no, handles.len());
                        handles.push(h);
                        prop_assert!(handle_nos.insert(h, no).is_none(), "handle reused: {}", ctx);
                    }
                }
            }
            Op::DropHeld(i) => {
                if !held.is_empty() {
                    let h = held.remove(i % held.len());
                    model.dropped.push(h.model.tok);
                    drop(h);
                }
            }
            Op::Remove(i, c) => {
                if !handles.is_empty() {
                    let no = i % handles.len();
                    let got = cache.remove_session(handles[no], CAUSES[c]);
                    let want = model.remove(no, CAUSES[c]);
                    let got = got.map(|f| (f.fd.id, f.endp_prop.clone()));
                    prop_assert_eq!(got, want, "{}", ctx);
                }
            }
            Op::EvictSoonest(c) => {
                let got = cache.evict_soonest(CAUSES[c]).map(|h| handle_nos[&h]);
                let want = model.evict_soonest(CAUSES[c]);
                prop_assert_eq!(got, want, "{}", ctx);
            }
            Op::SetMaxLabels(max) => {
                let limits = scache_core::Limits {
                    max_labels: max,
                    ..cache.limits()
                };
                cache.set_limits(limits);
                model.limits = limits;
                limits_changed = true;
            }
            Op::Expire => {
                let got = cache.expire_due();
                model.now = model.now.max(clock_now(&clock));
                let want = model.expire();
                prop_assert_eq!(got, want, "{}", ctx);
            }
        }

        // Everything observable must agree after every step.
        prop_assert_eq!(
            log.take(),
            std::mem::take(&mut model.dropped),
            "closed: {}",
            ctx
        );
        let got_ev: Vec<MEviction> = cache
            .drain_evictions()
            .map(|ev| {
                let what = match ev.evicted {
                    Evicted::Session(h) => Some(handle_nos[&h]),
                    Evicted::Binding => None,
                };
                (what, ev.cause)
            })
            .collect();
        prop_assert_eq!(
            got_ev,
            std::mem::take(&mut model.evictions),
            "evictions: {}",
            ctx
        );
        prop_assert_eq!(cache.size(), model.size(), "size: {}", ctx);
        prop_assert_eq!(
            cache.binding_count(),
            model.binding_count(),
            "bindings: {}",
            ctx
        );
        prop_assert_eq!(
            cache.next_deadline(),
            model.next_deadline().map(Instant::from_millis),
            "next deadline: {}",
            ctx
        );
        let mut got_stats = cache.stats();
        got_stats.dest_count = 0;
        got_stats.endp_count = 0;
        got_stats.sess_count = 0;
        got_stats.binding_count = 0;
        prop_assert_eq!(got_stats, model.stats, "stats: {}", ctx);
        for (no, &h) in handles.iter().enumerate() {
            prop_assert_eq!(
                cache.contains_session(h),
                model.find_handle(no).is_some(),
                "handle {}: {}",
                no,
                ctx
            );
        }
        cache.check_invariants();
        if let Some(max) = count(limits.max_sessions) {
            prop_assert!(cache.size().sess_count <= max);
        }
        if let (Some(max), Some(_)) = (count(limits.max_labels), limits.max_labels) {
            if !limits_changed {
                let size = cache.size();
                prop_assert!(size.dest_count + size.endp_count <= max);
            }
        }
    }

    // Dropping the cache closes every session still cached, and only those.
    drop(held);
    log.take();
    let mut remaining: Vec<u32> = model
        .endps
        .iter()
        .flat_map(|(_, l)| l.iter().map(|s| s.tok))
        .collect();
    drop(cache);
    let mut closed = log.take();
    closed.sort_unstable();
    remaining.sort_unstable();
    prop_assert_eq!(closed, remaining);
    Ok(())
}

fn clock_now(clock: &ManualClock) -> u64 {
    use scache_core::Clock;
    clock.now().as_millis()
}

proptest! {
    // 512 cases by default; set PROPTEST_CASES for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    /// Unbounded cache: pure Postfix semantics plus handles and put-back.
    #[test]
    fn matches_model_without_limits(ops in prop::collection::vec(op(), 1..200)) {
        run(Limits::NONE, ops)?;
    }

    /// Random bounds (including zero, which means one).
    #[test]
    fn matches_model_with_limits(limits in limits(), ops in prop::collection::vec(op(), 1..200)) {
        run(limits, ops)?;
    }
}
