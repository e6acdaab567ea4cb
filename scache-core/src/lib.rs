//! The connection cache at the heart of `scache`: a Rust reimplementation of
//! the cache inside Postfix's connection cache daemon, `scache(8)`.
//!
//! The cache itself is pure and deterministic: no I/O, no threads, no
//! wall-clock reads. Time comes from a [`Clock`] the caller supplies
//! ([`MonotonicClock`] in production, [`ManualClock`] in tests); the
//! descriptor type `F` is a type parameter (the daemon stores `OwnedFd`, an
//! async mail server its TLS streams, tests use tokens that record when
//! they are dropped). Dropping an `F` is the only way a session is closed,
//! unless a departure hook takes it; a lookup moves it out to the caller.
//!
//! # Which type to use
//!
//! | type | for |
//! |---|---|
//! | [`SharedCache`] | many threads or tokio tasks in one process (`&self` methods, `Send + Sync`); optional background expiry, liveness check at checkout and departure hook |
//! | [`MultiCache`] | one owner (`&mut self`), for example an event loop; the daemon uses it |
//! | [`SingleCache`] | one session and one binding, as Postfix's single-session cache |
//! | `scache_proto::Client` | a cache daemon shared by many processes (Postfix's or ours) |
//!
//! All four implement [`ConnectionCache`], so code written against the
//! trait can move between them.
//!
//! # Semantics (as Postfix's `scache_multi`)
//!
//! - **Endpoint → sessions.** `save_endp` appends a session (descriptor plus
//!   opaque `endp_prop`) to its endpoint label's list; `find_endp` takes the
//!   oldest (first in, first out).
//! - **Destination → bindings.** `save_dest` appends a binding (endpoint
//!   label plus opaque `dest_prop`) to its destination label's list, or, if
//!   one with the same endpoint and the same `dest_prop` exists, only renews
//!   its deadline in place. `find_dest` walks the bindings from the front
//!   and takes a session from the first bound endpoint that has one;
//!   bindings are never removed by lookups.
//! - Each session and binding expires `ttl` after it was saved (or
//!   refreshed); a label whose list empties disappears; sizes are
//!   `dest_count`, `endp_count` and `sess_count` ([`CacheSize`]).
//!
//! # Beyond Postfix
//!
//! [`MultiCache`] adds what a long-running daemon needs: expiry driven by
//! the caller in O(log k) per record, never a scan
//! ([`next_deadline`](MultiCache::next_deadline),
//! [`expire`](MultiCache::expire)); stable [`SessionHandle`]s to remove one
//! session whose peer hung up; [`put_back`](MultiCache::put_back) for a
//! session that could not be handed over; optional [`Limits`] with a
//! documented eviction policy and [`Eviction`] records; and [`Stats`].
//! [`SingleCache`] is Postfix's one-session variant. Both implement
//! [`ConnectionCache`], the trait shaped like Postfix's generic `SCACHE`
//! API, which the daemon client in `scache-proto` implements too.
//!
//! # Example
//!
//! ```
//! use std::rc::Rc;
//! use std::time::Duration;
//! use scache_core::{Clock, ConnectionCache, ManualClock, MultiCache};
//!
//! let clock = Rc::new(ManualClock::new());
//! let mut cache: MultiCache<u32, _> = MultiCache::new(Rc::clone(&clock));
//! let ttl = Duration::from_secs(2);
//!
//! // A delivery agent finished with a connection (descriptor 12) to
//! // 192.0.2.1 port 25, reached as the best MX host of example.com.
//! cache.save_dest(ttl, b"smtp\nexample.com\n25\n", b"host_name=mx1\n", b"smtp\n192.0.2.1\n25\n")?;
//! let handle = cache.save_endp(ttl, b"smtp\n192.0.2.1\n25\n", b"reuse_count=1\n", 12).unwrap();
//! assert_eq!(cache.size().sess_count, 1);
//! assert!(cache.contains_session(handle));
//!
//! // The next delivery to example.com reuses it.
//! let found = cache.find_dest(b"smtp\nexample.com\n25\n")?.expect("cached");
//! assert_eq!((found.fd, &found.dest_prop[..]), (12, &b"host_name=mx1\n"[..]));
//! assert!(!cache.contains_session(handle));
//!
//! // A session nobody asks for expires; the caller learns when to ask.
//! cache.save_endp(ttl, b"smtp\n192.0.2.1\n25\n", b"", 13).unwrap();
//! let due = cache.next_deadline().expect("something cached");
//! clock.advance(Duration::from_secs(2));
//! assert_eq!(due, clock.now());
//! cache.expire_due();
//! assert_eq!(cache.size().sess_count, 0);
//! # Ok::<(), scache_core::CacheError>(())
//! ```
#![forbid(unsafe_code)]

mod cache;
mod clock;
mod departure;
mod error;
mod handle;
mod limits;
mod list;
mod multi;
mod shared;
mod single;
mod stats;
mod timers;
mod view;

/// A small deterministic generator for this crate's unit tests (a linear
/// congruential step; the high bits of the state).
#[cfg(test)]
pub(crate) fn test_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    }
}

pub use cache::{CacheSize, ConnectionCache, FoundDest, FoundEndp};
pub use clock::{Clock, Instant, ManualClock, MonotonicClock};
pub use departure::{probe, probe_fd, Departure, DepartureCause, Liveness};
pub use error::{CacheError, RefusedSession};
pub use handle::SessionHandle;
pub use limits::Limits;
pub use multi::{MultiCache, SaveDestOutcome, Taken};
pub use shared::{BackgroundExpiry, SharedCache};
pub use single::SingleCache;
pub use stats::{Evicted, Eviction, EvictionCause, Stats};
pub use view::{BindingView, CacheView, DestinationView, EndpointView};

/// Internals for this workspace's own tests, benchmarks and fuzz targets
/// (feature `testkit`). Not public API: no compatibility promise.
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod testkit {
    pub use crate::multi::{binding_record_size, label_record_size, session_record_size};
}
