//! The multi-session cache (Postfix's `scache_multi`), with bounds, handles,
//! put-back and counters.
//!
//! # Layout
//!
//! - Sessions and bindings are records in two `Slab`s (56 bytes each for a
//!   4-byte descriptor type, plus the property's heap bytes), linked into
//!   their label's list and into an expiry queue by `u32` intrusive links.
//! - Each label's bytes are stored once, in a slab of label records, found
//!   through one hash table per namespace (endpoints, destinations) that
//!   holds only record indices. A binding names its endpoint by record
//!   index, so `find_dest` follows bindings without hashing. An endpoint
//!   record stays alive while it has sessions or bindings name it; it counts
//!   as a label in use only while it has sessions.
//! - Expiry: see `timers.rs`. Every operation first expires what is due;
//!   the caller can also ask for [`next_deadline`](MultiCache::next_deadline)
//!   and call [`expire`](MultiCache::expire) when it comes.
//! - Labels up to 54 bytes are stored inside their record (80 bytes in
//!   all; longer ones take a heap allocation besides).
//! - For the label limit, labels in use are ordered by when they were last
//!   saved to, lazily: a save stamps the label and appends `(label, stamp)`
//!   to a queue; entries whose stamp is out of date are skipped and, once
//!   they outnumber the live ones, swept (O(1) amortized), so a save never
//!   touches any other label's record.

use std::collections::VecDeque;
use std::fmt;
use std::hash::BuildHasher;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};
use slab::Slab;

use crate::cache::{CacheSize, ConnectionCache, FoundDest, FoundEndp};
use crate::clock::{Clock, Instant};
use crate::departure::{Departure, DepartureCause, Departures, Liveness, Probe};
use crate::error::{CacheError, RefusedSession};
use crate::handle::SessionHandle;
use crate::limits::Limits;
use crate::list::MAX_INDEX;
use crate::list::{to_u32, Chain, Link, Node, NIL};
use crate::stats::{Evicted, Eviction, EvictionCause, Stats};
use crate::timers::Timers;
use crate::view::{BindingView, CacheView, DestinationView, EndpointView};

/// What [`MultiCache::save_dest`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaveDestOutcome {
    /// A new binding was appended to the destination's list.
    Added,
    /// A binding with the same endpoint and destination properties existed:
    /// only its deadline changed (Postfix logs this as "refreshed").
    Refreshed,
}

/// A session taken out of a [`MultiCache`] by [`take_endp`] or
/// [`take_dest`], carrying what [`put_back`] needs to restore it.
///
/// Dropping it closes the descriptor (unless `fd` was moved out).
///
/// [`take_endp`]: MultiCache::take_endp
/// [`take_dest`]: MultiCache::take_dest
/// [`put_back`]: MultiCache::put_back
#[derive(Debug)]
pub struct Taken<F> {
    /// The session's descriptor.
    pub fd: F,
    /// The endpoint properties saved with the session.
    pub endp_prop: Vec<u8>,
    /// The destination properties of the binding that matched (`None` when
    /// taken by endpoint).
    pub dest_prop: Option<Vec<u8>>,
    endp_label: LabelBytes,
    deadline: Instant,
    /// The TTL it was saved with, in milliseconds, when known: put back,
    /// its age can still be told ([`MultiCache::view`]).
    ttl_ms: Option<u64>,
}

impl<F> Taken<F> {
    /// The endpoint label the session was cached under.
    pub fn endp_label(&self) -> &[u8] {
        self.endp_label.as_slice()
    }

    /// When the session would have expired had it stayed in the cache.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The descriptor and endpoint properties (what `find_endp` returns).
    pub fn into_found_endp(self) -> FoundEndp<F> {
        FoundEndp {
            endp_prop: self.endp_prop,
            fd: self.fd,
        }
    }

    /// The descriptor and both properties (what `find_dest` returns); the
    /// destination properties are empty when the session was taken by
    /// endpoint.
    pub fn into_found_dest(self) -> FoundDest<F> {
        FoundDest {
            dest_prop: self.dest_prop.unwrap_or_default(),
            endp_prop: self.endp_prop,
            fd: self.fd,
        }
    }
}

/// One cached session.
struct Session<F> {
    fd: F,
    /// Index of its endpoint label record.
    label: u32,
    prop: Box<[u8]>,
    deadline: Instant,
    seq: u64,
    label_link: Link,
    timer_link: Link,
}

/// What `take_endp_inner` takes: the session, (if asked for) the endpoint
/// label, and the session's TTL in milliseconds if known.
type TakenByEndp<F> = (Session<F>, LabelBytes, Option<u64>);

/// What `take_dest_inner` takes: the session, the binding's properties,
/// (if asked for) the endpoint label, and the session's TTL if known.
type TakenByDest<F> = (Session<F>, Vec<u8>, LabelBytes, Option<u64>);

/// One destination-to-endpoint binding.
struct Binding {
    /// Index of its destination label record.
    dest: u32,
    /// Index of the endpoint label record it names.
    endp: u32,
    prop: Box<[u8]>,
    deadline: Instant,
    seq: u64,
    label_link: Link,
    timer_link: Link,
}

macro_rules! impl_node {
    ($t:ty $(, $g:ident)?) => {
        impl$(<$g>)? Node for $t {
            #[inline]
            fn label_link(&self) -> Link {
                self.label_link
            }
            #[inline]
            fn label_link_mut(&mut self) -> &mut Link {
                &mut self.label_link
            }
            #[inline]
            fn timer_link(&self) -> Link {
                self.timer_link
            }
            #[inline]
            fn timer_link_mut(&mut self) -> &mut Link {
                &mut self.timer_link
            }
            #[inline]
            fn deadline(&self) -> Instant {
                self.deadline
            }
            #[inline]
            fn seq(&self) -> u64 {
                self.seq
            }
        }
    };
}
impl_node!(Session<F>, F);
impl_node!(Binding);

/// The two label namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Endp,
    Dest,
}

/// Labels up to this long are stored inside their record (one memory
/// access less per lookup, and no separate allocation).
const INLINE_LABEL: usize = 54;

/// A label's bytes: inline when short, else on the heap.
enum LabelBytes {
    Inline { len: u8, buf: [u8; INLINE_LABEL] },
    Heap(Box<[u8]>),
}

impl fmt::Debug for LabelBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl LabelBytes {
    const EMPTY: LabelBytes = LabelBytes::Inline {
        len: 0,
        buf: [0; INLINE_LABEL],
    };

    fn new(bytes: &[u8]) -> LabelBytes {
        if bytes.len() <= INLINE_LABEL {
            let mut buf = [0; INLINE_LABEL];
            buf[..bytes.len()].copy_from_slice(bytes);
            LabelBytes::Inline {
                len: bytes.len() as u8,
                buf,
            }
        } else {
            LabelBytes::Heap(bytes.into())
        }
    }

    #[inline]
    fn as_slice(&self) -> &[u8] {
        match self {
            LabelBytes::Inline { len, buf } => &buf[..usize::from(*len)],
            LabelBytes::Heap(b) => b,
        }
    }

    fn into_box(self) -> Box<[u8]> {
        match self {
            LabelBytes::Inline { .. } => self.as_slice().into(),
            LabelBytes::Heap(b) => b,
        }
    }

    fn into_vec(self) -> Vec<u8> {
        self.into_box().into_vec()
    }
}

/// One label, stored once. 80 bytes: a cache holds one per distinct label
/// in use, so every field is as small as its job allows.
struct Label {
    bytes: LabelBytes,
    /// The label's hash in its index, in the 32 bits [`table_hash`] repeats
    /// (freeing the record and growing the index need it, and hashing a
    /// label costs more than keeping four bytes).
    hash: u32,
    /// Sessions (endpoint label) or bindings (destination label).
    list: Chain,
    /// Endpoint labels: how many bindings name this label. Destination
    /// labels: [`DEST_LABEL`], which also tells the two kinds apart (no
    /// endpoint label reaches it: there are fewer bindings than that).
    refs: u32,
    /// When the label was last saved to (a value of `next_stamp`): orders
    /// labels for the label limit.
    stamp: u64,
}

/// The `refs` of every destination label record.
const DEST_LABEL: u32 = u32::MAX;
const _: () = assert!(crate::list::MAX_INDEX < DEST_LABEL);

impl Label {
    /// Which namespace the record belongs to.
    #[inline]
    fn kind(&self) -> Kind {
        if self.refs == DEST_LABEL {
            Kind::Dest
        } else {
            Kind::Endp
        }
    }
}

/// A label's hash as the label indexes use it: the low 32 bits of the
/// cache's hasher, repeated in both halves (the index takes its bucket from
/// the low bits and its tag from the high ones), so that the record can
/// keep 32 bits and still give back the exact value.
#[inline]
fn table_hash(hash32: u32) -> u64 {
    u64::from(hash32) * 0x1_0000_0001
}

/// Size in bytes of the record a [`MultiCache`] keeps per session for a
/// descriptor type `F`, not counting the heap bytes of its properties (nor
/// the shared label). 56 for a 4-byte descriptor such as `OwnedFd`.
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub const fn session_record_size<F>() -> usize {
    std::mem::size_of::<Session<F>>()
}

/// Size in bytes of the record a [`MultiCache`] keeps per binding, not
/// counting the heap bytes of its properties.
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub const fn binding_record_size() -> usize {
    std::mem::size_of::<Binding>()
}

/// Size in bytes of the record a [`MultiCache`] keeps per label (shared by
/// every session or binding under it); labels longer than 54 bytes also
/// take a heap allocation.
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub const fn label_record_size() -> usize {
    std::mem::size_of::<Label>()
}

/// An in-process multi-session connection cache with Postfix's
/// `scache_multi` semantics, plus bounds, handles, put-back and counters.
///
/// `F` is the descriptor type the cache owns (dropping it closes the
/// session); `C` supplies the time. See the [crate documentation](crate)
/// for the semantics and an example, and [`Limits`] for the eviction policy.
///
/// Every operation first expires what is due at the clock's current time
/// (clamped so that time never goes backwards), so an expired session is
/// never handed out. Costs: saves and lookups are one or two hash lookups
/// plus O(1) list work (plus, for `save_dest` and `find_dest`, a walk over
/// that one destination's bindings, as in Postfix); expiring or evicting a
/// record is O(log k), k being the number of distinct TTLs in use plus the
/// number of sessions put back.
pub struct MultiCache<F, C> {
    clock: C,
    last_now: Instant,
    limits: Limits,
    hasher: DefaultHashBuilder,
    labels: Slab<Label>,
    endp_index: HashTable<u32>,
    dest_index: HashTable<u32>,
    /// Labels in use in the order they were last saved to, oldest first,
    /// as `(label, stamp)`; an entry whose stamp is no longer its label's
    /// (saved to again since, or no longer in use) is stale and skipped.
    /// Kept only while there is a label limit.
    lru: VecDeque<(u32, u64)>,
    next_stamp: u64,
    endp_count: usize,
    dest_count: usize,
    sessions: Slab<Session<F>>,
    bindings: Slab<Binding>,
    session_timers: Timers,
    binding_timers: Timers,
    next_seq: u64,
    stats: Stats,
    evictions: Vec<Eviction>,
    departures: Departures<F>,
    probe: Option<Probe<F>>,
    /// How many sessions, bindings and labels (each) the slabs may hold:
    /// `MAX_INDEX`. A field rather than the constant only so that this
    /// crate's unit tests can reach "index space full" with a few records.
    index_cap: usize,
}

impl<F, C> fmt::Debug for MultiCache<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiCache")
            .field("now", &self.last_now)
            .field("dest_count", &self.dest_count)
            .field("endp_count", &self.endp_count)
            .field("sess_count", &self.sessions.len())
            .field("binding_count", &self.bindings.len())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<F, C: Clock> MultiCache<F, C> {
    /// At most this many eviction records are kept until
    /// [`drain_evictions`](MultiCache::drain_evictions) is called; further
    /// ones are only counted (in [`Stats::unreported_evictions`]).
    pub const EVICTION_LOG_CAP: usize = 4096;

    /// An empty cache without bounds, reading time from `clock`.
    pub fn new(clock: C) -> MultiCache<F, C> {
        MultiCache::with_limits(clock, Limits::NONE)
    }

    /// An empty cache with the given bounds.
    pub fn with_limits(clock: C, limits: Limits) -> MultiCache<F, C> {
        let last_now = clock.now();
        MultiCache {
            clock,
            last_now,
            limits,
            hasher: DefaultHashBuilder::default(),
            labels: Slab::new(),
            endp_index: HashTable::new(),
            dest_index: HashTable::new(),
            lru: VecDeque::new(),
            next_stamp: 0,
            endp_count: 0,
            dest_count: 0,
            sessions: Slab::new(),
            bindings: Slab::new(),
            session_timers: Timers::default(),
            binding_timers: Timers::default(),
            next_seq: 0,
            stats: Stats::default(),
            evictions: Vec::new(),
            departures: Departures::Drop,
            probe: None,
            index_cap: MAX_INDEX as usize,
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Hands every session that leaves the cache without being found
    /// (expired, evicted, found dead at checkout, or still cached when the
    /// cache is cleared or dropped) to `hook`, with its cause, instead of
    /// dropping it. The hook runs inside the cache operation that made the
    /// session leave, so it should be quick: for example write `QUIT` on a
    /// non-blocking socket, or pass the session to another task.
    ///
    /// Sessions that the owner takes out itself
    /// ([`remove_session`](MultiCache::remove_session)) do not go to the hook.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    /// use scache_core::{ConnectionCache, DepartureCause, ManualClock, MultiCache};
    ///
    /// let clock = ManualClock::new();
    /// let mut cache: MultiCache<u32, _> = MultiCache::new(&clock);
    /// let (tx, rx) = mpsc::channel();
    /// cache.set_departure_hook(move |departure| {
    ///     // Here an MTA would write "QUIT\r\n" before closing.
    ///     let _ = tx.send((departure.fd, departure.cause));
    /// });
    /// cache.save_endp(Duration::from_secs(2), b"smtp\n192.0.2.1\n25\n", b"", 7).unwrap();
    /// clock.advance(Duration::from_secs(2));
    /// cache.expire_due();
    /// assert_eq!(rx.try_recv(), Ok((7, DepartureCause::Expired)));
    /// ```
    pub fn set_departure_hook(&mut self, hook: impl FnMut(Departure<F>) + Send + 'static) {
        self.departures = Departures::Hook(Box::new(hook));
    }

    /// Goes back to dropping departing sessions.
    pub fn remove_departure_hook(&mut self) {
        self.departures = Departures::Drop;
    }

    /// Checks each session with `probe` before a lookup hands it out: a
    /// session whose peer is closed or has sent unread data (an unsolicited
    /// `421`) leaves the cache (counted as evicted for
    /// [`EvictionCause::PeerClosed`] or [`EvictionCause::PeerData`], and
    /// handed to the departure hook) and the next one is tried. For
    /// descriptor-backed sessions [`check_liveness`](MultiCache::check_liveness)
    /// sets the usual probe.
    pub fn set_liveness_probe(&mut self, probe: impl Fn(&F) -> Liveness + Send + 'static) {
        self.probe = Some(Box::new(probe));
    }

    /// Hands sessions out without looking at them (the default).
    pub fn remove_liveness_probe(&mut self) {
        self.probe = None;
    }

    /// Checks every session's descriptor with [`probe`](crate::probe) (one
    /// `poll(2)` with a zero timeout) before a lookup hands it out. See
    /// [`set_liveness_probe`](MultiCache::set_liveness_probe).
    ///
    /// ```
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use scache_core::{ConnectionCache, ManualClock, MultiCache};
    ///
    /// let clock = ManualClock::new();
    /// let mut cache: MultiCache<UnixStream, _> = MultiCache::new(&clock);
    /// cache.check_liveness();
    /// let (dead, peer) = UnixStream::pair()?;
    /// drop(peer); // the server hung up while the session was cached
    /// let (live, _peer) = UnixStream::pair()?;
    /// let ttl = Duration::from_secs(2);
    /// cache.save_endp(ttl, b"e", b"dead", dead).unwrap();
    /// cache.save_endp(ttl, b"e", b"live", live).unwrap();
    /// let found = cache.find_endp(b"e").unwrap().expect("the live one");
    /// assert_eq!(found.endp_prop, b"live");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn check_liveness(&mut self)
    where
        F: std::os::fd::AsFd + 'static,
    {
        self.set_liveness_probe(crate::departure::probe::<F>);
    }

    /// Queues departing sessions for [`take_departures`] instead of
    /// dropping them or calling a hook.
    ///
    /// [`take_departures`]: MultiCache::take_departures
    pub(crate) fn queue_departures(&mut self) {
        self.departures = Departures::Queue(Vec::new());
    }

    /// Changes the bounds. They apply to later saves; nothing is evicted now.
    pub fn set_limits(&mut self, limits: Limits) {
        let had_label_limit = self.limits.max_labels.is_some();
        self.limits = limits;
        match (had_label_limit, limits.max_labels.is_some()) {
            (false, true) => {
                // Rebuild the least-recently-saved order from the stamps.
                let mut in_use: Vec<(u64, u32)> = self
                    .labels
                    .iter()
                    .filter(|(_, label)| label.list.len > 0)
                    .map(|(l, label)| (label.stamp, to_u32(l)))
                    .collect();
                in_use.sort_unstable();
                self.lru = in_use.into_iter().map(|(stamp, l)| (l, stamp)).collect();
            }
            (true, false) => self.lru = VecDeque::new(),
            _ => {}
        }
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// The latest time the cache has seen (its clock never goes back).
    pub fn now(&self) -> Instant {
        self.last_now
    }

    // ----- the four operations -------------------------------------------

    /// Caches `fd` as a new session at the end of `endp`'s list, expiring
    /// `ttl` from now (`ttl` is truncated to milliseconds; a zero TTL
    /// expires at the next operation). Never merges: each descriptor is a
    /// distinct session.
    ///
    /// May evict other sessions to respect the [`Limits`]. Fails, handing
    /// `fd` back, when the label or property is too long.
    pub fn save_endp(
        &mut self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: F,
    ) -> Result<SessionHandle, RefusedSession<F>> {
        let now = self.tick();
        let checked = self
            .check_label(endp)
            .and_then(|()| self.check_prop(endp_prop))
            .and_then(|()| {
                if self.sessions.len() >= self.index_cap || self.labels.len() >= self.index_cap - 2
                {
                    Err(CacheError::Full)
                } else {
                    Ok(())
                }
            });
        if let Err(error) = checked {
            self.stats.refused_saves += 1;
            return Err(RefusedSession { fd, error });
        }
        let hash = self.label_hash(endp);
        self.make_room_for_session(endp, hash);
        let l = self.intern(Kind::Endp, endp, hash);
        let seq = self.next_seq();
        let idx = to_u32(self.sessions.insert(Session {
            fd,
            label: l,
            prop: endp_prop.into(),
            deadline: now.saturating_add(ttl),
            seq,
            label_link: Link::DETACHED,
            timer_link: Link::DETACHED,
        }));
        self.labels[l as usize]
            .list
            .push_back(&mut self.sessions, idx);
        self.after_insert(l);
        self.session_timers
            .push(&mut self.sessions, idx, ttl_millis(ttl));
        self.stats.endp_saves += 1;
        self.sample_peaks();
        Ok(SessionHandle::new(idx, seq))
    }

    /// Takes the session at the front of `endp`'s list (the oldest one), with
    /// what is needed to [`put_back`](MultiCache::put_back) it. `None` when
    /// the endpoint has no session. Counts as an endpoint hit or miss.
    pub fn take_endp(&mut self, endp: &[u8]) -> Option<Taken<F>> {
        self.tick();
        let (s, endp_label, ttl_ms) = self.take_endp_inner(endp, true)?;
        Some(Taken {
            fd: s.fd,
            endp_prop: s.prop.into_vec(),
            dest_prop: None,
            endp_label,
            deadline: s.deadline,
            ttl_ms,
        })
    }

    /// Binds destination `dest` to endpoint `endp`, expiring `ttl` from now.
    /// If `dest` already has a binding with the same endpoint and the same
    /// `dest_prop`, only its deadline changes (its place in the list stays);
    /// otherwise a new binding is appended.
    ///
    /// May evict other bindings to respect the [`Limits`]. Fails when a
    /// label or the property is too long.
    pub fn save_dest(
        &mut self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<SaveDestOutcome, CacheError> {
        let now = self.tick();
        let checked = self
            .check_label(dest)
            .and_then(|()| self.check_label(endp))
            .and_then(|()| self.check_prop(dest_prop))
            .and_then(|()| {
                if self.bindings.len() >= self.index_cap || self.labels.len() >= self.index_cap - 2
                {
                    Err(CacheError::Full)
                } else {
                    Ok(())
                }
            });
        if let Err(error) = checked {
            self.stats.refused_saves += 1;
            return Err(error);
        }
        let deadline = now.saturating_add(ttl);
        let dest_hash = self.label_hash(dest);
        let endp_hash = self.label_hash(endp);

        // Refresh in place when endpoint and properties both match.
        if let Some(d) = self.lookup(Kind::Dest, dest, dest_hash) {
            if let Some(e) = self.lookup(Kind::Endp, endp, endp_hash) {
                let mut idx = self.labels[d as usize].list.head;
                while idx != NIL {
                    let b = &self.bindings[idx as usize];
                    if b.endp == e && *b.prop == *dest_prop {
                        self.binding_timers.remove(&mut self.bindings, idx);
                        let seq = self.next_seq();
                        let b = &mut self.bindings[idx as usize];
                        b.deadline = deadline;
                        b.seq = seq;
                        self.binding_timers
                            .push(&mut self.bindings, idx, ttl_millis(ttl));
                        self.lru_touch(d);
                        self.stats.dest_saves += 1;
                        self.stats.dest_refreshes += 1;
                        self.sample_peaks();
                        return Ok(SaveDestOutcome::Refreshed);
                    }
                    idx = b.label_link.next;
                }
            }
        }

        self.make_room_for_binding(dest, dest_hash);
        let d = self.intern(Kind::Dest, dest, dest_hash);
        let e = self.intern(Kind::Endp, endp, endp_hash);
        self.labels[e as usize].refs += 1;
        let seq = self.next_seq();
        let idx = to_u32(self.bindings.insert(Binding {
            dest: d,
            endp: e,
            prop: dest_prop.into(),
            deadline,
            seq,
            label_link: Link::DETACHED,
            timer_link: Link::DETACHED,
        }));
        self.labels[d as usize]
            .list
            .push_back(&mut self.bindings, idx);
        self.after_insert(d);
        self.binding_timers
            .push(&mut self.bindings, idx, ttl_millis(ttl));
        self.stats.dest_saves += 1;
        self.sample_peaks();
        Ok(SaveDestOutcome::Added)
    }

    /// Walks `dest`'s bindings from the front and takes the oldest session
    /// of the first bound endpoint that has one, with the binding's
    /// properties and what is needed to [`put_back`](MultiCache::put_back)
    /// it. Bindings are never removed by a lookup. Counts as a destination
    /// hit or miss (the inner endpoint lookups are not counted).
    pub fn take_dest(&mut self, dest: &[u8]) -> Option<Taken<F>> {
        self.tick();
        let (s, dest_prop, endp_label, ttl_ms) = self.take_dest_inner(dest, true)?;
        Some(Taken {
            fd: s.fd,
            endp_prop: s.prop.into_vec(),
            dest_prop: Some(dest_prop),
            endp_label,
            deadline: s.deadline,
            ttl_ms,
        })
    }

    /// Returns a taken session to the cache, at the *front* of its
    /// endpoint's list (it was the oldest), keeping its original deadline.
    /// If that deadline has passed, the session is closed instead (counted
    /// as expired) and `None` is returned. Otherwise the session gets a new
    /// handle. The [`Limits`] apply as for a save (lengths are not checked
    /// again).
    pub fn put_back(&mut self, taken: Taken<F>) -> Option<SessionHandle> {
        let now = self.tick();
        self.stats.put_backs += 1;
        if taken.deadline <= now {
            self.stats.expired_sessions += 1;
            self.depart_taken(taken, DepartureCause::Expired);
            return None;
        }
        if self.sessions.len() >= self.index_cap || self.labels.len() >= self.index_cap - 2 {
            self.stats.refused_saves += 1;
            self.depart_taken(taken, DepartureCause::Evicted(EvictionCause::SessionLimit));
            return None;
        }
        let Taken {
            fd,
            endp_prop,
            endp_label,
            deadline,
            ttl_ms,
            ..
        } = taken;
        let endp_label = endp_label.as_slice();
        let hash = self.label_hash(endp_label);
        self.make_room_for_session(endp_label, hash);
        let l = self.intern(Kind::Endp, endp_label, hash);
        let seq = self.next_seq();
        let idx = to_u32(self.sessions.insert(Session {
            fd,
            label: l,
            prop: endp_prop.into_boxed_slice(),
            deadline,
            seq,
            label_link: Link::DETACHED,
            timer_link: Link::DETACHED,
        }));
        self.labels[l as usize]
            .list
            .push_front(&mut self.sessions, idx);
        self.after_insert(l);
        self.session_timers
            .push_lone(&mut self.sessions, idx, ttl_ms);
        self.sample_peaks();
        Some(SessionHandle::new(idx, seq))
    }

    // ----- handles ---------------------------------------------------------

    /// The descriptor of the session named by `handle`, if it is still
    /// cached (for example to register it with an event loop after a save).
    pub fn session_fd_mut(&mut self, handle: SessionHandle) -> Option<&mut F> {
        let idx = self.resolve(handle)?;
        self.sessions.get_mut(idx as usize).map(|s| &mut s.fd)
    }

    /// Whether `handle` names a session still cached (as of the last
    /// operation; nothing is expired by this call).
    pub fn contains_session(&self, handle: SessionHandle) -> bool {
        self.resolve(handle).is_some()
    }

    /// The descriptor of the session named by `handle`, still cached (for
    /// example to peek at what its peer sent before choosing between
    /// [`EvictionCause::PeerClosed`] and [`EvictionCause::PeerData`]).
    /// `None` when the handle is stale. Nothing is expired by this call.
    pub fn session_fd(&self, handle: SessionHandle) -> Option<&F> {
        let idx = self.resolve(handle)?;
        Some(&self.sessions[idx as usize].fd)
    }

    /// Every cached session's handle and descriptor, in no particular
    /// order: for example to register them all with a new event loop, or
    /// again with one that was rebuilt. Nothing is expired by this call.
    pub fn session_fds(&self) -> impl Iterator<Item = (SessionHandle, &F)> + '_ {
        self.sessions
            .iter()
            .map(|(idx, s)| (SessionHandle::new(idx as u32, s.seq), &s.fd))
    }

    /// Removes the session named by `handle` and hands its descriptor and
    /// properties to the caller (who usually drops them, closing the
    /// connection), counting it as evicted for `cause`. `None` when the
    /// handle is stale (including when the session expires now). No
    /// eviction record is made: the caller knows.
    pub fn remove_session(
        &mut self,
        handle: SessionHandle,
        cause: EvictionCause,
    ) -> Option<FoundEndp<F>> {
        self.tick();
        let idx = self.resolve(handle)?;
        let (s, _) = self.unlink_session(idx);
        self.stats.evicted_sessions[cause.index()] += 1;
        Some(FoundEndp {
            endp_prop: s.prop.into_vec(),
            fd: s.fd,
        })
    }

    /// Closes the session closest to expiry (earliest deadline, then saved
    /// first), counting it as evicted for `cause` (typically
    /// [`EvictionCause::FdPressure`] when descriptors run out). Returns its
    /// handle, now stale; `None` when no session is cached. No eviction
    /// record is made: the caller knows.
    pub fn evict_soonest(&mut self, cause: EvictionCause) -> Option<SessionHandle> {
        self.tick();
        let (_, idx) = self.session_timers.first()?;
        self.stats.evicted_sessions[cause.index()] += 1;
        let (seq, _) = self.depart(idx, DepartureCause::Evicted(cause));
        Some(SessionHandle::new(idx, seq))
    }

    // ----- time ------------------------------------------------------------

    /// The earliest deadline of any cached session or binding: when the
    /// caller should next call [`expire`](MultiCache::expire). `None` when
    /// the cache is empty.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (
            self.session_timers.next_deadline(),
            self.binding_timers.next_deadline(),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expires everything due at `now` (clamped to the latest time seen):
    /// sessions are closed (their descriptors dropped), bindings dropped,
    /// emptied labels forgotten. Returns how many sessions and bindings
    /// expired.
    pub fn expire(&mut self, now: Instant) -> usize {
        let now = now.max(self.last_now);
        self.last_now = now;
        self.expire_at(now)
    }

    /// [`expire`](MultiCache::expire) at the clock's current time.
    pub fn expire_due(&mut self) -> usize {
        let now = self.clock.now();
        self.expire(now)
    }

    // ----- sizes, counters, evictions -------------------------------------

    /// Current sizes, as of the last operation (call
    /// [`expire_due`](MultiCache::expire_due) first to leave out what is due).
    pub fn size(&self) -> CacheSize {
        CacheSize {
            dest_count: self.dest_count,
            endp_count: self.endp_count,
            sess_count: self.sessions.len(),
        }
    }

    /// Bindings cached.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// The counters, with current sizes filled in.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats;
        stats.dest_count = self.dest_count;
        stats.endp_count = self.endp_count;
        stats.sess_count = self.sessions.len();
        stats.binding_count = self.bindings.len();
        stats
    }

    /// Sets the peak sizes to zero. As in Postfix, peaks are sampled after
    /// each save (and put-back), so after a reset they stay zero until the
    /// next save.
    pub fn reset_peaks(&mut self) {
        self.stats.peak_dest_count = 0;
        self.stats.peak_endp_count = 0;
        self.stats.peak_sess_count = 0;
        self.stats.peak_binding_count = 0;
    }

    /// A read-only look at what the cache holds: every endpoint with its session count, the age of its oldest
    /// session and the time until its last one expires, and every
    /// destination with its bindings in order. O(sessions + bindings); no
    /// memory is kept per session for it: a session's age is its deadline
    /// minus the TTL of the expiry queue it sits in. A session put back
    /// after a failed hand-over while sessions with several different TTLs
    /// were cached may have no known age.
    ///
    /// Ages and times left are measured at the clock's current time, but
    /// nothing is expired by this call (a due entry shows 0 left): call
    /// [`expire_due`](MultiCache::expire_due) first to leave out what is due.
    ///
    /// ```
    /// use std::time::Duration;
    /// use scache_core::{ManualClock, MultiCache};
    ///
    /// let clock = ManualClock::new();
    /// let mut cache: MultiCache<u32, _> = MultiCache::new(&clock);
    /// cache.save_endp(Duration::from_secs(2), b"e", b"", 7).unwrap();
    /// cache.save_dest(Duration::from_secs(2), b"d", b"", b"e").unwrap();
    /// clock.advance(Duration::from_millis(500));
    /// cache.save_endp(Duration::from_secs(2), b"e", b"", 8).unwrap();
    /// let view = cache.view();
    /// assert_eq!(view.endpoints.len(), 1);
    /// let e = &view.endpoints[0];
    /// assert_eq!((e.label, e.sessions), (&b"e"[..], 2));
    /// assert_eq!(e.oldest_age, Some(Duration::from_millis(500)));
    /// assert_eq!(e.ttl_left, Duration::from_secs(2));
    /// let d = &view.destinations[0];
    /// assert_eq!(d.bindings[0].endpoint, b"e");
    /// assert_eq!(d.bindings[0].ttl_left, Duration::from_millis(1500));
    /// assert_eq!(d.sessions(), 2);
    /// ```
    pub fn view(&self) -> CacheView<'_> {
        let now = self.clock.now().max(self.last_now);
        let ttls = self.session_timers.ttl_table(&self.sessions);
        let mut view = CacheView::default();
        for (_, label) in &self.labels {
            if label.list.len == 0 {
                continue;
            }
            match label.kind() {
                Kind::Endp => {
                    let mut oldest: Option<Duration> = None;
                    let mut last = now;
                    let mut idx = label.list.head;
                    while idx != NIL {
                        let s = &self.sessions[idx as usize];
                        last = last.max(s.deadline);
                        let ttl = ttls[idx as usize];
                        if ttl != u64::MAX {
                            let saved =
                                Instant::from_millis(s.deadline.as_millis().saturating_sub(ttl));
                            let age = now.saturating_duration_since(saved);
                            oldest = Some(oldest.map_or(age, |o| o.max(age)));
                        }
                        idx = s.label_link.next;
                    }
                    view.endpoints.push(EndpointView {
                        label: label.bytes.as_slice(),
                        sessions: label.list.len as usize,
                        oldest_age: oldest,
                        ttl_left: last.saturating_duration_since(now),
                    });
                }
                Kind::Dest => {
                    let mut bindings = Vec::with_capacity(label.list.len as usize);
                    let mut idx = label.list.head;
                    while idx != NIL {
                        let b = &self.bindings[idx as usize];
                        let endp = &self.labels[b.endp as usize];
                        bindings.push(BindingView {
                            endpoint: endp.bytes.as_slice(),
                            endpoint_sessions: endp.list.len as usize,
                            ttl_left: b.deadline.saturating_duration_since(now),
                        });
                        idx = b.label_link.next;
                    }
                    view.destinations.push(DestinationView {
                        label: label.bytes.as_slice(),
                        bindings,
                    });
                }
            }
        }
        view
    }

    /// Takes the records of evictions the cache made by itself (to respect
    /// the [`Limits`]) since the last call, oldest first. Expirations, and
    /// removals asked for by the caller, are not recorded here (they are
    /// counted in [`Stats`]).
    pub fn drain_evictions(&mut self) -> std::vec::Drain<'_, Eviction> {
        self.evictions.drain(..)
    }

    // ----- internals ---------------------------------------------------------

    /// Reads the clock (clamped) and expires what is due.
    #[inline]
    fn tick(&mut self) -> Instant {
        let now = self.clock.now().max(self.last_now);
        self.last_now = now;
        self.expire_at(now);
        now
    }

    /// Expires everything due at `now`; returns how many records went.
    #[inline]
    fn expire_at(&mut self, now: Instant) -> usize {
        let due = |t: &Timers| t.next_deadline().is_some_and(|d| d <= now);
        if !due(&self.session_timers) && !due(&self.binding_timers) {
            return 0;
        }
        self.expire_loop(now)
    }

    #[cold]
    fn expire_loop(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some((deadline, idx)) = self.session_timers.first() {
            if deadline > now {
                break;
            }
            self.stats.expired_sessions += 1;
            self.depart(idx, DepartureCause::Expired);
            n += 1;
        }
        while let Some((deadline, idx)) = self.binding_timers.first() {
            if deadline > now {
                break;
            }
            self.unlink_binding(idx);
            self.stats.expired_bindings += 1;
            n += 1;
        }
        n
    }

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn check_label(&self, label: &[u8]) -> Result<(), CacheError> {
        match self.limits.max_label_len {
            Some(max) if label.len() > max => Err(CacheError::LabelTooLong {
                len: label.len(),
                max,
            }),
            _ => Ok(()),
        }
    }

    fn check_prop(&self, prop: &[u8]) -> Result<(), CacheError> {
        match self.limits.max_prop_len {
            Some(max) if prop.len() > max => Err(CacheError::PropTooLong {
                len: prop.len(),
                max,
            }),
            _ => Ok(()),
        }
    }

    fn resolve(&self, handle: SessionHandle) -> Option<u32> {
        let s = self.sessions.get(handle.index())?;
        (s.seq as u32 == handle.generation()).then_some(handle.index() as u32)
    }

    fn sample_peaks(&mut self) {
        let st = &mut self.stats;
        st.peak_dest_count = st.peak_dest_count.max(self.dest_count);
        st.peak_endp_count = st.peak_endp_count.max(self.endp_count);
        st.peak_sess_count = st.peak_sess_count.max(self.sessions.len());
        st.peak_binding_count = st.peak_binding_count.max(self.bindings.len());
    }

    fn record(&mut self, evicted: Evicted, cause: EvictionCause) {
        if self.evictions.len() < Self::EVICTION_LOG_CAP {
            self.evictions.push(Eviction { evicted, cause });
        } else {
            self.stats.unreported_evictions += 1;
        }
    }

    // -- labels --

    /// The hash of `bytes` in the label indexes (see [`table_hash`]).
    #[inline]
    fn label_hash(&self, bytes: &[u8]) -> u64 {
        table_hash(self.hasher.hash_one(bytes) as u32)
    }

    #[inline]
    fn lookup(&self, kind: Kind, bytes: &[u8], hash: u64) -> Option<u32> {
        let labels = &self.labels;
        let table = match kind {
            Kind::Endp => &self.endp_index,
            Kind::Dest => &self.dest_index,
        };
        table
            .find(hash, |&i| labels[i as usize].bytes.as_slice() == bytes)
            .copied()
    }

    /// The record of `bytes` in `kind`'s namespace, created (not in use) if
    /// absent.
    fn intern(&mut self, kind: Kind, bytes: &[u8], hash: u64) -> u32 {
        let labels = &mut self.labels;
        let table = match kind {
            Kind::Endp => &mut self.endp_index,
            Kind::Dest => &mut self.dest_index,
        };
        let entry = table.entry(
            hash,
            |&i| labels[i as usize].bytes.as_slice() == bytes,
            |&i| table_hash(labels[i as usize].hash),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(o) => *o.get(),
            hashbrown::hash_table::Entry::Vacant(v) => {
                let l = to_u32(labels.insert(Label {
                    bytes: LabelBytes::new(bytes),
                    hash: hash as u32,
                    list: Chain::EMPTY,
                    refs: match kind {
                        Kind::Endp => 0,
                        Kind::Dest => DEST_LABEL,
                    },
                    stamp: 0,
                }));
                v.insert(l);
                l
            }
        }
    }

    /// Forgets a label record; returns its bytes.
    fn free_label(&mut self, l: u32) -> LabelBytes {
        let label = self.labels.remove(l as usize);
        let hash = table_hash(label.hash);
        let table = match label.kind() {
            Kind::Endp => &mut self.endp_index,
            Kind::Dest => &mut self.dest_index,
        };
        if let Ok(entry) = table.find_entry(hash, |&i| i == l) {
            entry.remove();
        }
        label.bytes
    }

    /// After an insertion into `l`'s list: the label is now in use (if it
    /// was not) and the most recently saved-to.
    #[inline]
    fn after_insert(&mut self, l: u32) {
        let label = &self.labels[l as usize];
        if label.list.len == 1 {
            match label.kind() {
                Kind::Endp => self.endp_count += 1,
                Kind::Dest => self.dest_count += 1,
            }
        }
        self.lru_touch(l);
    }

    /// After `l`'s list became empty: the label is no longer in use; the
    /// record goes unless bindings still name it. Returns the bytes of a
    /// freed record.
    #[inline]
    fn label_emptied(&mut self, l: u32) -> Option<LabelBytes> {
        let label = &self.labels[l as usize];
        match label.kind() {
            Kind::Endp => {
                self.endp_count -= 1;
                (label.refs == 0).then(|| self.free_label(l))
            }
            Kind::Dest => {
                self.dest_count -= 1;
                Some(self.free_label(l))
            }
        }
    }

    /// Marks label `l` (in use) as the most recently saved-to. O(1): the
    /// label's stamp changes and an entry is appended to the order; older
    /// entries of `l` become stale.
    #[inline]
    fn lru_touch(&mut self, l: u32) {
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        self.labels[l as usize].stamp = stamp;
        if self.limits.max_labels.is_some() {
            self.lru.push_back((l, stamp));
            // Drop stale entries once they outnumber the live ones: O(1)
            // amortized, and the order stays within twice the labels in use.
            if self.lru.len() > 2 * (self.endp_count + self.dest_count) + 64 {
                let labels = &self.labels;
                self.lru
                    .retain(|&(l, stamp)| Self::lru_entry_is_live(labels, l, stamp));
            }
        }
    }

    fn lru_entry_is_live(labels: &Slab<Label>, l: u32, stamp: u64) -> bool {
        labels
            .get(l as usize)
            .is_some_and(|label| label.stamp == stamp && label.list.len > 0)
    }

    /// The least recently saved-to label in use, taken out of the order.
    fn lru_pop(&mut self) -> Option<u32> {
        while let Some((l, stamp)) = self.lru.pop_front() {
            if Self::lru_entry_is_live(&self.labels, l, stamp) {
                return Some(l);
            }
        }
        None
    }

    // -- records --

    /// Takes session `idx` out of every structure. Also returns the bytes of
    /// its label record if that record was freed.
    fn unlink_session(&mut self, idx: u32) -> (Session<F>, Option<LabelBytes>) {
        let (s, freed, _) = self.unlink_session_ttl(idx);
        (s, freed)
    }

    /// [`unlink_session`](Self::unlink_session), also returning the
    /// session's TTL in milliseconds when the expiry queues know it at once.
    #[inline]
    fn unlink_session_ttl(&mut self, idx: u32) -> (Session<F>, Option<LabelBytes>, Option<u64>) {
        let l = self.sessions[idx as usize].label;
        self.labels[l as usize].list.unlink(&mut self.sessions, idx);
        let ttl = self.session_timers.remove(&mut self.sessions, idx);
        let s = self.sessions.remove(idx as usize);
        let freed = if self.labels[l as usize].list.len == 0 {
            self.label_emptied(l)
        } else {
            None
        };
        (s, freed, ttl)
    }

    /// Takes binding `idx` out of every structure.
    fn unlink_binding(&mut self, idx: u32) -> Binding {
        let (d, e) = {
            let b = &self.bindings[idx as usize];
            (b.dest, b.endp)
        };
        self.labels[d as usize].list.unlink(&mut self.bindings, idx);
        self.binding_timers.remove(&mut self.bindings, idx);
        let b = self.bindings.remove(idx as usize);
        let endp = &mut self.labels[e as usize];
        endp.refs -= 1;
        if endp.refs == 0 && endp.list.len == 0 {
            self.free_label(e);
        }
        if self.labels[d as usize].list.len == 0 {
            self.label_emptied(d);
        }
        b
    }

    fn evict_session(&mut self, idx: u32, cause: EvictionCause) {
        self.stats.evicted_sessions[cause.index()] += 1;
        let (seq, _) = self.depart(idx, DepartureCause::Evicted(cause));
        self.record(Evicted::Session(SessionHandle::new(idx, seq)), cause);
    }

    /// Takes session `idx` out of the cache without handing it to a
    /// lookup: it goes to the departure hook, if any, else is dropped.
    /// Returns its sequence number and whether its label record was freed.
    fn depart(&mut self, idx: u32, cause: DepartureCause) -> (u64, bool) {
        let (s, freed) = self.unlink_session(idx);
        let seq = s.seq;
        let label_freed = freed.is_some();
        if self.departures.is_drop() {
            drop(s);
        } else {
            let endp = match freed {
                Some(bytes) => bytes.into_vec(),
                None => self.labels[s.label as usize].bytes.as_slice().to_vec(),
            };
            self.departures.send(Departure {
                fd: s.fd,
                endp,
                endp_prop: s.prop.into_vec(),
                cause,
            });
        }
        (seq, label_freed)
    }

    /// A taken session that does not come back: to the departure hook.
    fn depart_taken(&mut self, taken: Taken<F>, cause: DepartureCause) {
        self.departures.send(Departure {
            fd: taken.fd,
            endp: taken.endp_label.into_vec(),
            endp_prop: taken.endp_prop,
            cause,
        });
    }

    /// The first session of endpoint label `l` whose peer passes the
    /// liveness probe (every session when there is none); sessions that
    /// fail it depart, counted as evicted. `None` when none is left (the
    /// label record may then be gone).
    fn live_front(&mut self, l: u32) -> Option<u32> {
        loop {
            let label = self.labels.get(l as usize)?;
            if label.list.len == 0 {
                return None;
            }
            let idx = label.list.head;
            let cause = match &self.probe {
                None => return Some(idx),
                Some(probe) => match probe(&self.sessions[idx as usize].fd).eviction_cause() {
                    None => return Some(idx),
                    Some(cause) => cause,
                },
            };
            self.stats.evicted_sessions[cause.index()] += 1;
            if self.depart(idx, DepartureCause::Evicted(cause)).1 {
                return None;
            }
        }
    }

    fn evict_binding(&mut self, idx: u32, cause: EvictionCause) {
        self.unlink_binding(idx);
        self.stats.evicted_bindings[cause.index()] += 1;
        self.record(Evicted::Binding, cause);
    }

    /// Drops label `l` (in use) with everything under it.
    fn evict_label(&mut self, l: u32) {
        let label = &self.labels[l as usize];
        let (n, kind) = (label.list.len, label.kind());
        // The record is freed with its last entry: read it before each step.
        for _ in 0..n {
            let front = self.labels[l as usize].list.head;
            match kind {
                Kind::Endp => self.evict_session(front, EvictionCause::LabelLimit),
                Kind::Dest => self.evict_binding(front, EvictionCause::LabelLimit),
            }
        }
    }

    /// Makes room for a new label in `kind`'s namespace, if `bytes` is not a
    /// label in use already.
    #[inline]
    fn make_room_for_label(&mut self, kind: Kind, bytes: &[u8], hash: u64) {
        let Some(max) = Limits::count(self.limits.max_labels) else {
            return;
        };
        let in_use = self
            .lookup(kind, bytes, hash)
            .is_some_and(|l| self.labels[l as usize].list.len > 0);
        if in_use {
            return;
        }
        while self.endp_count + self.dest_count >= max {
            let Some(l) = self.lru_pop() else {
                break;
            };
            self.evict_label(l);
        }
    }

    /// Applies the limits before a session is added under `endp`.
    #[inline]
    fn make_room_for_session(&mut self, endp: &[u8], hash: u64) {
        if let Some(max) = Limits::count(self.limits.max_sessions_per_endpoint) {
            if let Some(l) = self.lookup(Kind::Endp, endp, hash) {
                let len = self.labels[l as usize].list.len as usize;
                if len >= max {
                    // The record is freed with its last session: read it
                    // before each step.
                    for _ in 0..=(len - max) {
                        let front = self.labels[l as usize].list.head;
                        self.evict_session(front, EvictionCause::EndpointLimit);
                    }
                }
            }
        }
        if let Some(max) = Limits::count(self.limits.max_sessions) {
            while self.sessions.len() >= max {
                let Some((_, idx)) = self.session_timers.first() else {
                    break;
                };
                self.evict_session(idx, EvictionCause::SessionLimit);
            }
        }
        self.make_room_for_label(Kind::Endp, endp, hash);
    }

    /// Applies the limits before a binding is added under `dest`.
    fn make_room_for_binding(&mut self, dest: &[u8], hash: u64) {
        if let Some(max) = Limits::count(self.limits.max_bindings_per_destination) {
            if let Some(d) = self.lookup(Kind::Dest, dest, hash) {
                let len = self.labels[d as usize].list.len as usize;
                if len >= max {
                    for _ in 0..=(len - max) {
                        let front = self.labels[d as usize].list.head;
                        self.evict_binding(front, EvictionCause::DestinationLimit);
                    }
                }
            }
        }
        self.make_room_for_label(Kind::Dest, dest, hash);
    }

    /// Looks up `endp` and takes its front session; counts the hit or miss.
    fn take_endp_inner(&mut self, endp: &[u8], want_label: bool) -> Option<TakenByEndp<F>> {
        let hash = self.label_hash(endp);
        let found = self
            .lookup(Kind::Endp, endp, hash)
            .and_then(|l| Some((l, self.live_front(l)?)));
        match found {
            Some((l, idx)) => {
                self.stats.endp_hits += 1;
                Some(self.take_session(l, idx, want_label))
            }
            None => {
                self.stats.endp_misses += 1;
                None
            }
        }
    }

    /// Walks `dest`'s bindings; takes the first session found; counts the
    /// hit or miss.
    fn take_dest_inner(&mut self, dest: &[u8], want_label: bool) -> Option<TakenByDest<F>> {
        let hash = self.label_hash(dest);
        if let Some(d) = self.lookup(Kind::Dest, dest, hash) {
            let mut idx = self.labels[d as usize].list.head;
            while idx != NIL {
                let b = &self.bindings[idx as usize];
                let (e, next) = (b.endp, b.label_link.next);
                // A bound endpoint record lives as long as the binding.
                if let Some(front) = self.live_front(e) {
                    let dest_prop = self.bindings[idx as usize].prop.to_vec();
                    let (s, label, ttl) = self.take_session(e, front, want_label);
                    self.stats.dest_hits += 1;
                    return Some((s, dest_prop, label, ttl));
                }
                idx = next;
            }
        }
        self.stats.dest_misses += 1;
        None
    }

    /// Takes session `idx` of endpoint label `l`, and, if `want_label`,
    /// the label's bytes.
    #[inline]
    fn take_session(&mut self, l: u32, idx: u32, want_label: bool) -> TakenByEndp<F> {
        let (s, freed, ttl) = self.unlink_session_ttl(idx);
        let label = match freed {
            Some(bytes) if want_label => bytes,
            None if want_label => LabelBytes::new(self.labels[l as usize].bytes.as_slice()),
            _ => LabelBytes::EMPTY,
        };
        (s, label, ttl)
    }

    /// Checks every internal invariant; panics on the first violation.
    /// For tests: O(everything). Not public API (feature `testkit`).
    #[cfg(any(test, feature = "testkit"))]
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        // Label lists and counts.
        let mut endp_in_use = 0;
        let mut dest_in_use = 0;
        let mut refs = vec![0u32; self.labels.capacity()];
        for (_, b) in &self.bindings {
            refs[b.endp as usize] += 1;
        }
        for (l, label) in &self.labels {
            let l = l as u32;
            assert_eq!(
                label.refs,
                if label.kind() == Kind::Endp {
                    refs[l as usize]
                } else {
                    DEST_LABEL
                }
            );
            assert!(
                label.list.len > 0 || (label.kind() == Kind::Endp && label.refs > 0),
                "orphan label record"
            );
            let mut n = 0;
            let mut prev = NIL;
            let mut head_prev = NIL;
            let mut idx = label.list.head;
            while idx != NIL {
                let link = match label.kind() {
                    Kind::Endp => {
                        assert_eq!(self.sessions[idx as usize].label, l);
                        self.sessions[idx as usize].label_link
                    }
                    Kind::Dest => {
                        assert_eq!(self.bindings[idx as usize].dest, l);
                        self.bindings[idx as usize].label_link
                    }
                };
                if n == 0 {
                    // The first record names the last.
                    head_prev = link.prev;
                } else {
                    assert_eq!(link.prev, prev);
                }
                prev = idx;
                idx = link.next;
                n += 1;
            }
            assert_eq!(prev, head_prev);
            assert_eq!(n, label.list.len);
            if label.list.len > 0 {
                match label.kind() {
                    Kind::Endp => endp_in_use += 1,
                    Kind::Dest => dest_in_use += 1,
                }
            }
            let table = match label.kind() {
                Kind::Endp => &self.endp_index,
                Kind::Dest => &self.dest_index,
            };
            let hash = self.label_hash(label.bytes.as_slice());
            assert_eq!(table_hash(label.hash), hash);
            assert_eq!(table.find(hash, |&i| i == l), Some(&l));
            assert_eq!(
                label.bytes.as_slice().len() <= INLINE_LABEL,
                matches!(label.bytes, LabelBytes::Inline { .. })
            );
        }
        assert_eq!(endp_in_use, self.endp_count);
        assert_eq!(dest_in_use, self.dest_count);
        assert_eq!(
            self.endp_index.len() + self.dest_index.len(),
            self.labels.len()
        );
        // The live entries of the order are exactly the labels in use, once
        // each, oldest stamp first.
        if let Some(max) = self.limits.max_labels {
            let live: Vec<(u32, u64)> = self
                .lru
                .iter()
                .copied()
                .filter(|&(l, stamp)| Self::lru_entry_is_live(&self.labels, l, stamp))
                .collect();
            assert_eq!(live.len(), endp_in_use + dest_in_use);
            assert!(live.windows(2).all(|w| w[0].1 < w[1].1));
            // Swept on saves, so bounded by what was in use then.
            let bound = 2 * max.max(endp_in_use + dest_in_use) + 65;
            assert!(self.lru.len() <= bound);
        } else {
            assert!(self.lru.is_empty());
        }
    }
}

impl<F, C> MultiCache<F, C> {
    /// Closes every session (or hands it to the departure hook, cause
    /// [`DepartureCause::Shutdown`]) and forgets every binding and label,
    /// without counting them anywhere. Counters and the clock are kept.
    pub fn clear(&mut self) {
        self.depart_all();
        self.session_timers.clear();
        self.binding_timers.clear();
        self.sessions.clear();
        self.bindings.clear();
        self.endp_index.clear();
        self.dest_index.clear();
        self.labels.clear();
        self.lru.clear();
        self.endp_count = 0;
        self.dest_count = 0;
    }

    /// The sessions queued since the last call (see `queue_departures`).
    pub(crate) fn take_departures(&mut self) -> Vec<Departure<F>> {
        match &mut self.departures {
            Departures::Queue(queue) if !queue.is_empty() => std::mem::take(queue),
            _ => Vec::new(),
        }
    }

    /// Every cached session to the departure sink as
    /// [`DepartureCause::Shutdown`], oldest deadline first (the structures
    /// are left for the caller to clear).
    fn depart_all(&mut self) {
        if self.departures.is_drop() {
            return;
        }
        let mut sessions: Vec<Session<F>> = self.sessions.drain().collect();
        sessions.sort_by_key(|s| (s.deadline, s.seq));
        for s in sessions {
            let endp = self
                .labels
                .get(s.label as usize)
                .map(|label| label.bytes.as_slice().to_vec())
                .unwrap_or_default();
            self.departures.send(Departure {
                fd: s.fd,
                endp,
                endp_prop: s.prop.into_vec(),
                cause: DepartureCause::Shutdown,
            });
        }
    }
}

impl<F, C> Drop for MultiCache<F, C> {
    /// Sessions still cached go to the departure hook (cause
    /// [`DepartureCause::Shutdown`]), if one is set.
    fn drop(&mut self) {
        self.depart_all();
    }
}

impl<F, C: Clock> ConnectionCache for MultiCache<F, C> {
    type Fd = F;
    type Error = CacheError;

    /// As [`MultiCache::save_endp`], but a refused descriptor is dropped
    /// (closed).
    fn save_endp(
        &mut self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: F,
    ) -> Result<(), CacheError> {
        MultiCache::save_endp(self, ttl, endp, endp_prop, fd)
            .map(|_| ())
            .map_err(|refused| refused.error)
    }

    fn find_endp(&mut self, endp: &[u8]) -> Result<Option<FoundEndp<F>>, CacheError> {
        self.tick();
        Ok(self
            .take_endp_inner(endp, false)
            .map(|(s, _, _)| FoundEndp {
                endp_prop: s.prop.into_vec(),
                fd: s.fd,
            }))
    }

    fn save_dest(
        &mut self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<(), CacheError> {
        MultiCache::save_dest(self, ttl, dest, dest_prop, endp).map(|_| ())
    }

    fn find_dest(&mut self, dest: &[u8]) -> Result<Option<FoundDest<F>>, CacheError> {
        self.tick();
        Ok(self
            .take_dest_inner(dest, false)
            .map(|(s, dest_prop, _, _)| FoundDest {
                dest_prop,
                endp_prop: s.prop.into_vec(),
                fd: s.fd,
            }))
    }

    fn size(&self) -> Option<CacheSize> {
        Some(MultiCache::size(self))
    }
}

/// A TTL in whole milliseconds (saturating), the unit of deadlines.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod internal_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn record_sizes() {
        assert_eq!(session_record_size::<u32>(), 56);
        assert_eq!(session_record_size::<std::os::fd::OwnedFd>(), 56);
        assert_eq!(binding_record_size(), 56);
        assert_eq!(label_record_size(), 80);
    }

    #[test]
    fn queues_are_freed_when_empty() {
        let clock = ManualClock::new();
        let mut c: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
        for ttl in 1..=5 {
            c.save_endp(Duration::from_secs(ttl), b"e", b"", 0).unwrap();
        }
        assert_eq!(c.session_timers.queue_count(), 5);
        for _ in 0..5 {
            c.take_endp(b"e").unwrap();
        }
        assert_eq!(c.session_timers.queue_count(), 0);
        c.check_invariants();
    }
}
