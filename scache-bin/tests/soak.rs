//! A bounded soak: ~20 clients doing random operations, with random
//! disconnects and random mid-exchange aborts, against one daemon.
//!
//! Duration: 60 s by default (the CI profile); `SCACHE_SOAK_SECS=N` changes
//! it (for example `SCACHE_SOAK_SECS=3600` for the long profile documented
//! in `docs/robustness.md`).
//!
//! Checked:
//! - every reply is the one expected; every descriptor handed out is a
//!   session that was saved under that label with that property, and none
//!   is handed out twice;
//! - the daemon's counters (`request=stats`) add up at every poll and at the
//!   end: every session that entered the cache (`saves_endp`, `put_backs`)
//!   is found (`endp_hits`, `dest_hits`), expired (`expired_sessions`),
//!   evicted (`evicted_sessions_*`) or still cached (`sess_count`), and the
//!   counters equal what the clients themselves observed;
//! - at the end, with every client gone and every session expired, the
//!   daemon's descriptor count is back to its start and its RSS within a
//!   small margin of it.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{ask_stats, identity, ours, poll_until, req, session, show, start};
use scache_proto::unix;
use scache_testkit::harness::Harness;
use scache_testkit::wire;

const ENV_SECS: &str = "SCACHE_SOAK_SECS";
const DEFAULT_SECS: u64 = 60;
const CLIENTS: usize = 20;
const ENDPOINTS: u64 = 40;
const DESTINATIONS: u64 = 8;
/// Far ends a client keeps (older ones are closed: their cached ends, if
/// still cached, are evicted as dead).
const FAR_RING: usize = 32;
/// RSS the daemon may hold at the end beyond what it held at the start.
const RSS_MARGIN_KIB: u64 = 4096;

const OK: &[u8] = b"status\x000\0\0";
const DUMMY: &[u8] = b"dummy\0\0\0";
const MISS_ENDP: &[u8] = b"status\x002\0property\0\0\0";
const MISS_DEST: &[u8] = b"status\x002\0property\0\0property\0\0\0";

/// A small deterministic PRNG (xorshift64*), seeded per client.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients saw, to compare with the daemon's counters.
#[derive(Default)]
struct Seen {
    saves_ok: AtomicU64,
    saves_failed: AtomicU64,
    endp_hits: AtomicU64,
    dest_hits: AtomicU64,
    misses: AtomicU64,
    /// Finds answered `status 0` whose client then left without taking the
    /// descriptor: the daemon must put each back.
    abandoned: AtomicU64,
    disconnects: AtomicU64,
    aborts: AtomicU64,
    peers_closed: AtomicU64,
    peers_spoke: AtomicU64,
    stats_polls: AtomicU64,
    ops: AtomicU64,
}

/// Sessions that may be in the cache: identity -> (label, property, when).
type Live = Mutex<HashMap<(u64, u64), (Vec<u8>, Vec<u8>)>>;

struct Shared<'a> {
    h: &'a Harness,
    stop: AtomicBool,
    seen: Seen,
    live: Live,
    errors: Mutex<Vec<String>>,
    /// Far ends of the clients that finished: kept open until the end so
    /// that what is still cached then leaves by expiry.
    kept: Mutex<Vec<OwnedFd>>,
}

impl Shared<'_> {
    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 50 {
            errors.push(e);
        }
    }

    /// Checks a descriptor handed out for `label` (None: by destination)
    /// against what was saved, and forgets it (it left the cache).
    fn handed_out(
        &self,
        fd: &OwnedFd,
        label: Option<&[u8]>,
        endp_prop: &[u8],
    ) -> Result<(), String> {
        let id = identity(fd);
        match self.live.lock().unwrap().remove(&id) {
            None => Err(format!(
                "descriptor {id:?} was never saved or was handed out twice"
            )),
            Some((l, p)) => {
                if label.is_some_and(|label| label != l) {
                    Err(format!(
                        "descriptor saved under `{}` handed out for `{}`",
                        show(&l),
                        show(label.unwrap())
                    ))
                } else if p != endp_prop {
                    Err(format!(
                        "property `{}` returned for a session saved with `{}`",
                        show(endp_prop),
                        show(&p)
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn endp_label(n: u64) -> Vec<u8> {
    format!("smtp\n192.0.2.{n}\n25\n*\n").into_bytes()
}

fn dest_label(n: u64) -> Vec<u8> {
    format!("smtp\nexample{n}.com\n*\n").into_bytes()
}

fn dest_prop(dest: &[u8]) -> Vec<u8> {
    let mut p = b"dprop:".to_vec();
    p.extend_from_slice(dest);
    p
}

/// One client's state.
struct Client<'a> {
    id: usize,
    sh: &'a Shared<'a>,
    rng: Rng,
    sock: Option<UnixStream>,
    far: Vec<OwnedFd>,
    serial: u64,
}

enum Step {
    Continue,
    /// The connection is gone (on purpose or not).
    Dropped,
}

impl Client<'_> {
    fn sock(&mut self) -> io::Result<&mut UnixStream> {
        if self.sock.is_none() {
            let s = self.sh.h.connect_timeout(Duration::from_secs(10))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            self.sock = Some(s);
        }
        Ok(self.sock.as_mut().unwrap())
    }

    fn run(&mut self) {
        while !self.sh.stop.load(Ordering::Relaxed) {
            match self.step() {
                Ok(Step::Continue) => {}
                Ok(Step::Dropped) => self.sock = None,
                Err(e) => {
                    self.sh.error(format!("client {}: {e}", self.id));
                    self.sock = None;
                }
            }
            self.sh.seen.ops.fetch_add(1, Ordering::Relaxed);
            if self.rng.below(50) == 0 {
                std::thread::sleep(Duration::from_millis(self.rng.below(5)));
            }
        }
    }

    fn step(&mut self) -> Result<Step, String> {
        let roll = self.rng.below(100);
        let e = endp_label(self.rng.below(ENDPOINTS));
        let d = dest_label(self.rng.below(DESTINATIONS));
        let sh = self.sh;
        let seen = &sh.seen;
        match roll {
            0..=34 => self.save_endp(&e).map(|()| Step::Continue),
            35..=51 => self.find_endp(&e, Abort::No),
            52..=61 => {
                let ttl = (1 + self.rng.below(5)).to_string();
                let request = req(&[
                    b"request",
                    b"save_dest",
                    b"ttl",
                    ttl.as_bytes(),
                    b"label",
                    &d,
                    b"property",
                    &dest_prop(&d),
                    b"label",
                    &e,
                ]);
                let s = self.sock().map_err(|e| e.to_string())?;
                s.write_all(&request).map_err(|e| e.to_string())?;
                let r = wire::read_message(s).map_err(|e| e.to_string())?;
                if r != OK {
                    return Err(format!("save_dest: `{}`", show(&r)));
                }
                Ok(Step::Continue)
            }
            62..=76 => self.find_dest(&d),
            77..=79 => self.find_endp(&e, Abort::AfterReply),
            80..=82 => self.find_endp(&e, Abort::AfterDescriptor),
            83..=85 => {
                // save_endp, then leave instead of sending the descriptor.
                let s = self.sock().map_err(|e| e.to_string())?;
                s.write_all(&req(&[
                    b"request",
                    b"save_endp",
                    b"ttl",
                    b"3",
                    b"label",
                    &e,
                    b"property",
                    b"never",
                ]))
                .map_err(|e| e.to_string())?;
                let r = wire::read_message(s).map_err(|e| e.to_string())?;
                if r != DUMMY {
                    return Err(format!("save_endp: `{}`", show(&r)));
                }
                seen.aborts.fetch_add(1, Ordering::Relaxed);
                Ok(Step::Dropped)
            }
            86..=87 => {
                // Half a request, then leave.
                let request = req(&[b"request", b"find_endp", b"label", &e]);
                let cut = 1 + self.rng.below(request.len() as u64 - 1) as usize;
                let s = self.sock().map_err(|e| e.to_string())?;
                s.write_all(&request[..cut]).map_err(|e| e.to_string())?;
                seen.aborts.fetch_add(1, Ordering::Relaxed);
                Ok(Step::Dropped)
            }
            88..=90 => {
                seen.disconnects.fetch_add(1, Ordering::Relaxed);
                Ok(Step::Dropped)
            }
            91..=93 => {
                // The far end of some cached session hangs up.
                if !self.far.is_empty() {
                    let i = self.rng.below(self.far.len() as u64) as usize;
                    self.far.swap_remove(i);
                    seen.peers_closed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Step::Continue)
            }
            94..=95 => {
                // The far end speaks (an SMTP server's 421 before it goes).
                if !self.far.is_empty() {
                    let i = self.rng.below(self.far.len() as u64) as usize;
                    let far = self.far.swap_remove(i);
                    let _ = UnixStream::from(far).write_all(b"421 4.3.2 Service shutting down\r\n");
                    seen.peers_spoke.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Step::Continue)
            }
            96 => {
                let s = self.sock().map_err(|e| e.to_string())?;
                ask_stats(s).map_err(|e| e.to_string())?;
                seen.stats_polls.fetch_add(1, Ordering::Relaxed);
                Ok(Step::Continue)
            }
            _ => {
                let s = self.sock().map_err(|e| e.to_string())?;
                s.write_all(&req(&[b"request", b"find_endp", b"label", b"never saved"]))
                    .map_err(|e| e.to_string())?;
                let r = wire::read_message(s).map_err(|e| e.to_string())?;
                if r != MISS_ENDP {
                    return Err(format!("find_endp (never saved): `{}`", show(&r)));
                }
                seen.misses.fetch_add(1, Ordering::Relaxed);
                Ok(Step::Continue)
            }
        }
    }

    fn save_endp(&mut self, e: &[u8]) -> Result<(), String> {
        self.serial += 1;
        let prop = format!("client={} serial={}", self.id, self.serial).into_bytes();
        let ttl = (1 + self.rng.below(3)).to_string();
        let (a, b) = session();
        let id = identity(&a);
        let sh = self.sh;
        let s = self.sock().map_err(|e| e.to_string())?;
        s.write_all(&req(&[
            b"request",
            b"save_endp",
            b"ttl",
            ttl.as_bytes(),
            b"label",
            e,
            b"property",
            &prop,
        ]))
        .map_err(|e| e.to_string())?;
        let r = wire::read_message(s).map_err(|e| e.to_string())?;
        if r != DUMMY {
            return Err(format!("save_endp: `{}`", show(&r)));
        }
        sh.live.lock().unwrap().insert(id, (e.to_vec(), prop));
        unix::send_fd(s.as_fd(), a.as_fd()).map_err(|e| e.to_string())?;
        drop(a);
        let r = wire::read_message(s).map_err(|e| e.to_string())?;
        if r == OK {
            sh.seen.saves_ok.fetch_add(1, Ordering::Relaxed);
        } else if r == b"status\x002\0\0" {
            sh.seen.saves_failed.fetch_add(1, Ordering::Relaxed);
            sh.live.lock().unwrap().remove(&id);
        } else {
            return Err(format!("save_endp status: `{}`", show(&r)));
        }
        self.far.push(b);
        if self.far.len() > FAR_RING {
            self.far.remove(0);
        }
        Ok(())
    }

    fn find_endp(&mut self, e: &[u8], abort: Abort) -> Result<Step, String> {
        let s = self.sock().map_err(|e| e.to_string())?;
        s.write_all(&req(&[b"request", b"find_endp", b"label", e]))
            .map_err(|e| e.to_string())?;
        let r = wire::read_message(s).map_err(|e| e.to_string())?;
        if r == MISS_ENDP {
            self.sh.seen.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(Step::Continue);
        }
        let Some(prop) = r
            .strip_prefix(b"status\x000\0property\0")
            .and_then(|p| p.strip_suffix(b"\0\0"))
        else {
            return Err(format!("find_endp: `{}`", show(&r)));
        };
        let prop = prop.to_vec();
        self.sh.seen.endp_hits.fetch_add(1, Ordering::Relaxed);
        self.take(Some(e), &prop, abort)
    }

    fn find_dest(&mut self, d: &[u8]) -> Result<Step, String> {
        let s = self.sock().map_err(|e| e.to_string())?;
        s.write_all(&req(&[b"request", b"find_dest", b"label", d]))
            .map_err(|e| e.to_string())?;
        let r = wire::read_message(s).map_err(|e| e.to_string())?;
        if r == MISS_DEST {
            self.sh.seen.misses.fetch_add(1, Ordering::Relaxed);
            return Ok(Step::Continue);
        }
        let parts: Vec<&[u8]> = r.split(|&b| b == 0).collect();
        // status 0 property <dp> property <ep> "" ""
        if parts.len() != 8
            || parts[0] != b"status"
            || parts[1] != b"0"
            || parts[2] != b"property"
            || parts[4] != b"property"
        {
            return Err(format!("find_dest: `{}`", show(&r)));
        }
        if parts[3] != dest_prop(d) {
            return Err(format!(
                "find_dest: destination property `{}`",
                show(parts[3])
            ));
        }
        let prop = parts[5].to_vec();
        self.sh.seen.dest_hits.fetch_add(1, Ordering::Relaxed);
        self.take(None, &prop, Abort::No)
    }

    /// The hand-over after a `status 0` find reply.
    fn take(&mut self, label: Option<&[u8]>, prop: &[u8], abort: Abort) -> Result<Step, String> {
        if abort == Abort::AfterReply {
            // Leave without the dummy: the daemon must put the session back.
            self.sh.seen.abandoned.fetch_add(1, Ordering::Relaxed);
            self.sh.seen.aborts.fetch_add(1, Ordering::Relaxed);
            return Ok(Step::Dropped);
        }
        let s = self.sock.as_mut().unwrap();
        s.write_all(DUMMY).map_err(|e| e.to_string())?;
        let fd = unix::recv_fd(s.as_fd()).map_err(|e| format!("recv_fd: {e}"))?;
        self.sh.handed_out(&fd, label, prop)?;
        if abort == Abort::AfterDescriptor {
            self.sh.seen.aborts.fetch_add(1, Ordering::Relaxed);
            return Ok(Step::Dropped);
        }
        s.write_all(DUMMY).map_err(|e| e.to_string())?;
        Ok(Step::Continue)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    No,
    AfterReply,
    AfterDescriptor,
}

/// Every session that entered the cache has left it one way or another or
/// is still there: `saves_endp + put_backs == endp_hits + dest_hits +
/// expired_sessions + evicted_sessions_* + sess_count` (the counters of
/// scache-core's `Stats`: a put-back re-enters the cache, counted once in
/// `put_backs`; one put back after its deadline is counted in both
/// `put_backs` and `expired_sessions`; `refused_saves` counts saves that
/// never entered, and put-backs refused for a full cache, which the soak
/// must not produce).
fn accounting(s: &BTreeMap<String, u64>) -> Result<String, String> {
    let g = |k: &str| {
        s.get(k)
            .copied()
            .ok_or_else(|| format!("no counter {k} in {s:?}"))
    };
    let evicted: u64 = s
        .iter()
        .filter(|(k, _)| k.starts_with("evicted_sessions_"))
        .map(|(_, v)| v)
        .sum();
    let entered = g("saves_endp")? + g("put_backs")?;
    let left =
        g("endp_hits")? + g("dest_hits")? + g("expired_sessions")? + evicted + g("sess_count")?;
    let text = format!(
        "saves_endp {} + put_backs {} = {entered}; endp_hits {} + dest_hits {} + expired {} + evicted {evicted} + cached {} = {left}",
        g("saves_endp")?,
        g("put_backs")?,
        g("endp_hits")?,
        g("dest_hits")?,
        g("expired_sessions")?,
        g("sess_count")?
    );
    if entered == left && g("refused_saves")? == 0 {
        Ok(text)
    } else {
        Err(format!("{text}; refused_saves {}", g("refused_saves")?))
    }
}

#[test]
fn soak() {
    let secs: u64 = std::env::var(ENV_SECS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SECS);
    let duration = Duration::from_secs(secs);
    let h = start(
        &ours(),
        &[
            "connection_cache_ttl_limit=3s",
            "scache_session_limit=100",
            "scache_endpoint_session_limit=4",
            "scache_destination_binding_limit=3",
            "scache_label_limit=44",
        ],
    );
    h.wait_ready(Duration::from_secs(20)).expect("daemon ready");
    std::thread::sleep(Duration::from_millis(200));
    let fds0 = h.fd_count().unwrap();
    let rss0 = h.rss_kib().expect("the daemon's RSS at the start");
    let mut monitor = h.connect().unwrap();
    monitor
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let stats0 = ask_stats(&mut monitor).expect("stats");
    eprintln!("soak: {secs} s, {CLIENTS} clients; start: {fds0} descriptors (monitor included: {}), RSS {rss0} KiB", fds0 + 1);

    let sh = Shared {
        h: &h,
        stop: AtomicBool::new(false),
        seen: Seen::default(),
        live: Mutex::new(HashMap::new()),
        errors: Mutex::new(Vec::new()),
        kept: Mutex::new(Vec::new()),
    };
    let t0 = Instant::now();
    let mut peak_fds = 0;
    let mut peak_rss = 0;
    let mut polls = 0;
    let mut rss_mid = None;
    std::thread::scope(|s| {
        for id in 0..CLIENTS {
            let sh = &sh;
            s.spawn(move || {
                let mut c = Client {
                    id,
                    sh,
                    rng: Rng(0x9e37_79b9_7f4a_7c15
                        ^ ((id as u64 + 1) * 0x1000_0000_01b3)
                        ^ t0.elapsed().as_nanos() as u64),
                    sock: None,
                    far: Vec::new(),
                    serial: 0,
                };
                c.run();
                sh.kept.lock().unwrap().append(&mut c.far);
            });
        }
        // Monitor: the counters add up at every poll; peaks.
        while t0.elapsed() < duration {
            std::thread::sleep(Duration::from_millis(1000));
            // A failed read is an error, not a zero (the clients must be
            // stopped before this thread may panic).
            match h.fd_count() {
                Ok(n) => peak_fds = peak_fds.max(n),
                Err(e) => sh.error(format!("monitor: the daemon's descriptors: {e}")),
            }
            match h.rss_kib() {
                Ok(rss) => {
                    peak_rss = peak_rss.max(rss);
                    if rss_mid.is_none() && t0.elapsed() >= duration / 4 {
                        rss_mid = Some(rss);
                    }
                }
                Err(e) => sh.error(format!("monitor: the daemon's RSS: {e}")),
            }
            match ask_stats(&mut monitor) {
                Ok(st) => {
                    polls += 1;
                    if let Err(e) = accounting(&st) {
                        sh.error(format!(
                            "at {:?}: counters do not add up: {e}",
                            t0.elapsed()
                        ));
                    }
                }
                Err(e) => sh.error(format!("monitor: {e}")),
            }
            if h.try_wait().ok().flatten().is_some() {
                sh.error("the daemon exited".into());
                break;
            }
        }
        sh.stop.store(true, Ordering::Relaxed);
    });
    let elapsed = t0.elapsed();
    let seen = &sh.seen;
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "soak: {} operations in {elapsed:?}: {} saves ({} failed), {} endp hits, {} dest hits, {} misses, {} abandoned finds, {} aborts, {} disconnects, {} peers closed, {} peers spoke, {} stats polls by clients",
        ld(&seen.ops),
        ld(&seen.saves_ok),
        ld(&seen.saves_failed),
        ld(&seen.endp_hits),
        ld(&seen.dest_hits),
        ld(&seen.misses),
        ld(&seen.abandoned),
        ld(&seen.aborts),
        ld(&seen.disconnects),
        ld(&seen.peers_closed),
        ld(&seen.peers_spoke),
        ld(&seen.stats_polls),
    );

    // Everything cached expires within the ttl limit (3 s) once the
    // clients are gone, and closed far ends are evicted at once: wait (10 s
    // at most) until the daemon holds no session and only the monitor is
    // connected, then check everything on the last counters read.
    let mut end = BTreeMap::new();
    poll_until(Duration::from_secs(10), || {
        end = ask_stats(&mut monitor).expect("final stats");
        (end.get("sess_count") == Some(&0) && end.get("clients") == Some(&1)).then_some(())
    });
    let mut fds_end = 0;
    poll_until(Duration::from_secs(3), || {
        fds_end = h.fd_count().expect("the daemon's descriptors at the end");
        (fds_end == fds0 + 1).then_some(())
    });
    let rss_end = h.rss_kib().expect("the daemon's RSS at the end");
    let evictions: BTreeMap<&String, &u64> = end
        .iter()
        .filter(|(k, v)| k.starts_with("evicted_sessions_") && **v > 0)
        .collect();
    eprintln!("soak: final counters {end:?}");
    eprintln!("soak: evictions by cause {evictions:?}");
    eprintln!(
        "soak: descriptors {fds0} -> peak {peak_fds} -> end {fds_end} (monitor connection included at the end); RSS {rss0} KiB -> after 1/4 {rss_mid:?} -> peak {peak_rss} -> end {rss_end} KiB; {polls} monitor polls"
    );

    let errors = sh.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "{} errors, first: {:#?}",
        errors.len(),
        &errors[..errors.len().min(10)]
    );
    assert!(
        ld(&seen.saves_ok) > 100 && ld(&seen.endp_hits) > 10 && ld(&seen.dest_hits) > 10,
        "the soak did too little"
    );
    assert!(polls > 0);
    let accounted = accounting(&end);
    eprintln!("soak: {accounted:?}");
    let text = accounted.expect("every save is accounted for");
    let g = |k: &str| end.get(k).copied().unwrap_or(u64::MAX) - stats0.get(k).copied().unwrap_or(0);
    assert_eq!(
        g("saves_endp"),
        ld(&seen.saves_ok),
        "saves_endp vs saves the clients saw succeed ({text})"
    );
    assert_eq!(
        g("endp_hits"),
        ld(&seen.endp_hits),
        "endp_hits vs hits the clients saw"
    );
    assert_eq!(
        g("dest_hits"),
        ld(&seen.dest_hits),
        "dest_hits vs hits the clients saw"
    );
    assert_eq!(
        g("put_backs"),
        ld(&seen.abandoned),
        "put_backs vs finds the clients abandoned after the reply"
    );
    assert_eq!(
        end.get("sess_count"),
        Some(&0),
        "sessions left after the ttl limit"
    );
    assert_eq!(
        end.get("clients"),
        Some(&1),
        "only the monitor is connected"
    );
    assert!(
        evictions.len() >= 4,
        "the soak exercised too few eviction causes: {evictions:?}"
    );
    assert!(
        g("expired_sessions") > 0,
        "no session expired: the soak did not exercise expiry"
    );
    assert_eq!(
        fds_end,
        fds0 + 1,
        "descriptors at the end (the monitor's included) vs start + 1"
    );
    assert!(
        rss_end <= rss0 + RSS_MARGIN_KIB,
        "RSS {rss0} KiB at the start, {rss_end} KiB at the end (margin {RSS_MARGIN_KIB} KiB)"
    );
    assert!(h.try_wait().unwrap().is_none(), "the daemon exited");
}
