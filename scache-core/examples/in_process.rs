//! The connection cache inside your own process: no daemon, no sockets.
//!
//! A [`MultiCache`] with a [`ManualClock`], walking through the four
//! operations of Postfix's cache (`save_dest`, `save_endp`, `find_dest`,
//! `find_endp`) and expiry. The "connections" are a small type that says
//! when it is closed, so you can see exactly which session the cache closes
//! and when: dropping a descriptor is the only way the cache closes one.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p scache-core --example in_process
//! ```
//!
//! In a real program the descriptor type is `std::os::fd::OwnedFd` (or a
//! `TcpStream`), the clock reads a monotonic time source, and you call
//! [`MultiCache::expire_due`] when [`MultiCache::next_deadline`] is reached
//! (from your event loop's timer).

use std::rc::Rc;
use std::time::Duration;

use scache_core::{CacheError, Clock, ConnectionCache, Limits, ManualClock, MultiCache};

/// A stand-in for an open SMTP connection.
#[derive(Debug)]
struct Connection {
    name: &'static str,
}

impl Drop for Connection {
    fn drop(&mut self) {
        println!("        ({} closed)", self.name);
    }
}

fn conn(name: &'static str) -> Connection {
    Connection { name }
}

// Labels as Postfix's smtp(8) builds them: fields ended by newlines.
const DEST: &[u8] = b"smtp\nexample.com\n25\n";
const MX1: &[u8] = b"smtp\n192.0.2.1\n25\n";
const MX2: &[u8] = b"smtp\n192.0.2.2\n25\n";

/// Code written against the trait works with any cache: this one, the
/// single-session `SingleCache`, or `scache_proto::Client` (the daemon).
/// Returns whether a cached connection was reused.
fn deliver<C>(cache: &mut C, dest: &[u8]) -> Result<bool, C::Error>
where
    C: ConnectionCache<Fd = Connection>,
{
    match cache.find_dest(dest)? {
        Some(found) => {
            println!(
                "      reusing {} (dest_prop {:?}, endp_prop {:?})",
                found.fd.name,
                String::from_utf8_lossy(&found.dest_prop),
                String::from_utf8_lossy(&found.endp_prop)
            );
            // ... deliver over found.fd, then QUIT (or save it again) ...
            Ok(true)
        }
        None => {
            println!("      nothing cached: open a new connection");
            Ok(false)
        }
    }
}

fn main() -> Result<(), CacheError> {
    let clock = Rc::new(ManualClock::new());
    // Optional bounds (none by default, as in Postfix).
    let limits = Limits {
        max_sessions_per_endpoint: Some(4),
        max_label_len: Some(4096),
        ..Limits::NONE
    };
    let mut cache: MultiCache<Connection, _> = MultiCache::with_limits(Rc::clone(&clock), limits);
    let ttl = Duration::from_secs(2);

    println!("t=0s  save_dest: example.com is served by MX1 and MX2");
    cache.save_dest(ttl, DEST, b"mx=1", MX1)?;
    cache.save_dest(ttl, DEST, b"mx=2", MX2)?;

    println!("t=0s  save_endp: two finished sessions to MX1 (A, then B), one to MX2 (C)");
    // The inherent method returns a handle (to evict that session later if
    // its peer hangs up); a refused save hands the connection back.
    let a = cache
        .save_endp(ttl, MX1, b"reuse_count=1", conn("A"))
        .map_err(|r| r.error)?;
    cache
        .save_endp(ttl, MX1, b"reuse_count=3", conn("B"))
        .map_err(|r| r.error)?;
    cache
        .save_endp(ttl, MX2, b"reuse_count=1", conn("C"))
        .map_err(|r| r.error)?;
    println!("      size: {:?}", cache.size());

    println!("t=0s  find_dest example.com (bindings in order, sessions first in, first out):");
    assert!(deliver(&mut cache, DEST)?);
    assert!(!cache.contains_session(a), "A was handed out");
    while deliver(&mut cache, DEST)? {}
    // Each connection handed out was closed by `deliver` when it was done.

    println!(
        "t=0s  find_endp MX1: {:?}",
        cache.find_endp(MX1)?.map(|f| f.fd.name)
    );

    println!("t=0s  save_endp D to MX1");
    cache
        .save_endp(ttl, MX1, b"", conn("D"))
        .map_err(|r| r.error)?;
    clock.advance(Duration::from_secs(1));
    println!("t=1s  save_dest again with the same endpoint and property: only renews it");
    cache.save_dest(ttl, DEST, b"mx=1", MX1)?;

    // The event loop sleeps until the next deadline, then expires.
    let due = cache.next_deadline().expect("something is cached");
    clock.set(due);
    println!(
        "t={}s  next deadline reached: expire",
        due.as_millis() / 1000
    );
    let expired = cache.expire_due();
    println!(
        "      {expired} session(s)/binding(s) expired; size: {:?}",
        cache.size()
    );
    println!(
        "      bindings left: {} (the renewed one lives until t=3s)",
        cache.binding_count()
    );

    clock.advance(Duration::from_secs(1));
    cache.expire_due();
    println!(
        "t={}s  everything expired; size: {:?}",
        clock.now().as_millis() / 1000,
        cache.size()
    );

    let stats = cache.stats();
    println!(
        "stats: dest hits={} misses={}, endp hits={} misses={}, saves endp={} dest={} (refreshes {}), expired sessions={} bindings={}",
        stats.dest_hits,
        stats.dest_misses,
        stats.endp_hits,
        stats.endp_misses,
        stats.endp_saves,
        stats.dest_saves,
        stats.dest_refreshes,
        stats.expired_sessions,
        stats.expired_bindings
    );
    Ok(())
}
