//! The load generator's engine: K client threads, each with its own
//! connection, running one workload over the real protocol with real
//! descriptor passing, checking every reply byte, every property and every
//! received descriptor.
//!
//! | workload | one cycle |
//! |---|---|
//! | `endp` | `save_endp` + `find_endp` of the same label (hit) |
//! | `dest` | `save_dest` + `save_endp` + `find_dest` (hit) |
//! | `miss` | `find_endp` of a label never saved |
//! | `fill` | first N sessions are saved over M endpoints and stay cached, then cycles on those endpoints: `save_endp` of the session the client took in its previous cycle (as a delivery agent saves back the connection it used; the first cycle saves the client's own socket), then `find_endp`, which takes the oldest session of the endpoint; the cache keeps N distinct connections |
//!
//! Checks: every reply must be exactly the bytes the protocol prescribes
//! for the expected outcome (a `find` must hit, with the expected
//! properties); a received descriptor must be the same open file (same
//! `st_dev`/`st_ino`) as the session the cache must return: for `endp` and
//! `dest` the socket the client just saved, for `fill` the oldest session
//! saved under that endpoint (FIFO). Each client thread uses its own labels,
//! so these expectations are exact. Any deviation is an error with a
//! message saying what was expected and what came. Every `fill` session is
//! one end of its own socket pair whose other end stays open here as long
//! as the session lives (a daemon may rightly evict sessions whose peer
//! hung up); the daemon and this process therefore each need N descriptors.
//!
//! Clients are driven by one thread with epoll by default (each client a
//! state machine over its non-blocking socket), which costs this process
//! about a third of the CPU of one blocking thread per client (15 against
//! 48 microseconds per cycle at K=8) and leaves more of a small machine to
//! the daemon; `Driver::Blocking` is the simple alternative. The daemon's
//! CPU time per cycle comes from `/proc/PID/stat` (all threads) read right
//! before and after the measured interval, its memory from `VmRSS`.
//!
//! On a 2-CPU machine the scheduler sometimes puts the daemon and the load
//! generator on the same CPU (Unix-socket wake-ups are "sync" wake-ups,
//! which favour that), which serialises them and roughly halves cycles/s;
//! `Config::pin` prevents it, at the price of stalls when another busy
//! process shares the daemon's CPU. The daemon's CPU time per cycle
//! changes much less between these modes than cycles/s does.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use nix::libc;
use scache_proto::attr::Printable;
use scache_proto::message::{self, encode_request, Request, Status};
use scache_proto::unix::{recv_fd, send_fd, RecvFdError};
use scache_testkit::harness::{Harness, HarnessBuilder, GREETING, POSTFIX_SCACHE};

use crate::shapes;
use crate::sys;

/// What each client does per cycle (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `save_endp` + `find_endp`.
    Endp,
    /// `save_dest` + `save_endp` + `find_dest`.
    Dest,
    /// `find_endp` of an absent label.
    Miss,
    /// `endp` cycles with N sessions kept cached.
    Fill,
}

impl Workload {
    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Endp => "endp",
            Workload::Dest => "dest",
            Workload::Miss => "miss",
            Workload::Fill => "fill",
        }
    }

    /// Parses a workload name.
    pub fn parse(s: &str) -> Option<Workload> {
        match s {
            "endp" => Some(Workload::Endp),
            "dest" => Some(Workload::Dest),
            "miss" => Some(Workload::Miss),
            "fill" => Some(Workload::Fill),
            _ => None,
        }
    }
}

/// Which daemon to measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonSpec {
    /// The floor server (`scache-floor`) at this path.
    Floor(PathBuf),
    /// Postfix's daemon ([`POSTFIX_SCACHE`]).
    Postfix,
    /// Our daemon at this path.
    Ours(PathBuf),
    /// Any compatible daemon program at this path.
    Path(PathBuf),
    /// A daemon already running on this socket (with its pid, if known, for
    /// CPU and memory readings).
    Connect {
        /// The daemon's listening socket.
        socket: PathBuf,
        /// Its process id.
        pid: Option<i32>,
    },
}

impl DaemonSpec {
    /// Short name for reports: `floor`, `postfix`, `ours`, the program's
    /// file name, or `connect`.
    pub fn name(&self) -> String {
        match self {
            DaemonSpec::Floor(_) => "floor".into(),
            DaemonSpec::Postfix => "postfix".into(),
            DaemonSpec::Ours(_) => "ours".into(),
            DaemonSpec::Path(p) => p
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
            DaemonSpec::Connect { .. } => "connect".into(),
        }
    }

    fn program(&self) -> Option<PathBuf> {
        match self {
            DaemonSpec::Floor(p) | DaemonSpec::Ours(p) | DaemonSpec::Path(p) => Some(p.clone()),
            DaemonSpec::Postfix => Some(PathBuf::from(POSTFIX_SCACHE)),
            DaemonSpec::Connect { .. } => None,
        }
    }
}

/// How long a run lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Length {
    /// Measure for this long (after the warm-up).
    Duration(Duration),
    /// Run exactly this many cycles in total (no warm-up).
    Cycles(u64),
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workload.
    pub workload: Workload,
    /// Concurrent clients (threads, one connection each).
    pub clients: usize,
    /// Run length.
    pub length: Length,
    /// Cycles run before measuring (duration mode only).
    pub warmup: Duration,
    /// Sessions kept cached (`fill`).
    pub fill: usize,
    /// Endpoints the `fill` sessions are spread over.
    pub endpoints: usize,
    /// Labels each client cycles through (`endp`, `dest`, `miss`).
    pub labels: usize,
    /// TTL sent with every save (the daemon must allow it: the harness
    /// passes `-o connection_cache_ttl_limit=...`).
    pub ttl: u32,
    /// How long to wait for any reply before failing.
    pub timeout: Duration,
    /// Extra daemon argv (after master's), e.g. `-o name=value`.
    pub daemon_args: Vec<String>,
    /// How the client connections are driven.
    pub driver: Driver,
    /// Attach `strace -c` to the daemon for the measured cycles and write
    /// its summary here (cycles mode only).
    pub strace: Option<PathBuf>,
    /// The TCP port written in every label: 25 with a daemon started for
    /// the run; with `--connect`, a port unique to the run, so that
    /// sessions an earlier run left in the daemon do not get in the way.
    pub port: u16,
    /// Pin the daemon to the last CPU and this process to the others, so
    /// that the scheduler cannot sometimes put both on one CPU (which
    /// serialises them and halves throughput on a 2-CPU machine).
    pub pin: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workload: Workload::Endp,
            clients: 8,
            length: Length::Duration(Duration::from_secs(5)),
            warmup: Duration::from_millis(500),
            fill: 0,
            endpoints: 0,
            labels: 4,
            ttl: 3600,
            timeout: Duration::from_secs(30),
            daemon_args: Vec::new(),
            driver: Driver::Epoll(1),
            strace: None,
            port: 25,
            pin: false,
        }
    }
}

/// The daemon arguments every harness-started Postfix-compatible daemon
/// gets (before [`Config::daemon_args`]): TTLs up to an hour, and no idle
/// exit during a run.
pub const BASE_DAEMON_ARGS: [&str; 4] = [
    "-o",
    "connection_cache_ttl_limit=3600s",
    "-o",
    "max_idle=3600s",
];

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    /// Daemon name (see [`DaemonSpec::name`]).
    pub daemon: String,
    /// Its pid, when known.
    pub pid: Option<i32>,
    /// Cycles completed while measuring.
    pub cycles: u64,
    /// Measured wall time in seconds.
    pub seconds: f64,
    /// Cycles per second.
    pub cycles_per_s: f64,
    /// Median cycle latency in microseconds.
    pub p50_us: f64,
    /// 99th percentile cycle latency in microseconds.
    pub p99_us: f64,
    /// Daemon CPU time (user + system) per cycle in microseconds.
    pub daemon_cpu_us: Option<f64>,
    /// This load generator's CPU time per cycle in microseconds.
    pub loadgen_cpu_us: f64,
    /// Daemon RSS (KiB) after the clients connected, before any save.
    pub rss_kib_start: Option<u64>,
    /// Daemon RSS (KiB) after the `fill` sessions were saved.
    pub rss_kib_filled: Option<u64>,
    /// Daemon RSS (KiB) at the end of the run.
    pub rss_kib_end: Option<u64>,
    /// `(rss_filled - rss_start) / fill`, in bytes.
    pub rss_bytes_per_session: Option<f64>,
    /// Time taken to save the `fill` sessions, in seconds.
    pub fill_seconds: Option<f64>,
    /// Daemon's open descriptors after the fill.
    pub daemon_fds_filled: Option<usize>,
    /// With [`Config::strace`]: `(syscall, calls per cycle, errors per
    /// cycle)`, most frequent first.
    pub syscalls: Vec<(String, f64, f64)>,
}

/// A daemon under test, started by the harness or already running.
enum Running {
    Harness(Box<Harness>),
    External { socket: PathBuf, pid: Option<i32> },
}

impl Drop for Running {
    /// Lets a daemon the harness started end normally (master went away:
    /// status EOF), as it does under master, before the harness kills
    /// what is left: a daemon run under a profiler writes its profile then.
    fn drop(&mut self) {
        if let Running::Harness(h) = self {
            h.close_status();
            let _ = h.wait_exit(Duration::from_secs(120));
        }
    }
}

impl Running {
    fn start(spec: &DaemonSpec, cfg: &Config) -> Result<Running, String> {
        if let DaemonSpec::Connect { socket, pid } = spec {
            return Ok(Running::External {
                socket: socket.clone(),
                pid: *pid,
            });
        }
        let program = spec.program().expect("not a connect spec");
        if !program.is_file() {
            return Err(format!(
                "{}: daemon program {} not found",
                spec.name(),
                program.display()
            ));
        }
        let mut b = HarnessBuilder::new(&program);
        if !matches!(spec, DaemonSpec::Floor(_)) {
            b = b.args(BASE_DAEMON_ARGS);
        }
        b = b.args(&cfg.daemon_args);
        let h = b
            .spawn()
            .map_err(|e| format!("{}: cannot start {}: {e}", spec.name(), program.display()))?;
        h.wait_ready(Duration::from_secs(30)).map_err(|e| {
            format!(
                "{}: {} did not start: {e}; log: {:?}",
                spec.name(),
                program.display(),
                h.log_messages()
            )
        })?;
        Ok(Running::Harness(Box::new(h)))
    }

    fn pid(&self) -> Option<i32> {
        match self {
            Running::Harness(h) => Some(h.pid()),
            Running::External { pid, .. } => *pid,
        }
    }

    fn connect(&self, timeout: Duration) -> Result<UnixStream, String> {
        let s = match self {
            Running::Harness(h) => h.connect().map_err(|e| format!("connect: {e}"))?,
            Running::External { socket, .. } => connect_external(socket)?,
        };
        s.set_read_timeout(Some(timeout))
            .and_then(|()| s.set_write_timeout(Some(timeout)))
            .map_err(|e| format!("socket timeout: {e}"))?;
        Ok(s)
    }

    /// A note on the daemon's state for error messages.
    fn note(&self) -> String {
        match self {
            Running::Harness(h) => {
                let mut s = match h.try_wait() {
                    Ok(Some(st)) => format!(" (daemon exited: {st})"),
                    _ => String::new(),
                };
                let logs = h.log_messages();
                let interesting: Vec<&String> = logs
                    .iter()
                    .filter(|l| !l.starts_with("statistics:"))
                    .rev()
                    .take(5)
                    .collect();
                if !interesting.is_empty() {
                    s.push_str(&format!("; last daemon log lines: {interesting:?}"));
                }
                s
            }
            Running::External { .. } => String::new(),
        }
    }
}

fn connect_external(socket: &Path) -> Result<UnixStream, String> {
    let mut s =
        UnixStream::connect(socket).map_err(|e| format!("connect {}: {e}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut g = vec![0u8; GREETING.len()];
    s.read_exact(&mut g)
        .map_err(|e| format!("greeting from {}: {e}", socket.display()))?;
    if g != GREETING {
        return Err(format!("bad greeting {:?}", Printable(&g).to_string()));
    }
    Ok(s)
}

/// Length of the first complete attr0 message at the start of `buf`.
fn message_len(buf: &[u8]) -> Option<usize> {
    let mut p = 0;
    loop {
        if *buf.get(p)? == 0 {
            return Some(p + 1);
        }
        // name, then value
        for _ in 0..2 {
            p += buf.get(p..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
}

/// One attr0 message or descriptor step of a cycle.
#[derive(Debug, Clone)]
enum Op {
    /// Write these bytes of [`Script::out`].
    Send(Range<usize>),
    /// Send a descriptor: the client's own socket, or the script's fresh
    /// one (`fill`: a new session, or the one the last cycle took).
    SendFd(FdSource),
    /// Read one message, which must be exactly these bytes of
    /// [`Script::exp`].
    Expect(Range<usize>, &'static str),
    /// Receive a descriptor, which must be this open file.
    RecvFd((u64, u64), &'static str),
}

#[derive(Debug, Clone, Copy)]
enum FdSource {
    Own,
    Fresh,
}

/// The steps of one cycle (or one `fill` save), run by [`Conn::run`],
/// possibly over several readiness events.
#[derive(Default)]
struct Script {
    ops: Vec<Op>,
    out: Vec<u8>,
    exp: Vec<u8>,
    fresh: Option<OwnedFd>,
    /// `fill`: the session this cycle takes; with [`Script::received`] it
    /// becomes the session the next cycle saves back.
    taking: Option<Expected>,
    /// `fill`: the descriptor this cycle received (kept only when
    /// [`Script::taking`] is set; other workloads close it at once).
    received: Option<OwnedFd>,
    pos: usize,
}

const DUMMY: &[u8] = b"dummy\0\0\0";

impl Script {
    fn clear(&mut self) {
        self.ops.clear();
        self.out.clear();
        self.exp.clear();
        self.fresh = None;
        self.taking = None;
        self.received = None;
        self.pos = 0;
    }

    /// The session a completed `fill` cycle took, if any, and its
    /// descriptor: the client saves it back in its next cycle, as a
    /// delivery agent saves back the connection it used.
    fn take_held(&mut self) -> Option<(OwnedFd, Expected)> {
        self.received.take().zip(self.taking.take())
    }

    fn send_request(&mut self, req: &Request<'_>) -> Result<(), String> {
        let start = self.out.len();
        encode_request(&mut self.out, req).map_err(|e| e.to_string())?;
        self.ops.push(Op::Send(start..self.out.len()));
        Ok(())
    }

    fn send_dummy(&mut self) {
        let start = self.out.len();
        self.out.extend_from_slice(DUMMY);
        self.ops.push(Op::Send(start..self.out.len()));
    }

    fn expect(&mut self, what: &'static str, f: impl FnOnce(&mut Vec<u8>)) {
        let start = self.exp.len();
        f(&mut self.exp);
        self.ops.push(Op::Expect(start..self.exp.len(), what));
    }

    /// `save_endp` of `fd`.
    fn save_endp(
        &mut self,
        ttl: u32,
        endp: &[u8],
        endp_prop: &[u8],
        fd: FdSource,
    ) -> Result<(), String> {
        self.send_request(&Request::SaveEndp {
            ttl,
            endp,
            endp_prop,
        })?;
        self.expect("save_endp: dummy before the descriptor", |e| {
            e.extend_from_slice(DUMMY)
        });
        self.ops.push(Op::SendFd(fd));
        self.expect("save_endp: status", |e| {
            message::encode_status(e, Status::Ok)
        });
        Ok(())
    }

    /// `find_endp` (`dest_prop` None) or `find_dest` that must hit with
    /// these properties and the open file `want`.
    fn find_hit(
        &mut self,
        label: &[u8],
        dest_prop: Option<&[u8]>,
        endp_prop: &[u8],
        want: (u64, u64),
    ) -> Result<(), String> {
        let what = match dest_prop {
            None => {
                self.send_request(&Request::FindEndp { endp: label })?;
                self.expect("find_endp", |e| {
                    message::encode_find_endp_reply(e, Status::Ok, endp_prop)
                });
                "find_endp: descriptor"
            }
            Some(dp) => {
                self.send_request(&Request::FindDest { dest: label })?;
                self.expect("find_dest", |e| {
                    message::encode_find_dest_reply(e, Status::Ok, dp, endp_prop)
                });
                "find_dest: descriptor"
            }
        };
        self.send_dummy();
        self.ops.push(Op::RecvFd(want, what));
        self.send_dummy();
        Ok(())
    }
}

/// One client connection: the socket and its read buffer.
struct Conn {
    id: usize,
    sock: UnixStream,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    timeout: Duration,
    blocking: bool,
}

fn printable(b: &[u8]) -> String {
    format!("\"{}\"", Printable(b))
}

impl Conn {
    fn err(&self, what: &str, e: impl std::fmt::Display) -> String {
        format!("client {}: {what}: {e}", self.id)
    }

    fn io_err(&self, what: &str, e: io::Error) -> String {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                self.err(what, "timed out waiting for the daemon")
            }
            _ => self.err(what, e),
        }
    }

    /// Waits (up to the timeout) until the socket can be written: only
    /// when a non-blocking write found the buffer full.
    fn wait_writable(&self, what: &str) -> Result<(), String> {
        match scache_proto::unix::wait(
            self.sock.as_fd(),
            scache_proto::unix::Interest::Write,
            self.timeout,
        ) {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.err(what, "timed out waiting to write")),
            Err(e) => Err(self.io_err(what, e)),
        }
    }

    /// Tries to complete one message in the buffer, reading as needed;
    /// `None` when the socket has nothing more for now.
    fn try_message(&mut self, what: &str) -> Result<Option<Range<usize>>, String> {
        loop {
            if let Some(len) = message_len(&self.rbuf[self.rpos..self.rlen]) {
                let r = self.rpos..self.rpos + len;
                self.rpos += len;
                return Ok(Some(r));
            }
            if self.rpos == self.rlen {
                self.rpos = 0;
                self.rlen = 0;
            } else if self.rpos > 0 {
                self.rbuf.copy_within(self.rpos..self.rlen, 0);
                self.rlen -= self.rpos;
                self.rpos = 0;
            }
            if self.rlen == self.rbuf.len() {
                if self.rbuf.len() >= 1 << 20 {
                    return Err(self.err(what, "reply longer than 1 MiB without terminator"));
                }
                self.rbuf.resize(self.rbuf.len() * 2, 0);
            }
            match self.sock.read(&mut self.rbuf[self.rlen..]) {
                Ok(0) => {
                    let partial = if self.rlen > 0 {
                        format!(
                            " after a partial reply {}",
                            printable(&self.rbuf[..self.rlen])
                        )
                    } else {
                        String::new()
                    };
                    return Err(self.err(what, format!("daemon closed the connection{partial}")));
                }
                Ok(n) => self.rlen += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.blocking() => {
                    return Ok(None)
                }
                Err(e) => return Err(self.io_err(what, e)),
            }
        }
    }

    /// Whether the socket is blocking (then `WouldBlock` means that
    /// `SO_RCVTIMEO` expired).
    fn blocking(&self) -> bool {
        self.blocking
    }

    /// Runs `s` from where it stopped. `Ok(true)`: the script is complete;
    /// `Ok(false)`: it waits for the daemon (non-blocking socket only).
    fn run(&mut self, s: &mut Script, own: BorrowedFd<'_>) -> Result<bool, String> {
        while s.pos < s.ops.len() {
            match s.ops[s.pos].clone() {
                Op::Send(r) => {
                    let mut done = 0;
                    let bytes = &s.out[r];
                    while done < bytes.len() {
                        match self.sock.write(&bytes[done..]) {
                            Ok(n) => done += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.blocking() => {
                                self.wait_writable("sending a request")?
                            }
                            Err(e) => return Err(self.io_err("sending a request", e)),
                        }
                    }
                }
                Op::SendFd(src) => {
                    let fd = match src {
                        FdSource::Own => own,
                        FdSource::Fresh => s.fresh.as_ref().expect("fresh fd").as_fd(),
                    };
                    loop {
                        match send_fd(self.sock.as_fd(), fd) {
                            Ok(()) => break,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.blocking() => {
                                self.wait_writable("sending a descriptor")?
                            }
                            Err(e) => {
                                return Err(self.io_err("save_endp: sending the descriptor", e))
                            }
                        }
                    }
                    if let FdSource::Fresh = src {
                        // The daemon now holds the only copy.
                        s.fresh = None;
                    }
                }
                Op::Expect(r, what) => {
                    let Some(got) = self.try_message(what)? else {
                        return Ok(false);
                    };
                    if self.rbuf[got.clone()] != s.exp[r.clone()] {
                        return Err(self.err(
                            what,
                            format!(
                                "expected reply {}, got {}",
                                printable(&s.exp[r]),
                                printable(&self.rbuf[got])
                            ),
                        ));
                    }
                }
                Op::RecvFd(want, what) => {
                    if self.rpos != self.rlen {
                        return Err(self.err(
                            what,
                            format!(
                                "unexpected data {} where a descriptor was due",
                                printable(&self.rbuf[self.rpos..self.rlen])
                            ),
                        ));
                    }
                    let fd = match recv_fd(self.sock.as_fd()) {
                        Ok(fd) => fd,
                        Err(RecvFdError::Io(e))
                            if e.kind() == io::ErrorKind::WouldBlock && !self.blocking() =>
                        {
                            return Ok(false)
                        }
                        Err(e) => return Err(self.io_err(what, e.into())),
                    };
                    let got = sys::file_id(fd.as_fd()).map_err(|e| self.err(what, e))?;
                    if got != want {
                        return Err(self.err(
                            what,
                            format!(
                                "received descriptor is not the expected session \
                                 (st_dev/st_ino {got:?}, expected {want:?})"
                            ),
                        ));
                    }
                    if s.taking.is_some() {
                        s.received = Some(fd);
                    }
                }
            }
            s.pos += 1;
        }
        Ok(true)
    }
}

/// A saved session the client expects back: its file identity and its
/// properties.
struct Expected {
    id: (u64, u64),
    prop: Vec<u8>,
    /// The other end of a `fill` session's socket, kept open as long as
    /// the session lives: a daemon may rightly evict sessions whose peer
    /// hung up (ours does).
    peer: Option<OwnedFd>,
}

/// One client: its connection and its workload state.
struct Worker {
    conn: Conn,
    script: Script,
    workload: Workload,
    ttl: u32,
    /// The socket this client saves in `endp`/`dest`/`fill` cycles (the
    /// other end stays open here).
    own: (UnixStream, UnixStream),
    own_id: (u64, u64),
    /// endp labels (`endp`, `dest`, `fill`), or absent labels (`miss`).
    labels: Vec<Vec<u8>>,
    /// `dest`: destination labels and properties, bound to `labels[i]`.
    dests: Vec<(Vec<u8>, Vec<u8>)>,
    /// `fill`: per owned endpoint, the sessions in the order the cache must
    /// return them, and how many to pre-load.
    queues: Vec<VecDeque<Expected>>,
    fill_counts: Vec<usize>,
    prop: Vec<u8>,
    serial: u64,
    /// Cycles started so far.
    started: u64,
    /// Cycles this client must run (cycles mode).
    quota: u64,
    cycle_start: Instant,
    /// Whether the current cycle is measured.
    measuring: bool,
    /// No more cycles (epoll driver).
    finished: bool,
    stats: ThreadStats,
}

impl Worker {
    fn new(id: usize, sock: UnixStream, cfg: &Config, quota: u64) -> Result<Worker, String> {
        let own = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
        let own_id = sys::file_id(own.0.as_fd()).map_err(|e| e.to_string())?;
        let mut w = Worker {
            conn: Conn {
                id,
                sock,
                rbuf: vec![0; 4096],
                rpos: 0,
                rlen: 0,
                timeout: cfg.timeout,
                blocking: true,
            },
            script: Script::default(),
            workload: cfg.workload,
            ttl: cfg.ttl,
            own,
            own_id,
            labels: Vec::new(),
            dests: Vec::new(),
            queues: Vec::new(),
            fill_counts: Vec::new(),
            prop: Vec::with_capacity(128),
            serial: (id as u64) << 40,
            started: 0,
            quota,
            cycle_start: Instant::now(),
            measuring: false,
            finished: false,
            stats: ThreadStats::default(),
        };
        let port = cfg.port;
        match cfg.workload {
            Workload::Endp => {
                w.labels = (0..cfg.labels)
                    .map(|n| shapes::endp_label(id, n, port))
                    .collect()
            }
            Workload::Miss => {
                w.labels = (0..cfg.labels)
                    .map(|n| shapes::miss_label(id, n, port))
                    .collect()
            }
            Workload::Dest => {
                w.labels = (0..cfg.labels)
                    .map(|n| shapes::endp_label(id, n, port))
                    .collect();
                w.dests = (0..cfg.labels)
                    .map(|n| (shapes::dest_label(id, n, port), shapes::dest_prop(id, n)))
                    .collect();
            }
            Workload::Fill => {
                // Endpoint j gets sessions i with i % M == j; client k owns
                // endpoints j with j % K == k.
                let (n, m, k) = (cfg.fill, cfg.endpoints, cfg.clients);
                for j in (id..m).step_by(k) {
                    w.labels.push(shapes::endp_label(id, j, port));
                    w.fill_counts.push(n / m + usize::from(j < n % m));
                    w.queues.push(VecDeque::new());
                }
            }
        }
        Ok(w)
    }

    fn set_blocking(&mut self, blocking: bool) -> Result<(), String> {
        self.conn
            .sock
            .set_nonblocking(!blocking)
            .map_err(|e| self.conn.err("set_nonblocking", e))?;
        self.conn.blocking = blocking;
        Ok(())
    }

    fn next_prop(&mut self) {
        self.serial += 1;
        shapes::endp_prop(&mut self.prop, self.serial);
    }

    /// Saves this client's share of the `fill` sessions (blocking),
    /// round-robin over its endpoints. Each is one end of a fresh socket
    /// pair: this process closes its copy of that end after the save (the
    /// daemon then holds the only one) and keeps the other end open until
    /// the session comes back, as a live peer.
    fn fill(&mut self) -> Result<(), String> {
        let rounds = self.fill_counts.iter().copied().max().unwrap_or(0);
        for r in 0..rounds {
            for j in 0..self.labels.len() {
                if self.fill_counts[j] <= r {
                    continue;
                }
                let (a, b) = UnixStream::pair()
                    .map_err(|e| self.conn.err("socketpair for a fill session", e))?;
                let id = sys::file_id(a.as_fd()).map_err(|e| e.to_string())?;
                self.next_prop();
                self.script.clear();
                self.script
                    .save_endp(self.ttl, &self.labels[j], &self.prop, FdSource::Fresh)?;
                self.script.fresh = Some(a.into());
                let done = self
                    .conn
                    .run(&mut self.script, self.own.0.as_fd())
                    .map_err(|e| format!("{e} (fill session {r} of endpoint {j})"))?;
                debug_assert!(done);
                self.queues[j].push_back(Expected {
                    id,
                    prop: self.prop.clone(),
                    peer: Some(b.into()),
                });
            }
        }
        Ok(())
    }

    /// Builds the script of the next cycle.
    fn build_cycle(&mut self) -> Result<(), String> {
        let i = self.started;
        self.started += 1;
        self.cycle_start = Instant::now();
        let j = (i % self.labels.len() as u64) as usize;
        let held = self.script.take_held();
        self.script.clear();
        let s = &mut self.script;
        match self.workload {
            Workload::Endp => {
                self.serial += 1;
                shapes::endp_prop(&mut self.prop, self.serial);
                s.save_endp(self.ttl, &self.labels[j], &self.prop, FdSource::Own)?;
                s.find_hit(&self.labels[j], None, &self.prop, self.own_id)
            }
            Workload::Dest => {
                self.serial += 1;
                shapes::endp_prop(&mut self.prop, self.serial);
                let (dest, dest_prop) = &self.dests[j];
                s.send_request(&Request::SaveDest {
                    ttl: self.ttl,
                    dest,
                    dest_prop,
                    endp: &self.labels[j],
                })?;
                s.expect("save_dest", |e| message::encode_status(e, Status::Ok));
                s.save_endp(self.ttl, &self.labels[j], &self.prop, FdSource::Own)?;
                s.find_hit(dest, Some(dest_prop), &self.prop, self.own_id)
            }
            Workload::Miss => {
                s.send_request(&Request::FindEndp {
                    endp: &self.labels[j],
                })?;
                s.expect("find_endp of an absent label", |e| {
                    message::encode_find_endp_reply(e, Status::Fail, b"")
                });
                Ok(())
            }
            Workload::Fill => {
                self.serial += 1;
                shapes::endp_prop(&mut self.prop, self.serial);
                // Save back the session the last cycle took (the first
                // cycle: the client's own socket), so every cached session
                // is a distinct connection, cached once.
                let (src, id, peer) = match held {
                    Some((fd, taken)) => {
                        s.fresh = Some(fd);
                        (FdSource::Fresh, taken.id, taken.peer)
                    }
                    None => (FdSource::Own, self.own_id, None),
                };
                s.save_endp(self.ttl, &self.labels[j], &self.prop, src)?;
                let q = &mut self.queues[j];
                q.push_back(Expected {
                    id,
                    prop: self.prop.clone(),
                    peer,
                });
                // FIFO: the oldest session of the endpoint comes back.
                let front = q.pop_front().expect("just pushed");
                s.find_hit(&self.labels[j], None, &front.prop, front.id)?;
                s.taking = Some(front);
                Ok(())
            }
        }
    }

    /// Runs the current script as far as possible. `Ok(true)` when the
    /// cycle completed (and was recorded when `measure`).
    fn advance(&mut self) -> Result<bool, String> {
        if !self.conn.run(&mut self.script, self.own.0.as_fd())? {
            return Ok(false);
        }
        if self.measuring {
            let ns = self.cycle_start.elapsed().as_nanos().min(u32::MAX as u128) as u32;
            self.stats.latencies_ns.push(ns);
            self.stats.cycles += 1;
        }
        Ok(true)
    }
}

const PHASE_WARMUP: u8 = 0;
const PHASE_MEASURE: u8 = 1;
const PHASE_STOP: u8 = 2;

struct Shared {
    phase: AtomicU8,
    failed: AtomicBool,
    first_error: Mutex<Option<String>>,
    barrier: Barrier,
}

impl Shared {
    fn fail(&self, e: String) {
        let mut g = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
        self.phase.store(PHASE_STOP, Ordering::SeqCst);
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What the clients of one driver thread measured.
#[derive(Default)]
struct ThreadStats {
    cycles: u64,
    latencies_ns: Vec<u32>,
    finished: Option<Instant>,
}

/// Whether a cycle started now is measured, and whether one may start.
fn may_start(cfg: &Config, shared: &Shared, w: &Worker) -> (bool, bool) {
    match cfg.length {
        Length::Cycles(_) => (w.started < w.quota && !shared.failed(), true),
        Length::Duration(_) => {
            let p = shared.phase.load(Ordering::Relaxed);
            (p != PHASE_STOP, p == PHASE_MEASURE)
        }
    }
}

/// Blocking driver: runs one client to the end on this thread.
fn drive_blocking(cfg: &Config, shared: &Shared, w: &mut Worker) -> Result<(), String> {
    loop {
        let (go, measure) = may_start(cfg, shared, w);
        if !go {
            return Ok(());
        }
        w.measuring = measure;
        w.build_cycle()?;
        if !w.advance()? {
            return Err(w.conn.err("cycle", "blocking socket reported no progress"));
        }
    }
}

/// Event-driven driver: runs the clients of this thread over one epoll
/// set, each a state machine advanced whenever its socket is readable.
fn drive_epoll(cfg: &Config, shared: &Shared, ws: &mut [Worker]) -> Result<(), String> {
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(format!("epoll_create1: {}", io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor we own.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let mut active = 0usize;
    for (i, w) in ws.iter_mut().enumerate() {
        w.set_blocking(false)?;
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: i as u64,
        };
        // SAFETY: valid epoll and socket descriptors and event structure.
        if unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                w.conn.sock.as_raw_fd(),
                &mut ev,
            )
        } != 0
        {
            return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
    }
    // Starts cycles on `w` until one waits for the daemon or the run ends;
    // false when this client is finished.
    let pump = |w: &mut Worker, mut resume: bool| -> Result<bool, String> {
        loop {
            if !resume {
                let (go, measure) = may_start(cfg, shared, w);
                if !go {
                    return Ok(false);
                }
                w.measuring = measure;
                w.build_cycle()?;
            }
            resume = false;
            if !w.advance()? {
                return Ok(true);
            }
        }
    };
    // A finished client leaves the epoll set (its socket could stay
    // readable, e.g. at end of file, and must not be advanced again).
    let retire = |w: &mut Worker| -> Result<(), String> {
        w.finished = true;
        // SAFETY: valid epoll and socket descriptors; the event argument
        // may be null for EPOLL_CTL_DEL.
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                w.conn.sock.as_raw_fd(),
                std::ptr::null_mut(),
            )
        };
        if rc != 0 {
            return Err(format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
        Ok(())
    };
    for w in ws.iter_mut() {
        if pump(w, false)? {
            active += 1;
        } else {
            retire(w)?;
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; ws.len().max(1)];
    let timeout_ms = cfg.timeout.as_millis().min(i32::MAX as u128) as i32;
    while active > 0 {
        if shared.failed() {
            return Ok(());
        }
        // SAFETY: `events` is a valid writable array of that many entries.
        let n = unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        if n == 0 {
            return Err(format!(
                "no reply from the daemon within {:?} ({active} clients waiting)",
                cfg.timeout
            ));
        }
        for ev in &events[..n as usize] {
            let w = &mut ws[ev.u64 as usize];
            if w.finished {
                continue;
            }
            if !pump(w, true)? {
                retire(w)?;
                active -= 1;
            }
        }
    }
    Ok(())
}

/// How the client connections are driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// One thread per client, blocking sockets.
    Blocking,
    /// This many threads, each driving its share of the clients with epoll
    /// and non-blocking sockets.
    Epoll(usize),
}

/// Runs one driver thread: connects its clients, fills, then drives them.
fn driver_thread(ids: &[usize], cfg: &Config, daemon: &Running, shared: &Shared) -> ThreadStats {
    let per_client = |id: usize| -> u64 {
        match cfg.length {
            Length::Cycles(n) => {
                let k = cfg.clients as u64;
                n / k + u64::from((id as u64) < n % k)
            }
            Length::Duration(_) => u64::MAX,
        }
    };
    let mut workers: Result<Vec<Worker>, String> = ids
        .iter()
        .map(|&id| {
            daemon
                .connect(cfg.timeout)
                .map_err(|e| format!("client {id}: {e}"))
                .and_then(|s| Worker::new(id, s, cfg, per_client(id)))
        })
        .collect();
    if let Err(e) = &workers {
        shared.fail(e.clone());
    }
    shared.barrier.wait(); // all connected
    shared.barrier.wait(); // fill may start
    if let Ok(ws) = &mut workers {
        for w in ws.iter_mut() {
            if shared.failed() {
                break;
            }
            if let Err(e) = w.fill() {
                shared.fail(e);
            }
        }
    }
    shared.barrier.wait(); // filled
    shared.barrier.wait(); // go
    let mut stats = ThreadStats::default();
    let Ok(ws) = &mut workers else {
        return stats;
    };
    if !shared.failed() {
        let r = match cfg.driver {
            Driver::Blocking => ws
                .iter_mut()
                .try_for_each(|w| drive_blocking(cfg, shared, w)),
            Driver::Epoll(_) => drive_epoll(cfg, shared, ws),
        };
        if let Err(e) = r {
            shared.fail(e);
        }
    }
    stats.finished = Some(Instant::now());
    for w in ws.iter_mut() {
        stats.cycles += w.stats.cycles;
        stats.latencies_ns.append(&mut w.stats.latencies_ns);
    }
    stats
}

/// Sleeps up to `d`, returning early (false) when a client failed.
fn sleep_watch(shared: &Shared, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if shared.failed() {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Checks a configuration; returns a message for the first problem.
pub fn validate(cfg: &Config) -> Result<(), String> {
    if cfg.clients == 0 || cfg.clients > 250 {
        return Err("--clients must be between 1 and 250".into());
    }
    if cfg.labels == 0 {
        return Err("--labels must be at least 1".into());
    }
    if let Driver::Epoll(0) = cfg.driver {
        return Err("--driver-threads must be at least 1".into());
    }
    if cfg.ttl == 0 || cfg.ttl > message::MAX_TTL {
        return Err("--ttl must be a positive 31-bit number".into());
    }
    if cfg.workload == Workload::Fill {
        if cfg.fill == 0 {
            return Err("workload fill needs --fill N (N > 0)".into());
        }
        if cfg.endpoints < cfg.clients || cfg.endpoints > cfg.fill {
            return Err(format!(
                "--endpoints must be between --clients ({}) and --fill ({})",
                cfg.clients, cfg.fill
            ));
        }
        let (soft, _) = sys::nofile_limit().map_err(|e| e.to_string())?;
        // The daemon holds N sessions and this process N live peers: both
        // need N descriptors plus some.
        let need = cfg.fill as u64 + cfg.clients as u64 + 100;
        if need > soft {
            return Err(format!(
                "--fill {} needs about {need} descriptors in the daemon and in the load \
                 generator, more than RLIMIT_NOFILE ({soft})",
                cfg.fill
            ));
        }
    }
    match cfg.length {
        Length::Cycles(n) if n < cfg.clients as u64 => {
            return Err("--cycles must be at least --clients".into())
        }
        Length::Duration(_) if cfg.strace.is_some() => {
            return Err("--strace needs --cycles N (counts are per cycle)".into())
        }
        _ => {}
    }
    Ok(())
}

/// Starts the daemon (unless it is already running), runs the workload
/// once and stops the daemon again.
pub fn run_once(spec: &DaemonSpec, cfg: &Config) -> Result<RunResult, String> {
    validate(cfg)?;
    let mut cfg = cfg.clone();
    if let DaemonSpec::Connect { .. } = spec {
        // A port of our own for this run (see Config::port).
        static RUN: AtomicU32 = AtomicU32::new(0);
        let n = std::process::id().wrapping_mul(31) + RUN.fetch_add(1, Ordering::Relaxed);
        cfg.port = 10_000 + (n % 50_000) as u16;
    }
    let cfg = &cfg;
    let daemon = Running::start(spec, cfg)?;
    if cfg.pin {
        pin(&daemon)?;
    }
    let r = run_on(&daemon, cfg);
    let r = r.map_err(|e| format!("{}: {e}{}", spec.name(), daemon.note()));
    drop(daemon);
    r.map(|mut r| {
        r.daemon = spec.name();
        r
    })
}

/// With `--pin`: the daemon on the last CPU, this process on the others.
fn pin(daemon: &Running) -> Result<(), String> {
    let cpus = sys::allowed_cpus();
    let Some((&last, others)) = cpus.split_last().filter(|(_, o)| !o.is_empty()) else {
        return Err("--pin needs at least 2 CPUs".into());
    };
    let pid = daemon
        .pid()
        .ok_or("--pin needs the daemon's pid (--pid with --connect)")?;
    sys::set_process_affinity(pid, &[last]).map_err(|e| format!("pinning the daemon: {e}"))?;
    sys::set_process_affinity(std::process::id() as i32, others)
        .map_err(|e| format!("pinning the load generator: {e}"))
}

/// `strace -c` attached to the daemon for the measured cycles.
struct Strace {
    child: std::process::Child,
    out: PathBuf,
}

impl Strace {
    fn attach(pid: i32, out: &Path) -> Result<Strace, String> {
        use std::io::BufRead;
        let mut child = std::process::Command::new("strace")
            .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
            .arg(out)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run strace (apt-get install strace): {e}"))?;
        let stderr = child.stderr.take().expect("piped");
        let mut lines = io::BufReader::new(stderr).lines();
        // strace says "Process N attached" once per thread; the first one
        // is enough to start: the others follow within microseconds.
        match lines.next() {
            Some(Ok(l)) if l.contains("attached") => {}
            other => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("strace did not attach: {other:?}"));
            }
        }
        std::thread::spawn(move || for _ in lines {});
        std::thread::sleep(Duration::from_millis(200));
        Ok(Strace {
            child,
            out: out.to_path_buf(),
        })
    }

    /// Detaches (SIGINT) and returns `(syscall, calls, errors)` rows.
    fn finish(mut self) -> Result<Vec<(String, u64, u64)>, String> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
            .map_err(|e| format!("stopping strace: {e}"))?;
        self.child
            .wait()
            .map_err(|e| format!("waiting for strace: {e}"))?;
        let text = std::fs::read_to_string(&self.out)
            .map_err(|e| format!("{}: {e}", self.out.display()))?;
        Ok(parse_strace_summary(&text))
    }
}

/// Parses the table `strace -c` prints: `(syscall, calls, errors)` for
/// every syscall row (the `total` row excluded).
pub fn parse_strace_summary(text: &str) -> Vec<(String, u64, u64)> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if !(5..=6).contains(&f.len()) || f[0].parse::<f64>().is_err() {
            continue;
        }
        let name = f[f.len() - 1];
        let Ok(calls) = f[3].parse::<u64>() else {
            continue;
        };
        let errors = if f.len() == 6 {
            f[4].parse().unwrap_or(0)
        } else {
            0
        };
        if name != "total" {
            rows.push((name.to_string(), calls, errors));
        }
    }
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    rows
}

fn run_on(daemon: &Running, cfg: &Config) -> Result<RunResult, String> {
    let k = cfg.clients;
    let pid = daemon.pid();
    let threads = match cfg.driver {
        Driver::Blocking => k,
        Driver::Epoll(t) => t.min(k),
    };
    let shared = Shared {
        phase: AtomicU8::new(PHASE_WARMUP),
        failed: AtomicBool::new(false),
        first_error: Mutex::new(None),
        barrier: Barrier::new(threads + 1),
    };
    let mut result = RunResult {
        pid,
        ..RunResult::default()
    };
    let rss = |pid: Option<i32>| pid.and_then(|p| sys::process_rss_kib(p).ok());
    let cpu = |pid: Option<i32>| pid.and_then(|p| sys::process_cpu_seconds(p).ok());
    let assignments: Vec<Vec<usize>> = (0..threads)
        .map(|t| (t..k).step_by(threads).collect())
        .collect();
    let mut strace = None;

    let stats: Vec<ThreadStats> = std::thread::scope(|scope| {
        let handles: Vec<_> = assignments
            .iter()
            .enumerate()
            .map(|(t, ids)| {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("driver-{t}"))
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || driver_thread(ids, cfg, daemon, shared))
                    .expect("spawn client thread")
            })
            .collect();
        shared.barrier.wait(); // all connected
        result.rss_kib_start = rss(pid);
        let fill_start = Instant::now();
        shared.barrier.wait(); // fill may start
        shared.barrier.wait(); // filled
        if cfg.workload == Workload::Fill {
            result.fill_seconds = Some(fill_start.elapsed().as_secs_f64());
            result.rss_kib_filled = rss(pid);
            result.daemon_fds_filled = pid.and_then(|p| sys::process_fd_count(p).ok());
        }
        if let (Some(out), Some(pid), false) = (&cfg.strace, pid, shared.failed()) {
            match Strace::attach(pid, out) {
                Ok(s) => strace = Some(s),
                Err(e) => shared.fail(e),
            }
        }
        let mut cpu0 = cpu(pid);
        let mut self0 = sys::self_cpu_seconds();
        let mut t0 = Instant::now();
        shared.barrier.wait(); // go
        let mut t1 = None;
        let mut cpu1 = None;
        if let Length::Duration(d) = cfg.length {
            if sleep_watch(&shared, cfg.warmup) {
                cpu0 = cpu(pid);
                self0 = sys::self_cpu_seconds();
                t0 = Instant::now();
                shared.phase.store(PHASE_MEASURE, Ordering::SeqCst);
                sleep_watch(&shared, d);
                shared.phase.store(PHASE_STOP, Ordering::SeqCst);
                t1 = Some(Instant::now());
                cpu1 = cpu(pid);
            }
        }
        let stats: Vec<ThreadStats> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        let t1 = t1.unwrap_or_else(|| {
            stats
                .iter()
                .filter_map(|s| s.finished)
                .max()
                .unwrap_or_else(Instant::now)
        });
        if cpu1.is_none() {
            cpu1 = cpu(pid);
        }
        let self1 = sys::self_cpu_seconds();
        result.seconds = t1.saturating_duration_since(t0).as_secs_f64();
        let cycles: u64 = stats.iter().map(|s| s.cycles).sum();
        if let (Some(a), Some(b)) = (cpu0, cpu1) {
            if cycles > 0 {
                result.daemon_cpu_us = Some((b - a) * 1e6 / cycles as f64);
            }
        }
        if cycles > 0 {
            result.loadgen_cpu_us = (self1 - self0) * 1e6 / cycles as f64;
        }
        stats
    });
    if let Some(s) = strace {
        let rows = s.finish()?;
        let cycles = stats.iter().map(|s| s.cycles).sum::<u64>().max(1) as f64;
        result.syscalls = rows
            .into_iter()
            .map(|(n, c, e)| (n, c as f64 / cycles, e as f64 / cycles))
            .collect();
    }
    if let Some(e) = shared.error() {
        return Err(e);
    }
    result.cycles = stats.iter().map(|s| s.cycles).sum();
    if result.cycles == 0 {
        return Err("no cycle completed".into());
    }
    result.cycles_per_s = result.cycles as f64 / result.seconds.max(1e-9);
    let mut lat: Vec<u32> = Vec::with_capacity(result.cycles as usize);
    for s in &stats {
        lat.extend_from_slice(&s.latencies_ns);
    }
    result.p50_us = percentile(&mut lat, 0.50) / 1e3;
    result.p99_us = percentile(&mut lat, 0.99) / 1e3;
    result.rss_kib_end = rss(pid);
    if cfg.workload == Workload::Fill {
        if let (Some(a), Some(b)) = (result.rss_kib_start, result.rss_kib_filled) {
            result.rss_bytes_per_session = Some((b as f64 - a as f64) * 1024.0 / cfg.fill as f64);
        }
    }
    Ok(result)
}

/// The `q` quantile (0..=1) of `v` (reordered), in the unit of `v`.
fn percentile(v: &mut [u32], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable(i);
    *x as f64
}

/// Median of each metric over several runs of the same configuration
/// (each metric separately; `cycles` and `seconds` are summed).
pub fn median(runs: &[RunResult]) -> RunResult {
    fn med(mut v: Vec<f64>) -> f64 {
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        if n == 0 {
            0.0
        } else if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    fn med_opt(v: Vec<Option<f64>>) -> Option<f64> {
        let v: Vec<f64> = v.into_iter().flatten().collect();
        (!v.is_empty()).then(|| med(v))
    }
    let f = |g: &dyn Fn(&RunResult) -> f64| med(runs.iter().map(g).collect());
    let fo = |g: &dyn Fn(&RunResult) -> Option<f64>| med_opt(runs.iter().map(g).collect());
    RunResult {
        daemon: runs.first().map(|r| r.daemon.clone()).unwrap_or_default(),
        pid: None,
        cycles: runs.iter().map(|r| r.cycles).sum(),
        seconds: runs.iter().map(|r| r.seconds).sum(),
        cycles_per_s: f(&|r| r.cycles_per_s),
        p50_us: f(&|r| r.p50_us),
        p99_us: f(&|r| r.p99_us),
        daemon_cpu_us: fo(&|r| r.daemon_cpu_us),
        loadgen_cpu_us: f(&|r| r.loadgen_cpu_us),
        rss_kib_start: fo(&|r| r.rss_kib_start.map(|x| x as f64)).map(|x| x as u64),
        rss_kib_filled: fo(&|r| r.rss_kib_filled.map(|x| x as f64)).map(|x| x as u64),
        rss_kib_end: fo(&|r| r.rss_kib_end.map(|x| x as f64)).map(|x| x as u64),
        rss_bytes_per_session: fo(&|r| r.rss_bytes_per_session),
        fill_seconds: fo(&|r| r.fill_seconds),
        daemon_fds_filled: fo(&|r| r.daemon_fds_filled.map(|x| x as f64)).map(|x| x as usize),
        syscalls: runs.first().map(|r| r.syscalls.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(message_len(b"\0"), Some(1));
        assert_eq!(message_len(b"dummy\0\0\0rest"), Some(8));
        assert_eq!(message_len(b"status\x000\0property\0p\0\0"), Some(21));
        assert_eq!(message_len(b"status\x000\0property\0p\0"), None);
        assert_eq!(message_len(b"status\x000"), None);
        assert_eq!(message_len(b""), None);
    }

    #[test]
    fn percentiles_and_medians() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&mut v, 0.5), 51.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        let r = |c: f64| RunResult {
            cycles_per_s: c,
            cycles: 1,
            ..RunResult::default()
        };
        let m = median(&[r(3.0), r(1.0), r(2.0)]);
        assert_eq!(m.cycles_per_s, 2.0);
        assert_eq!(m.cycles, 3);
        assert_eq!(m.daemon_cpu_us, None);
    }

    #[test]
    fn strace_summary() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 40.00    0.004000           2      2000           read
 30.00    0.003000           3      1000       500 recvmsg
------ ----------- ----------- --------- --------- ----------------
100.00    0.007000           2      3000       500 total
";
        assert_eq!(
            parse_strace_summary(text),
            vec![
                ("read".to_string(), 2000, 0),
                ("recvmsg".to_string(), 1000, 500)
            ]
        );
    }
}
