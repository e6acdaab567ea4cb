//! The "floor": a minimal server speaking the connection-cache protocol
//! with no cache logic beyond one FIFO of descriptors per label (no expiry,
//! no limits, no statistics, no status records), so that the cost of the
//! exchanges themselves (greeting, dummy / descriptor / dummy, replies) can
//! be measured and every daemon compared with it.
//!
//! It is started exactly like Postfix's daemon (by the harness or by
//! master): it accepts master's argv (`-l -t unix -n scache -o ...`, all
//! ignored except `-o floor_io=...`), serves the inherited listener on
//! fd 6, keeps the status channel fd 5 open without writing to it, and
//! exits (status 0) when fd 5 reports end of file.
//!
//! Two I/O designs, chosen with `-o floor_io=epoll|threads`:
//!
//! - `epoll` (default): one thread, level-triggered epoll, non-blocking
//!   sockets, exactly one `read`/`recvmsg` per readiness event and one
//!   `write` per reply; replies to pipelined requests are batched in one
//!   write. No poll before a read or a write.
//! - `threads`: one thread per connection with blocking sockets (no epoll
//!   at all: the blocking `read` is the wait) and one mutex around the
//!   cache.
//!
//! Messages are parsed the way the daemon parses them: the fast path for
//! the shapes Postfix's clients send (`scache_proto::testkit`, feature
//! `testkit`), else the general decoder, so the floor never parses slower
//! than the daemon it is compared with.
//!
//! Per save+find cycle both make the same 9 system calls on the
//! connection (save: read, write dummy, recvmsg, write status; find: read,
//! write reply, read dummy, sendmsg + close of the handed-out descriptor;
//! the second dummy usually arrives with the next request); `epoll` adds its
//! `epoll_wait` calls, which are shared by all connections that are ready
//! at once (13 per cycle with 1 client, 9.5 with 8, measured with
//! `scache-load --strace`). Measured on 2 CPUs, `epoll` is the faster design
//! with 8 clients (about 2x: 55k against 19k-30k cycles/s) and 64 clients
//! (36k against 24k); with 1 client the two are within this machine's noise
//! (each exchange then waits for a wake-up, whichever design). A thread per
//! connection pays a wake-up per message and contends on the cache mutex;
//! the single epoll thread, once busy, finds several connections ready per
//! `epoll_wait` and never sleeps between them. Hence `epoll` is the default.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use hashbrown::HashMap;
use nix::libc;
use scache_proto::attr::{Decoded, Decoder, Limits};
use scache_proto::message::{self, parse_request, Request, RequestKind, Status};
use scache_proto::testkit::{parse_canonical, Canonical};
use scache_proto::unix::{recv_fd, send_fd, RecvFdError};

/// Listening descriptor handed over by master.
const LISTEN_FD: RawFd = 6;
/// Status channel descriptor (end of file = master is gone).
const STATUS_FD: RawFd = 5;

/// One cached session.
struct Session {
    fd: OwnedFd,
    prop: Vec<u8>,
}

/// The whole "cache": a FIFO of sessions per endpoint label and the latest
/// binding per destination label.
#[derive(Default)]
struct Cache {
    endp: HashMap<Vec<u8>, VecDeque<Session>>,
    dest: HashMap<Vec<u8>, (Vec<u8>, Vec<u8>)>,
}

impl Cache {
    fn save_endp(&mut self, label: &[u8], prop: &[u8], fd: OwnedFd) {
        let session = Session {
            fd,
            prop: prop.to_vec(),
        };
        match self.endp.get_mut(label) {
            Some(q) => q.push_back(session),
            None => {
                self.endp.insert(label.to_vec(), VecDeque::from([session]));
            }
        }
    }

    fn find_endp(&mut self, label: &[u8]) -> Option<Session> {
        self.endp.get_mut(label).and_then(|q| q.pop_front())
    }

    fn save_dest(&mut self, dest: &[u8], dest_prop: &[u8], endp: &[u8]) {
        match self.dest.get_mut(dest) {
            Some((p, e)) => {
                if p != dest_prop || e != endp {
                    p.clear();
                    p.extend_from_slice(dest_prop);
                    e.clear();
                    e.extend_from_slice(endp);
                }
            }
            None => {
                self.dest
                    .insert(dest.to_vec(), (dest_prop.to_vec(), endp.to_vec()));
            }
        }
    }

    /// The destination's properties and a session of its endpoint; the
    /// destination properties are copied into `dest_prop`.
    fn find_dest(&mut self, dest: &[u8], dest_prop: &mut Vec<u8>) -> Option<Session> {
        let (p, e) = self.dest.get(dest)?;
        let s = self.endp.get_mut(e.as_slice())?.pop_front()?;
        dest_prop.clear();
        dest_prop.extend_from_slice(p);
        Some(s)
    }
}

/// Access to the cache: a `RefCell` for the single-threaded design, a
/// mutex for the threaded one.
trait CacheAccess {
    fn with<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> R;
}

impl CacheAccess for RefCell<Cache> {
    fn with<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> R {
        f(&mut self.borrow_mut())
    }
}

impl CacheAccess for Mutex<Cache> {
    fn with<R>(&self, f: impl FnOnce(&mut Cache) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Where a connection is in its exchange.
enum State {
    /// Waiting for a request.
    Request,
    /// `save_endp` accepted (dummy sent): waiting for the descriptor.
    SaveFd,
    /// `find_*` hit answered: waiting for the first dummy, then sending
    /// this descriptor.
    FindDummy1(OwnedFd),
    /// Descriptor sent: waiting for the second dummy.
    FindDummy2,
}

/// What the caller should do with a connection after an event.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Keep it.
    Keep,
    /// Close it (end of file or protocol error).
    Close,
}

const READ_SIZE: usize = 4096;

/// A message to serve: read in place by the fast path, or complete in the
/// decoder.
enum Msg<'a> {
    Fast(Canonical<'a>),
    Decoded,
}

struct Conn {
    sock: OwnedFd,
    rbuf: Box<[u8]>,
    rpos: usize,
    rlen: usize,
    decoder: Decoder,
    state: State,
    out: Vec<u8>,
    /// Label and properties of the `save_endp` waiting for its descriptor.
    label: Vec<u8>,
    prop: Vec<u8>,
    /// Scratch for `find_dest`.
    dest_prop: Vec<u8>,
}

impl Conn {
    fn new(sock: OwnedFd) -> Conn {
        Conn {
            sock,
            rbuf: vec![0; READ_SIZE].into_boxed_slice(),
            rpos: 0,
            rlen: 0,
            decoder: Decoder::new(Limits::default()),
            state: State::Request,
            out: Vec::with_capacity(512),
            label: Vec::with_capacity(256),
            prop: Vec::with_capacity(256),
            dest_prop: Vec::with_capacity(256),
        }
    }

    fn greet(&mut self) -> io::Result<()> {
        message::encode_greeting(&mut self.out);
        self.flush()
    }

    /// Writes all of `out` (normally one `write`; a full socket buffer makes
    /// it wait for room, which only a client that does not read its replies
    /// causes).
    fn flush(&mut self) -> io::Result<()> {
        let mut pos = 0;
        while pos < self.out.len() {
            let rest = &self.out[pos..];
            // SAFETY: `rest` is a valid readable buffer of that length and
            // the descriptor is open.
            let n = unsafe {
                libc::send(
                    self.sock.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                pos += n as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => {
                    scache_proto::unix::wait(
                        self.sock.as_fd(),
                        scache_proto::unix::Interest::Write,
                        std::time::Duration::from_secs(3600),
                    )?;
                }
                _ => {
                    self.out.clear();
                    return Err(e);
                }
            }
        }
        self.out.clear();
        Ok(())
    }

    /// Handles one readiness event (or, on a blocking socket, one blocking
    /// read): exactly one `read` or `recvmsg`, then every complete message
    /// received, then at most one `write`.
    fn on_readable<C: CacheAccess>(&mut self, cache: &C) -> Next {
        if let State::SaveFd = self.state {
            return match recv_fd(self.sock.as_fd()) {
                Ok(fd) => {
                    cache.with(|c| c.save_endp(&self.label, &self.prop, fd));
                    self.state = State::Request;
                    message::encode_status(&mut self.out, Status::Ok);
                    self.finish()
                }
                Err(RecvFdError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    Next::Keep
                }
                Err(RecvFdError::Eof) | Err(RecvFdError::Io(_)) => Next::Close,
                Err(_) => {
                    // Postfix answers status 2 when no descriptor came.
                    self.state = State::Request;
                    message::encode_status(&mut self.out, Status::Fail);
                    self.finish()
                }
            };
        }
        if self.rpos == self.rlen {
            self.rpos = 0;
            self.rlen = 0;
        } else if self.rlen == READ_SIZE {
            self.rbuf.copy_within(self.rpos..self.rlen, 0);
            self.rlen -= self.rpos;
            self.rpos = 0;
        }
        let room = &mut self.rbuf[self.rlen..];
        // SAFETY: `room` is a valid writable buffer of that length and the
        // descriptor is open.
        let n = unsafe { libc::read(self.sock.as_raw_fd(), room.as_mut_ptr().cast(), room.len()) };
        if n == 0 {
            return Next::Close;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Next::Keep,
                _ => Next::Close,
            };
        }
        self.rlen += n as usize;
        while self.rpos < self.rlen {
            if !self.decoder.in_message() {
                // The daemon's fast path, so that the floor parses no
                // slower than the daemon. The buffer steps aside while the
                // message borrows it (a move, no allocation).
                let rbuf = std::mem::take(&mut self.rbuf);
                let limits = self.decoder.limits();
                let next = match parse_canonical(&rbuf[self.rpos..self.rlen], &limits) {
                    Some((used, canonical)) => {
                        self.rpos += used;
                        Some(self.on_message(cache, Msg::Fast(canonical)))
                    }
                    None => None,
                };
                self.rbuf = rbuf;
                match next {
                    Some(Next::Close) => return Next::Close,
                    Some(Next::Keep) => {
                        if let State::SaveFd = self.state {
                            if self.rpos != self.rlen {
                                return Next::Close;
                            }
                            break;
                        }
                        continue;
                    }
                    None => {}
                }
            }
            match self.decoder.decode(&self.rbuf[self.rpos..self.rlen]) {
                Decoded::Partial => {
                    self.rpos = self.rlen;
                    break;
                }
                Decoded::Rejected { used, .. } => {
                    self.rpos += used;
                    if !matches!(self.state, State::Request) {
                        return Next::Close;
                    }
                    message::encode_status(&mut self.out, Status::Bad);
                }
                Decoded::Complete { used, .. } => {
                    self.rpos += used;
                    if self.on_message(cache, Msg::Decoded) == Next::Close {
                        return Next::Close;
                    }
                    if let State::SaveFd = self.state {
                        // The descriptor must come next, alone.
                        if self.rpos != self.rlen {
                            return Next::Close;
                        }
                        break;
                    }
                }
            }
        }
        self.finish()
    }

    fn finish(&mut self) -> Next {
        if self.out.is_empty() {
            return Next::Keep;
        }
        match self.flush() {
            Ok(()) => Next::Keep,
            Err(_) => Next::Close,
        }
    }

    fn on_message<C: CacheAccess>(&mut self, cache: &C, msg: Msg<'_>) -> Next {
        let dummy = match msg {
            Msg::Fast(Canonical::Dummy) => true,
            Msg::Fast(Canonical::Request(_)) => false,
            Msg::Decoded => match self.decoder.message() {
                Some(m) => message::is_dummy(&m),
                None => return Next::Close,
            },
        };
        match std::mem::replace(&mut self.state, State::Request) {
            State::Request => {}
            State::FindDummy1(fd) => {
                if !dummy {
                    return Next::Close;
                }
                // The reply must be on its way before the descriptor.
                if self.flush().is_err() || send_fd(self.sock.as_fd(), fd.as_fd()).is_err() {
                    return Next::Close;
                }
                drop(fd);
                self.state = State::FindDummy2;
                return Next::Keep;
            }
            State::FindDummy2 => {
                return if dummy { Next::Keep } else { Next::Close };
            }
            State::SaveFd => unreachable!("no message is decoded while a descriptor is due"),
        }
        let decoded;
        let request = match msg {
            Msg::Fast(Canonical::Request(request)) => request,
            Msg::Fast(Canonical::Dummy) => {
                message::encode_malformed(&mut self.out, RequestKind::Missing);
                return Next::Keep;
            }
            Msg::Decoded => {
                let Some(m) = self.decoder.message() else {
                    return Next::Close;
                };
                decoded = m;
                match parse_request(&decoded) {
                    Ok(p) => p.request,
                    Err(e) => {
                        message::encode_malformed(&mut self.out, e.kind());
                        return Next::Keep;
                    }
                }
            }
        };
        match request {
            Request::SaveEndp {
                endp, endp_prop, ..
            } => {
                self.label.clear();
                self.label.extend_from_slice(endp);
                self.prop.clear();
                self.prop.extend_from_slice(endp_prop);
                message::encode_dummy(&mut self.out);
                self.state = State::SaveFd;
            }
            Request::FindEndp { endp } => match cache.with(|c| c.find_endp(endp)) {
                Some(s) => {
                    message::encode_find_endp_reply(&mut self.out, Status::Ok, &s.prop);
                    self.state = State::FindDummy1(s.fd);
                }
                None => message::encode_find_endp_reply(&mut self.out, Status::Fail, b""),
            },
            Request::SaveDest {
                dest,
                dest_prop,
                endp,
                ..
            } => {
                cache.with(|c| c.save_dest(dest, dest_prop, endp));
                message::encode_status(&mut self.out, Status::Ok);
            }
            Request::FindDest { dest } => {
                let dp = &mut self.dest_prop;
                match cache.with(|c| c.find_dest(dest, dp)) {
                    Some(s) => {
                        message::encode_find_dest_reply(
                            &mut self.out,
                            Status::Ok,
                            &self.dest_prop,
                            &s.prop,
                        );
                        self.state = State::FindDummy1(s.fd);
                    }
                    None => message::encode_find_dest_reply(&mut self.out, Status::Fail, b"", b""),
                }
            }
            Request::Stats => message::encode_malformed(&mut self.out, RequestKind::Stats),
            Request::List { .. } => message::encode_malformed(&mut self.out, RequestKind::List),
        }
        Next::Keep
    }
}

/// Which I/O design to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// One thread, level-triggered epoll.
    Epoll,
    /// One blocking thread per connection.
    Threads,
}

/// Parses master's argv (getopt string `cdDi:lm:n:o:s:St:uvVz`) and returns
/// the I/O mode chosen with `-o floor_io=...`. Everything else is accepted
/// and ignored; positional arguments and unknown options are errors.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<IoMode, String> {
    let mut mode = IoMode::Epoll;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(opts) = arg.strip_prefix('-').filter(|o| !o.is_empty()) else {
            return Err(format!("unexpected command-line argument: {arg}"));
        };
        for (i, c) in opts.char_indices() {
            match c {
                'c' | 'd' | 'D' | 'l' | 'S' | 'u' | 'v' | 'V' | 'z' => {}
                'i' | 'm' | 'n' | 'o' | 's' | 't' => {
                    let attached = &opts[i + c.len_utf8()..];
                    let value = if attached.is_empty() {
                        it.next()
                            .ok_or_else(|| format!("option -{c} requires an argument"))?
                    } else {
                        attached.to_string()
                    };
                    if c == 'o' {
                        if let Some((name, v)) = value.split_once('=') {
                            if name.trim() == "floor_io" {
                                mode = match v.trim() {
                                    "epoll" => IoMode::Epoll,
                                    "threads" => IoMode::Threads,
                                    other => return Err(format!("bad floor_io: {other}")),
                                };
                            }
                        }
                    }
                    break;
                }
                _ => return Err(format!("invalid option -- '{c}'")),
            }
        }
    }
    Ok(mode)
}

fn fatal(msg: &str) -> ! {
    eprintln!("scache-floor: fatal: {msg}");
    std::process::exit(1);
}

/// Entry point of the `scache-floor` binary.
pub fn main() -> ! {
    let mode = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| fatal(&e));
    let _ = crate::sys::raise_nofile_limit();
    // SAFETY: ignoring SIGPIPE installs no handler code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    // SAFETY: master hands over fds 5 and 6; this process owns them from
    // here on and nothing else wraps them.
    let (status, listener) = unsafe {
        (
            OwnedFd::from_raw_fd(STATUS_FD),
            OwnedFd::from_raw_fd(LISTEN_FD),
        )
    };
    for fd in [&status, &listener] {
        // SAFETY: plain fcntl on an open descriptor.
        unsafe {
            libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    let r = match mode {
        IoMode::Epoll => run_epoll(status.as_fd(), listener.as_fd()),
        IoMode::Threads => run_threads(status, listener),
    };
    match r {
        Ok(()) => std::process::exit(0),
        Err(e) => fatal(&e.to_string()),
    }
}

/// Accepts one connection: `Ok(None)` when none is pending (or another
/// process took it, or a transient error such as `EMFILE`).
fn accept(listener: BorrowedFd<'_>, nonblocking: bool) -> io::Result<Option<OwnedFd>> {
    let flags = libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: accept4 with null address pointers is valid.
    let fd = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            flags,
        )
    };
    if fd >= 0 {
        // SAFETY: accept4 returned a fresh descriptor we own.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN)
        | Some(libc::EINTR)
        | Some(libc::ECONNABORTED)
        | Some(libc::EMFILE)
        | Some(libc::ENFILE)
        | Some(libc::ENOBUFS)
        | Some(libc::ENOMEM) => Ok(None),
        _ => Err(e),
    }
}

fn epoll_ctl(ep: RawFd, op: libc::c_int, fd: RawFd, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid epoll descriptor and event structure.
    if unsafe { libc::epoll_ctl(ep, op, fd, &mut ev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const TOKEN_STATUS: u64 = u64::MAX;
const TOKEN_LISTEN: u64 = u64::MAX - 1;

fn run_epoll(status: BorrowedFd<'_>, listener: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: epoll_create1 has no memory preconditions.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    let ep_raw = ep.as_raw_fd();
    epoll_ctl(
        ep_raw,
        libc::EPOLL_CTL_ADD,
        status.as_raw_fd(),
        TOKEN_STATUS,
    )?;
    epoll_ctl(
        ep_raw,
        libc::EPOLL_CTL_ADD,
        listener.as_raw_fd(),
        TOKEN_LISTEN,
    )?;
    let cache = RefCell::new(Cache::default());
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        // SAFETY: `events` is a valid writable array of that many entries.
        let n = unsafe { libc::epoll_wait(ep_raw, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == TOKEN_STATUS {
                return Ok(());
            }
            if token == TOKEN_LISTEN {
                // One accept per event: a level-triggered listener reports
                // the next pending connection on the next round.
                if let Some(sock) = accept(listener, true)? {
                    let raw = sock.as_raw_fd();
                    let mut conn = Conn::new(sock);
                    if conn.greet().is_ok() {
                        let key = conns.insert(conn);
                        epoll_ctl(ep_raw, libc::EPOLL_CTL_ADD, raw, key as u64)?;
                    }
                }
                continue;
            }
            let key = token as usize;
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            if conn.on_readable(&cache) == Next::Close {
                // Closing the socket removes it from the epoll set.
                conns.remove(key);
            }
        }
    }
}

fn run_threads(status: OwnedFd, listener: OwnedFd) -> io::Result<()> {
    std::thread::Builder::new()
        .name("status".into())
        .spawn(move || {
            let mut b = [0u8; 16];
            loop {
                // SAFETY: valid buffer; the descriptor is owned by this thread.
                let n = unsafe { libc::read(status.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // End of file (or anything else) from master: exit.
                std::process::exit(0);
            }
        })?;
    let cache = Arc::new(Mutex::new(Cache::default()));
    loop {
        scache_proto::unix::wait(
            listener.as_fd(),
            scache_proto::unix::Interest::Read,
            std::time::Duration::from_secs(3600),
        )?;
        let Some(sock) = accept(listener.as_fd(), false)? else {
            continue;
        };
        let cache = cache.clone();
        std::thread::Builder::new()
            .name("conn".into())
            .spawn(move || {
                let mut conn = Conn::new(sock);
                if conn.greet().is_err() {
                    return;
                }
                while conn.on_readable(&*cache) == Next::Keep {}
            })?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn master_argv() {
        assert_eq!(parse_args(args("-l -t unix -n scache")), Ok(IoMode::Epoll));
        assert_eq!(
            parse_args(args(
                "-l -t unix -u -c -o max_idle=3600s -o floor_io=threads"
            )),
            Ok(IoMode::Threads)
        );
        assert_eq!(
            parse_args(args("-lt unix -ofloor_io=epoll")),
            Ok(IoMode::Epoll)
        );
        assert!(parse_args(args("-l -t unix extra")).is_err());
        assert!(parse_args(args("-x")).is_err());
        assert!(parse_args(args("-o")).is_err());
        assert!(parse_args(args("-o floor_io=fast")).is_err());
    }

    #[test]
    fn fifo_and_bindings() {
        let mut c = Cache::default();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        c.save_endp(b"e", b"p1", a.into());
        c.save_endp(b"e", b"p2", b.into());
        c.save_dest(b"d", b"dp", b"e");
        let mut dp = Vec::new();
        assert_eq!(c.find_dest(b"d", &mut dp).unwrap().prop, b"p1");
        assert_eq!(dp, b"dp");
        assert_eq!(c.find_endp(b"e").unwrap().prop, b"p2");
        assert!(c.find_endp(b"e").is_none());
        assert!(c.find_dest(b"d", &mut dp).is_none());
        assert!(c.find_dest(b"x", &mut dp).is_none());
    }
}
