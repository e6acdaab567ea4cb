//! Counters, eviction causes and eviction records.

use std::fmt;

use crate::handle::SessionHandle;

/// Why a session or binding left the cache before its time (other than being
/// looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvictionCause {
    /// The total session limit was reached by a save.
    SessionLimit,
    /// The per-endpoint session limit was reached by a save.
    EndpointLimit,
    /// The per-destination binding limit was reached by a save.
    DestinationLimit,
    /// The label limit was reached by a save that needed a new label.
    LabelLimit,
    /// The caller saw the cached connection's peer close it.
    PeerClosed,
    /// The caller saw the cached connection's peer send data (for SMTP, a
    /// `421` shutdown notice): the session is no longer usable.
    PeerData,
    /// The caller ran short of descriptors.
    FdPressure,
    /// Any other reason the caller has.
    Caller,
}

impl EvictionCause {
    /// Number of causes (the length of the per-cause arrays in [`Stats`]).
    pub const COUNT: usize = 8;

    /// Every cause, in [`index`](EvictionCause::index) order.
    pub const ALL: [EvictionCause; EvictionCause::COUNT] = [
        EvictionCause::SessionLimit,
        EvictionCause::EndpointLimit,
        EvictionCause::DestinationLimit,
        EvictionCause::LabelLimit,
        EvictionCause::PeerClosed,
        EvictionCause::PeerData,
        EvictionCause::FdPressure,
        EvictionCause::Caller,
    ];

    /// This cause's position in the per-cause arrays of [`Stats`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short lower-case name for logs (`"session_limit"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            EvictionCause::SessionLimit => "session_limit",
            EvictionCause::EndpointLimit => "endpoint_limit",
            EvictionCause::DestinationLimit => "destination_limit",
            EvictionCause::LabelLimit => "label_limit",
            EvictionCause::PeerClosed => "peer_closed",
            EvictionCause::PeerData => "peer_data",
            EvictionCause::FdPressure => "fd_pressure",
            EvictionCause::Caller => "caller",
        }
    }
}

impl fmt::Display for EvictionCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an eviction removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evicted {
    /// A session, closed by dropping its descriptor. The handle is stale
    /// from now on.
    Session(SessionHandle),
    /// A destination-to-endpoint binding.
    Binding,
}

/// One eviction the cache decided on by itself while making room for a
/// save (see [`Limits`](crate::Limits) for the policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Eviction {
    /// What went.
    pub evicted: Evicted,
    /// Why.
    pub cause: EvictionCause,
}

/// Counters of a [`MultiCache`](crate::MultiCache). Totals since the cache
/// was created, except the peaks (see [`MultiCache::reset_peaks`]).
///
/// [`MultiCache::reset_peaks`]: crate::MultiCache::reset_peaks
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// `find_endp` calls that returned a session.
    pub endp_hits: u64,
    /// `find_endp` calls that found nothing.
    pub endp_misses: u64,
    /// `find_dest` calls that returned a session.
    pub dest_hits: u64,
    /// `find_dest` calls that found nothing.
    pub dest_misses: u64,
    /// Sessions saved (`save_endp` calls that were not refused).
    pub endp_saves: u64,
    /// `save_dest` calls that were not refused, refreshes included.
    pub dest_saves: u64,
    /// `save_dest` calls that only refreshed an existing binding.
    pub dest_refreshes: u64,
    /// Sessions closed because their time was up (including sessions put
    /// back after their deadline).
    pub expired_sessions: u64,
    /// Bindings dropped because their time was up.
    pub expired_bindings: u64,
    /// Sessions evicted, per [`EvictionCause::index`].
    pub evicted_sessions: [u64; EvictionCause::COUNT],
    /// Bindings evicted, per [`EvictionCause::index`].
    pub evicted_bindings: [u64; EvictionCause::COUNT],
    /// Saves refused (label or property too long, cache full).
    pub refused_saves: u64,
    /// Sessions handed back with `put_back` (whether kept or already expired).
    pub put_backs: u64,
    /// Eviction records not kept because the caller did not drain them
    /// (the record list holds at most
    /// [`MultiCache::EVICTION_LOG_CAP`](crate::MultiCache::EVICTION_LOG_CAP)).
    pub unreported_evictions: u64,
    /// Destination labels with at least one binding, now.
    pub dest_count: usize,
    /// Endpoint labels with at least one session, now.
    pub endp_count: usize,
    /// Sessions cached, now.
    pub sess_count: usize,
    /// Bindings cached, now.
    pub binding_count: usize,
    /// Highest `dest_count` seen after a save since the last reset.
    pub peak_dest_count: usize,
    /// Highest `endp_count` seen after a save since the last reset.
    pub peak_endp_count: usize,
    /// Highest `sess_count` seen after a save since the last reset.
    pub peak_sess_count: usize,
    /// Highest `binding_count` seen after a save since the last reset.
    pub peak_binding_count: usize,
}

impl Stats {
    /// Sessions evicted for `cause`.
    pub fn evicted_sessions_for(&self, cause: EvictionCause) -> u64 {
        self.evicted_sessions[cause.index()]
    }

    /// Bindings evicted for `cause`.
    pub fn evicted_bindings_for(&self, cause: EvictionCause) -> u64 {
        self.evicted_bindings[cause.index()]
    }

    /// Sessions and bindings evicted, all causes together.
    pub fn evictions_total(&self) -> u64 {
        self.evicted_sessions.iter().sum::<u64>() + self.evicted_bindings.iter().sum::<u64>()
    }
}
