//! The wire protocol of Postfix's connection cache daemon, `scache(8)`.
//!
//! Byte-for-byte compatible with Postfix 3.x (verified against Debian's
//! `/usr/lib/postfix/sbin/scache`), and hardened where Postfix's daemon is
//! not: pipelined requests, requests split over many reads, length limits,
//! and resynchronisation after a malformed request.
//!
//! | module | what |
//! |---|---|
//! | [`attr`] | the "attr0" framing: incremental [`attr::Decoder`] with limits, encoder into a caller-owned buffer |
//! | [`message`] | typed requests (parsed strictly, as Postfix does) and the exact reply bytes |
//! | [`server`] | the server side of one connection as a pure state machine |
//! | [`client`] | the client side as a pure state machine; the blocking [`Client`] (implements [`scache_core::ConnectionCache`]) and, with the `tokio` feature, `AsyncClient` |
//! | [`unix`] | the only module with socket system calls: descriptor passing with `SCM_RIGHTS`, non-blocking reads that never lose a descriptor |
//!
//! # Features
//!
//! - `tokio` (off by default): `AsyncClient`, an asynchronous client that
//!   many tokio tasks share (`Clone + Send + Sync`). The daemon and the
//!   blocking client do not need it.
//!
//! # Linking from a Rust MTA
//!
//! [`Client`] talks to a running daemon (Postfix's, or ours started with
//! `scache --listen PATH`) and implements [`scache_core::ConnectionCache`],
//! so code written against that trait can use the daemon or an in-process
//! cache alike. Hand it a finished session instead of sending `QUIT`; take
//! it back for the next delivery to the same destination:
//!
//! ```no_run
//! use std::net::TcpStream;
//! use std::os::fd::OwnedFd;
//! use std::time::Duration;
//! use scache_core::ConnectionCache;
//! use scache_proto::Client;
//!
//! let endpoint = b"smtp\n192.0.2.1\n25\n";
//! let mut cache = Client::new("/run/scache/scache.sock");
//! let session = TcpStream::connect("192.0.2.1:25")?;
//! // ... deliver a message over `session` ...
//! cache.save_endp(Duration::from_secs(2), endpoint, b"", OwnedFd::from(session))?;
//! cache.save_dest(Duration::from_secs(2), b"smtp\nexample.com\n25\n", b"", endpoint)?;
//!
//! // Next delivery to example.com: reuse the session if one is cached.
//! if let Some(found) = cache.find_dest(b"smtp\nexample.com\n25\n")? {
//!     let session = TcpStream::from(found.fd); // the same TCP connection
//!     # drop(session);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/reuse_smtp.rs` runs this against a local test SMTP server and
//! shows that the connection that comes back is the one that was saved.
//!
//! # Decoding
//!
//! A request from bytes to a typed value:
//!
//! ```
//! use scache_proto::attr::{Decoded, Decoder, Limits};
//! use scache_proto::message::{self, parse_request, Request, Status};
//!
//! let mut decoder = Decoder::new(Limits::default());
//! // Two pipelined requests in one read.
//! let input = b"request\0find_endp\0label\0a\0\0request\0find_dest\0label\0b\0\0";
//! let mut pos = 0;
//! let mut replies = Vec::new();
//! while pos < input.len() {
//!     let Decoded::Complete { used, message } = decoder.decode(&input[pos..]) else {
//!         break;
//!     };
//!     pos += used;
//!     match parse_request(&message).unwrap().request {
//!         Request::FindEndp { endp } => {
//!             assert_eq!(endp, b"a");
//!             message::encode_find_endp_reply(&mut replies, Status::Fail, b"");
//!         }
//!         Request::FindDest { dest } => {
//!             assert_eq!(dest, b"b");
//!             message::encode_find_dest_reply(&mut replies, Status::Fail, b"", b"");
//!         }
//!         _ => unreachable!(),
//!     }
//! }
//! assert_eq!(
//!     replies,
//!     b"status\x002\0property\0\0\0status\x002\0property\0\0property\0\0\0"
//! );
//! ```

pub mod attr;
pub mod client;
pub mod message;
pub mod server;
pub mod unix;

#[cfg(feature = "tokio")]
pub use client::AsyncClient;
pub use client::{Client, ClientConfig, ClientError, Recovery};

/// The server's fast path for requests in the shape Postfix's clients send,
/// for this workspace's benchmark floor, which must parse no slower than
/// the daemon (feature `testkit`). Not public API: no compatibility
/// promise.
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod testkit {
    pub use crate::message::canonical::{parse_canonical, Canonical};
}
