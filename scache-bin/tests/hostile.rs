//! Hostile clients: one test per row of the table in `docs/robustness.md`.
//!
//! Every row starts a fresh daemon the way master(8) does and asserts
//!
//! 1. the exact reply bytes (or that the connection is closed, or that
//!    nothing is answered yet when nothing is due);
//! 2. that the daemon still serves another client correctly afterwards: a
//!    fresh `save_endp` + `find_endp` round trip that hands back the very
//!    file that was saved (same `st_dev`/`st_ino`);
//! 3. that its descriptor count (`/proc/PID/fd`) returns to what it was
//!    before the row.
//!
//! # Measuring Postfix
//!
//! The same rows run against Postfix's own daemon
//! (`/usr/lib/postfix/sbin/scache`, started with `-o ipc_timeout=5s` and
//! read with 2 s socket timeouts, because it blocks) in *measurement mode*:
//! nothing is asserted, every step's outcome is recorded and printed.
//!
//! ```text
//! # every row, Postfix only, report on stderr (and appended to $SCACHE_MEASURE_OUT if set):
//! cargo test -p scache-bin --test hostile -- --ignored --nocapture postfix_measurements
//! # or each row test runs Postfix too after asserting ours:
//! SCACHE_MEASURE_POSTFIX=1 cargo test -p scache-bin --test hostile -- --nocapture
//! ```

mod common;

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    find_dest_req, find_endp_req, find_reply, identity, measuring, ours, req, save_dest_req,
    save_endp_req, sees_eof, session, settled_fd_count, show, start, Findings, Peer, Target,
};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use scache_proto::unix;
use scache_testkit::harness::{postfix_scache_for_test, Harness};
use scache_testkit::wire::{self, text_message};

const OK: &[u8] = b"status\x000\0\0";
const BAD: &[u8] = b"status\x001\0\0";
const FAIL: &[u8] = b"status\x002\0\0";
const DUMMY: &[u8] = b"dummy\0\0\0";
const MISS_ENDP: &[u8] = b"status\x002\0property\0\0\0";
const MISS_DEST: &[u8] = b"status\x002\0property\0\0property\0\0\0";
const BAD_FIND_ENDP: &[u8] = b"status\x001\0property\0\0\0";
const BAD_FIND_DEST: &[u8] = b"status\x001\0property\0\0property\0\0\0";

const TEN_MB: usize = 10 * 1024 * 1024;
/// RSS growth allowed while refusing a 10 MB string (KiB).
const RSS_BOUND_KIB: u64 = 2048;

// ---------------------------------------------------------------------------
// Outcomes of reads, never panicking (Postfix's daemon misbehaves on purpose
// in these rows, and measurement mode must record it, not die).

/// What one attempt to read a reply message produced.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    /// A complete attribute list.
    Msg(Vec<u8>),
    /// End of file (with any partial message read before it).
    Eof(Vec<u8>),
    /// Nothing (more) within the socket timeout.
    Timeout(Vec<u8>),
    /// Another read error.
    Error(String),
}

impl std::fmt::Display for Got {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let partial = |p: &Vec<u8>| {
            if p.is_empty() {
                String::new()
            } else {
                format!(" after partial `{}`", short(p))
            }
        };
        match self {
            Got::Msg(m) => write!(f, "reply `{}`", short(m)),
            Got::Eof(p) => write!(f, "connection closed{}", partial(p)),
            Got::Timeout(p) => write!(f, "no reply (timeout){}", partial(p)),
            Got::Error(e) => write!(f, "read error {e}"),
        }
    }
}

fn short(b: &[u8]) -> String {
    let s = show(b);
    if s.chars().count() > 120 {
        format!(
            "{}...({} bytes)",
            s.chars().take(120).collect::<String>(),
            b.len()
        )
    } else {
        s
    }
}

/// Reads one attribute list (nothing is read past it) and says how the
/// read ended.
fn read_msg(sock: &mut UnixStream) -> Got {
    match wire::read_message_or_partial(sock) {
        Ok(m) => Got::Msg(m),
        Err(wire::Incomplete { error, partial }) => match error.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => Got::Eof(partial),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Got::Timeout(partial),
            _ => Got::Error(error.to_string()),
        },
    }
}

/// Sends one descriptor, or several in one `SCM_RIGHTS` message, with
/// `data` as the stream bytes of the same `sendmsg`. Returns the byte count.
fn send_fds(sock: &UnixStream, data: &[u8], fds: &[&OwnedFd]) -> io::Result<usize> {
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)
        .map_err(io::Error::from)
}

fn find_dest_reply(dest_prop: &[u8], endp_prop: &[u8]) -> Vec<u8> {
    req(&[
        b"status",
        b"0",
        b"property",
        dest_prop,
        b"property",
        endp_prop,
    ])
}

// ---------------------------------------------------------------------------
// One row against one daemon.

/// The last log records of a daemon.
fn log_tail(h: &Harness) -> String {
    // Log records travel asynchronously: give the last ones a moment.
    std::thread::sleep(Duration::from_millis(300));
    let lines = h.log_lines();
    let from = lines.len().saturating_sub(30);
    lines[from..].join("\n")
}

/// A row in progress: the daemon, its descriptor baseline, what was seen.
struct Row {
    target: Target,
    h: Harness,
    base_fds: usize,
    /// Every step's outcome (printed in measurement mode and on failure),
    /// and where Postfix's daemon did not do what ours must.
    found: Findings,
    /// Connections a row wants kept open until the end of the row (so the
    /// "still serves others" check runs while they are still connected).
    held: Vec<Peer>,
    /// Far ends of saved sessions, kept so the cached ends stay alive.
    far: Vec<OwnedFd>,
    /// Steps are not noted (the routine checks summarise themselves).
    quiet: bool,
}

/// Raises this process's descriptor limit to its hard limit (the 1,000-
/// client row holds over a thousand sockets, and daemons inherit the limit
/// they are started with).
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

impl Row {
    fn start(target: Target, name: &'static str) -> Option<Row> {
        raise_fd_limit();
        let (program, overrides): (_, &[&str]) = match target {
            Target::Ours => (ours(), &[]),
            Target::Postfix => (postfix_scache_for_test(name)?, &["ipc_timeout=5s"]),
        };
        let h = start(&program, overrides);
        h.wait_ready(Duration::from_secs(20)).expect("daemon ready");
        let base_fds = settled_fd_count(&h);
        Some(Row {
            target,
            h,
            base_fds,
            found: Findings::new(target, name),
            held: Vec::new(),
            far: Vec::new(),
            quiet: false,
        })
    }

    /// Socket timeout for this daemon's replies.
    fn timeout(&self) -> Duration {
        match self.target {
            Target::Ours => Duration::from_secs(5),
            Target::Postfix => Duration::from_secs(2),
        }
    }

    fn ours(&self) -> bool {
        self.target == Target::Ours
    }

    fn note(&mut self, s: impl Into<String>) {
        if !self.quiet {
            self.found.note(s);
        }
    }

    /// Ours: fail the test (with the daemon's log tail). Postfix: record
    /// the difference.
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        let h = &self.h;
        self.found.check_with(ok, what, || {
            format!("\n--- daemon log (tail) ---\n{}", log_tail(h))
        });
    }

    /// A new client, greeting checked. None (recorded) if the daemon does
    /// not greet within the timeout (Postfix busy with another client).
    fn peer(&mut self, step: &str) -> Option<Peer> {
        let t0 = Instant::now();
        match self.h.connect_timeout(self.timeout()) {
            Ok(sock) => {
                sock.set_read_timeout(Some(self.timeout())).unwrap();
                sock.set_write_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                Some(Peer { sock })
            }
            Err(e) => {
                self.note(format!("{step}: no greeting after {:?}: {e}", t0.elapsed()));
                self.check(false, || {
                    format!("{step}: a new client is not greeted: {e}")
                });
                None
            }
        }
    }

    fn send(&mut self, p: &mut Peer, step: &str, bytes: &[u8]) -> bool {
        match p.sock.write_all(bytes) {
            Ok(()) => true,
            Err(e) => {
                self.note(format!("{step}: send failed: {e}"));
                self.check(false, || format!("{step}: send failed: {e}"));
                false
            }
        }
    }

    /// Reads one reply and checks it is `want`.
    fn expect(&mut self, p: &mut Peer, step: &str, want: &[u8]) -> Got {
        let got = read_msg(&mut p.sock);
        self.note(format!("{step}: {got}"));
        let ok = got == Got::Msg(want.to_vec());
        self.check(ok, || {
            format!("{step}: expected `{}`, got {got}", short(want))
        });
        got
    }

    /// Sends `request` and checks the one reply.
    fn ask(&mut self, p: &mut Peer, step: &str, request: &[u8], want: &[u8]) -> Got {
        if !self.send(p, step, request) {
            return Got::Error("send failed".into());
        }
        self.expect(p, step, want)
    }

    /// [`Row::ask`] for each `(step, request as text (see `wire::text_message`),
    /// reply)` in turn on one connection; each step is named in a failure.
    fn ask_all(&mut self, p: &mut Peer, cases: &[(&str, &str, &[u8])]) {
        for (step, request, want) in cases {
            self.ask(p, step, &text_message(request), want);
        }
    }

    /// Checks that the daemon closes the connection (EOF).
    fn expect_closed(&mut self, p: &mut Peer, step: &str) {
        let got = read_msg(&mut p.sock);
        self.note(format!("{step}: {got}"));
        let ok = got == Got::Eof(Vec::new());
        self.check(ok, || {
            format!("{step}: expected the connection to be closed, got {got}")
        });
    }

    /// Checks that nothing arrives within `wait`.
    fn expect_silence(&mut self, p: &mut Peer, step: &str, wait: Duration) {
        p.sock.set_read_timeout(Some(wait)).unwrap();
        let got = read_msg(&mut p.sock);
        p.sock.set_read_timeout(Some(self.timeout())).unwrap();
        self.note(format!("{step}: {got}"));
        let ok = got == Got::Timeout(Vec::new());
        self.check(ok, || format!("{step}: expected no reply yet, got {got}"));
    }

    /// Sends a `find_endp` for a label never saved on the same connection:
    /// the reply must be a plain miss (the connection is still in sync).
    fn probe(&mut self, p: &mut Peer, step: &str) {
        let got = self.ask(p, step, &find_endp_req(b"probe-never-saved"), MISS_ENDP);
        let verdict = match &got {
            Got::Msg(m) if m == MISS_ENDP => "in sync".to_string(),
            Got::Msg(_) => "DESYNC (wrong reply)".to_string(),
            Got::Eof(_) => "connection closed".to_string(),
            Got::Timeout(_) => "no reply (hang or desync)".to_string(),
            Got::Error(e) => format!("error {e}"),
        };
        self.note(format!("{step}: verdict: {verdict}"));
    }

    /// A complete `save_endp` with a fresh session; returns the identity
    /// of the cached end (its far end is kept in `self.far`).
    fn save(
        &mut self,
        p: &mut Peer,
        step: &str,
        ttl: &str,
        label: &[u8],
        prop: &[u8],
    ) -> Option<(u64, u64)> {
        let (a, b) = session();
        let id = identity(&a);
        self.far.push(b);
        let got = self.ask(
            p,
            &format!("{step} (request)"),
            &save_endp_req(ttl.as_bytes(), label, prop),
            DUMMY,
        );
        if got != Got::Msg(DUMMY.to_vec()) {
            return None;
        }
        if let Err(e) = unix::send_fd(p.sock.as_fd(), a.as_fd()) {
            self.note(format!("{step}: send_fd failed: {e}"));
            self.check(false, || format!("{step}: send_fd failed: {e}"));
            return None;
        }
        let got = self.expect(p, &format!("{step} (status)"), OK);
        (got == Got::Msg(OK.to_vec())).then_some(id)
    }

    /// Completes the descriptor hand-over of a `find_*` whose status-0
    /// reply was read; checks the identity.
    fn take_fd(&mut self, p: &mut Peer, step: &str, want: Option<(u64, u64)>) -> Option<OwnedFd> {
        if !self.send(p, step, DUMMY) {
            return None;
        }
        match unix::recv_fd(p.sock.as_fd()) {
            Ok(fd) => {
                let id = identity(&fd);
                self.note(format!("{step}: got a descriptor {id:?}"));
                if let Some(want) = want {
                    self.check(id == want, || {
                        format!("{step}: wrong descriptor {id:?}, saved {want:?}")
                    });
                }
                self.send(p, step, DUMMY);
                Some(fd)
            }
            Err(e) => {
                self.note(format!("{step}: no descriptor: {e}"));
                self.check(false, || format!("{step}: no descriptor: {e}"));
                None
            }
        }
    }

    /// `find_endp` that must hit with `prop` and the session `want`.
    fn find_hit(
        &mut self,
        p: &mut Peer,
        step: &str,
        label: &[u8],
        prop: &[u8],
        want: Option<(u64, u64)>,
    ) -> bool {
        let got = self.ask(p, step, &find_endp_req(label), &find_reply(prop));
        if matches!(&got, Got::Msg(m) if m.starts_with(b"status\x000\0")) {
            let fd = self.take_fd(p, step, want);
            return got == Got::Msg(find_reply(prop))
                && fd.is_some_and(|fd| Some(identity(&fd)) == want);
        }
        false
    }

    /// After a reply that may be `dummy` (the daemon accepted a save the
    /// row expected it to refuse): complete the exchange with a descriptor
    /// so that the rest of the row measures something, and note the status.
    fn complete_save(&mut self, p: &mut Peer, step: &str, got: &Got) {
        if *got == Got::Msg(DUMMY.to_vec()) {
            let (a, b) = session();
            self.far.push(b);
            let _ = unix::send_fd(p.sock.as_fd(), a.as_fd());
            let got = read_msg(&mut p.sock);
            self.note(format!("{step}: status after sending a descriptor: {got}"));
        }
    }

    /// After a `find_*` reply: complete a hand-over the row did not expect.
    fn complete_find(&mut self, p: &mut Peer, step: &str, got: &Got) {
        if matches!(got, Got::Msg(m) if m.starts_with(b"status\x000\0")) {
            let fd = self.take_fd(p, step, None);
            self.note(format!(
                "{step}: completed the hand-over: {:?}",
                fd.map(|f| identity(&f))
            ));
        }
    }

    /// `find_dest` that must hit with both properties and the session `want`.
    fn find_dest_hit(
        &mut self,
        p: &mut Peer,
        step: &str,
        dest: &[u8],
        dprop: &[u8],
        eprop: &[u8],
        want: (u64, u64),
    ) {
        let got = self.ask(
            p,
            step,
            &find_dest_req(dest),
            &find_dest_reply(dprop, eprop),
        );
        if matches!(&got, Got::Msg(m) if m.starts_with(b"status\x000\0")) {
            self.take_fd(p, step, Some(want));
        }
    }

    /// Another client is served correctly: save, then find the same file.
    fn serves(&mut self, step: &str) {
        let t0 = Instant::now();
        let diffs = self.found.diffs.len();
        self.quiet = true;
        let mut ok = false;
        if let Some(mut p) = self.peer(step) {
            let label = b"serve-check\nsmtp\n192.0.2.9\n25";
            if let Some(id) = self.save(&mut p, step, "60", label, b"serve-prop") {
                ok = self.find_hit(&mut p, step, label, b"serve-prop", Some(id));
            }
        }
        self.quiet = false;
        let how = if ok {
            "yes (save_endp + find_endp returned the same file)".to_string()
        } else {
            format!("NO: {}", self.found.diffs[diffs..].join("; "))
        };
        self.note(format!("{step}: {how} in {:?}", t0.elapsed()));
    }

    /// The daemon's RSS. A read that fails fails the row (ours; it is
    /// recorded for Postfix's) instead of counting as no growth.
    fn rss(&mut self, step: &str) -> Option<u64> {
        match self.h.rss_kib() {
            Ok(kib) => Some(kib),
            Err(e) => {
                self.check(false, || {
                    format!("{step}: cannot read the daemon's RSS: {e}")
                });
                None
            }
        }
    }

    /// The daemon's descriptor count is back to its baseline.
    fn fds_back(&mut self, step: &str) {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut now = self.h.fd_count().unwrap_or(0);
        while now != self.base_fds && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            now = self.h.fd_count().unwrap_or(0);
        }
        self.note(format!(
            "{step}: {now} descriptors (baseline {})",
            self.base_fds
        ));
        let base = self.base_fds;
        self.check(now == base, || {
            format!("{step}: {now} descriptors open, baseline {base}")
        });
    }

    /// The checks every row ends with, then the report.
    fn finish(mut self) {
        self.serves("another client is served (hostile connections still open)");
        self.held.clear();
        self.serves("another client is served (hostile connections closed)");
        if let Ok(Some(st)) = self.h.try_wait() {
            self.note(format!("daemon exited: {st}"));
            self.check(false, || format!("daemon exited: {st}"));
        }
        self.fds_back("descriptor count back to baseline");
        self.found.report();
    }
}

/// Runs a row against ours (asserting), then, in measurement mode, against
/// Postfix (recording).
fn run(name: &'static str) {
    let row = ROWS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("row is listed in ROWS")
        .1;
    let mut r = Row::start(Target::Ours, name).expect("our daemon");
    row(&mut r);
    r.finish();
    if measuring() {
        measure(name, row);
    }
}

fn measure(name: &'static str, row: Scenario) {
    if let Some(mut r) = Row::start(Target::Postfix, name) {
        let t0 = Instant::now();
        row(&mut r);
        r.note(format!("row took {:?}", t0.elapsed()));
        r.finish();
    }
}

/// Every row: (test name, scenario).
/// A row's scenario, run against either daemon.
type Scenario = fn(&mut Row);

const ROWS: &[(&str, Scenario)] = &[
    ("unknown_request", row_unknown_request),
    ("no_request_attribute", row_no_request_attribute),
    ("missing_attributes", row_missing_attributes),
    ("extra_trailing_attributes", row_extra_trailing_attributes),
    ("duplicated_attributes", row_duplicated_attributes),
    ("reordered_attributes", row_reordered_attributes),
    ("ttl_zero", row_ttl_zero),
    ("ttl_negative", row_ttl_negative),
    ("ttl_not_a_number", row_ttl_not_a_number),
    ("ttl_2_pow_32", row_ttl_2_pow_32),
    ("ttl_99999999999", row_ttl_99999999999),
    ("label_10mb", row_label_10mb),
    ("property_10mb", row_property_10mb),
    ("find_label_10mb", row_find_label_10mb),
    ("nul_byte_stream", row_nul_byte_stream),
    (
        "binary_labels_and_properties_round_trip",
        row_binary_round_trip,
    ),
    ("two_descriptors_in_one_message", row_two_descriptors),
    (
        "descriptor_without_data_byte",
        row_descriptor_without_data_byte,
    ),
    (
        "data_where_descriptor_expected",
        row_data_where_descriptor_expected,
    ),
    (
        "close_before_sending_descriptor",
        row_close_before_descriptor,
    ),
    ("close_after_find_reply", row_close_after_find_reply),
    (
        "close_after_receiving_descriptor",
        row_close_after_descriptor,
    ),
    ("half_closed_client", row_half_closed_client),
    ("client_never_reads_replies", row_never_reads),
    ("slow_client_does_not_stall_others", row_slow_client),
    ("thousand_idle_clients", row_thousand_idle_clients),
];

// ---------------------------------------------------------------------------
// The rows.

/// A row that is nothing but requests on one connection, each with its
/// reply, then the in-sync probe and, where a malformed save came first,
/// a check that it cached nothing under `nothing_saved_under`.
fn malformed_row(r: &mut Row, cases: &[(&str, &str, &[u8])], nothing_saved_under: Option<&[u8]>) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    r.ask_all(&mut p, cases);
    r.probe(&mut p, "next request on the same connection");
    if let Some(label) = nothing_saved_under {
        r.ask(
            &mut p,
            &format!("find_endp {} (nothing saved)", show(label)),
            &find_endp_req(label),
            MISS_ENDP,
        );
    }
}

fn row_unknown_request(r: &mut Row) {
    malformed_row(
        r,
        &[
            ("request=no_such_request", "request=no_such_request", BAD),
            // The whole message is consumed, whatever follows the name.
            (
                "request=no_such_request with more attributes",
                "request=no_such_request label=x ttl=5",
                BAD,
            ),
            (
                "request=FIND_ENDP (case matters)",
                "request=FIND_ENDP label=x",
                BAD,
            ),
        ],
        None,
    );
}

fn row_no_request_attribute(r: &mut Row) {
    malformed_row(
        r,
        &[
            ("label=x without request", "label=x", BAD),
            (
                "ttl/label/property without request",
                "ttl=5 label=x property=p",
                BAD,
            ),
        ],
        None,
    );
}

fn row_missing_attributes(r: &mut Row) {
    malformed_row(
        r,
        &[
            (
                "save_endp without property",
                "request=save_endp ttl=5 label=e",
                BAD,
            ),
            ("save_endp with nothing", "request=save_endp", BAD),
            (
                "find_endp without label",
                "request=find_endp",
                BAD_FIND_ENDP,
            ),
            (
                "find_dest without label",
                "request=find_dest",
                BAD_FIND_DEST,
            ),
            (
                "save_dest without endpoint label",
                "request=save_dest ttl=5 label=d property=p",
                BAD,
            ),
        ],
        Some(b"e"),
    );
}

fn row_extra_trailing_attributes(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    // Tolerated (as Postfix does): served, the extra attribute ignored.
    r.ask(
        &mut p,
        "find_endp + trailing extra=y",
        &text_message("request=find_endp label=x extra=y"),
        MISS_ENDP,
    );
    r.probe(&mut p, "next request after find_endp + extra");
    r.ask(
        &mut p,
        "save_dest + trailing extra=y",
        &text_message("request=save_dest ttl=60 label=d property=dp label=e extra=y"),
        OK,
    );
    r.probe(&mut p, "next request after save_dest + extra");
    let (a, b) = session();
    let id = identity(&a);
    r.far.push(b);
    let got = r.ask(
        &mut p,
        "save_endp + trailing extra=y",
        &text_message("request=save_endp ttl=60 label=e property=ep extra=y"),
        DUMMY,
    );
    if got == Got::Msg(DUMMY.to_vec()) {
        let _ = unix::send_fd(p.sock.as_fd(), a.as_fd());
        drop(a);
        r.expect(&mut p, "save_endp + extra: status after the descriptor", OK);
    }
    r.probe(&mut p, "next request after save_endp + extra");
    r.find_dest_hit(
        &mut p,
        "find_dest d finds the saved session",
        b"d",
        b"dp",
        b"ep",
        id,
    );
}

fn row_duplicated_attributes(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let id = r.save(&mut p, "save_endp dup-a", "60", b"dup-a", b"pa");
    // A duplicate after the expected attributes is a trailing extra: the
    // first label is the one looked up.
    r.ask(
        &mut p,
        "find_endp label=dup-b label=dup-a (first one counts)",
        &text_message("request=find_endp label=dup-b label=dup-a"),
        MISS_ENDP,
    );
    let got = r.ask(
        &mut p,
        "find_endp label=dup-a label=dup-b",
        &text_message("request=find_endp label=dup-a label=dup-b"),
        &find_reply(b"pa"),
    );
    if matches!(&got, Got::Msg(m) if m.starts_with(b"status\x000\0")) {
        r.take_fd(&mut p, "find_endp dup-a hand-over", id);
    }
    // A duplicate where another attribute is expected is malformed.
    r.ask_all(
        &mut p,
        &[
            (
                "request=find_endp twice",
                "request=find_endp request=find_endp label=x",
                BAD_FIND_ENDP,
            ),
            (
                "save_endp with ttl twice",
                "request=save_endp ttl=5 ttl=5 label=x property=p",
                BAD,
            ),
            (
                "save_dest with property twice",
                "request=save_dest ttl=5 label=d property=p property=p label=e",
                BAD,
            ),
        ],
    );
    r.probe(&mut p, "next request on the same connection");
}

fn row_reordered_attributes(r: &mut Row) {
    malformed_row(
        r,
        &[
            (
                "save_endp label before ttl",
                "request=save_endp label=x ttl=5 property=p",
                BAD,
            ),
            (
                "save_endp property before label",
                "request=save_endp ttl=5 property=p label=x",
                BAD,
            ),
            (
                "save_dest property before destination label",
                "request=save_dest ttl=5 property=p label=d label=e",
                BAD,
            ),
            ("label before request", "label=x request=find_endp", BAD),
        ],
        Some(b"x"),
    );
}

/// A save with a bad ttl: `status 1`, no `dummy`, nothing cached, in sync.
fn bad_ttl(r: &mut Row, ttl: &[u8]) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let step = format!("save_endp ttl={}", show(ttl));
    let got = r.ask(&mut p, &step, &save_endp_req(ttl, b"ttl-e", b"p"), BAD);
    r.complete_save(&mut p, &step, &got);
    let step = format!("save_dest ttl={}", show(ttl));
    r.ask(
        &mut p,
        &step,
        &save_dest_req(ttl, b"ttl-d", b"dp", b"ttl-e"),
        BAD,
    );
    r.probe(&mut p, "next request on the same connection");
    let got = r.ask(
        &mut p,
        "find_endp (nothing was cached)",
        &find_endp_req(b"ttl-e"),
        MISS_ENDP,
    );
    r.complete_find(&mut p, "find_endp (nothing was cached)", &got);
    let got = r.ask(
        &mut p,
        "find_dest (nothing was bound)",
        &find_dest_req(b"ttl-d"),
        MISS_DEST,
    );
    r.complete_find(&mut p, "find_dest (nothing was bound)", &got);
}

fn row_ttl_zero(r: &mut Row) {
    bad_ttl(r, b"0");
}

fn row_ttl_negative(r: &mut Row) {
    bad_ttl(r, b"-5");
}

fn row_ttl_not_a_number(r: &mut Row) {
    bad_ttl(r, b"abc");
}

fn row_ttl_2_pow_32(r: &mut Row) {
    bad_ttl(r, b"4294967296");
}

fn row_ttl_99999999999(r: &mut Row) {
    bad_ttl(r, b"99999999999");
}

/// Sends a 10 MB request and checks the reply, the sync and RSS growth.
fn huge_request(r: &mut Row, step: &str, request: Vec<u8>, want: &[u8]) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let before = r.rss(step);
    let t0 = Instant::now();
    let sent = r.send(&mut p, step, &request);
    drop(request);
    r.note(format!(
        "{step}: sent {} in {:?}",
        if sent { "all 10 MB" } else { "part" },
        t0.elapsed()
    ));
    if sent {
        let got = r.expect(&mut p, step, want);
        r.complete_save(&mut p, step, &got);
        r.probe(&mut p, "next request on the same connection");
    }
    if let (Some(before), Some(after)) = (before, r.rss(step)) {
        let growth = after.saturating_sub(before);
        r.note(format!(
            "{step}: RSS {before} KiB -> {after} KiB (+{growth} KiB)"
        ));
        r.check(growth <= RSS_BOUND_KIB, || {
            format!("{step}: RSS grew by {growth} KiB (bound {RSS_BOUND_KIB} KiB)")
        });
    }
    r.held.push(p);
}

fn row_label_10mb(r: &mut Row) {
    let label = vec![b'L'; TEN_MB];
    huge_request(
        r,
        "save_endp with a 10 MB label",
        save_endp_req(b"60", &label, b"p"),
        BAD,
    );
}

fn row_property_10mb(r: &mut Row) {
    let prop = vec![b'P'; TEN_MB];
    huge_request(
        r,
        "save_endp with a 10 MB property",
        save_endp_req(b"60", b"e", &prop),
        BAD,
    );
}

/// `find_endp` and `find_dest` with a 10 MB label: refused as malformed,
/// and the reply keeps the shape of the request's normal reply (a Postfix
/// client reads a `find_*` reply strictly as status + properties).
fn row_find_label_10mb(r: &mut Row) {
    let label = vec![b'L'; TEN_MB];
    huge_request(
        r,
        "find_endp with a 10 MB label",
        find_endp_req(&label),
        BAD_FIND_ENDP,
    );
    huge_request(
        r,
        "find_dest with a 10 MB label",
        find_dest_req(&label),
        BAD_FIND_DEST,
    );
}

fn row_nul_byte_stream(r: &mut Row) {
    const N: usize = 64 * 1024;
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    // Every NUL is an empty attribute list: a message without `request`.
    // The replies are read while the NULs are written (the daemon stops
    // reading a client whose replies pile up).
    let writer = p.sock.try_clone().unwrap();
    let w = std::thread::spawn(move || {
        (&writer)
            .write_all(&vec![0u8; N])
            .map_err(|e| e.to_string())
    });
    let mut replies = 0usize;
    let mut first_other = None;
    let last = loop {
        let got = read_msg(&mut p.sock);
        match &got {
            Got::Msg(m) if m == BAD => replies += 1,
            Got::Msg(_) => {
                first_other.get_or_insert_with(|| got.to_string());
                replies += 1;
            }
            _ => break got,
        }
        if replies == N {
            break got;
        }
    };
    let written = w.join().unwrap();
    r.note(format!(
        "{N} NUL bytes (write: {written:?}): {replies} replies, first unexpected: {first_other:?}, then {last}"
    ));
    r.check(replies == N && first_other.is_none(), || {
        format!("expected {N} replies `status\\01\\0\\0`, got {replies} (first unexpected {first_other:?}), then {last}")
    });
    r.probe(&mut p, "next request on the same connection");
    r.held.push(p);
}

fn row_binary_round_trip(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    // Invalid UTF-8 (lone continuation, truncated sequence, 0xff), C0 and
    // DEL control bytes, CR/LF, an ANSI escape.
    let endp: &[u8] = b"\xff\xfe\x80 smtp\n\xc3(\x01\x02\x1b[31m\r\n\t\x7f\xe2\x82 end";
    let eprop: &[u8] = b"\x01\x02\x03\xff\n\r\x7f\x80\x9f tls=\xc0\xaf";
    let dest: &[u8] = b"\x1b]0;title\x07\xf0\x9f\x98 dest\n\x04";
    let dprop: &[u8] = b"\xfe\xff dest-prop \x05";
    let id = r.save(
        &mut p,
        "save_endp with a binary label and property",
        "60",
        endp,
        eprop,
    );
    r.ask(
        &mut p,
        "save_dest with binary labels and property",
        &save_dest_req(b"60", dest, dprop, endp),
        OK,
    );
    // Labels are bytes: the lossy UTF-8 spelling of the label is another label.
    let lossy = String::from_utf8_lossy(endp).into_owned().into_bytes();
    r.ask(
        &mut p,
        "find_endp of the lossy-UTF-8 spelling misses",
        &find_endp_req(&lossy),
        MISS_ENDP,
    );
    let mut near = endp.to_vec();
    near[0] = 0xfd;
    r.ask(
        &mut p,
        "find_endp of a label one byte off misses",
        &find_endp_req(&near),
        MISS_ENDP,
    );
    if let Some(id) = id {
        r.find_dest_hit(
            &mut p,
            "find_dest returns both properties byte for byte",
            dest,
            dprop,
            eprop,
            id,
        );
    }
    let id = r.save(&mut p, "save_endp again", "60", endp, eprop);
    r.find_hit(
        &mut p,
        "find_endp returns the property byte for byte",
        endp,
        eprop,
        id,
    );
}

fn row_two_descriptors(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let (a1, b1) = session();
    let (a2, b2) = session();
    let got = r.ask(
        &mut p,
        "save_endp",
        &save_endp_req(b"60", b"two", b"p2"),
        DUMMY,
    );
    if got != Got::Msg(DUMMY.to_vec()) {
        return;
    }
    let sent = send_fds(&p.sock, b"\0", &[&a1, &a2]);
    r.note(format!("sendmsg(1 byte, SCM_RIGHTS [fd1, fd2]): {sent:?}"));
    drop((a1, a2));
    // Which one would be the session is anybody's guess: the save is
    // refused (status 2), both descriptors are closed at once (their far
    // ends see EOF), nothing is cached, nothing leaks.
    r.expect(&mut p, "status after two descriptors", FAIL);
    for (n, far) in [(1, &b1), (2, &b2)] {
        let closed = sees_eof(far, Duration::from_secs(2));
        r.note(format!("descriptor {n}: its far end sees EOF: {closed}"));
        r.check(closed, || {
            format!("descriptor {n} of 2 was kept open by the daemon")
        });
    }
    r.probe(&mut p, "next request on the same connection");
    r.ask(
        &mut p,
        "find_endp two (nothing cached)",
        &find_endp_req(b"two"),
        MISS_ENDP,
    );
}

fn row_descriptor_without_data_byte(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let (bogus, bogus_far) = session();
    let (a, b) = session();
    let id = identity(&a);
    r.far.push(b);
    let got = r.ask(
        &mut p,
        "save_endp",
        &save_endp_req(b"60", b"nodata", b"pn"),
        DUMMY,
    );
    if got != Got::Msg(DUMMY.to_vec()) {
        return;
    }
    // sendmsg with zero data bytes and an SCM_RIGHTS control message. On a
    // Linux SOCK_STREAM socket ancillary data travels only attached to at
    // least one byte of data (unix(7)): with none, sendmsg returns 0,
    // queues nothing and the kernel drops its in-flight reference to the
    // descriptor. The daemon therefore sees nothing at all: it must simply
    // keep waiting for the descriptor (without stalling anyone else).
    let sent = send_fds(&p.sock, b"", &[&bogus]);
    r.note(format!("sendmsg(0 bytes, SCM_RIGHTS [fd]): {sent:?}"));
    r.check(matches!(sent, Ok(0)), || {
        format!("sendmsg without data returned {sent:?}")
    });
    drop(bogus);
    let dropped = sees_eof(&bogus_far, Duration::from_secs(2));
    r.note(format!(
        "the kernel dropped the descriptor (its far end sees EOF): {dropped}"
    ));
    r.check(dropped, || {
        "the descriptor sent without data is still open somewhere".into()
    });
    r.expect_silence(
        &mut p,
        "no reply: nothing arrived",
        Duration::from_millis(300),
    );
    // Others are served while this client is still in mid-exchange.
    r.serves("another client is served meanwhile");
    let _ = unix::send_fd(p.sock.as_fd(), a.as_fd());
    drop(a);
    r.expect(&mut p, "status after the real descriptor", OK);
    r.find_hit(
        &mut p,
        "find_endp returns the real descriptor",
        b"nodata",
        b"pn",
        Some(id),
    );
}

fn row_data_where_descriptor_expected(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let got = r.ask(
        &mut p,
        "save_endp",
        &save_endp_req(b"60", b"data", b"p"),
        DUMMY,
    );
    if got == Got::Msg(DUMMY.to_vec()) {
        // The client sends its next request instead of the descriptor: the
        // save fails (status 2) and the request is served, in sync.
        r.send(
            &mut p,
            "find_endp instead of the descriptor",
            &find_endp_req(b"x"),
        );
        r.expect(&mut p, "save_endp status (no descriptor)", FAIL);
        r.expect(&mut p, "reply to the find_endp sent instead", MISS_ENDP);
        r.probe(&mut p, "next request on the same connection");
    }
    let got = r.ask(
        &mut p,
        "save_endp",
        &save_endp_req(b"60", b"data", b"p"),
        DUMMY,
    );
    if got == Got::Msg(DUMMY.to_vec()) {
        // The data byte of a descriptor message, without the descriptor.
        r.ask(
            &mut p,
            "a lone NUL byte instead of the descriptor",
            b"\0",
            FAIL,
        );
        r.probe(&mut p, "next request on the same connection");
    }
    r.ask(
        &mut p,
        "find_endp data (nothing was cached)",
        &find_endp_req(b"data"),
        MISS_ENDP,
    );
}

fn row_close_before_descriptor(r: &mut Row) {
    if let Some(mut p) = r.peer("connect") {
        r.ask(
            &mut p,
            "save_endp, then close",
            &save_endp_req(b"60", b"gone", b"p"),
            DUMMY,
        );
    }
    let Some(mut q) = r.peer("next client") else {
        return;
    };
    r.ask(
        &mut q,
        "find_endp gone (nothing cached)",
        &find_endp_req(b"gone"),
        MISS_ENDP,
    );
}

fn row_close_after_find_reply(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let id = r.save(&mut p, "save_endp back", "60", b"back", b"pb");
    r.ask(
        &mut p,
        "save_dest dback -> back",
        &save_dest_req(b"60", b"dback", b"pd", b"back"),
        OK,
    );
    drop(p);
    if let Some(mut taker) = r.peer("taker") {
        r.ask(
            &mut taker,
            "find_endp back, then close",
            &find_endp_req(b"back"),
            &find_reply(b"pb"),
        );
    }
    // The session went back into the cache: the next client finds it.
    let Some(mut next) = r.peer("next client") else {
        return;
    };
    r.find_hit(
        &mut next,
        "find_endp back: the same session",
        b"back",
        b"pb",
        id,
    );
    // The same through find_dest.
    let id = r.save(&mut next, "save_endp back again", "60", b"back", b"pb");
    if let Some(mut taker) = r.peer("taker 2") {
        r.ask(
            &mut taker,
            "find_dest dback, then close",
            &find_dest_req(b"dback"),
            &find_dest_reply(b"pd", b"pb"),
        );
    }
    if let Some(id) = id {
        r.find_dest_hit(
            &mut next,
            "find_dest dback: the same session",
            b"dback",
            b"pd",
            b"pb",
            id,
        );
    }
}

fn row_close_after_descriptor(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let id = r.save(&mut p, "save_endp taken", "60", b"taken", b"pt");
    let far = r.far.pop();
    if let Some(mut taker) = r.peer("taker") {
        let got = r.ask(
            &mut taker,
            "find_endp taken",
            &find_endp_req(b"taken"),
            &find_reply(b"pt"),
        );
        if matches!(&got, Got::Msg(m) if m.starts_with(b"status\x000\0")) {
            r.send(&mut taker, "dummy", DUMMY);
            match unix::recv_fd(taker.sock.as_fd()) {
                Ok(fd) => {
                    let got = Some(identity(&fd));
                    r.note(format!(
                        "received the descriptor {got:?}, closing without the last dummy"
                    ));
                    r.check(got == id, || format!("wrong descriptor {got:?}"));
                }
                Err(e) => r.check(false, || format!("no descriptor: {e}")),
            }
        }
    }
    // The taker had the session and is gone with it: the daemon's own copy
    // was closed when it was handed over (the far end sees EOF), and it is
    // not cached any more.
    if let Some(far) = far {
        let eof = sees_eof(&far, Duration::from_secs(2));
        r.note(format!("far end sees EOF: {eof}"));
        r.check(eof, || {
            "the handed-over session is still open in the daemon".into()
        });
    }
    r.ask(
        &mut p,
        "find_endp taken (handed over, gone)",
        &find_endp_req(b"taken"),
        MISS_ENDP,
    );
}

fn row_half_closed_client(r: &mut Row) {
    // A request, then shutdown(SHUT_WR): the reply still arrives, then EOF.
    if let Some(mut p) = r.peer("connect") {
        r.send(
            &mut p,
            "find_endp then shutdown(write)",
            &find_endp_req(b"half"),
        );
        let _ = p.sock.shutdown(Shutdown::Write);
        r.expect(&mut p, "reply after half-close", MISS_ENDP);
        r.expect_closed(&mut p, "then the daemon closes");
    }
    // save_endp: request, dummy, descriptor, then half-close.
    let mut id = None;
    if let Some(mut p) = r.peer("connect") {
        let (a, b) = session();
        r.far.push(b);
        let got = r.ask(
            &mut p,
            "save_endp half",
            &save_endp_req(b"60", b"half", b"ph"),
            DUMMY,
        );
        if got == Got::Msg(DUMMY.to_vec()) {
            id = Some(identity(&a));
            let _ = unix::send_fd(p.sock.as_fd(), a.as_fd());
            let _ = p.sock.shutdown(Shutdown::Write);
            r.expect(&mut p, "save_endp status after half-close", OK);
            r.expect_closed(&mut p, "then the daemon closes");
        }
    }
    // A whole find exchange pipelined (request, dummy, dummy), then
    // half-close: the reply and the descriptor still arrive.
    if let Some(mut p) = r.peer("connect") {
        let mut bytes = find_endp_req(b"half");
        bytes.extend_from_slice(DUMMY);
        bytes.extend_from_slice(DUMMY);
        r.send(
            &mut p,
            "find_endp + dummy + dummy then shutdown(write)",
            &bytes,
        );
        let _ = p.sock.shutdown(Shutdown::Write);
        let got = r.expect(&mut p, "find reply after half-close", &find_reply(b"ph"));
        if matches!(&got, Got::Msg(m) if m.starts_with(b"status\x000\0")) {
            match unix::recv_fd(p.sock.as_fd()) {
                Ok(fd) => {
                    let got = Some(identity(&fd));
                    r.note(format!("descriptor after half-close: {got:?}"));
                    r.check(got == id, || {
                        format!("wrong descriptor {got:?}, saved {id:?}")
                    });
                }
                Err(e) => {
                    r.note(format!("no descriptor after half-close: {e}"));
                    r.check(false, || format!("no descriptor after half-close: {e}"));
                }
            }
            r.expect_closed(&mut p, "then the daemon closes");
        }
    }
}

/// A client pipelines requests and never reads a reply: the daemon stops
/// reading it once a bounded amount of replies waits, keeps serving others,
/// and its memory does not grow with what the client tries to send.
fn row_never_reads(r: &mut Row) {
    let Some(mut p) = r.peer("connect") else {
        return;
    };
    let before = r.rss("before");
    let one = find_endp_req(b"never-read");
    let n = TEN_MB / one.len();
    let writer = p.sock.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let w = std::thread::spawn(move || {
        let mut sent = 0usize;
        for _ in 0..n {
            if (&writer).write_all(&one).is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    std::thread::sleep(Duration::from_millis(300));
    r.serves("another client is served while one never reads");
    let sent = w.join().unwrap();
    let after = r.rss("after");
    r.note(format!(
        "the client got {sent} of {n} requests ({} KiB) written before its writes blocked for 1 s; RSS {before:?} -> {after:?} KiB",
        sent * find_endp_req(b"never-read").len() / 1024
    ));
    r.check(sent < n, || {
        "the daemon read 10 MB of requests without their replies being read".into()
    });
    if let (Some(before), Some(after)) = (before, after) {
        let growth = after.saturating_sub(before);
        r.check(growth <= RSS_BOUND_KIB, || {
            format!("RSS grew by {growth} KiB (bound {RSS_BOUND_KIB} KiB)")
        });
    }
    // The replies that were produced are all correct and in order.
    let mut ok = 0;
    let mut bad = None;
    for _ in 0..1000 {
        match read_msg(&mut p.sock) {
            Got::Msg(m) if m == MISS_ENDP => ok += 1,
            other => {
                bad = Some(other.to_string());
                break;
            }
        }
    }
    r.note(format!(
        "then it reads: {ok} of the first 1000 replies are correct misses; first other: {bad:?}"
    ));
    r.check(ok == 1000, || {
        format!("replies after reading resumed: {ok} correct, then {bad:?}")
    });
}

/// What one normal-traffic client saw.
#[derive(Debug, Default, Clone)]
struct Traffic {
    requests: u64,
    max_wait: Duration,
    errors: Vec<String>,
}

/// One well-behaved client: save_endp + find_endp in a loop for `dur`,
/// timing every wait for a reply (the greeting included).
fn traffic(h: &Harness, id: usize, dur: Duration, timeout: Duration) -> Traffic {
    let mut t = Traffic::default();
    let t0 = Instant::now();
    let mut sock = match h.connect_timeout(timeout) {
        Ok(s) => s,
        Err(e) => {
            t.errors.push(format!("client {id}: connect: {e}"));
            return t;
        }
    };
    t.max_wait = t0.elapsed();
    sock.set_read_timeout(Some(timeout)).unwrap();
    let label = format!("traffic-{id}").into_bytes();
    let timed = |sock: &mut UnixStream, t: &mut Traffic, want: &[u8]| -> bool {
        let t0 = Instant::now();
        let got = read_msg(sock);
        let waited = t0.elapsed();
        t.max_wait = t.max_wait.max(waited);
        t.requests += 1;
        if got != Got::Msg(want.to_vec()) {
            t.errors.push(format!(
                "client {id}: expected `{}`, {got} after {waited:?}",
                show(want)
            ));
            return false;
        }
        true
    };
    while t0.elapsed() < dur {
        let (a, _b) = session();
        let ida = identity(&a);
        if sock
            .write_all(&save_endp_req(b"60", &label, b"tp"))
            .is_err()
            || !timed(&mut sock, &mut t, DUMMY)
        {
            break;
        }
        if unix::send_fd(sock.as_fd(), a.as_fd()).is_err() || !timed(&mut sock, &mut t, OK) {
            break;
        }
        if sock.write_all(&find_endp_req(&label)).is_err()
            || !timed(&mut sock, &mut t, &find_reply(b"tp"))
        {
            break;
        }
        if sock.write_all(DUMMY).is_err() {
            break;
        }
        let t1 = Instant::now();
        match unix::recv_fd(sock.as_fd()) {
            Ok(fd) if identity(&fd) == ida => {}
            Ok(_) => {
                t.errors.push(format!("client {id}: wrong descriptor"));
                break;
            }
            Err(e) => {
                t.errors.push(format!(
                    "client {id}: recv_fd: {e} after {:?}",
                    t1.elapsed()
                ));
                break;
            }
        }
        t.max_wait = t.max_wait.max(t1.elapsed());
        if sock.write_all(DUMMY).is_err() {
            break;
        }
    }
    t
}

/// Runs `n` traffic clients for `dur` and merges what they saw.
fn run_traffic(h: &Harness, n: usize, dur: Duration, timeout: Duration) -> Traffic {
    let all = Mutex::new(Traffic::default());
    std::thread::scope(|s| {
        for id in 0..n {
            let all = &all;
            s.spawn(move || {
                let t = traffic(h, id, dur, timeout);
                let mut all = all.lock().unwrap();
                all.requests += t.requests;
                all.max_wait = all.max_wait.max(t.max_wait);
                all.errors.extend(t.errors);
            });
        }
    });
    all.into_inner().unwrap()
}

fn row_slow_client(r: &mut Row) {
    let Some(mut slow) = r.peer("slow client") else {
        return;
    };
    // Postfix's daemon makes others wait; give them a long timeout there so
    // that the wait is measured rather than cut off.
    let timeout = if r.ours() {
        Duration::from_secs(5)
    } else {
        Duration::from_secs(12)
    };
    slow.sock.set_read_timeout(Some(timeout)).unwrap();
    let request = find_endp_req(b"slow-client-label");
    let done = AtomicBool::new(false);
    let (traffic, slow_reply) = std::thread::scope(|s| {
        let done = &done;
        let slow_sock = &mut slow.sock;
        let slow_thread = s.spawn(move || {
            for b in &request {
                if slow_sock.write_all(std::slice::from_ref(b)).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            done.store(true, Ordering::SeqCst);
            read_msg(slow_sock)
        });
        std::thread::sleep(Duration::from_millis(300));
        // Postfix's daemon blocks them for seconds: let them run long
        // enough to get through.
        let dur = if r.ours() {
            Duration::from_millis(2200)
        } else {
            Duration::from_secs(6)
        };
        let traffic = run_traffic(&r.h, 50, dur, timeout);
        (traffic, slow_thread.join().unwrap())
    });
    r.note(format!(
        "50 clients, {} requests while one client sends a byte every 100 ms: longest wait {:?}, {} errors {:?}",
        traffic.requests,
        traffic.max_wait,
        traffic.errors.len(),
        traffic.errors.iter().take(3).collect::<Vec<_>>()
    ));
    r.check(traffic.errors.is_empty(), || {
        format!("normal clients failed: {:?}", traffic.errors)
    });
    r.check(traffic.max_wait < Duration::from_secs(1), || {
        format!("a normal client waited {:?} (bound 1 s)", traffic.max_wait)
    });
    r.note(format!("the slow client's reply: {slow_reply}"));
    r.check(slow_reply == Got::Msg(MISS_ENDP.to_vec()), || {
        format!("slow client: {slow_reply}")
    });
}

fn row_thousand_idle_clients(r: &mut Row) {
    const IDLE: usize = 1000;
    // The test holds ~1000 sockets plus the traffic's (Row::start raised
    // the soft limit to the hard one before the daemon was started).
    let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .expect("getrlimit");
    assert!(
        soft >= 1500,
        "RLIMIT_NOFILE is {soft}: this row needs about 1,500 descriptors (raise the hard limit)"
    );
    let t0 = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    let mut failed = None;
    for i in 0..IDLE {
        match r.h.connect_timeout(r.timeout()) {
            Ok(s) => idle.push(s),
            Err(e) => {
                failed = Some(format!("idle client {i}: {e}"));
                break;
            }
        }
    }
    r.note(format!(
        "{} idle clients connected and greeted in {:?}",
        idle.len(),
        t0.elapsed()
    ));
    r.check(failed.is_none(), || format!("{failed:?}"));
    let fds = r.h.fd_count().unwrap_or(0);
    r.note(format!(
        "daemon descriptors with {} idle clients: {fds}",
        idle.len()
    ));
    let traffic = run_traffic(&r.h, 10, Duration::from_secs(1), r.timeout());
    r.note(format!(
        "10 busy clients next to them: {} requests, longest wait {:?}, errors {:?}",
        traffic.requests,
        traffic.max_wait,
        traffic.errors.iter().take(3).collect::<Vec<_>>()
    ));
    r.check(traffic.errors.is_empty(), || {
        format!("busy clients failed: {:?}", traffic.errors)
    });
    r.check(traffic.max_wait < Duration::from_secs(1), || {
        format!("a busy client waited {:?}", traffic.max_wait)
    });
    // Every idle client is still served.
    let mut answered = 0;
    let mut first_bad = None;
    for s in idle.iter_mut() {
        s.set_read_timeout(Some(r.timeout())).unwrap();
        let got = if s.write_all(&find_endp_req(b"idle")).is_ok() {
            read_msg(s)
        } else {
            Got::Error("send".into())
        };
        if got == Got::Msg(MISS_ENDP.to_vec()) {
            answered += 1;
        } else if first_bad.is_none() {
            first_bad = Some(got.to_string());
        }
    }
    r.note(format!(
        "idle clients answered afterwards: {answered}/{}; first failure: {first_bad:?}",
        idle.len()
    ));
    r.check(answered == IDLE, || {
        format!("only {answered} of {IDLE} idle clients answered: {first_bad:?}")
    });
}

// ---------------------------------------------------------------------------
// One test per row.

#[test]
fn unknown_request() {
    run("unknown_request");
}

#[test]
fn no_request_attribute() {
    run("no_request_attribute");
}

#[test]
fn missing_attributes() {
    run("missing_attributes");
}

#[test]
fn extra_trailing_attributes() {
    run("extra_trailing_attributes");
}

#[test]
fn duplicated_attributes() {
    run("duplicated_attributes");
}

#[test]
fn reordered_attributes() {
    run("reordered_attributes");
}

#[test]
fn ttl_zero() {
    run("ttl_zero");
}

#[test]
fn ttl_negative() {
    run("ttl_negative");
}

#[test]
fn ttl_not_a_number() {
    run("ttl_not_a_number");
}

#[test]
fn ttl_2_pow_32() {
    run("ttl_2_pow_32");
}

#[test]
fn ttl_99999999999() {
    run("ttl_99999999999");
}

#[test]
fn label_10mb() {
    run("label_10mb");
}

#[test]
fn property_10mb() {
    run("property_10mb");
}

#[test]
fn find_label_10mb() {
    run("find_label_10mb");
}

#[test]
fn nul_byte_stream() {
    run("nul_byte_stream");
}

#[test]
fn binary_labels_and_properties_round_trip() {
    run("binary_labels_and_properties_round_trip");
}

#[test]
fn two_descriptors_in_one_message() {
    run("two_descriptors_in_one_message");
}

#[test]
fn descriptor_without_data_byte() {
    run("descriptor_without_data_byte");
}

#[test]
fn data_where_descriptor_expected() {
    run("data_where_descriptor_expected");
}

#[test]
fn close_before_sending_descriptor() {
    run("close_before_sending_descriptor");
}

#[test]
fn close_after_find_reply() {
    run("close_after_find_reply");
}

#[test]
fn close_after_receiving_descriptor() {
    run("close_after_receiving_descriptor");
}

#[test]
fn half_closed_client() {
    run("half_closed_client");
}

#[test]
fn client_never_reads_replies() {
    run("client_never_reads_replies");
}

#[test]
fn slow_client_does_not_stall_others() {
    run("slow_client_does_not_stall_others");
}

#[test]
fn thousand_idle_clients() {
    run("thousand_idle_clients");
}

/// Every row against Postfix's daemon, recorded, nothing asserted.
#[test]
#[ignore = "measurement mode: run with --ignored --nocapture"]
fn postfix_measurements() {
    for (name, row) in ROWS {
        measure(name, *row);
    }
}
