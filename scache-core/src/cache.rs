//! The generic cache API shared by every implementation (in-process multi- and
//! single-session caches, and the daemon client in scache-proto).

use std::time::Duration;

/// Sizes of a cache, as Postfix's `scache_size()` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheSize {
    /// Destination labels with at least one binding.
    pub dest_count: usize,
    /// Endpoint labels with at least one session.
    pub endp_count: usize,
    /// Cached sessions.
    pub sess_count: usize,
}

/// A session taken out of the cache by endpoint.
#[derive(Debug)]
pub struct FoundEndp<F> {
    /// The endpoint properties saved with the session.
    pub endp_prop: Vec<u8>,
    /// The session's descriptor; ownership moves to the caller.
    pub fd: F,
}

/// A session taken out of the cache by destination.
#[derive(Debug)]
pub struct FoundDest<F> {
    /// The destination properties of the binding that matched.
    pub dest_prop: Vec<u8>,
    /// The endpoint properties saved with the session.
    pub endp_prop: Vec<u8>,
    /// The session's descriptor; ownership moves to the caller.
    pub fd: F,
}

/// The operations every connection cache offers, shaped like Postfix's
/// generic `SCACHE` interface (`scache_save_endp`, `scache_find_endp`,
/// `scache_save_dest`, `scache_find_dest`, `scache_size`).
///
/// Labels and properties are opaque bytes (never NUL for the wire protocol).
pub trait ConnectionCache {
    /// The descriptor type the cache stores.
    type Fd;
    /// Why an operation failed. An ordinary error type, so `?` converts
    /// it into `Box<dyn std::error::Error + Send + Sync>`.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores `fd` as a new session under `endp` for `ttl`.
    fn save_endp(
        &mut self,
        ttl: Duration,
        endp: &[u8],
        endp_prop: &[u8],
        fd: Self::Fd,
    ) -> Result<(), Self::Error>;

    /// Takes the oldest session cached under `endp`, if any.
    fn find_endp(&mut self, endp: &[u8]) -> Result<Option<FoundEndp<Self::Fd>>, Self::Error>;

    /// Binds destination `dest` to endpoint `endp` for `ttl`.
    fn save_dest(
        &mut self,
        ttl: Duration,
        dest: &[u8],
        dest_prop: &[u8],
        endp: &[u8],
    ) -> Result<(), Self::Error>;

    /// Takes a session for destination `dest` through its bindings, if any.
    fn find_dest(&mut self, dest: &[u8]) -> Result<Option<FoundDest<Self::Fd>>, Self::Error>;

    /// Current sizes; `None` where they cannot be known (a client of a
    /// remote daemon: ask the daemon instead).
    fn size(&self) -> Option<CacheSize>;
}
