//! Faults around the daemon: a client process killed in mid-exchange, the
//! daemon terminated under load, descriptor exhaustion, master going away.
//! Rows of the table in `docs/robustness.md`.
//!
//! Client processes are this test binary re-executed (the hidden test
//! `child_client`), so nothing beyond the Rust toolchain is needed. With
//! `SCACHE_MEASURE_POSTFIX=1` the tests that make sense against Postfix's
//! daemon also run it and print what it did (nothing asserted there).

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    ask_stats, find_endp_req, find_reply, identity, measuring, ours, poll_until, save_endp_req,
    sees_eof, session, settled_fd_count, show, start, Findings, Peer, Target,
};
use scache_proto::unix;
use scache_testkit::harness::{
    postfix_scache_for_test, Harness, HarnessBuilder, TempDir, GREETING,
};
use scache_testkit::wire;

/// Set in a re-executed child: what it must do (see `child_client`).
const ENV_CHILD_MODE: &str = "SCACHE_FAULT_CHILD";
const ENV_CHILD_SOCKET: &str = "SCACHE_FAULT_SOCKET";
const ENV_CHILD_LABEL: &str = "SCACHE_FAULT_LABEL";

const OK: &[u8] = b"status\x000\0\0";
const FAIL: &[u8] = b"status\x002\0\0";
const DUMMY: &[u8] = b"dummy\0\0\0";
const MISS_ENDP: &[u8] = b"status\x002\0property\0\0\0";

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Asserting (ours) or recording (Postfix).

type Obs = Findings;

/// Runs `scenario` against ours, then (measurement mode) against Postfix.
fn both(name: &'static str, scenario: fn(&mut Obs, &Path)) {
    let mut o = Obs::new(Target::Ours, name);
    scenario(&mut o, &ours());
    o.report();
    if measuring() {
        if let Some(program) = postfix_scache_for_test(name) {
            let mut o = Obs::new(Target::Postfix, name);
            scenario(&mut o, &program);
            o.report();
        }
    }
}

fn program_target(program: &Path) -> Target {
    if program == ours() {
        Target::Ours
    } else {
        Target::Postfix
    }
}

/// Master-style start; Postfix's daemon gets a short `ipc_timeout`.
fn start_daemon(program: &Path, overrides: &[&str]) -> Harness {
    let mut all: Vec<&str> = overrides.to_vec();
    if program_target(program) == Target::Postfix {
        all.push("ipc_timeout=5s");
    }
    let h = start(&program.to_path_buf(), &all);
    h.wait_ready(Duration::from_secs(20)).expect("daemon ready");
    h
}

// ---------------------------------------------------------------------------
// Small protocol helpers that never panic.

/// Reads one attribute list; Err(description) on EOF, timeout or error.
fn read_msg(sock: &mut UnixStream) -> Result<Vec<u8>, String> {
    wire::read_message(sock).map_err(|e| e.to_string())
}

/// Connects to a socket path and checks the greeting.
fn connect_path(path: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    let mut g = vec![0u8; GREETING.len()];
    s.read_exact(&mut g)?;
    if g != GREETING {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad greeting"));
    }
    Ok(s)
}

/// A complete save_endp; Ok(status reply).
fn save(
    sock: &mut UnixStream,
    ttl: &str,
    label: &[u8],
    prop: &[u8],
    fd: impl AsFd,
) -> Result<Vec<u8>, String> {
    sock.write_all(&save_endp_req(ttl.as_bytes(), label, prop))
        .map_err(|e| e.to_string())?;
    let d = read_msg(sock)?;
    if d != DUMMY {
        return Err(format!("expected dummy, got `{}`", show(&d)));
    }
    unix::send_fd(sock.as_fd(), fd.as_fd()).map_err(|e| e.to_string())?;
    read_msg(sock)
}

/// A complete find_endp; Ok((reply, descriptor on a hit)).
fn find(sock: &mut UnixStream, label: &[u8]) -> Result<(Vec<u8>, Option<OwnedFd>), String> {
    sock.write_all(&find_endp_req(label))
        .map_err(|e| e.to_string())?;
    let reply = read_msg(sock)?;
    if !reply.starts_with(b"status\x000\0") {
        return Ok((reply, None));
    }
    sock.write_all(DUMMY).map_err(|e| e.to_string())?;
    let fd = unix::recv_fd(sock.as_fd()).map_err(|e| e.to_string())?;
    sock.write_all(DUMMY).map_err(|e| e.to_string())?;
    Ok((reply, Some(fd)))
}

/// The daemon's `stats` counters on a fresh connection; Err(description)
/// for a daemon that has none (Postfix's) or cannot be reached.
fn stats_of(h: &Harness) -> Result<std::collections::BTreeMap<String, u64>, String> {
    let mut c = h
        .connect_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    c.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    ask_stats(&mut c).map_err(|e| e.to_string())
}

/// Checks that the daemon's descriptor count comes back to `base` within
/// 3 s; `step` (empty, or ending in ": ") prefixes the note and failure.
fn check_fds_back(o: &mut Obs, h: &Harness, base: usize, step: &str) {
    let now = fds_settle_to(h, base, Duration::from_secs(3));
    o.note(format!("{step}descriptors {now} (baseline {base})"));
    o.check(now == base, || {
        format!("{step}{now} descriptors, baseline {base}")
    });
}

/// Polls until the descriptor count is `want` (or `limit` passes);
/// returns the last count (0 if it could not be read).
fn fds_settle_to(h: &Harness, want: usize, limit: Duration) -> usize {
    let mut now = 0;
    poll_until(limit, || {
        now = h.fd_count().unwrap_or(0);
        (now == want).then_some(())
    });
    now
}

/// CPU time (user + system) a process has used.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz.max(1))
}

// ---------------------------------------------------------------------------
// Client processes killed with SIGKILL.

/// A client process (this test binary re-executed) that stops at a chosen
/// point of an exchange and waits to be killed.
struct ChildClient {
    child: Child,
}

impl ChildClient {
    /// Starts a child doing `mode` on `label` and waits until it reports
    /// that it reached the point where it must be killed.
    fn spawn(socket: &Path, mode: &str, label: &str) -> ChildClient {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_client",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_CHILD_MODE, mode)
            .env(ENV_CHILD_SOCKET, socket)
            .env(ENV_CHILD_LABEL, label)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn child client");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // libtest may have printed "test child_client ... " first.
                if let Some(at) = line.find("CHILD ") {
                    let _ = tx.send(line[at + 6..].to_string());
                }
            }
        });
        let mut got = rx.recv_timeout(T);
        while matches!(&got, Ok(s) if s != "READY") {
            got = rx.recv_timeout(T);
        }
        match got {
            Ok(_) => ChildClient { child },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child client ({mode}) did not get ready: {other:?}");
            }
        }
    }

    /// SIGKILL, and reap.
    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let st = self.child.wait().expect("reap");
        assert_eq!(st.signal(), Some(9), "{st}");
    }
}

/// The body of a child client process (only with `SCACHE_FAULT_CHILD`).
/// Modes: `find` (find_endp, read the reply, stop before the dummy),
/// `find_fd` (take the descriptor, stop before the last dummy), `save`
/// (save_endp, read the dummy, stop before the descriptor), `partial`
/// (half a request).
#[test]
#[ignore = "helper: runs only as a re-executed child of a fault test"]
fn child_client() {
    let Some(mode) = std::env::var_os(ENV_CHILD_MODE) else {
        return;
    };
    let mode = mode.to_string_lossy().into_owned();
    let path = PathBuf::from(std::env::var_os(ENV_CHILD_SOCKET).expect("socket"));
    let label = std::env::var(ENV_CHILD_LABEL).expect("label").into_bytes();
    let mut s = connect_path(&path, T).expect("connect");
    let mut keep = Vec::new();
    match mode.as_str() {
        "find" => {
            s.write_all(&find_endp_req(&label)).unwrap();
            println!("CHILD reply {}", show(&read_msg(&mut s).unwrap()));
        }
        "find_fd" => {
            s.write_all(&find_endp_req(&label)).unwrap();
            println!("CHILD reply {}", show(&read_msg(&mut s).unwrap()));
            s.write_all(DUMMY).unwrap();
            keep.push(unix::recv_fd(s.as_fd()).expect("descriptor"));
        }
        "save" => {
            s.write_all(&save_endp_req(b"60", &label, b"p")).unwrap();
            assert_eq!(read_msg(&mut s).unwrap(), DUMMY);
        }
        "partial" => {
            s.write_all(b"request\0find_en").unwrap();
        }
        other => panic!("unknown child mode {other}"),
    }
    println!("CHILD READY");
    io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
    drop(keep);
}

fn kill_after_find_reply(o: &mut Obs, program: &Path) {
    let h = start_daemon(program, &["connection_cache_ttl_limit=60s"]);
    let base = settled_fd_count(&h);
    let (a, far) = session();
    let id = identity(&a);
    let mut p = Peer::connect(&h);
    let st = save(&mut p.sock, "60", b"killed-taker", b"pk", a);
    o.note(format!("save_endp: {:?}", st.as_deref().map(show)));
    let child = ChildClient::spawn(h.socket_path(), "find", "killed-taker");
    o.note("a client process sent find_endp, read `status 0`, and was killed with SIGKILL");
    child.kill9();
    // The next client gets the very same session.
    let got = find(&mut p.sock, b"killed-taker");
    let ok = matches!(&got, Ok((r, Some(fd))) if *r == find_reply(b"pk") && identity(fd) == id);
    o.note(format!(
        "next find_endp: {}",
        match &got {
            Ok((r, fd)) => format!(
                "`{}` {}",
                show(r),
                if fd.as_ref().map(identity) == Some(id) {
                    "(same session)"
                } else {
                    "(no/other descriptor)"
                }
            ),
            Err(e) => e.clone(),
        }
    ));
    o.check(ok, || format!("the session was not put back: {got:?}"));
    drop(p);
    check_fds_back(o, &h, base, "");
    check_serves(o, &h);
    drop(far);
}

fn kill_after_receiving_descriptor(o: &mut Obs, program: &Path) {
    let h = start_daemon(program, &["connection_cache_ttl_limit=60s"]);
    let base = settled_fd_count(&h);
    let (a, far) = session();
    let mut p = Peer::connect(&h);
    let _ = save(&mut p.sock, "60", b"killed-holder", b"ph", a);
    let child = ChildClient::spawn(h.socket_path(), "find_fd", "killed-holder");
    o.note("a client process took the descriptor and was killed before its last dummy");
    child.kill9();
    // The daemon closed its copy when it handed the session over: with the
    // child dead, no copy of the cached end is left.
    let eof = sees_eof(&far, Duration::from_secs(3));
    o.note(format!("the session's far end sees EOF: {eof}"));
    o.check(eof, || {
        "a copy of the handed-over session is still open".into()
    });
    let got = find(&mut p.sock, b"killed-holder");
    o.note(format!(
        "next find_endp: {:?}",
        got.as_ref().map(|(r, _)| show(r))
    ));
    o.check(matches!(&got, Ok((r, None)) if r == MISS_ENDP), || {
        format!("{got:?}")
    });
    drop(p);
    check_fds_back(o, &h, base, "");
    check_serves(o, &h);
}

fn kill_before_descriptor(o: &mut Obs, program: &Path) {
    let h = start_daemon(program, &[]);
    let base = settled_fd_count(&h);
    for mode in ["save", "partial"] {
        let child = ChildClient::spawn(h.socket_path(), mode, "killed-saver");
        let t0 = Instant::now();
        // Another client is served while the child is stuck in mid-exchange.
        let served = serves(&h, Duration::from_secs(2));
        o.note(format!(
            "{mode}: another client served while the client is stuck: {served:?} in {:?}",
            t0.elapsed()
        ));
        o.check(served.is_ok(), || {
            format!("{mode}: others not served while a client is stuck: {served:?}")
        });
        child.kill9();
        o.note(format!("{mode}: client killed with SIGKILL"));
        let mut p = Peer::connect(&h);
        let got = find(&mut p.sock, b"killed-saver");
        o.check(matches!(&got, Ok((r, None)) if r == MISS_ENDP), || {
            format!("{mode}: find after kill: {got:?}")
        });
        drop(p);
        check_fds_back(o, &h, base, &format!("{mode}: "));
    }
    check_serves(o, &h);
}

/// A fresh save + find round trip returning the same file.
fn serves(h: &Harness, timeout: Duration) -> Result<(), String> {
    let mut s = h.connect_timeout(timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).unwrap();
    let (a, _far) = session();
    let id = identity(&a);
    let st = save(&mut s, "60", b"serve-check", b"sp", a)?;
    if st != OK {
        return Err(format!("save: `{}`", show(&st)));
    }
    match find(&mut s, b"serve-check")? {
        (r, Some(fd)) if r == find_reply(b"sp") && identity(&fd) == id => Ok(()),
        (r, _) => Err(format!("find: `{}`", show(&r))),
    }
}

fn check_serves(o: &mut Obs, h: &Harness) {
    let r = serves(h, Duration::from_secs(5));
    o.note(format!("another client is served: {r:?}"));
    o.check(r.is_ok(), || format!("not serving: {r:?}"));
}

#[test]
fn sigkill_client_after_find_reply_session_put_back() {
    both(
        "sigkill_client_after_find_reply_session_put_back",
        kill_after_find_reply,
    );
}

#[test]
fn sigkill_client_after_receiving_descriptor() {
    both(
        "sigkill_client_after_receiving_descriptor",
        kill_after_receiving_descriptor,
    );
}

#[test]
fn sigkill_client_before_sending_descriptor_or_mid_request() {
    both(
        "sigkill_client_before_sending_descriptor_or_mid_request",
        kill_before_descriptor,
    );
}

// ---------------------------------------------------------------------------
// SIGTERM under load.

/// Clients doing save/find as fast as they can until the daemon goes away.
struct Load {
    stop: Arc<AtomicBool>,
    /// Save+find rounds completed, per client.
    rounds: Arc<Vec<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(
        connect: impl Fn() -> io::Result<UnixStream> + Send + Sync + Clone + 'static,
        n: usize,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let threads = (0..n)
            .map(|i| {
                let (stop, rounds, connect) = (stop.clone(), rounds.clone(), connect.clone());
                std::thread::spawn(move || {
                    let Ok(mut s) = connect() else { return };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                    let label = format!("load-{i}").into_bytes();
                    while !stop.load(Ordering::Relaxed) {
                        let (a, _far) = session();
                        if save(&mut s, "60", &label, b"lp", a).is_err()
                            || find(&mut s, &label).is_err()
                        {
                            return;
                        }
                        rounds[i].fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load {
            stop,
            rounds,
            threads,
        }
    }

    /// Rounds completed so far, per client.
    fn rounds(&self) -> Vec<u64> {
        self.rounds
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }

    /// Waits (up to `limit`) until every client has completed a round;
    /// whether they all did.
    fn wait_busy(&self, limit: Duration) -> bool {
        poll_until(limit, || self.rounds().iter().all(|&r| r > 0).then_some(())).is_some()
    }

    /// Stops the clients; the rounds each completed.
    fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        self.rounds
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }
}

/// Caches `n` sessions; returns the far ends.
fn cache_sessions(sock: &mut UnixStream, n: usize) -> Vec<OwnedFd> {
    let mut far = Vec::new();
    for i in 0..n {
        let (a, b) = session();
        let st = save(sock, "60", format!("held-{i}").as_bytes(), b"hp", a).expect("save");
        assert_eq!(st, OK, "save {i}: {}", show(&st));
        far.push(b);
    }
    far
}

fn sigterm_master(o: &mut Obs, program: &Path) {
    let h = Arc::new(start_daemon(program, &["connection_cache_ttl_limit=60s"]));
    let mut p = Peer::connect(&h);
    let far = cache_sessions(&mut p.sock, 20);
    let _ = find(&mut p.sock, b"never-saved");
    let hc = h.clone();
    let load = Load::start(move || hc.connect_timeout(Duration::from_secs(5)), 4);
    let busy = load.wait_busy(T);
    o.note(format!(
        "20 sessions cached, 4 clients saving and finding (rounds so far {:?}), then SIGTERM",
        load.rounds()
    ));
    o.check(busy, || {
        format!(
            "not every load client completed a round before SIGTERM: {:?}",
            load.rounds()
        )
    });
    h.terminate().unwrap();
    let st = h.wait_exit(T);
    let rounds = load.finish();
    o.note(format!(
        "load clients completed {rounds:?} save+find rounds; exit: {st:?}"
    ));
    check_clean_exit(o, &h, st, &far);
}

/// The daemon was told to go and `st` is how it ended: exit status 0,
/// its statistics logged, and every cached session closed (the far ends
/// see EOF).
fn check_clean_exit(
    o: &mut Obs,
    h: &Harness,
    st: Option<std::process::ExitStatus>,
    far: &[OwnedFd],
) {
    o.check(st.is_some_and(|s| s.code() == Some(0)), || {
        format!("exit status {st:?}, want 0")
    });
    let stats = h.wait_for_log("statistics: address lookup", Duration::from_secs(3));
    let lines: Vec<String> = h
        .log_messages()
        .into_iter()
        .filter(|l| l.starts_with("statistics:") || l.contains("signal"))
        .collect();
    o.note(format!("log: {lines:?}"));
    o.check(stats, || "no statistics logged at exit".into());
    let open = far
        .iter()
        .filter(|f| !sees_eof(f, Duration::from_secs(2)))
        .count();
    o.note(format!(
        "cached sessions whose far end did not see EOF: {open} of {}",
        far.len()
    ));
    o.check(open == 0, || {
        format!("{open} cached descriptors not closed")
    });
}

#[test]
fn sigterm_under_load_master_mode() {
    both("sigterm_under_load_master_mode", sigterm_master);
}

#[test]
fn sigterm_under_load_standalone_removes_socket() {
    let dir = TempDir::new("scache-faults").unwrap();
    let path = dir.path().join("scache.sock");
    let mut daemon = Command::new(ours())
        .arg("--listen")
        .arg(&path)
        .args(["-o", "connection_cache_ttl_limit=60s"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn standalone daemon");
    let pid = daemon.id() as i32;
    let deadline = Instant::now() + T;
    let mut sock = loop {
        match connect_path(&path, T) {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                let _ = daemon.kill();
                panic!("standalone daemon not ready: {e}");
            }
        }
    };
    let far = cache_sessions(&mut sock, 20);
    let _ = find(&mut sock, b"never-saved");
    let lp = path.clone();
    let load = Load::start(move || connect_path(&lp, Duration::from_secs(5)), 4);
    assert!(
        load.wait_busy(T),
        "not every load client completed a round before SIGTERM: {:?}",
        load.rounds()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut stderr = daemon.stderr.take().unwrap();
    let st = wait_child(&mut daemon, T);
    let rounds = load.finish();
    let mut log = String::new();
    let _ = stderr.read_to_string(&mut log);
    assert!(
        rounds.iter().all(|&r| r > 0),
        "the load did not run: rounds per client {rounds:?}"
    );
    assert_eq!(
        st.and_then(|s| s.code()),
        Some(0),
        "exit status {st:?}\n{log}"
    );
    assert!(
        log.contains("statistics: address lookup"),
        "no statistics at exit:\n{log}"
    );
    assert!(
        !path.exists(),
        "the socket {} was not removed",
        path.display()
    );
    let open = far
        .iter()
        .filter(|f| !sees_eof(f, Duration::from_secs(2)))
        .count();
    assert_eq!(open, 0, "{open} cached descriptors not closed\n{log}");
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The master status socket closing.

fn status_close(o: &mut Obs, program: &Path) {
    let h = start_daemon(program, &["connection_cache_ttl_limit=60s"]);
    let mut p = Peer::connect(&h);
    let far = cache_sessions(&mut p.sock, 5);
    let _ = find(&mut p.sock, b"never-saved");
    let mut idle = Peer::connect(&h);
    h.wait_for_status_records(2, Duration::from_secs(5));
    o.note("5 sessions cached, a client connected; master closes the status socket");
    h.close_status();
    let st = h.wait_exit(T);
    o.note(format!("exit: {st:?}"));
    check_clean_exit(o, &h, st, &far);
    idle.sock
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    o.check(idle.is_closed(), || {
        "a connected client was not disconnected".into()
    });
}

#[test]
fn master_status_socket_closing() {
    both("master_status_socket_closing", status_close);
}

// ---------------------------------------------------------------------------
// RLIMIT_NOFILE exhaustion.

const FD_LIMIT: usize = 64;

/// Samples the daemon's descriptor table until stopped: the most entries
/// and the highest descriptor number seen. (A listing of `/proc/PID/fd` is
/// not atomic: a descriptor closed after it was listed and another opened at
/// a higher number before the listing got there are both counted, so one
/// listing can show one entry more than were ever open at once. The
/// kernel's own bound is on descriptor *numbers*: all are below the limit.)
///
/// Descriptors the daemon inherited above the limit are left out: the
/// harness hands the child whatever the test process has open without
/// close-on-exec (for example the jobserver pipe cargo passes down), and
/// `exec` keeps a descriptor whatever its number. master(8) passes none.
struct FdSampler {
    stop: Arc<AtomicBool>,
    max: Arc<AtomicUsize>,
    highest: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FdSampler {
    /// Samples `pid`, leaving out the descriptors in `ignore`.
    fn start(pid: i32, ignore: Vec<usize>) -> FdSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicUsize::new(0));
        let highest = Arc::new(AtomicUsize::new(0));
        let (s, m, hi) = (stop.clone(), max.clone(), highest.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(d) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
                    let fds: Vec<usize> = d
                        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                        .filter(|f| !ignore.contains(f))
                        .collect();
                    m.fetch_max(fds.len(), Ordering::Relaxed);
                    hi.fetch_max(fds.iter().copied().max().unwrap_or(0), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        FdSampler {
            stop,
            max,
            highest,
            thread: Some(thread),
        }
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    fn highest(&self) -> usize {
        self.highest.load(Ordering::Relaxed)
    }
}

impl Drop for FdSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn fd_exhaustion(o: &mut Obs, program: &Path) {
    fd_exhaustion_at(o, program, FD_LIMIT);
    if program_target(program) == Target::Postfix {
        // Postfix's daemon moves every client socket above descriptor 128
        // (multi_server.c), so at 64 it cannot serve anyone at all; measure
        // it where it can.
        fd_exhaustion_at(o, program, 256);
    }
}

/// The exhaustion scenario with both descriptor limits at `limit`.
fn fd_exhaustion_at(o: &mut Obs, program: &Path, limit: usize) {
    o.note(format!("--- RLIMIT_NOFILE {limit}:{limit} ---"));
    // The test itself holds hundreds of descriptors.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < 4096 && hard > soft {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
    // Started the way master would, through prlimit(1) so that both the
    // soft and the hard limit are 64 (the daemon raises soft to hard).
    let Some(prlimit) = ["/usr/bin/prlimit", "/bin/prlimit"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        scache_testkit::harness::skip_or_fail(
            "rlimit_nofile_exhaustion",
            "prlimit(1) not found (install util-linux)",
        );
        return;
    };
    let mut b = HarnessBuilder::new(prlimit)
        .master_args(false)
        .arg(format!("--nofile={limit}:{limit}"))
        .arg(program)
        .args(["-l", "-t", "unix", "-n", "scache"]);
    if program_target(program) == Target::Postfix {
        b = b.args(["-o", "ipc_timeout=5s"]);
    }
    let h = b.spawn().expect("spawn under prlimit");
    if let Err(e) = h.wait_ready(Duration::from_secs(20)) {
        std::thread::sleep(Duration::from_millis(300));
        o.note(format!(
            "daemon not ready: {e}; log: {:?}",
            h.log_messages()
        ));
        o.check(false, || format!("daemon did not start under prlimit: {e}"));
        return;
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", h.pid())).unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or("")
        .to_string();
    o.note(format!(
        "daemon limit: {}",
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    ));
    let base = settled_fd_count(&h);
    let inherited: Vec<usize> = std::fs::read_dir(format!("/proc/{}/fd", h.pid()))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|&f| f >= limit)
                .collect()
        })
        .unwrap_or_default();
    if !inherited.is_empty() {
        o.note(format!("descriptors inherited from the test process above the limit (not counted): {inherited:?}"));
    }
    let sampler = FdSampler::start(h.pid(), inherited);
    let cpu0 = cpu_time(h.pid());
    let t0 = Instant::now();

    // 1. Far more saves than descriptors.
    let mut far = Vec::new();
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    let mut saver = h.connect().expect("connect");
    saver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for i in 0..limit * 3 {
        let (a, b) = session();
        far.push(b);
        let st = match save(
            &mut saver,
            "60",
            format!("fd-{}", i % 7).as_bytes(),
            b"p",
            a,
        ) {
            Ok(r) => show(&r),
            Err(e) => format!("error: {e}"),
        };
        *statuses.entry(st).or_default() += 1;
    }
    o.note(format!(
        "{} saves on one connection: {statuses:?}; max descriptors so far {}",
        limit * 3,
        sampler.max()
    ));
    // The session limit derived from the descriptor limit makes room:
    // every save succeeds.
    o.check(statuses.keys().all(|k| k == &show(OK)), || {
        format!("saves not all answered with status 0: {statuses:?}")
    });
    let alive = h.try_wait().ok().flatten().is_none();
    o.check(alive, || {
        format!("daemon exited during the saves: {:?}", h.try_wait())
    });

    // 1b. Descriptor pressure: the cache holds all the sessions the limit
    //     allows and clients connect and stay, beyond the descriptors
    //     left. Each must be greeted and its save must succeed, which takes
    //     evicting the session closest to expiry (README: "evicts the
    //     session closest to expiry and carries on").
    let before = stats_of(&h);
    let mut held = Vec::new();
    let mut held_statuses = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..limit / 2 {
        match h.connect_timeout(Duration::from_secs(5)) {
            Ok(c) => {
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                held.push(c);
            }
            Err(e) => {
                *held_statuses
                    .entry(format!("connect error: {e}"))
                    .or_default() += 1;
                break;
            }
        }
        let c = held.last_mut().unwrap();
        let (a, b) = session();
        far.push(b);
        let st = match save(c, "60", format!("held-{i}").as_bytes(), b"p", a) {
            Ok(r) => show(&r),
            Err(e) => format!("error: {e}"),
        };
        *held_statuses.entry(st).or_default() += 1;
    }
    let after = stats_of(&h);
    let pressure = |s: &Result<std::collections::BTreeMap<String, u64>, String>| {
        s.as_ref()
            .ok()
            .and_then(|m| m.get("evicted_sessions_fd_pressure").copied())
    };
    let (p0, p1) = (pressure(&before), pressure(&after));
    o.note(format!(
        "{} clients connected and stayed, one save each: {held_statuses:?}; evicted_sessions_fd_pressure {p0:?} -> {p1:?}",
        limit / 2
    ));
    o.check(
        held.len() == limit / 2 && held_statuses.keys().all(|k| k == &show(OK)),
        || format!("clients beyond the descriptors left were not all greeted and saved: {held_statuses:?}"),
    );
    o.check(matches!((p0, p1), (Some(a), Some(b)) if b > a), || {
        format!(
            "no session was evicted for descriptors: evicted_sessions_fd_pressure {p0:?} -> {p1:?} (stats: {before:?} / {after:?})"
        )
    });
    drop(held);

    // 2. 100 clients at once (more than the limit allows at one time), each
    //    one request, while the saver keeps saving.
    let answered = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let saves_during = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (stop, answered, failures, saves_during, h) =
            (&stop, &answered, &failures, &saves_during, &h);
        let saver = &mut saver;
        let far = &mut far;
        let saver_thread = s.spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = session();
                far.push(b);
                match save(saver, "60", format!("busy-{}", i % 5).as_bytes(), b"p", a) {
                    Ok(r) if r == OK || r == FAIL => {
                        saves_during.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        failures.lock().unwrap().push(format!("saver: {other:?}"));
                        return;
                    }
                }
                i += 1;
            }
        });
        let clients: Vec<_> = (0..100)
            .map(|i| {
                s.spawn(move || {
                    let r = h
                        .connect_timeout(Duration::from_secs(30))
                        .map_err(|e| e.to_string())
                        .and_then(|mut c| {
                            c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                            c.write_all(&find_endp_req(b"nothing"))
                                .map_err(|e| e.to_string())?;
                            read_msg(&mut c)
                        });
                    match r {
                        Ok(m) if m == MISS_ENDP => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        other => failures
                            .lock()
                            .unwrap()
                            .push(format!("client {i}: {other:?}")),
                    }
                })
            })
            .collect();
        for c in clients {
            let _ = c.join();
        }
        stop.store(true, Ordering::Relaxed);
        let _ = saver_thread.join();
    });
    let failures = failures.into_inner().unwrap();
    o.note(format!(
        "100 simultaneous clients: {} answered, {} saves answered meanwhile, failures {:?}",
        answered.load(Ordering::Relaxed),
        saves_during.load(Ordering::Relaxed),
        failures.iter().take(3).collect::<Vec<_>>()
    ));
    o.check(
        answered.load(Ordering::Relaxed) == 100 && failures.is_empty(),
        || {
            format!(
                "not every client was answered: {} failures, first {:?}",
                failures.len(),
                failures.iter().take(3).collect::<Vec<_>>()
            )
        },
    );

    // 3. Hold more connections than descriptors and stay idle: no spinning.
    let mut idle = Vec::new();
    for _ in 0..limit + 50 {
        match unix::connect_stream(h.socket_path()) {
            Ok(s) => idle.push(s),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let c0 = cpu_time(h.pid());
    std::thread::sleep(Duration::from_secs(2));
    let idle_cpu = cpu_time(h.pid()).saturating_sub(c0);
    o.note(format!(
        "{} connections held open (more than fit): CPU used over 2 s idle: {idle_cpu:?}",
        idle.len()
    ));
    o.check(idle_cpu < Duration::from_millis(300), || {
        format!("daemon spins: {idle_cpu:?} CPU in 2 s")
    });
    drop(idle);
    let r = serves(&h, Duration::from_secs(10));
    o.note(format!("after they left, a new client is served: {r:?}"));
    o.check(r.is_ok(), || format!("not serving after the flood: {r:?}"));

    let total_cpu = cpu_time(h.pid()).saturating_sub(cpu0);
    let (max, highest) = (sampler.max(), sampler.highest());
    drop(sampler);
    o.note(format!(
        "whole test: {:?} wall, {total_cpu:?} CPU; /proc/PID/fd: at most {max} entries in one listing, highest descriptor {highest} (limit {limit})",
        t0.elapsed()
    ));
    o.check(highest < limit && max <= limit + 1, || {
        format!("{max} descriptors listed / highest number {highest}, limit {limit}")
    });
    o.check(max + 2 >= limit, || {
        format!("the daemon never came near its limit ({max} of {limit}): the test did not test")
    });
    let alive = h.try_wait().ok().flatten();
    o.check(alive.is_none(), || format!("daemon exited: {alive:?}"));
    let logs: Vec<String> = h
        .log_messages()
        .into_iter()
        .filter(|l| !l.starts_with("statistics"))
        .collect();
    let mut kinds: Vec<String> = logs.iter().map(|l| l.chars().take(70).collect()).collect();
    kinds.sort();
    kinds.dedup();
    o.note(format!("distinct log lines: {kinds:?}"));
    // Our counters (Postfix answers `stats` as an unknown request).
    let picked = stats_of(&h).map(|m| {
        m.into_iter()
            .filter(|(k, _)| {
                [
                    "saves_endp",
                    "refused_saves",
                    "evicted_sessions_session_limit",
                    "evicted_sessions_fd_pressure",
                ]
                .contains(&k.as_str())
            })
            .collect::<Vec<_>>()
    });
    o.note(format!("stats: {picked:?}"));
    // Everything cached expires (ttl limit 2 s): back to the baseline.
    drop(saver);
    drop(far);
    let now = fds_settle_to(&h, base, Duration::from_millis(5500));
    o.note(format!("descriptors at the end {now} (baseline {base})"));
    o.check(now == base, || {
        format!("{now} descriptors at the end, baseline {base}")
    });
}

#[test]
fn rlimit_nofile_exhaustion() {
    both("rlimit_nofile_exhaustion", fd_exhaustion);
}
