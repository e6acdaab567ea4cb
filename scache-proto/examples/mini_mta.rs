//! A tokio mini-MTA that reuses SMTP connections by destination.
//!
//! 16 delivery tasks send 1,000 messages to one destination, a local SMTP
//! sink that counts the connections it accepts and any protocol error it
//! sees. After each delivery a task caches its connection instead of
//! sending `QUIT`; before each delivery it asks the cache for one (and
//! checks it with `RSET`, as Postfix's SMTP client does), and connects only
//! when none is cached. Twice:
//!
//! - (a) through an in-process [`SharedCache`], which holds the tokio
//!   `TcpStream`s themselves (a TLS stream would work the same way);
//! - (b) through [`AsyncClient`] and a cache daemon (ours, or Postfix's),
//!   which holds the descriptors for every process on the machine.
//!
//! ```text
//! cargo run -p scache-proto --features tokio --example mini_mta
//! cargo build -p scache-bin && target/debug/scache --listen /tmp/scache.sock &
//! cargo run -p scache-proto --features tokio --example mini_mta -- --socket /tmp/scache.sock
//! ```
//!
//! It prints, for each run, the messages sent, the connections opened and
//! the share of deliveries that reused a connection.
#![allow(dead_code)] // also compiled into a test, which does not call main

use std::error::Error;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scache_core::{MonotonicClock, SharedCache};
use scache_proto::AsyncClient;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Delivery tasks running at once.
pub const TASKS: usize = 16;
/// Messages to deliver.
pub const MESSAGES: usize = 1_000;
/// How long a connection may stay cached.
const TTL: Duration = Duration::from_secs(2);
/// The destination all messages go to, and how it is reached.
const DEST: &[u8] = b"smtp\nexample.test\n*\n*\n";

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Messages the sink accepted.
    pub messages: usize,
    /// Connections the sink accepted.
    pub connections: usize,
    /// Commands the sink rejected as out of sequence or unknown.
    pub protocol_errors: usize,
    /// Deliveries that found a cached connection.
    pub reused: usize,
}

impl Report {
    /// Deliveries that reused a connection, in percent.
    pub fn reuse_percent(&self) -> f64 {
        100.0 * self.reused as f64 / self.messages.max(1) as f64
    }
}

/// Where a delivery task gets and leaves connections.
trait Pool: Send + Sync + 'static {
    /// A cached connection to `dest`, if any.
    fn take(&self, dest: &[u8]) -> impl std::future::Future<Output = Option<TcpStream>> + Send;
    /// Caches `conn`, an idle connection to `endp`, reached for `dest`.
    fn keep(
        &self,
        dest: &[u8],
        endp: &[u8],
        conn: TcpStream,
    ) -> impl std::future::Future<Output = ()> + Send;
}

impl Pool for SharedCache<TcpStream> {
    async fn take(&self, dest: &[u8]) -> Option<TcpStream> {
        self.find_dest(dest).ok().flatten().map(|found| found.fd)
    }

    async fn keep(&self, dest: &[u8], endp: &[u8], conn: TcpStream) {
        if self.save_endp(TTL, endp, b"", conn).is_ok() {
            let _ = self.save_dest(TTL, dest, b"", endp);
        }
    }
}

impl Pool for AsyncClient {
    async fn take(&self, dest: &[u8]) -> Option<TcpStream> {
        let found = self.find_dest(dest).await.ok()??;
        let std = std::net::TcpStream::from(found.fd);
        std.set_nonblocking(true).ok()?;
        TcpStream::from_std(std).ok()
    }

    async fn keep(&self, dest: &[u8], endp: &[u8], conn: TcpStream) {
        let Ok(std) = conn.into_std() else { return };
        let fd = OwnedFd::from(std);
        if self.save_endp(TTL, endp, b"", fd).await.is_ok() {
            let _ = self.save_dest(TTL, dest, b"", endp).await;
        }
    }
}

/// (a): the cache lives in this process.
pub async fn run_in_process() -> Result<Report, Box<dyn Error + Send + Sync>> {
    let cache = Arc::new(SharedCache::new(MonotonicClock::new()));
    // Drop what expires even when no task looks, and never hand out a
    // connection whose server hung up.
    let _expiry = cache.expire_in_background();
    cache.check_liveness();
    run(cache).await
}

/// (b): the cache is a daemon listening at `socket`.
pub async fn run_with_daemon(socket: &Path) -> Result<Report, Box<dyn Error + Send + Sync>> {
    run(Arc::new(AsyncClient::new(socket))).await
}

async fn run<P: Pool>(pool: Arc<P>) -> Result<Report, Box<dyn Error + Send + Sync>> {
    let sink = Sink::start().await?;
    let endp = format!("smtp\n{}\n*\n", sink.addr).into_bytes();
    let queue = Arc::new(Mutex::new((0..MESSAGES).collect::<Vec<_>>()));
    let reused = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (pool, queue, reused, endp) =
                (pool.clone(), queue.clone(), reused.clone(), endp.clone());
            let addr = sink.addr;
            tokio::spawn(async move {
                loop {
                    let Some(n) = queue.lock().unwrap().pop() else {
                        return Ok::<(), std::io::Error>(());
                    };
                    let (mut conn, was_cached) = match pool.take(DEST).await {
                        Some(conn) => (conn, true),
                        None => (connect(addr).await?, false),
                    };
                    let mut smtp = Smtp::new(&mut conn);
                    if was_cached && smtp.command("RSET").await? != 250 {
                        // Gone stale after all: start afresh.
                        drop(smtp);
                        conn = connect(addr).await?;
                        smtp = Smtp::new(&mut conn);
                    } else if was_cached {
                        reused.fetch_add(1, Ordering::Relaxed);
                    }
                    smtp.deliver(n).await?;
                    drop(smtp);
                    pool.keep(DEST, &endp, conn).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(Report {
        messages: sink.messages.load(Ordering::SeqCst),
        connections: sink.connections.load(Ordering::SeqCst),
        protocol_errors: sink.errors.load(Ordering::SeqCst),
        reused: reused.load(Ordering::SeqCst),
    })
}

/// A new connection, greeted and past EHLO.
async fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    let mut smtp = Smtp::new(&mut conn);
    expect(smtp.reply().await?, 220)?;
    expect(smtp.command("EHLO mta.example").await?, 250)?;
    Ok(conn)
}

fn expect(code: u16, want: u16) -> std::io::Result<()> {
    if code == want {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "SMTP {code}, expected {want}"
        )))
    }
}

/// The client side of one SMTP session (one command at a time).
struct Smtp<'a> {
    conn: BufReader<&'a mut TcpStream>,
    line: String,
}

impl<'a> Smtp<'a> {
    fn new(conn: &'a mut TcpStream) -> Smtp<'a> {
        Smtp {
            conn: BufReader::new(conn),
            line: String::new(),
        }
    }

    async fn reply(&mut self) -> std::io::Result<u16> {
        loop {
            self.line.clear();
            if self.conn.read_line(&mut self.line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            // A continuation line ("250-...") is followed by more.
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return self.line[..3.min(self.line.len())]
                    .parse()
                    .map_err(std::io::Error::other);
            }
        }
    }

    async fn command(&mut self, command: &str) -> std::io::Result<u16> {
        // One write per command: two small writes would wait for a delayed
        // ACK (Nagle) on every command.
        let line = format!("{command}\r\n");
        self.conn.get_mut().write_all(line.as_bytes()).await?;
        self.reply().await
    }

    async fn deliver(&mut self, n: usize) -> std::io::Result<()> {
        expect(self.command("MAIL FROM:<mta@example.org>").await?, 250)?;
        expect(self.command("RCPT TO:<user@example.test>").await?, 250)?;
        expect(self.command("DATA").await?, 354)?;
        let body = format!("Subject: message {n}\r\n\r\nHello.\r\n.");
        expect(self.command(&body).await?, 250)
    }
}

/// A local SMTP server that accepts everything in order and counts.
struct Sink {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    messages: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
}

impl Sink {
    async fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Sink {
            addr: listener.local_addr()?,
            connections: Arc::default(),
            messages: Arc::default(),
            errors: Arc::default(),
        };
        let counters = (
            sink.connections.clone(),
            sink.messages.clone(),
            sink.errors.clone(),
        );
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                counters.0.fetch_add(1, Ordering::SeqCst);
                let (messages, errors) = (counters.1.clone(), counters.2.clone());
                tokio::spawn(async move {
                    let _ = serve_smtp(conn, &messages, &errors).await;
                });
            }
        });
        Ok(sink)
    }
}

/// One SMTP session of the sink: a strict order of commands.
async fn serve_smtp(
    conn: TcpStream,
    messages: &AtomicUsize,
    errors: &AtomicUsize,
) -> std::io::Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum At {
        Greeted,
        Ready,
        Mail,
        Rcpt,
    }
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 sink.example ESMTP\r\n").await?;
    let mut at = At::Greeted;
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let (reply, next): (&[u8], At) = match (verb.as_str(), at) {
            ("EHLO" | "HELO", _) => (b"250 sink.example\r\n", At::Ready),
            ("MAIL", At::Ready) => (b"250 2.1.0 Ok\r\n", At::Mail),
            ("RCPT", At::Mail | At::Rcpt) => (b"250 2.1.5 Ok\r\n", At::Rcpt),
            ("DATA", At::Rcpt) => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                loop {
                    line.clear();
                    if read.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                }
                messages.fetch_add(1, Ordering::SeqCst);
                (b"250 2.0.0 Ok: queued\r\n", At::Ready)
            }
            ("RSET", At::Greeted) => (b"250 2.0.0 Ok\r\n", At::Greeted),
            ("RSET", _) => (b"250 2.0.0 Ok\r\n", At::Ready),
            ("NOOP", _) => (b"250 2.0.0 Ok\r\n", at),
            ("QUIT", _) => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => {
                errors.fetch_add(1, Ordering::SeqCst);
                (b"503 5.5.1 Error: bad sequence of commands\r\n", at)
            }
        };
        at = next;
        write.write_all(reply).await?;
    }
}

fn socket_from_args() -> Option<PathBuf> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--socket" {
            return args.next().map(PathBuf::from);
        }
    }
    None
}

fn print(what: &str, r: &Report) {
    println!(
        "{what}: {} messages sent over {} connections by {TASKS} tasks: {:.1}% of deliveries reused a connection ({} protocol errors at the sink)",
        r.messages,
        r.connections,
        r.reuse_percent(),
        r.protocol_errors
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    print("in-process SharedCache", &run_in_process().await?);
    match socket_from_args() {
        Some(socket) => print(
            &format!("AsyncClient, daemon at {}", socket.display()),
            &run_with_daemon(&socket).await?,
        ),
        None => println!("(give --socket PATH of a running scache daemon for the AsyncClient run)"),
    }
    Ok(())
}
