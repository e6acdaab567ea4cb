//! Optional bounds on what a [`MultiCache`](crate::MultiCache) holds.

/// Bounds on a [`MultiCache`](crate::MultiCache). Every field is optional;
/// `None` (the default) means "no bound", which is what Postfix does.
///
/// Limits are checked when something is saved (or put back); changing them
/// with [`MultiCache::set_limits`](crate::MultiCache::set_limits) never
/// evicts retroactively. A count limit of `0` is treated as `1`.
///
/// # Eviction policy
///
/// A save never fails because a count limit is reached: the cache makes room
/// first, in this order, and reports each victim as an
/// [`Eviction`](crate::Eviction) (see
/// [`MultiCache::drain_evictions`](crate::MultiCache::drain_evictions)):
///
/// For `save_endp` (and `put_back`):
/// 1. [`max_sessions_per_endpoint`](Limits::max_sessions_per_endpoint): while
///    the endpoint holds that many sessions, its oldest session (the front of
///    its list, the one `find_endp` would hand out next) is closed, cause
///    [`EndpointLimit`](crate::EvictionCause::EndpointLimit).
/// 2. [`max_sessions`](Limits::max_sessions): while the cache holds that many
///    sessions, the session closest to expiry (earliest deadline; among equal
///    deadlines the one saved first) is closed, cause
///    [`SessionLimit`](crate::EvictionCause::SessionLimit).
/// 3. [`max_labels`](Limits::max_labels): if the endpoint label is not
///    already in use and the cache already has that many labels, the least
///    recently saved-to label is dropped with everything under it, cause
///    [`LabelLimit`](crate::EvictionCause::LabelLimit); repeated until there is
///    room.
///
/// For `save_dest` that adds a binding (a refresh adds nothing and evicts
/// nothing):
/// 1. [`max_bindings_per_destination`](Limits::max_bindings_per_destination):
///    while the destination holds that many bindings, its oldest binding (the
///    front of its list) is dropped, cause
///    [`DestinationLimit`](crate::EvictionCause::DestinationLimit).
/// 2. [`max_labels`](Limits::max_labels), as above for the destination label.
///
/// Length limits are different: a label or property longer than
/// [`max_label_len`](Limits::max_label_len) or
/// [`max_prop_len`](Limits::max_prop_len) makes the save fail with
/// [`CacheError`](crate::CacheError) (and `save_endp` hands the descriptor
/// back in a [`RefusedSession`](crate::RefusedSession)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Limits {
    /// Most sessions cached in total.
    pub max_sessions: Option<usize>,
    /// Most sessions cached under one endpoint label.
    pub max_sessions_per_endpoint: Option<usize>,
    /// Most bindings under one destination label.
    pub max_bindings_per_destination: Option<usize>,
    /// Most labels in use, counting endpoint labels with at least one session
    /// and destination labels with at least one binding together (that is,
    /// `endp_count + dest_count`). An endpoint label that is only named by
    /// bindings and holds no session is not counted.
    pub max_labels: Option<usize>,
    /// Longest endpoint or destination label, in bytes.
    pub max_label_len: Option<usize>,
    /// Longest endpoint or destination property, in bytes.
    pub max_prop_len: Option<usize>,
}

impl Limits {
    /// No bounds at all (as Postfix).
    pub const NONE: Limits = Limits {
        max_sessions: None,
        max_sessions_per_endpoint: None,
        max_bindings_per_destination: None,
        max_labels: None,
        max_label_len: None,
        max_prop_len: None,
    };

    /// A count limit as used: `0` means `1`.
    pub(crate) fn count(limit: Option<usize>) -> Option<usize> {
        limit.map(|n| n.max(1))
    }
}
