//! Stable names of cached sessions.

/// A stable name for one cached session, returned when it is saved.
///
/// It stays valid until the session leaves the cache (looked up, expired,
/// evicted, removed); after that it is *stale* and every method taking it
/// answers "no such session". A session put back after a lookup gets a new
/// handle.
///
/// It converts to and from `u64` (for example to serve as an epoll token);
/// the top bit of that `u64` is always clear, so callers can use it to tell
/// their own tokens apart. Staleness is detected with a 32-bit generation:
/// a stale handle could only be mistaken for a live one after about four
/// billion further saves reused its exact slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(u64);

impl SessionHandle {
    pub(crate) fn new(idx: u32, seq: u64) -> SessionHandle {
        SessionHandle((u64::from(idx) << 32) | (seq & 0xffff_ffff))
    }

    /// The handle as a `u64` (top bit always clear).
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// A handle from a `u64` made by [`as_u64`](SessionHandle::as_u64). Any
    /// other value is merely a handle that names no session.
    pub const fn from_u64(v: u64) -> SessionHandle {
        SessionHandle(v)
    }

    pub(crate) fn index(self) -> usize {
        (self.0 >> 32) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        self.0 as u32
    }
}

impl From<SessionHandle> for u64 {
    fn from(h: SessionHandle) -> u64 {
        h.as_u64()
    }
}

impl From<u64> for SessionHandle {
    fn from(v: u64) -> SessionHandle {
        SessionHandle::from_u64(v)
    }
}
