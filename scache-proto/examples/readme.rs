//! The tokio quick start shown in README.md, verbatim below this comment
//! (scache-testkit's tests/readme.rs checks that they agree). It expects an
//! SMTP server at 192.0.2.1:25, so it only builds here.

use scache_core::{MonotonicClock, SharedCache};
use std::{sync::Arc, time::Duration};
use tokio::net::TcpStream;
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Arc::new(SharedCache::new(MonotonicClock::new()));
    let _expiry = cache.expire_in_background(); // expired sessions go even when idle
    cache.check_liveness(); // a server that hung up or sent 421 is never handed out
    let key = b"smtp\n192.0.2.1\n25\ntls=verify\n"; // all that must match for reuse
    let conn = match cache.find_endp(key)? {
        Some(found) => found.fd, // reused: RSET, then MAIL FROM ...
        None => TcpStream::connect("192.0.2.1:25").await?, // new: 220, EHLO, ...
    };
    Ok(cache.save_endp(Duration::from_secs(2), key, b"", conn)?) // after delivery, instead of QUIT
}
