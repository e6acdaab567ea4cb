//! Shared helpers for the daemon's integration tests: start a daemon the way
//! master(8) does, talk the raw protocol, pass real descriptors.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use scache_proto::unix;
use scache_testkit::harness::{Harness, HarnessBuilder};
use scache_testkit::wire;

/// Our daemon binary, built by cargo for this test.
pub fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scache"))
}

/// Starts `program` as master would, with extra `-o name=value` overrides.
pub fn start(program: &PathBuf, overrides: &[&str]) -> Harness {
    let mut b = HarnessBuilder::new(program);
    for o in overrides {
        b = b.arg("-o").arg(o);
    }
    b.spawn().expect("spawn daemon")
}

/// A raw protocol peer with a read timeout.
pub struct Peer {
    pub sock: UnixStream,
}

impl Peer {
    /// Connects and checks the greeting.
    pub fn connect(h: &Harness) -> Peer {
        let sock = h.connect().expect("connect + greeting");
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Peer { sock }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("send");
    }

    /// Reads exactly one attribute list (up to and including its
    /// terminator); an error (EOF, timeout) shows what was read before it.
    pub fn recv_msg(&mut self) -> io::Result<Vec<u8>> {
        wire::read_message(&mut self.sock)
    }

    /// The daemon's `stats` counters (our extension), by name.
    pub fn stats(&mut self) -> BTreeMap<String, u64> {
        ask_stats(&mut self.sock).expect("stats")
    }

    /// Sends a request and returns the reply message.
    pub fn ask(&mut self, request: &[u8]) -> Vec<u8> {
        self.send(request);
        self.recv_msg().expect("reply")
    }

    /// Sends one descriptor (1 data byte + SCM_RIGHTS).
    pub fn send_fd(&mut self, fd: impl AsFd) {
        unix::send_fd(self.sock.as_fd(), fd.as_fd()).expect("send_fd");
    }

    /// Receives one descriptor.
    pub fn recv_fd(&mut self) -> OwnedFd {
        unix::recv_fd(self.sock.as_fd()).expect("recv_fd")
    }

    /// Whether the server closed the connection (EOF within the timeout).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.sock.read(&mut b), Ok(0))
    }

    /// save_endp with a descriptor; returns the final status reply.
    pub fn save_endp(&mut self, ttl: &str, label: &[u8], prop: &[u8], fd: impl AsFd) -> Vec<u8> {
        let dummy = self.ask(&save_endp_req(ttl.as_bytes(), label, prop));
        assert_eq!(
            dummy, b"dummy\0\0\0",
            "save_endp must ask for the descriptor"
        );
        self.send_fd(fd);
        self.recv_msg().expect("save_endp status")
    }

    /// find_endp; on a hit completes the descriptor exchange.
    pub fn find_endp(&mut self, label: &[u8]) -> (Vec<u8>, Option<OwnedFd>) {
        let reply = self.ask(&find_endp_req(label));
        self.finish_find(reply)
    }

    /// find_dest; on a hit completes the descriptor exchange.
    pub fn find_dest(&mut self, label: &[u8]) -> (Vec<u8>, Option<OwnedFd>) {
        let reply = self.ask(&find_dest_req(label));
        self.finish_find(reply)
    }

    fn finish_find(&mut self, reply: Vec<u8>) -> (Vec<u8>, Option<OwnedFd>) {
        if reply.starts_with(b"status\x000\0") {
            self.send(b"dummy\0\0\0");
            let fd = self.recv_fd();
            self.send(b"dummy\0\0\0");
            (reply, Some(fd))
        } else {
            (reply, None)
        }
    }

    /// save_dest; returns the status reply.
    pub fn save_dest(&mut self, ttl: &str, dest: &[u8], prop: &[u8], endp: &[u8]) -> Vec<u8> {
        self.ask(&save_dest_req(ttl.as_bytes(), dest, prop, endp))
    }
}

/// Encodes an attribute list from alternating names and values.
pub fn req(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out.push(0);
    out
}

/// (st_dev, st_ino) of an open descriptor.
pub fn identity(fd: impl AsFd) -> (u64, u64) {
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())).expect("fstat");
    (st.st_dev as u64, st.st_ino as u64)
}

/// A fresh socket pair: (the end to cache, the far end kept by the test).
pub fn session() -> (OwnedFd, OwnedFd) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (OwnedFd::from(a), OwnedFd::from(b))
}

/// Readable description of a reply for assertion messages.
pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\0', "\\0")
}

/// Whether the metadata of two paths name the same file (for sockets bound in tests).
pub fn same_inode(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.ino() == y.ino() && x.dev() == y.dev(),
        _ => false,
    }
}

/// Environment variable: `1` also runs the hostile and fault scenarios
/// against Postfix's daemon, recording (not asserting) what it does.
pub const ENV_MEASURE: &str = "SCACHE_MEASURE_POSTFIX";

/// Environment variable: a file that measurement reports are appended to.
pub const ENV_MEASURE_OUT: &str = "SCACHE_MEASURE_OUT";

/// Whose daemon a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ours,
    Postfix,
}

/// What a scenario saw. Against ours a failed check fails the test, with
/// the steps noted so far; against Postfix's daemon (measurement mode) it
/// is recorded and reported beside the notes.
pub struct Findings {
    pub target: Target,
    pub name: &'static str,
    pub notes: Vec<String>,
    pub diffs: Vec<String>,
}

impl Findings {
    pub fn new(target: Target, name: &'static str) -> Findings {
        Findings {
            target,
            name,
            notes: Vec::new(),
            diffs: Vec::new(),
        }
    }

    pub fn note(&mut self, s: impl Into<String>) {
        self.notes.push(s.into());
    }

    /// Ours: fail the test. Postfix: record the difference.
    #[track_caller]
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.check_with(ok, what, String::new);
    }

    /// [`Findings::check`], with `context()` (for example a log tail)
    /// added to a failure.
    #[track_caller]
    pub fn check_with(
        &mut self,
        ok: bool,
        what: impl FnOnce() -> String,
        context: impl FnOnce() -> String,
    ) {
        if ok {
            return;
        }
        let what = what();
        match self.target {
            Target::Ours => panic!(
                "{}: {what}\n--- steps ---\n{}{}",
                self.name,
                self.notes.join("\n"),
                context()
            ),
            Target::Postfix => self.diffs.push(what),
        }
    }

    /// Prints the notes and differences (always for Postfix's daemon; for
    /// ours in measurement mode), and appends them to `SCACHE_MEASURE_OUT`.
    pub fn report(&self) {
        if self.target == Target::Ours && !measuring() {
            return;
        }
        let who = match self.target {
            Target::Ours => "OURS",
            Target::Postfix => "POSTFIX-MEASURE",
        };
        let mut text = format!("{who} [{}]\n", self.name);
        for n in &self.notes {
            text.push_str(&format!("  {n}\n"));
        }
        for d in &self.diffs {
            text.push_str(&format!("  UNLIKE OURS: {d}\n"));
        }
        if self.diffs.is_empty() && self.target == Target::Postfix {
            text.push_str("  (same as ours)\n");
        }
        eprint!("{text}");
        if let Some(path) = std::env::var_os(ENV_MEASURE_OUT) {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }
}

pub fn find_endp_req(label: &[u8]) -> Vec<u8> {
    req(&[b"request", b"find_endp", b"label", label])
}

pub fn find_dest_req(label: &[u8]) -> Vec<u8> {
    req(&[b"request", b"find_dest", b"label", label])
}

pub fn save_dest_req(ttl: &[u8], dest: &[u8], prop: &[u8], endp: &[u8]) -> Vec<u8> {
    req(&[
        b"request",
        b"save_dest",
        b"ttl",
        ttl,
        b"label",
        dest,
        b"property",
        prop,
        b"label",
        endp,
    ])
}

pub fn find_reply(prop: &[u8]) -> Vec<u8> {
    req(&[b"status", b"0", b"property", prop])
}

pub fn measuring() -> bool {
    std::env::var_os(ENV_MEASURE).is_some_and(|v| v == "1")
}

pub fn save_endp_req(ttl: &[u8], label: &[u8], prop: &[u8]) -> Vec<u8> {
    req(&[
        b"request",
        b"save_endp",
        b"ttl",
        ttl,
        b"label",
        label,
        b"property",
        prop,
    ])
}

/// Whether the far end of a session sees EOF within `timeout`.
pub fn sees_eof(far: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let sock = UnixStream::from(far.try_clone().expect("dup far end"));
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut b = [0u8; 16];
    while Instant::now() < deadline {
        match (&sock).read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => {}
        }
    }
    false
}

/// Asks for the daemon's `stats` counters (our extension) on a greeted
/// connection; anything but a `status 0` reply is an error.
pub fn ask_stats(sock: &mut UnixStream) -> io::Result<BTreeMap<String, u64>> {
    sock.write_all(&req(&[b"request", b"stats"]))?;
    let reply = wire::read_message(sock)?;
    if !reply.starts_with(b"status\x000\0") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("stats: `{}`", show(&reply)),
        ));
    }
    Ok(wire::numbers(&reply))
}

/// The daemon's descriptor count once it has stopped changing (the same
/// in three looks 30 ms apart, 3 s at most): a baseline to come back to.
pub fn settled_fd_count(h: &Harness) -> usize {
    let mut last = h.fd_count().expect("the daemon's descriptor count");
    let mut stable = 0;
    let deadline = Instant::now() + Duration::from_secs(3);
    while stable < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(30));
        let now = h.fd_count().expect("the daemon's descriptor count");
        if now == last {
            stable += 1;
        } else {
            stable = 0;
            last = now;
        }
    }
    last
}

/// How often [`poll_until`] looks.
pub const POLL: Duration = Duration::from_millis(5);

/// Looks at `f` every few milliseconds until it gives `Some`, for at most
/// `limit`; `None` if it never did (for tests that record rather than
/// assert). The last look is made after the deadline, so a slow machine
/// that overslept still gets one.
pub fn poll_until<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        let last = Instant::now() >= deadline;
        if let Some(v) = f() {
            return Some(v);
        }
        if last {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits until `f` gives `Some` and returns it; panics, naming `what` and
/// the time waited, if `limit` passes first. The one way these tests wait
/// for something to happen, instead of a fixed sleep before an assert.
#[track_caller]
pub fn wait_until<T>(limit: Duration, what: &str, f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    match poll_until(limit, f) {
        Some(v) => v,
        None => panic!("timed out after {:?} waiting for {what}", t0.elapsed()),
    }
}

/// [`wait_until`] for a plain condition.
#[track_caller]
pub fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    wait_until(limit, what, || f().then_some(()))
}
