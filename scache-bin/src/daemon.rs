//! The event loop: one thread, its own epoll instance, clients in a slab,
//! one timer source.
//!
//! Readiness tokens ([`Token`]) say what an event is about: a listener, a
//! client, a cached session, the master status socket, the signal
//! descriptor. The loop never blocks on a client: every client socket is
//! non-blocking, input that cannot be answered yet is kept by that client's
//! [`ServerConn`], and a client that stops in the middle of an exchange is
//! given up by its own machine after `ipc_timeout` (the loop only keeps the
//! machines' deadlines in order, in a queue).
#![forbid(unsafe_code)]

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::PollTimeout;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{self, MsgFlags};
use scache_core::{Clock, Instant, MonotonicClock};
use scache_proto::attr;
use scache_proto::server::{CloseReason, Notice, Phase, ServerConn};
use scache_proto::unix;
use slab::Slab;

use crate::backend::{CacheBackend, Taken};
use crate::listener::Listener;
use crate::metrics::{self, MetricsFile};
use crate::status::StatusRecord;
use crate::tokens::Token;
use crate::watch::{peer_event_cause, SessionWatch};

/// At most one pair of status records (busy, idle) per this much time.
pub const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The daemon's cache: descriptors, on the event loop's clock.
pub type DaemonBackend = CacheBackend<OwnedFd, TurnClock>;

/// The time of the event loop's turn, shared by the loop and its cache:
/// the loop reads the system's monotonic clock once after each wait
/// ([`TurnClock::tick`]) and every cache operation of that turn uses that
/// reading, as Postfix's event loop does with its event time. (Each cache
/// operation reading the clock itself cost two clock reads per request.)
#[derive(Debug, Clone, Default)]
pub struct TurnClock {
    source: MonotonicClock,
    now: Rc<Cell<Instant>>,
}

impl TurnClock {
    /// A clock whose origin is now.
    pub fn new() -> TurnClock {
        TurnClock::default()
    }

    /// Reads the system clock: the time of this turn, from now on.
    pub fn tick(&self) -> Instant {
        let now = self.source.now();
        self.now.set(now);
        now
    }
}

impl Clock for TurnClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}

/// How the daemon was started.
#[derive(Debug)]
pub enum Mode {
    /// Under Postfix's master(8): report TAKEN/AVAIL on the status socket,
    /// exit when master closes it.
    Master {
        /// Descriptor 5.
        status: OwnedFd,
        /// From `GENERATION` in the environment.
        generation: u32,
    },
    /// Standalone: remove our socket at exit.
    Standalone {
        /// The socket path we bound (None for an inherited listener).
        socket_path: Option<PathBuf>,
    },
}

/// Who may use the cache (checked with `SO_PEERCRED` at accept).
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// Allowed user ids.
    pub uids: Vec<u32>,
    /// Allowed (primary) group ids of the client process.
    pub gids: Vec<u32>,
}

impl AccessPolicy {
    fn allows(&self, uid: u32, gid: u32) -> bool {
        self.uids.contains(&uid) || self.gids.contains(&gid)
    }
}

/// Everything the event loop needs, prepared by `main`.
#[derive(Debug)]
pub struct DaemonSetup {
    /// Master or standalone.
    pub mode: Mode,
    /// Non-blocking listening sockets.
    pub listeners: Vec<Listener>,
    /// `-S`: a single client already connected on descriptor 0.
    pub stdin_client: Option<OwnedFd>,
    /// `connection_cache_status_update_time`.
    pub stats_interval: Duration,
    /// `max_idle` (None: never exit for idleness).
    pub max_idle: Option<Duration>,
    /// `ipc_timeout`: how long a client may stall in mid-exchange.
    pub ipc_timeout: Duration,
    /// Protocol string limits.
    pub proto_limits: attr::Limits,
    /// Soft `RLIMIT_NOFILE` in force.
    pub fd_limit: usize,
    /// Access control.
    pub access: AccessPolicy,
    /// `daemon_timeout` for the watchdog (None: no watchdog).
    pub daemon_timeout: Option<Duration>,
    /// `scache_metrics_file` (None: none): written every `stats_interval`
    /// and at exit, from a thread of its own.
    pub metrics_file: Option<PathBuf>,
}

struct Client {
    sock: OwnedFd,
    conn: ServerConn<Taken<OwnedFd>>,
    interest: EpollFlags,
    /// Requests already reported to master as a busy cycle.
    reported: u64,
    /// Tells this client from later ones in the same slab slot.
    serial: u64,
    /// Whether the client has an entry in the timeout queue.
    timer_queued: bool,
}

/// Why a client's connection must close, found while serving it.
enum Close {
    /// The peer closed its end: answer what it asked, then close.
    AfterFlush,
    /// Close now, for this reason.
    Now(CloseReason),
}

impl Close {
    fn into_reason(self) -> CloseReason {
        match self {
            Close::AfterFlush => CloseReason::PeerClosed,
            Close::Now(why) => why,
        }
    }
}

/// The descriptor budget: `fixed` descriptors besides the cached sessions
/// (listeners, clients, the daemon's own), at most `limit` in all.
#[derive(Clone, Copy)]
struct FdRoom {
    fixed: usize,
    limit: usize,
}

impl FdRoom {
    /// Makes room for `n` more descriptors by evicting the sessions
    /// closest to expiry. Returns false when it could not.
    fn ensure(self, backend: &mut DaemonBackend, n: usize) -> bool {
        while self.fixed + backend.sess_count() + n > self.limit {
            if !backend.evict_for_fds() {
                return false;
            }
        }
        true
    }
}

impl Client {
    /// Reads what the client sent and serves it, until the socket is
    /// drained or the exchange waits for something else.
    fn read(
        &mut self,
        now: Instant,
        backend: &mut DaemonBackend,
        rbuf: &mut [u8],
        fds: FdRoom,
    ) -> Result<(), Close> {
        loop {
            if !self.conn.wants_input() {
                return Ok(());
            }
            if self.conn.phase() == Phase::AwaitFd && !fds.ensure(backend, 1) {
                log::warn!("out of descriptors: cannot receive a session");
            }
            match unix::recv_stream(self.sock.as_fd(), rbuf) {
                Ok(r) if r.len == 0 && r.fd.is_none() => return Err(Close::AfterFlush),
                Ok(mut r) => {
                    if r.extra_fds > 0 || r.truncated {
                        // More than one descriptor, or some lost to the
                        // limit: none of them is kept.
                        log::warn!(
                            "client sent more than one descriptor or some could not be \
                             received ({} extra{}); all closed",
                            r.extra_fds,
                            if r.truncated { ", truncated" } else { "" }
                        );
                        r.fd = None;
                    }
                    // A short read drained the socket (or stopped at a
                    // descriptor, after which epoll reports the rest): only
                    // a full buffer calls for another read now.
                    let full = r.len == rbuf.len();
                    self.conn.handle_input(now, backend, &rbuf[..r.len], r.fd);
                    if !full {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // ECONNRESET and the like: the client went away.
                    log::debug!("read client: {e}");
                    return Err(Close::Now(CloseReason::PeerClosed));
                }
            }
        }
    }

    /// Writes pending output and hands over a descriptor when one is due.
    #[inline(always)]
    fn flush(&mut self, now: Instant, backend: &mut DaemonBackend) -> Result<(), Close> {
        loop {
            let out = self.conn.poll_output();
            if !out.is_empty() {
                match socket::send(
                    self.sock.as_raw_fd(),
                    out,
                    MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                ) {
                    Ok(n) => {
                        self.conn.handle_output_sent(now, n, backend);
                        continue;
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(()),
                    Err(e) => {
                        log::debug!("write client: {e}");
                        return Err(Close::Now(CloseReason::PeerClosed));
                    }
                }
            }
            if let Some(session) = self.conn.poll_fd_to_send() {
                match unix::send_fd(self.sock.as_fd(), session.fd.as_fd()) {
                    Ok(()) => {
                        // Our copy is closed here (its one-shot epoll
                        // registration names a stale handle now).
                        drop(self.conn.handle_fd_sent(now, backend));
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        log::warn!("cannot send file descriptor: {e}");
                        self.conn.handle_fd_send_failed(backend);
                    }
                }
            }
            return Ok(());
        }
    }

    /// After I/O: logs notices, sets the epoll interest and queues the
    /// deadline; a finished connection must close.
    #[inline(always)]
    fn update(
        &mut self,
        idx: usize,
        epoll: &Epoll,
        timeouts: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    ) -> Result<(), Close> {
        while let Some(notice) = self.conn.poll_notice() {
            log_notice(&notice);
        }
        if self.conn.phase() == Phase::Closed {
            let why = self
                .conn
                .close_reason()
                .cloned()
                .unwrap_or(CloseReason::PeerClosed);
            return Err(Close::Now(why));
        }
        let mut want = EpollFlags::EPOLLRDHUP;
        if self.conn.wants_input() {
            want |= EpollFlags::EPOLLIN;
        }
        if !self.conn.poll_output().is_empty() || self.conn.phase() == Phase::SendFd {
            want |= EpollFlags::EPOLLOUT;
        }
        if want != self.interest {
            let mut ev = EpollEvent::new(want, Token::Client(idx).to_u64());
            if epoll.modify(self.sock.as_fd(), &mut ev).is_ok() {
                self.interest = want;
            }
        }
        self.queue_timeout(idx, timeouts);
        Ok(())
    }

    /// Puts a client that is in the middle of an exchange in the timeout
    /// queue, unless it is there already.
    fn queue_timeout(
        &mut self,
        idx: usize,
        timeouts: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    ) {
        if self.timer_queued {
            return;
        }
        if let Some(when) = self.conn.poll_timeout() {
            self.timer_queued = true;
            timeouts.push(Reverse((when, idx, self.serial)));
        }
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// SIGTERM or SIGINT.
    Signal(i32),
    /// Master closed the status socket.
    MasterGone,
    /// No client for `max_idle`.
    Idle,
    /// `-S` mode: the one client left.
    StdinDone,
}

/// The daemon.
pub struct Daemon {
    setup: DaemonSetup,
    epoll: Epoll,
    watch: SessionWatch,
    clock: TurnClock,
    /// The time of this loop turn (read once per turn).
    now: Instant,
    backend: DaemonBackend,
    clients: Slab<Client>,
    next_serial: u64,
    /// Client deadlines `(when, slot, serial)`, earliest first; an entry
    /// may be out of date (the client made progress since, or left): it is
    /// checked against the client's own deadline when it comes up.
    timeouts: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    signals: SignalFd,
    rbuf: Vec<u8>,
    events: Vec<EpollEvent>,
    next_stats: Instant,
    /// When the daemon exits for idleness: `max_idle` after the last
    /// client left (None while clients are connected, or without a limit).
    idle_until: Option<Instant>,
    listeners_paused_until: Option<Instant>,
    /// The earliest of `next_stats`, `idle_until` and
    /// `listeners_paused_until`, kept by [`Daemon::set_own_timer`] when
    /// one of them changes (rarely), so each turn reads one value.
    own_timer: Instant,
    base_fds: usize,
    /// Keeps the `daemon_timeout` alarms coming (None: no watchdog).
    _watchdog: Option<crate::watchdog::Watchdog>,
    exit: Option<ExitCause>,
    /// Our pid, for status records (read once: no getpid per request).
    pid: i32,
    /// A third of `daemon_timeout`, in milliseconds: the longest wait
    /// between two turns.
    watchdog_step_ms: Option<u64>,
    /// When requests were last reported to master.
    last_report: Option<Instant>,
    /// The metrics file writer, if `scache_metrics_file` is set.
    metrics: Option<MetricsFile>,
}

/// The epoll instance is rebuilt once the registrations added since the
/// last rebuild exceed `REBUILD_SLACK` × (sessions cached +
/// `REBUILD_FLOOR`): a rebuild costs one registration per cached session,
/// a third of the registrations added since at most. A factor of 2 cost
/// measurably more on the fill workload (docs/semantics.md).
const REBUILD_SLACK: usize = 4;
/// See [`REBUILD_SLACK`].
const REBUILD_FLOOR: usize = 512;

/// Blocks SIGTERM and SIGINT in the calling thread (and the threads it
/// starts later), so that they wait for the event loop's signalfd instead
/// of killing the process. Start-up calls it before it binds or accepts
/// anything: a SIGTERM that comes as soon as the socket exists still ends
/// in an orderly shutdown. Returns the set, for the signalfd.
pub fn block_shutdown_signals() -> io::Result<SigSet> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().map_err(io::Error::from)?;
    Ok(mask)
}

/// The epoll interest of a listener: new connections, or nothing while
/// accepting is paused.
fn listener_interest(listening: bool) -> EpollFlags {
    if listening {
        EpollFlags::EPOLLIN
    } else {
        EpollFlags::empty()
    }
}

/// An epoll instance with the daemon's fixed descriptors: the signal
/// descriptor, the listeners (reporting connections when `listening`), and
/// master's status pipe.
fn new_epoll(setup: &DaemonSetup, signals: &SignalFd, listening: bool) -> io::Result<Epoll> {
    let ep = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
    ep.add(
        signals.as_fd(),
        EpollEvent::new(EpollFlags::EPOLLIN, Token::Signal.to_u64()),
    )
    .map_err(io::Error::from)?;
    for (i, l) in setup.listeners.iter().enumerate() {
        ep.add(
            l.as_fd(),
            EpollEvent::new(listener_interest(listening), Token::Listener(i).to_u64()),
        )
        .map_err(io::Error::from)?;
    }
    if let Mode::Master { status, .. } = &setup.mode {
        // Master never writes to it: readable means EOF, master is gone.
        ep.add(
            status.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, Token::Status.to_u64()),
        )
        .map_err(io::Error::from)?;
    }
    Ok(ep)
}

impl Daemon {
    /// Sets up epoll, signals and the cache; nothing is served yet.
    pub fn new(setup: DaemonSetup, backend: DaemonBackend, clock: TurnClock) -> io::Result<Daemon> {
        let mask = block_shutdown_signals()?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        let ep = new_epoll(&setup, &signals, true)?;
        let now = clock.tick();
        let next_stats = now.saturating_add(setup.stats_interval);
        let watchdog = setup
            .daemon_timeout
            .and_then(|limit| match crate::watchdog::start(limit) {
                Ok(w) => Some(w),
                Err(e) => {
                    log::warn!("cannot start the watchdog: {e}");
                    None
                }
            });
        let watchdog_step_ms = setup.daemon_timeout.map(|limit| {
            u64::try_from(crate::watchdog::step(limit).as_millis()).unwrap_or(u64::MAX)
        });
        let idle_until = setup.max_idle.map(|limit| now.saturating_add(limit));
        let metrics = setup
            .metrics_file
            .clone()
            .and_then(|path| match MetricsFile::start(path) {
                Ok(m) => Some(m),
                Err(e) => {
                    log::warn!("cannot start the metrics file writer: {e}");
                    None
                }
            });
        let mut daemon = Daemon {
            setup,
            epoll: ep,
            watch: SessionWatch::default(),
            clock,
            now,
            backend,
            clients: Slab::new(),
            next_serial: 0,
            timeouts: BinaryHeap::new(),
            signals,
            rbuf: vec![0; 64 * 1024],
            events: vec![EpollEvent::empty(); 256],
            next_stats,
            idle_until,
            listeners_paused_until: None,
            own_timer: now,
            base_fds: 0,
            _watchdog: watchdog,
            exit: None,
            pid: std::process::id() as i32,
            watchdog_step_ms,
            last_report: None,
            metrics,
        };
        daemon.set_own_timer();
        // A first snapshot at once, so the file exists from the start.
        daemon.write_metrics();
        daemon.base_fds = count_open_fds().unwrap_or(16);
        if let Some(sock) = daemon.setup.stdin_client.take() {
            daemon.add_client(sock);
        }
        Ok(daemon)
    }

    /// The cache and counters (for tests and the exit path).
    pub fn backend(&mut self) -> &mut DaemonBackend {
        &mut self.backend
    }

    /// Runs until a signal, master's exit, or idleness ends it; then logs
    /// the statistics and closes every cached descriptor.
    pub fn run(mut self) -> ExitCause {
        while self.exit.is_none() {
            self.turn();
        }
        let cause = self.exit.unwrap_or(ExitCause::Idle);
        self.shutdown(cause);
        cause
    }

    fn turn(&mut self) {
        crate::watchdog::pat();
        let next_timer = self.next_timer();
        let timeout = self.poll_timeout(next_timer);
        let n = match self.epoll.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => 0,
            Err(e) => crate::logging::fatal(format!("epoll_wait: {e}")),
        };
        self.now = self.clock.tick();
        let mut served = false;
        for i in 0..n {
            let ev = self.events[i];
            match Token::from_u64(ev.data()) {
                Some(Token::Session(handle)) => {
                    self.backend
                        .on_peer_event(handle, peer_event_cause(ev.events()));
                }
                Some(Token::Client(idx)) => served |= self.client_event(idx, ev.events()),
                Some(Token::Listener(idx)) => self.accept_clients(idx),
                Some(Token::Status) => {
                    log::debug!("master disconnect -- exiting");
                    self.exit = Some(ExitCause::MasterGone);
                }
                Some(Token::Signal) => {
                    if let Ok(Some(info)) = self.signals.read_signal() {
                        self.exit = Some(ExitCause::Signal(info.ssi_signo as i32));
                    }
                }
                None => {}
            }
        }
        self.watch_stored_sessions();
        if served && self.report_due() && !self.report_busy_cycle() && self.exit.is_none() {
            // master(8) is gone: exit as Postfix daemons do.
            self.exit = Some(ExitCause::MasterGone);
        }
        if self.now >= next_timer {
            self.timers();
        }
    }

    /// Registers the sessions stored this turn for dead-peer events, and
    /// rebuilds the epoll instance when that added one registration too
    /// many (checked only when one was added: most turns add none).
    fn watch_stored_sessions(&mut self) {
        let Daemon {
            backend,
            watch,
            epoll,
            ..
        } = self;
        let before = watch.added();
        backend.watch_stored(|handle, fd| watch.watch(epoll, fd.as_fd(), handle));
        let added = watch.added();
        if added != before && added > REBUILD_SLACK * (backend.sess_count() + REBUILD_FLOOR) {
            self.rebuild_epoll();
        }
    }

    /// Replaces the epoll instance with a new one that holds only what is
    /// needed: the fixed descriptors, the clients, and the cached sessions.
    /// Closing the old one drops the one-shot registrations left behind by
    /// sessions handed over to clients that still hold them. Nothing is
    /// lost: a new registration reports what is already pending. On any
    /// error the old instance stays.
    #[cold]
    #[inline(never)]
    fn rebuild_epoll(&mut self) {
        let listening = self.listeners_paused_until.is_none();
        let ep = match new_epoll(&self.setup, &self.signals, listening) {
            Ok(ep) => ep,
            Err(e) => return self.keep_epoll(e),
        };
        for (idx, client) in &self.clients {
            let ev = EpollEvent::new(client.interest, Token::Client(idx).to_u64());
            if let Err(e) = ep.add(client.sock.as_fd(), ev) {
                return self.keep_epoll(e.into());
            }
        }
        // Each was counted in `unwatched_saves` (or not) when it was saved.
        let mut watch = SessionWatch::default();
        for (handle, fd) in self.backend.cache().session_fds() {
            watch.watch(&ep, fd.as_fd(), handle);
        }
        log::debug!(
            "epoll instance rebuilt: {} registrations made since the last, {} sessions cached",
            self.watch.added(),
            self.backend.sess_count()
        );
        self.epoll = ep;
        self.watch = watch;
        self.backend.counters.watch_rebuilds += 1;
    }

    /// A rebuild failed (`err`): the old instance stays, and the count of
    /// registrations starts again, so the next attempt waits as long.
    fn keep_epoll(&mut self, err: io::Error) {
        log::warn!("cannot rebuild the epoll instance: {err}");
        self.watch.restart_count();
    }

    /// Whether requests served now should be reported to master: the first
    /// time, then at most once every [`STATUS_REPORT_INTERVAL`].
    ///
    /// What master does with the records (its `master_status.c` and
    /// `master_avail.c`): a TAKEN then an AVAIL record counts one use of
    /// the process; a process that exits abnormally without one use is
    /// "bad command startup" and its service is throttled for a minute.
    /// For a service with a process limit of 1, such as this one, master
    /// takes no other decision from them (it never listens on the service
    /// socket itself while the process lives), and records in the same
    /// state are ignored. So one pair after the first request is what
    /// master needs; a pair a second more keeps its use count moving. It
    /// learns that we are alive from our process and that we are gone from
    /// our exit; we learn that it is gone from the status socket's EOF.
    fn report_due(&self) -> bool {
        const INTERVAL_MS: u64 = STATUS_REPORT_INTERVAL.as_millis() as u64;
        self.last_report.map_or(true, |at| {
            self.now.as_millis().saturating_sub(at.as_millis()) >= INTERVAL_MS
        })
    }

    /// Tells master (master mode) that requests were served: a TAKEN and
    /// an AVAIL record (12 bytes each: pid, generation, state) in one
    /// write on the stream socket (master reads them one record at a
    /// time). Returns false when the write failed.
    fn report_busy_cycle(&mut self) -> bool {
        self.last_report = Some(self.now);
        let Mode::Master { status, generation } = &self.setup.mode else {
            return true;
        };
        let mut recs = [0u8; 2 * StatusRecord::SIZE];
        for (rec, avail) in recs
            .chunks_exact_mut(StatusRecord::SIZE)
            .zip([StatusRecord::TAKEN, StatusRecord::AVAIL])
        {
            let record = StatusRecord {
                pid: self.pid,
                generation: *generation,
                avail,
            };
            rec.copy_from_slice(&record.to_bytes());
        }
        matches!(nix::unistd::write(status, &recs), Ok(n) if n == recs.len())
    }

    /// The earliest of every timer: statistics, cache expiry, idle exit,
    /// paused listeners, client deadlines. [`Daemon::timers`] runs when it
    /// comes (cache operations expire what is due themselves). Computed
    /// every turn, so kept to plain comparisons.
    fn next_timer(&self) -> Instant {
        let mut next = self.own_timer;
        if let Some(t) = self.backend.next_deadline() {
            next = next.min(t);
        }
        if let Some(Reverse((when, _, _))) = self.timeouts.peek() {
            next = next.min(*when);
        }
        next
    }

    /// Recomputes `own_timer` after `next_stats`, `idle_until` or
    /// `listeners_paused_until` changed.
    fn set_own_timer(&mut self) {
        let mut t = self.next_stats;
        for other in [self.idle_until, self.listeners_paused_until]
            .into_iter()
            .flatten()
        {
            t = t.min(other);
        }
        self.own_timer = t;
    }

    /// How long to wait for events: until the next timer, and never longer
    /// than a third of `daemon_timeout` (the watchdog is fed every turn).
    fn poll_timeout(&self, next_timer: Instant) -> PollTimeout {
        let now = self.now.as_millis();
        let mut until = next_timer.as_millis();
        if let Some(step) = self.watchdog_step_ms {
            until = until.min(now.saturating_add(step));
        }
        // Deadlines are whole milliseconds, as the wait is: none is polled
        // for too early.
        let ms = until.saturating_sub(now);
        PollTimeout::try_from(ms.min(i32::MAX as u64) as i32).unwrap_or(PollTimeout::MAX)
    }

    /// Everything due at this turn's time (read once per turn, after the
    /// wait).
    fn timers(&mut self) {
        let now = self.now;
        self.backend.expire(now);
        if now >= self.next_stats {
            self.backend.log_interval_stats();
            self.write_metrics();
            self.next_stats = now.saturating_add(self.setup.stats_interval);
            self.set_own_timer();
        }
        if let Some(t) = self.idle_until {
            if now >= t && self.exit.is_none() {
                log::debug!("idle timeout -- exiting");
                self.exit = Some(ExitCause::Idle);
            }
        }
        if let Some(t) = self.listeners_paused_until {
            if now >= t {
                self.listeners_paused_until = None;
                self.set_own_timer();
                self.set_listeners(true);
            }
        }
        while let Some(&Reverse((when, idx, serial))) = self.timeouts.peek() {
            if when > now {
                break;
            }
            self.timeouts.pop();
            let Some(client) = self.clients.get_mut(idx).filter(|c| c.serial == serial) else {
                continue;
            };
            client.timer_queued = false;
            if client.conn.handle_timeout(now, &mut self.backend) {
                log::warn!(
                    "timeout on client connection after {}s",
                    self.setup.ipc_timeout.as_secs()
                );
                self.update_client(idx);
            } else {
                self.queue_timeout(idx);
            }
        }
    }

    /// Hands the current metrics to the metrics file writer (never waits
    /// for the disk).
    fn write_metrics(&self) {
        if let Some(m) = &self.metrics {
            m.submit(metrics::prometheus(&self.backend.counters()));
        }
    }

    /// Drops the queue entries of clients that left, once they outnumber
    /// the live ones: the queue stays within twice the clients (plus a
    /// little), at O(1) amortized cost per departure.
    fn forget_stale_timeouts(&mut self) {
        if self.timeouts.len() > 2 * self.clients.len() + 64 {
            let clients = &self.clients;
            self.timeouts.retain(|Reverse((_, idx, serial))| {
                clients
                    .get(*idx)
                    .is_some_and(|c| c.serial == *serial && c.timer_queued)
            });
        }
    }

    /// Puts a client that is in the middle of an exchange in the timeout
    /// queue, unless it is there already.
    fn queue_timeout(&mut self, idx: usize) {
        if let Some(client) = self.clients.get_mut(idx) {
            client.queue_timeout(idx, &mut self.timeouts);
        }
    }

    /// Makes room for `n` more descriptors below the limit by evicting the
    /// sessions closest to expiry. Returns false when it could not.
    fn ensure_fd_headroom(&mut self, n: usize) -> bool {
        self.fd_room().ensure(&mut self.backend, n)
    }

    /// The descriptor budget as it stands: the daemon's own descriptors
    /// and the clients besides the cached sessions, under `fd_limit`.
    fn fd_room(&self) -> FdRoom {
        FdRoom {
            fixed: self.base_fds + self.clients.len(),
            limit: self.setup.fd_limit,
        }
    }

    fn accept_clients(&mut self, index: usize) {
        loop {
            self.ensure_fd_headroom(1);
            let accepted = self.setup.listeners[index].accept();
            let errno = |e: &io::Error| e.raw_os_error().map(Errno::from_raw);
            let sock = match accepted {
                Ok(sock) => sock,
                Err(e)
                    if matches!(
                        errno(&e),
                        Some(Errno::EAGAIN | Errno::EINTR | Errno::ECONNABORTED)
                    ) =>
                {
                    return
                }
                Err(e)
                    if matches!(
                        errno(&e),
                        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
                    ) =>
                {
                    if self.backend.evict_for_fds() {
                        continue;
                    }
                    // Nothing left to evict: stop accepting for a moment
                    // rather than spin on a readable listener.
                    log::warn!("accept: out of descriptors; pausing accepts for 100ms");
                    self.set_listeners(false);
                    self.listeners_paused_until =
                        Some(self.now.saturating_add(Duration::from_millis(100)));
                    self.set_own_timer();
                    return;
                }
                Err(e) => {
                    log::warn!("accept connection: {e}");
                    return;
                }
            };
            // Credentials exist for Unix-domain peers only: a TCP (inet)
            // service is guarded by where it listens.
            let unix_peer = matches!(self.setup.listeners[index], Listener::Unix(_));
            match unix::peer_cred(sock.as_fd()) {
                Ok((pid, uid, gid)) if unix_peer && !self.setup.access.allows(uid, gid) => {
                    log::warn!(
                        "refusing connection from pid {pid} uid {uid} gid {gid}: not allowed"
                    );
                    self.backend.counters.clients_refused += 1;
                    // Say why instead of the greeting (best effort, never
                    // blocking), so the client can tell the person.
                    let mut refusal = Vec::new();
                    scache_proto::message::encode_refusal(
                        &mut refusal,
                        format!(
                            "uid {uid} gid {gid} is not allowed to use this cache \
                             (scache_allowed_uids, scache_allowed_gids)"
                        )
                        .as_bytes(),
                    );
                    let _ = socket::send(
                        sock.as_raw_fd(),
                        &refusal,
                        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
                    );
                    continue;
                }
                _ => {}
            }
            self.add_client(sock);
        }
    }

    fn add_client(&mut self, sock: OwnedFd) {
        let mut conn = ServerConn::new(self.setup.proto_limits, self.now);
        conn.set_timeout(Some(self.setup.ipc_timeout));
        let entry = self.clients.vacant_entry();
        let idx = entry.key();
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT | EpollFlags::EPOLLRDHUP;
        if let Err(e) = self.epoll.add(
            sock.as_fd(),
            EpollEvent::new(interest, Token::Client(idx).to_u64()),
        ) {
            log::warn!("epoll add client: {e}");
            return;
        }
        self.next_serial += 1;
        entry.insert(Client {
            sock,
            conn,
            interest,
            reported: 0,
            serial: self.next_serial,
            timer_queued: false,
        });
        self.backend.counters.clients_accepted += 1;
        self.backend.counters.clients_current = self.clients.len() as u64;
        self.idle_until = None;
        self.set_own_timer();
        log::debug!("connection established");
        // Send the greeting right away.
        self.flush_client(idx);
        self.update_client(idx);
    }

    /// Serves one client's readiness; returns whether a request was
    /// answered (for master's status records). The client is looked up
    /// once: reading, writing and the epoll interest work on it directly.
    fn client_event(&mut self, idx: usize, flags: EpollFlags) -> bool {
        let fds = self.fd_room();
        let Daemon {
            clients,
            backend,
            rbuf,
            now,
            epoll,
            timeouts,
            ..
        } = self;
        let Some(client) = clients.get_mut(idx) else {
            return false;
        };
        let readable = flags.intersects(
            EpollFlags::EPOLLIN
                | EpollFlags::EPOLLHUP
                | EpollFlags::EPOLLERR
                | EpollFlags::EPOLLRDHUP,
        );
        let mut outcome = Ok(());
        if readable {
            outcome = client.read(*now, backend, rbuf, fds);
        }
        if let Err(Close::AfterFlush) = outcome {
            // Answer what was asked before the (half-)close, then go.
            outcome = client
                .flush(*now, backend)
                .and(Err(Close::Now(CloseReason::PeerClosed)));
        }
        if outcome.is_ok() {
            outcome = client.flush(*now, backend);
        }
        if outcome.is_ok() {
            outcome = client.update(idx, epoll, timeouts);
        }
        let served = client.conn.requests() > client.reported;
        client.reported = client.conn.requests();
        if let Err(end) = outcome {
            self.close_client(idx, end.into_reason());
        }
        served
    }

    /// Writes pending output and hands over a descriptor when one is due.
    fn flush_client(&mut self, idx: usize) {
        let Some(client) = self.clients.get_mut(idx) else {
            return;
        };
        if let Err(end) = client.flush(self.now, &mut self.backend) {
            self.close_client(idx, end.into_reason());
        }
    }

    /// After I/O: log notices, close finished connections, set the epoll
    /// interest, and queue the client's deadline.
    fn update_client(&mut self, idx: usize) {
        let Some(client) = self.clients.get_mut(idx) else {
            return;
        };
        if let Err(end) = client.update(idx, &self.epoll, &mut self.timeouts) {
            self.close_client(idx, end.into_reason());
        }
    }

    fn close_client(&mut self, idx: usize, why: CloseReason) {
        if !self.clients.contains(idx) {
            return;
        }
        let mut client = self.clients.remove(idx);
        if client.timer_queued {
            self.forget_stale_timeouts();
        }
        client.conn.handle_close(&mut self.backend, why);
        while let Some(notice) = client.conn.poll_notice() {
            log_notice(&notice);
        }
        let _ = self.epoll.delete(client.sock.as_fd());
        drop(client);
        self.backend.counters.clients_current = self.clients.len() as u64;
        log::debug!("connection closed");
        if self.clients.is_empty() {
            self.idle_until = self
                .setup
                .max_idle
                .map(|limit| self.now.saturating_add(limit));
            self.set_own_timer();
            if self.exit.is_none() && self.setup.listeners.is_empty() {
                // -S: the one client on standard input is done.
                self.exit = Some(ExitCause::StdinDone);
            }
        }
    }

    fn set_listeners(&mut self, on: bool) {
        for (i, l) in self.setup.listeners.iter().enumerate() {
            let mut ev = EpollEvent::new(listener_interest(on), Token::Listener(i).to_u64());
            let _ = self.epoll.modify(l.as_fd(), &mut ev);
        }
    }

    fn shutdown(&mut self, cause: ExitCause) {
        if let ExitCause::Signal(sig) = cause {
            log::info!("exiting on signal {sig}");
        }
        let idxs: Vec<usize> = self.clients.iter().map(|(i, _)| i).collect();
        for i in idxs {
            self.close_client(i, CloseReason::PeerClosed);
        }
        self.backend.log_interval_stats();
        self.backend.close_all();
        if let Some(m) = self.metrics.take() {
            // The state after exit (nothing cached), waited for a little.
            let last = metrics::prometheus(&self.backend.counters());
            let path = m.path().display().to_string();
            if !m.finish(last, metrics::EXIT_WRITE_WAIT) {
                log::warn!(
                    "metrics file {path}: last write still pending after {}s; exiting anyway",
                    metrics::EXIT_WRITE_WAIT.as_secs()
                );
            }
        }
        if let Mode::Standalone {
            socket_path: Some(path),
        } = &self.setup.mode
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn log_notice(notice: &Notice) {
    match notice {
        Notice::Malformed { kind, reason } => {
            log::warn!("{kind}: bad or missing request parameter: {reason}")
        }
        Notice::ExtraAttribute { kind, name } => {
            log::warn!("{kind}: unexpected attribute {name} in request, ignored")
        }
        Notice::NoDescriptor => log::warn!("save_endp: unable to receive file descriptor"),
        Notice::UnexpectedDescriptor => {
            log::warn!("unexpected file descriptor from client, closed")
        }
        Notice::SessionPutBack => {
            log::info!("client left before taking its session; session put back")
        }
    }
}

/// Number of open descriptors of this process.
pub fn count_open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1))
}
