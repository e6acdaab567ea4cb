//! The blocking client's failure policy: connect on demand, retry once
//! after a pause with a new connection (as Postfix's `scache_clnt`), then
//! either pause and recover (the default) or disable caching for good with
//! a logged warning (`Recovery::Never`, as Postfix); timeouts; stale
//! connections; descriptors closed on the client side.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use scache_core::ConnectionCache;
use scache_proto::client::{Client, ClientConfig, Recovery};
use scache_proto::message::EncodeError;
use scache_proto::unix::recv_fd;
use scache_proto::ClientError;

/// Captures log records (one logger per test binary).
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{}: {}", record.level(), record.args());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static LOGS: Capture = Capture(Mutex::new(Vec::new()));

fn init_log() {
    let _ = log::set_logger(&LOGS);
    log::set_max_level(log::LevelFilter::Trace);
}

/// Log lines mentioning `path`, or the disabling warning, logged so far.
fn logs_about(path: &std::path::Path) -> Vec<String> {
    let p = path.display().to_string();
    LOGS.0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&p))
        .cloned()
        .collect()
}

fn config(path: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new(path);
    c.retry_pause = Duration::from_millis(20);
    c.timeout = Duration::from_secs(5);
    c
}

/// Postfix's policy: disable for good after the second failed try.
fn postfix_config(path: &std::path::Path) -> ClientConfig {
    let mut c = config(path);
    c.recovery = Recovery::Never;
    c
}

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe().unwrap()
}

/// Whether the read end of a pipe sees EOF (every write end closed).
fn write_end_closed(read_end: &OwnedFd) -> bool {
    let mut f = std::fs::File::from(read_end.try_clone().unwrap());
    let mut b = [0u8; 1];
    matches!(f.read(&mut b), Ok(0))
}

#[test]
fn no_server_retries_once_then_disables() {
    init_log();
    let (_dir, path) = dead_path();
    let mut client = Client::with_config(postfix_config(&path));
    let (r, w) = pipe();
    let t0 = Instant::now();
    let err = client
        .save_endp(Duration::from_secs(2), b"e", b"p", w)
        .unwrap_err();
    assert!(matches!(err, ClientError::Io(_)), "{err}");
    assert!(
        t0.elapsed() >= Duration::from_millis(20),
        "paused before retrying"
    );
    assert!(client.is_disabled());
    // The saved descriptor was closed even though nothing was sent.
    assert!(write_end_closed(&r));
    let lines = logs_about(&path);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l.starts_with("WARN: problem talking to service")));
    assert!(LOGS
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|l| l == "WARN: disabling connection caching"));
    // Disabled for good: nothing is tried any more.
    assert!(matches!(client.find_endp(b"e"), Err(ClientError::Disabled)));
    assert!(matches!(client.find_dest(b"d"), Err(ClientError::Disabled)));
    assert!(matches!(
        client.save_dest(Duration::from_secs(1), b"d", b"", b"e"),
        Err(ClientError::Disabled)
    ));
    assert_eq!(logs_about(&path).len(), 2);
    assert_eq!(client.size(), None);
}

#[test]
fn first_try_fails_second_succeeds() {
    init_log();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    let server = FakeServer::start(move |l| {
        // First connection: greeting, then close in the middle of the exchange.
        let mut s = accept_greeted(&l);
        seen.fetch_add(1, Ordering::SeqCst);
        expect_bytes(&mut s, b"request\0find_endp\0label\0e\0\0");
        drop(s);
        // Second connection: serve properly.
        let mut s = accept_greeted(&l);
        seen.fetch_add(1, Ordering::SeqCst);
        expect_bytes(&mut s, b"request\0find_endp\0label\0e\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
        expect_bytes(&mut s, b"request\0find_endp\0label\0e\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
    });
    let mut client = Client::with_config(config(server.path()));
    assert!(client.find_endp(b"e").unwrap().is_none());
    assert!(!client.is_disabled());
    assert!(client.find_endp(b"e").unwrap().is_none());
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(logs_about(server.path()).len(), 1);
    server.join();
}

#[test]
fn timeout_twice_pauses() {
    init_log();
    let server = FakeServer::start(|l| {
        // Greets, reads the request, never answers (twice).
        let mut held = Vec::new();
        for _ in 0..2 {
            let mut s = accept_greeted(&l);
            expect_bytes(&mut s, b"request\0find_dest\0label\0d\0\0");
            held.push(s);
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    let mut c = config(server.path());
    c.timeout = Duration::from_millis(150);
    let mut client = Client::with_config(c);
    let t0 = Instant::now();
    let err = client.find_dest(b"d").unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(err, ClientError::Timeout), "{err}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    // The default policy pauses instead of disabling.
    assert!(!client.is_disabled());
    assert!(client.paused_until().is_some());
    assert!(matches!(
        client.find_dest(b"d"),
        Err(ClientError::Unavailable { .. })
    ));
    server.join();
}

#[test]
fn no_greeting_times_out() {
    init_log();
    let server = FakeServer::start(|l| {
        let (_a, _) = l.accept().unwrap();
        let (_b, _) = l.accept().unwrap();
        std::thread::sleep(Duration::from_millis(400));
    });
    let mut c = postfix_config(server.path());
    c.timeout = Duration::from_millis(100);
    let mut client = Client::with_config(c);
    assert!(matches!(client.find_endp(b"e"), Err(ClientError::Timeout)));
    assert!(client.is_disabled());
    server.join();
}

#[test]
fn wrong_greeting_is_a_failure() {
    init_log();
    let server = FakeServer::start(|l| {
        for _ in 0..2 {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"protocol\0something_else\0\0").unwrap();
        }
    });
    let mut client = Client::with_config(postfix_config(server.path()));
    let err = client.find_endp(b"e").unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    assert!(client.is_disabled());
    server.join();
}

#[test]
fn stale_connection_reconnects_without_counting_a_failure() {
    init_log();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        expect_bytes(&mut s, b"request\0find_endp\0label\0a\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
        drop(s); // the server goes away between requests
        closed_tx.send(()).unwrap();
        let mut s = accept_greeted(&l);
        expect_bytes(&mut s, b"request\0find_endp\0label\0b\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
    });
    let mut client = Client::with_config(config(server.path()));
    assert!(client.find_endp(b"a").unwrap().is_none());
    closed_rx.recv().unwrap();
    assert!(client.find_endp(b"b").unwrap().is_none());
    assert!(logs_about(server.path()).is_empty(), "no failure logged");
    server.join();
}

#[test]
fn idle_limit_reconnects() {
    init_log();
    let server = FakeServer::start(|l| {
        let mut first = accept_greeted(&l);
        expect_bytes(&mut first, b"request\0find_endp\0label\0a\0\0");
        first.write_all(b"status\x002\0property\0\0\0").unwrap();
        // The client must come back on a new connection and close this one.
        let mut s = accept_greeted(&l);
        expect_bytes(&mut s, b"request\0find_endp\0label\0b\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
        expect_silence(&mut first, Duration::from_secs(2));
    });
    let mut c = config(server.path());
    c.idle_limit = Some(Duration::from_millis(50));
    let mut client = Client::with_config(c);
    assert!(client.find_endp(b"a").unwrap().is_none());
    std::thread::sleep(Duration::from_millis(100));
    assert!(client.find_endp(b"b").unwrap().is_none());
    drop(client);
    server.join();
}

#[test]
fn invalid_arguments_send_nothing_and_do_not_disable() {
    init_log();
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        // Only the valid request arrives.
        expect_bytes(&mut s, b"request\0find_endp\0label\0ok\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
    });
    let mut client = Client::with_config(config(server.path()));
    let (r, w) = pipe();
    let err = client.save_endp(Duration::ZERO, b"e", b"p", w).unwrap_err();
    assert!(
        matches!(err, ClientError::Invalid(EncodeError::BadTtl { .. })),
        "{err}"
    );
    assert!(
        write_end_closed(&r),
        "descriptor closed on invalid arguments too"
    );
    let err = client.find_endp(b"a\0b").unwrap_err();
    assert!(
        matches!(err, ClientError::Invalid(EncodeError::ContainsNul { .. })),
        "{err}"
    );
    let err = client
        .save_dest(Duration::from_secs(1), b"d", b"p\0", b"e")
        .unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)));
    assert!(!client.is_disabled());
    assert!(client.find_endp(b"ok").unwrap().is_none());
    server.join();
}

#[test]
fn saved_descriptor_is_closed_on_the_client_side() {
    init_log();
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        expect_bytes(
            &mut s,
            b"request\0save_endp\0ttl\x001\0label\0e\0property\0p\0\0",
        );
        s.write_all(DUMMY).unwrap();
        let fd = recv_fd(s.as_fd()).unwrap();
        s.write_all(b"status\x000\0\0").unwrap();
        // Hold the server's copy until the client reports back.
        expect_bytes(&mut s, b"request\0find_endp\0label\0done\0\0");
        drop(fd);
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
    });
    let mut client = Client::with_config(config(server.path()));
    let (r, w) = pipe();
    client
        .save_endp(Duration::from_millis(1), b"e", b"p", w)
        .unwrap();
    // The server still holds a copy: no EOF yet.
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&r),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut f = std::fs::File::from(r.try_clone().unwrap());
    let mut b = [0u8; 1];
    assert_eq!(
        f.read(&mut b).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock
    );
    assert!(client.find_endp(b"done").unwrap().is_none());
    // Now both copies are closed.
    assert_eq!(f.read(&mut b).unwrap(), 0);
    server.join();
}

#[test]
fn unexpected_descriptor_from_server_is_a_protocol_error() {
    init_log();
    let server = FakeServer::start(|l| {
        for _ in 0..2 {
            let mut s = accept_greeted(&l);
            expect_bytes(
                &mut s,
                b"request\0save_dest\0ttl\x001\0label\0d\0property\0\0label\0e\0\0",
            );
            // A descriptor along with the reply bytes.
            let f = std::fs::File::open("/").unwrap();
            scache_proto::unix::send_fd(s.as_fd(), f.as_fd()).unwrap();
            let _ = s.write_all(b"status\x000\0\0");
        }
    });
    let before = open_fds();
    let mut client = Client::with_config(config(server.path()));
    let err = client
        .save_dest(Duration::from_secs(1), b"d", b"", b"e")
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    server.join();
    drop(client);
    // The unexpected descriptors were closed (other tests may run
    // concurrently, so allow for their descriptors).
    let after = open_fds();
    assert!(after <= before + 8, "{before} -> {after}");
}

#[test]
fn backoff_fails_fast_then_recovers_at_the_same_path() {
    init_log();
    let (dir, path) = dead_path();
    let mut c = config(&path);
    c.recovery = Recovery::Backoff {
        first: Duration::from_millis(300),
        max: Duration::from_secs(60),
    };
    let mut client = Client::with_config(c);
    // No daemon: two tries, then a pause.
    assert!(matches!(client.find_endp(b"e"), Err(ClientError::Io(_))));
    let until = client.paused_until().expect("paused");
    assert!(!client.is_disabled());
    // During the pause every operation fails at once, without a try.
    let t0 = Instant::now();
    for _ in 0..100 {
        match client.find_endp(b"e") {
            Err(ClientError::Unavailable { retry_in }) => {
                assert!(retry_in <= Duration::from_millis(300))
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // A daemon comes back at the same path; after the pause the same
    // client object uses it.
    let server = FakeServer::start_at(&path, |l| {
        let mut s = accept_greeted(&l);
        expect_bytes(&mut s, b"request\0find_endp\0label\0e\0\0");
        s.write_all(b"status\x002\0property\0\0\0").unwrap();
    });
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    assert!(client.find_endp(b"e").unwrap().is_none());
    assert_eq!(client.paused_until(), None);
    server.join();
    drop(dir);
}

#[test]
fn backoff_doubles_while_the_daemon_stays_away() {
    init_log();
    let (_dir, path) = dead_path();
    let mut c = config(&path);
    c.recovery = Recovery::Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(250),
    };
    let mut client = Client::with_config(c);
    let mut pauses = Vec::new();
    for _ in 0..4 {
        assert!(matches!(client.find_endp(b"e"), Err(ClientError::Io(_))));
        let returned = Instant::now();
        let until = client.paused_until().expect("paused");
        // The pause started when the operation failed, just before it
        // returned: what is left is at most the pause, and not much less.
        pauses.push(until.saturating_duration_since(returned));
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    let ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
    let within = |v: u128, pause: u128| v <= pause && v + 40 >= pause;
    assert!(within(ms[0], 100), "{ms:?}");
    assert!(within(ms[1], 200), "doubled: {ms:?}");
    assert!(within(ms[2], 250) && within(ms[3], 250), "capped: {ms:?}");
}
