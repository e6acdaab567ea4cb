//! A read-only look inside a [`MultiCache`](crate::MultiCache): which
//! endpoints hold sessions, how old they are, which destinations are bound
//! to them. See [`MultiCache::view`](crate::MultiCache::view).

use std::time::Duration;

/// One endpoint label that holds sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView<'a> {
    /// The endpoint label (opaque bytes, as saved).
    pub label: &'a [u8],
    /// Sessions cached under it.
    pub sessions: usize,
    /// Age of its oldest session: the time since it was saved. `None` when
    /// no session's age is known (a session put back after a failed
    /// hand-over whose TTL the cache could not tell without a walk; see
    /// [`MultiCache::view`](crate::MultiCache::view)).
    pub oldest_age: Option<Duration>,
    /// Time until its last session expires (unless saved to again or
    /// taken first).
    pub ttl_left: Duration,
}

/// One binding of a destination, in the destination's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingView<'a> {
    /// The endpoint label it names.
    pub endpoint: &'a [u8],
    /// Sessions cached under that endpoint now.
    pub endpoint_sessions: usize,
    /// Time until the binding expires (unless renewed).
    pub ttl_left: Duration,
}

/// One destination label that holds bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationView<'a> {
    /// The destination label (opaque bytes, as saved).
    pub label: &'a [u8],
    /// Its bindings, in order (the order `find_dest` walks them).
    pub bindings: Vec<BindingView<'a>>,
}

impl DestinationView<'_> {
    /// Sessions a `find_dest` could take through this destination: the
    /// sessions of its distinct bound endpoints.
    pub fn sessions(&self) -> usize {
        let mut seen: std::collections::HashSet<&[u8]> =
            std::collections::HashSet::with_capacity(self.bindings.len());
        self.bindings
            .iter()
            .filter(|b| seen.insert(b.endpoint))
            .map(|b| b.endpoint_sessions)
            .sum()
    }
}

/// What a cache holds, as of its last operation: every endpoint with
/// sessions and every destination with bindings, in no particular order
/// (sort them as you need). Labels are borrowed from the cache.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheView<'a> {
    /// Endpoint labels with at least one session.
    pub endpoints: Vec<EndpointView<'a>>,
    /// Destination labels with at least one binding.
    pub destinations: Vec<DestinationView<'a>>,
}
