//! scache-core: the connection cache itself (skeleton; the core work fills it in).
#![forbid(unsafe_code)]

pub mod clock;
pub mod cache;

pub use cache::{CacheSize, ConnectionCache, FoundDest, FoundEndp};
pub use clock::{Clock, Instant, ManualClock};
