//! Why a save is refused.

use std::fmt;

/// Why a cache refused a save.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheError {
    /// A label is longer than [`Limits::max_label_len`](crate::Limits::max_label_len).
    LabelTooLong {
        /// The label's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A property is longer than [`Limits::max_prop_len`](crate::Limits::max_prop_len).
    PropTooLong {
        /// The property's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The cache cannot index more records (about two billion).
    Full,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheError::LabelTooLong { len, max } => {
                write!(f, "label too long: {len} bytes, limit {max}")
            }
            CacheError::PropTooLong { len, max } => {
                write!(f, "property too long: {len} bytes, limit {max}")
            }
            CacheError::Full => f.write_str("cache index space exhausted"),
        }
    }
}

impl std::error::Error for CacheError {}

/// A session the cache would not take: the descriptor comes back to the
/// caller, who decides whether to close it.
pub struct RefusedSession<F> {
    /// The descriptor that was to be cached.
    pub fd: F,
    /// Why it was refused.
    pub error: CacheError,
}

impl<F> fmt::Debug for RefusedSession<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefusedSession")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for RefusedSession<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session not cached: {}", self.error)
    }
}

impl<F> std::error::Error for RefusedSession<F> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
