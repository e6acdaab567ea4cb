//! Reuse an SMTP connection through the scache daemon, as a Rust MTA would.
//!
//! The example starts a tiny SMTP server on 127.0.0.1 (a thread that greets
//! with `220`, numbers its sessions, and answers every command with the
//! session number and how many commands it has seen), opens a TCP
//! connection to it, and then:
//!
//! 1. hands the open connection to the daemon (`save_endp` under the
//!    endpoint label, `save_dest` to bind a destination to it) and closes
//!    its own copy, as a delivery agent does when it is done with a
//!    delivery;
//! 2. asks the daemon for a connection to the destination (`find_dest`) and
//!    gets a descriptor back;
//! 3. shows it is the very same TCP connection: the same local and peer
//!    addresses, and the server answers `RSET` and `NOOP` on the same
//!    session, with its command count going on from where it was.
//!
//! Run a standalone daemon, then the example:
//!
//! ```text
//! cargo build -p scache-bin
//! target/debug/scache --listen /tmp/scache.sock &
//! cargo run -p scache-proto --example reuse_smtp -- --socket /tmp/scache.sock
//! kill %1
//! ```
//!
//! Under Postfix the socket is `$queue_directory/private/scache` (by default
//! `/var/spool/postfix/private/scache`; run as root or `postfix`, who are
//! allowed by default).
//!
//! The daemon holds sessions for at most `connection_cache_ttl_limit`
//! (2 seconds by default), and closes a cached connection at once if its
//! server hangs up or says anything (an idle SMTP server only speaks to say
//! goodbye), so a session must be reused quickly and the server below stays
//! silent between commands.

use std::error::Error;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use scache_core::ConnectionCache;
use scache_proto::Client;

/// How long the daemon may keep the session (it caps this at its own
/// `connection_cache_ttl_limit`).
const TTL: Duration = Duration::from_secs(2);

fn main() -> Result<(), Box<dyn Error>> {
    let socket = socket_from_args();

    let server = start_tiny_smtp_server()?;
    println!("tiny SMTP server listening on {server}");

    // A delivery agent connects and talks to the server.
    let mut smtp = TcpStream::connect(server)?;
    smtp.set_read_timeout(Some(Duration::from_secs(5)))?;
    println!("S: {}", read_reply(&mut smtp)?);
    command(&mut smtp, "HELO client.example")?;
    command(&mut smtp, "NOOP")?;
    let (local, peer) = (smtp.local_addr()?, smtp.peer_addr()?);
    println!("connection {local} -> {peer}");

    // The delivery is done: cache the session instead of sending QUIT.
    // Labels and properties are opaque to the daemon; these follow the
    // shape of Postfix's (newline-terminated fields).
    let endpoint = format!("smtp\n{}\n{}\n", peer.ip(), peer.port());
    let destination = b"smtp\nexample.test\n25\n";
    let mut cache = Client::new(&socket);
    cache.save_endp(
        TTL,
        endpoint.as_bytes(),
        b"reuse_count=1\n",
        OwnedFd::from(smtp),
    )?;
    cache.save_dest(
        TTL,
        destination,
        b"destination=example.test\n",
        endpoint.as_bytes(),
    )?;
    println!(
        "saved the session in the daemon at {} (our copy is closed)",
        socket.display()
    );

    // The next delivery to the same destination asks the cache first.
    let found = cache
        .find_dest(destination)?
        .ok_or("the daemon had no session for the destination")?;
    println!(
        "find_dest: dest_prop {:?}, endp_prop {:?}",
        String::from_utf8_lossy(&found.dest_prop),
        String::from_utf8_lossy(&found.endp_prop)
    );
    let mut reused = TcpStream::from(found.fd);
    reused.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (local2, peer2) = (reused.local_addr()?, reused.peer_addr()?);
    println!("connection {local2} -> {peer2}");
    if (local2, peer2) != (local, peer) {
        return Err("the daemon returned a different connection".into());
    }

    // Postfix probes a reused session with RSET before using it.
    command(&mut reused, "RSET")?;
    let reply = command(&mut reused, "NOOP")?;
    if !reply.contains("session 1, command 4") {
        return Err(format!("not the same SMTP session: {reply}").into());
    }
    command(&mut reused, "QUIT")?;
    println!("same connection, same SMTP session: reused");
    Ok(())
}

/// `--socket PATH` (or `--socket=PATH`) from the command line; prints the
/// usage and exits with status 2 otherwise.
fn socket_from_args() -> PathBuf {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(path), None) if flag == "--socket" => PathBuf::from(path),
        (Some(flag), None, None) if flag.to_string_lossy().starts_with("--socket=") => {
            PathBuf::from(&flag.to_string_lossy()["--socket=".len()..])
        }
        _ => {
            eprintln!("usage: reuse_smtp --socket PATH   (the socket of a running scache daemon)");
            std::process::exit(2);
        }
    }
}

/// Sends one command line and returns the one-line reply.
fn command(smtp: &mut TcpStream, line: &str) -> io::Result<String> {
    println!("C: {line}");
    smtp.write_all(format!("{line}\r\n").as_bytes())?;
    let reply = read_reply(smtp)?;
    println!("S: {reply}");
    Ok(reply)
}

/// Reads one CRLF-terminated line, byte by byte: nothing is read ahead, so
/// the stream can be handed to the cache between replies.
fn read_reply(smtp: &mut TcpStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if smtp.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed the connection",
            ));
        }
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// A tiny SMTP server on 127.0.0.1 (any port), one thread per session.
fn start_tiny_smtp_server() -> io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    static SESSIONS: AtomicUsize = AtomicUsize::new(0);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let session = SESSIONS.fetch_add(1, Ordering::Relaxed) + 1;
            std::thread::spawn(move || serve_session(stream, session));
        }
    });
    Ok(addr)
}

fn serve_session(mut stream: TcpStream, session: usize) -> io::Result<()> {
    stream.write_all(format!("220 tiny.example.test ESMTP (session {session})\r\n").as_bytes())?;
    let mut commands = 0;
    loop {
        let line = match read_reply(&mut stream) {
            Ok(line) => line,
            Err(_) => return Ok(()), // the client went away
        };
        commands += 1;
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let reply = match verb.as_str() {
            "QUIT" => {
                stream.write_all(b"221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            "HELO" | "EHLO" | "NOOP" | "RSET" => {
                format!("250 2.0.0 Ok: session {session}, command {commands}")
            }
            _ => format!("502 5.5.2 Not implemented: session {session}, command {commands}"),
        };
        stream.write_all(format!("{reply}\r\n").as_bytes())?;
    }
}
