#!/usr/bin/env bash
# A newcomer's path (c): link the libraries from a brand-new crate, save a
# real TCP connection through a running daemon with the client, find it
# again, and use the in-process cache. Used by CI.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/scache-link-XXXXXX)"
daemon_pid=""
cleanup() { [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cargo build --quiet --release -p scache-bin --manifest-path "$repo/Cargo.toml"
"$repo/target/release/scache" --listen "$work/scache.sock" 2>"$work/daemon.log" &
daemon_pid=$!
for _ in $(seq 100); do [ -S "$work/scache.sock" ] && break; sleep 0.1; done

cargo new --quiet --bin "$work/mta"
cat >>"$work/mta/Cargo.toml" <<TOML
scache-core = { path = "$repo/scache-core" }
scache-proto = { path = "$repo/scache-proto" }
TOML
cat >"$work/mta/src/main.rs" <<'RS'
use scache_core::{ConnectionCache, ManualClock, MultiCache};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket = std::env::args().nth(1).expect("daemon socket");
    // A tiny "SMTP server" that answers each line with its sequence number.
    let server = TcpListener::bind("127.0.0.1:0")?;
    let addr = server.local_addr()?;
    std::thread::spawn(move || {
        for conn in server.incoming().flatten() {
            let mut out = conn.try_clone().unwrap();
            out.write_all(b"220 ready\r\n").unwrap();
            for (n, _) in BufReader::new(conn).lines().enumerate() {
                out.write_all(format!("250 line {n}\r\n").as_bytes()).unwrap();
            }
        }
    });
    let conn = TcpStream::connect(addr)?;
    let local = conn.local_addr()?;
    // Read the greeting first: a connection saved with unread data is
    // treated as dead by the daemon (an idle SMTP server only talks to say
    // goodbye) and evicted at once.
    let mut greeting = String::new();
    BufReader::new(conn.try_clone()?).read_line(&mut greeting)?;
    assert_eq!(greeting, "220 ready\r\n");
    let mut cache = scache_proto::Client::new(socket);
    cache.save_endp(Duration::from_secs(2), b"smtp\n127.0.0.1\n", b"reuse_count=0\n", OwnedFd::from(conn))?;
    let found = cache.find_endp(b"smtp\n127.0.0.1\n")?.expect("cached");
    let conn = TcpStream::from(found.fd);
    assert_eq!(conn.local_addr()?, local, "the very same connection");
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    (&conn).write_all(b"RSET\r\n")?;
    reader.read_line(&mut line)?;
    assert_eq!(line, "250 line 0\r\n");
    // The in-process cache behind the same trait.
    let clock = ManualClock::new();
    let mut local_cache: MultiCache<u32, &ManualClock> = MultiCache::new(&clock);
    local_cache.save_endp(Duration::from_secs(2), b"e", b"p", 7)?;
    assert_eq!(local_cache.find_endp(b"e")?.map(|f| f.fd), Some(7));
    println!("ok: same connection {local} reused through the daemon; in-process cache works");
    Ok(())
}
RS
if ! cargo run --quiet --manifest-path "$work/mta/Cargo.toml" -- "$work/scache.sock"; then
    echo "link-check: failed; daemon log:" >&2
    cat "$work/daemon.log" >&2
    exit 1
fi
