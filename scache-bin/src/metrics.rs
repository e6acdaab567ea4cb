//! The daemon's counters in Prometheus's text exposition format, and the
//! metrics file (`scache_metrics_file`) for node_exporter's textfile
//! collector.
//!
//! [`prometheus`] turns the counters of a `stats` reply (name, value) into
//! metric families that follow Prometheus's conventions (`promtool check
//! metrics` reports nothing): counters end in `_total`, units are in names
//! (`scache_uptime_seconds`), kinds are labels
//! (`scache_lookups_total{request="find_dest",result="hit"}`,
//! `scache_evictions_total{what="session",cause="peer_closed"}`), and every
//! family has a `# HELP` text saying what it counts. `scache stats --format
//! prometheus` and the metrics file print the same text.
//!
//! [`MetricsFile`] writes that text to a file from a thread of its own, so
//! that a slow or hung disk never stalls the event loop: the loop hands
//! over the newest snapshot and goes on; a snapshot that arrives while a
//! write is in progress replaces any older one still waiting.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Prometheus metric type of a family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Untyped,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

/// Where one daemon counter goes: its family, labels, type and the
/// family's help text.
struct Sample {
    family: &'static str,
    labels: Vec<(&'static str, String)>,
    kind: Kind,
    help: &'static str,
}

const LOOKUPS_HELP: &str = "Lookups by request (find_endp, find_dest) and result: \
                            hit (a session was handed out) or miss";
const SAVES_HELP: &str = "Saves kept, by request (save_endp: sessions; save_dest: bindings, \
                          renewals included)";
const EXPIRED_HELP: &str = "Sessions closed and bindings dropped when their time to live \
                            ran out, by kind";
const EVICTED_HELP: &str = "Sessions closed and bindings dropped before their time to live \
                            ran out, by kind and cause (session_limit, endpoint_limit, \
                            label_limit, peer_closed, peer_data, fd_pressure, \
                            destination_limit)";
const OTHER_HELP: &str = "Values the daemon reported that this version of scache does not \
                          describe, by name";

/// The family of the `stats` counter `name` (see docs/semantics.md).
fn sample(name: &str) -> Sample {
    let plain = |family, kind, help| Sample {
        family,
        labels: Vec::new(),
        kind,
        help,
    };
    let labelled = |family, labels: &[(&'static str, &str)], kind, help| Sample {
        family,
        labels: labels.iter().map(|&(k, v)| (k, v.to_string())).collect(),
        kind,
        help,
    };
    use Kind::{Counter, Gauge};
    match name {
        "uptime" => plain(
            "scache_uptime_seconds",
            Gauge,
            "Seconds since the daemon started",
        ),
        "clients" => plain(
            "scache_clients",
            Gauge,
            "Client connections open now (the one asking included)",
        ),
        "clients_accepted" => plain(
            "scache_clients_accepted_total",
            Counter,
            "Client connections accepted",
        ),
        "clients_refused" => plain(
            "scache_clients_refused_total",
            Counter,
            "Client connections refused by scache_allowed_uids and scache_allowed_gids",
        ),
        "dest_count" => plain(
            "scache_destinations",
            Gauge,
            "Destination labels with at least one binding",
        ),
        "endp_count" => plain(
            "scache_endpoints",
            Gauge,
            "Endpoint labels with at least one cached session",
        ),
        "sess_count" => plain(
            "scache_sessions",
            Gauge,
            "Cached sessions (open connections held)",
        ),
        "binding_count" => plain(
            "scache_bindings",
            Gauge,
            "Destination-to-endpoint bindings cached",
        ),
        "peak_dest_count" => plain(
            "scache_destinations_peak",
            Gauge,
            "Most destination labels in use at once since the daemon started",
        ),
        "peak_endp_count" => plain(
            "scache_endpoints_peak",
            Gauge,
            "Most endpoint labels in use at once since the daemon started",
        ),
        "peak_sess_count" => plain(
            "scache_sessions_peak",
            Gauge,
            "Most sessions cached at once since the daemon started",
        ),
        "peak_binding_count" => plain(
            "scache_bindings_peak",
            Gauge,
            "Most bindings cached at once since the daemon started",
        ),
        "endp_hits" | "endp_misses" | "dest_hits" | "dest_misses" => {
            let request = if name.starts_with("endp") {
                "find_endp"
            } else {
                "find_dest"
            };
            let result = if name.ends_with("hits") {
                "hit"
            } else {
                "miss"
            };
            labelled(
                "scache_lookups_total",
                &[("request", request), ("result", result)],
                Counter,
                LOOKUPS_HELP,
            )
        }
        "saves_endp" => labelled(
            "scache_saves_total",
            &[("request", "save_endp")],
            Counter,
            SAVES_HELP,
        ),
        "saves_dest" => labelled(
            "scache_saves_total",
            &[("request", "save_dest")],
            Counter,
            SAVES_HELP,
        ),
        "dest_refreshes" => plain(
            "scache_binding_renewals_total",
            Counter,
            "save_dest requests that only renewed an existing binding",
        ),
        "refused_saves" => plain(
            "scache_refused_saves_total",
            Counter,
            "Saves not kept because a label or property was over its length limit",
        ),
        "put_backs" => plain(
            "scache_put_backs_total",
            Counter,
            "Sessions returned to the cache after a failed hand-over",
        ),
        "expired_sessions" => labelled(
            "scache_expirations_total",
            &[("what", "session")],
            Counter,
            EXPIRED_HELP,
        ),
        "expired_bindings" => labelled(
            "scache_expirations_total",
            &[("what", "binding")],
            Counter,
            EXPIRED_HELP,
        ),
        "unwatched_saves" => plain(
            "scache_unwatched_saves_total",
            Counter,
            "Sessions cached without dead-peer watching (descriptors that cannot be polled)",
        ),
        "watch_rebuilds" => plain(
            "scache_watch_rebuilds_total",
            Counter,
            "Times the epoll instance was rebuilt to drop the registrations left by sessions \
             handed over to clients that still hold them",
        ),
        _ => {
            if let Some(cause) = name.strip_prefix("evicted_sessions_") {
                labelled(
                    "scache_evictions_total",
                    &[("what", "session"), ("cause", cause)],
                    Counter,
                    EVICTED_HELP,
                )
            } else if let Some(cause) = name.strip_prefix("evicted_bindings_") {
                labelled(
                    "scache_evictions_total",
                    &[("what", "binding"), ("cause", cause)],
                    Counter,
                    EVICTED_HELP,
                )
            } else {
                labelled("scache_other", &[("name", name)], Kind::Untyped, OTHER_HELP)
            }
        }
    }
}

/// Renders counters (`stats` reply attributes, `status` left out) in the
/// Prometheus text format: each family once, with its `# HELP` and `# TYPE`
/// lines, then its samples, families in the order their first counter
/// comes.
///
/// ```
/// let text = scache_bin::metrics::prometheus(&[
///     ("uptime".to_string(), 42),
///     ("endp_hits".to_string(), 3),
///     ("endp_misses".to_string(), 1),
/// ]);
/// let mut lines = text.lines();
/// assert_eq!(lines.next(), Some("# HELP scache_uptime_seconds Seconds since the daemon started"));
/// assert_eq!(lines.next(), Some("# TYPE scache_uptime_seconds gauge"));
/// assert_eq!(lines.next(), Some("scache_uptime_seconds 42"));
/// assert!(text.contains("scache_lookups_total{request=\"find_endp\",result=\"miss\"} 1\n"));
/// ```
pub fn prometheus(counters: &[(String, u64)]) -> String {
    // family -> (kind, help, samples); in first-seen order.
    let mut families: Vec<(&'static str, Kind, &'static str, Vec<String>)> = Vec::new();
    for (name, value) in counters {
        if name == "status" {
            continue;
        }
        let s = sample(name);
        let mut line = s.family.to_string();
        if !s.labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", label_escape(v));
            }
            line.push('}');
        }
        let _ = write!(line, " {value}");
        match families.iter_mut().find(|f| f.0 == s.family) {
            Some(f) => f.3.push(line),
            None => families.push((s.family, s.kind, s.help, vec![line])),
        }
    }
    let mut out = String::new();
    for (family, kind, help, lines) in families {
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {}", kind.name());
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn label_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// How long the daemon waits, at exit, for its last metrics to be written.
pub const EXIT_WRITE_WAIT: Duration = Duration::from_secs(3);

/// What the event loop and the writer thread share.
#[derive(Default)]
struct Shared {
    /// The newest snapshot not yet taken by the writer.
    pending: Option<String>,
    /// The writer is writing a snapshot.
    busy: bool,
    /// No more snapshots: the writer ends once `pending` is written.
    closing: bool,
}

/// Writes metrics snapshots to a file from a thread of its own.
///
/// [`submit`](MetricsFile::submit) never blocks on the disk: it stores the
/// text and wakes the writer; a snapshot still waiting is replaced (only
/// the newest matters). The writer writes each snapshot to a temporary
/// file in the same directory (`.NAME.tmp`, mode 0644) and renames it over
/// the target, so readers (node_exporter's textfile collector) see a
/// complete file or the previous one, never half of one. A failed write is
/// logged (once until a write succeeds again).
pub struct MetricsFile {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// Writes one snapshot (the real one creates a temporary file and renames
/// it; tests substitute a slow one).
type WriteFn = Box<dyn FnMut(&Path, &str) -> io::Result<()> + Send>;

impl MetricsFile {
    /// Starts the writer thread for `path` (relative paths are relative to
    /// the working directory at each write).
    pub fn start(path: PathBuf) -> io::Result<MetricsFile> {
        MetricsFile::with_writer(path, Box::new(write_atomically))
    }

    fn with_writer(path: PathBuf, mut write: WriteFn) -> io::Result<MetricsFile> {
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let theirs = Arc::clone(&shared);
        let target = path.clone();
        let thread = std::thread::Builder::new()
            .name("metrics-file".into())
            .spawn(move || {
                let (lock, cond) = &*theirs;
                let mut failing = false;
                loop {
                    let text = {
                        let mut s = lock_shared(lock);
                        while s.pending.is_none() && !s.closing {
                            s = cond.wait(s).unwrap_or_else(PoisonError::into_inner);
                        }
                        match s.pending.take() {
                            Some(text) => {
                                s.busy = true;
                                text
                            }
                            None => return,
                        }
                    };
                    match write(&target, &text) {
                        Ok(()) => failing = false,
                        Err(e) => {
                            if !failing {
                                log::warn!("cannot write metrics to {}: {e}", target.display());
                            }
                            failing = true;
                        }
                    }
                    lock_shared(lock).busy = false;
                    cond.notify_all();
                }
            })?;
        Ok(MetricsFile {
            shared,
            thread: Some(thread),
            path,
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands over the newest metrics; returns at once.
    pub fn submit(&self, text: String) {
        let (lock, cond) = &*self.shared;
        let mut s = lock_shared(lock);
        s.pending = Some(text);
        cond.notify_all();
    }

    /// Hands over the last snapshot and waits up to `limit` for every
    /// snapshot to be written; returns whether they were (a hung disk
    /// leaves the thread behind: the process is exiting anyway).
    pub fn finish(mut self, last: String, limit: Duration) -> bool {
        self.submit(last);
        let (lock, cond) = &*self.shared;
        let deadline = Instant::now() + limit;
        let mut s = lock_shared(lock);
        s.closing = true;
        cond.notify_all();
        while s.pending.is_some() || s.busy {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = cond
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(s);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        true
    }
}

impl Drop for MetricsFile {
    fn drop(&mut self) {
        let (lock, cond) = &*self.shared;
        lock_shared(lock).closing = true;
        cond.notify_all();
    }
}

fn lock_shared(lock: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes `text` to a temporary file next to `path` and renames it over
/// `path`. The temporary name starts with a dot and ends in `.tmp`, so a
/// textfile collector reading `*.prom` never picks it up.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&tmp)?;
        // The umask (077 under master) must not hide it from the collector.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_counters() -> Vec<(String, u64)> {
        let names = [
            "uptime",
            "clients",
            "clients_accepted",
            "clients_refused",
            "dest_count",
            "endp_count",
            "sess_count",
            "binding_count",
            "peak_dest_count",
            "peak_endp_count",
            "peak_sess_count",
            "peak_binding_count",
            "endp_hits",
            "endp_misses",
            "dest_hits",
            "dest_misses",
            "saves_endp",
            "saves_dest",
            "dest_refreshes",
            "refused_saves",
            "put_backs",
            "expired_sessions",
            "expired_bindings",
            "evicted_sessions_session_limit",
            "evicted_sessions_peer_closed",
            "evicted_bindings_destination_limit",
            "unwatched_saves",
            "watch_rebuilds",
        ];
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as u64))
            .collect()
    }

    #[test]
    fn families_are_named_by_convention() {
        let text = prometheus(&all_counters());
        for want in [
            "# TYPE scache_uptime_seconds gauge\nscache_uptime_seconds 0\n",
            "# TYPE scache_sessions gauge\nscache_sessions 6\n",
            "scache_lookups_total{request=\"find_endp\",result=\"hit\"} 12\n",
            "scache_lookups_total{request=\"find_dest\",result=\"miss\"} 15\n",
            "scache_saves_total{request=\"save_dest\"} 17\n",
            "scache_expirations_total{what=\"session\"} 21\n",
            "scache_evictions_total{what=\"session\",cause=\"peer_closed\"} 24\n",
            "scache_evictions_total{what=\"binding\",cause=\"destination_limit\"} 25\n",
        ] {
            assert!(text.contains(want), "{want}\n---\n{text}");
        }
        // One HELP and one TYPE per family, every counter ends in _total.
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').unwrap();
                assert!(!families.contains(&family), "{family} twice");
                families.push(family);
                assert_eq!(kind == "counter", family.ends_with("_total"), "{family}");
            }
        }
        assert_eq!(
            text.matches("# HELP ").count(),
            families.len(),
            "one HELP per family"
        );
        assert!(!text.contains("_count"));
    }

    #[test]
    fn unknown_counters_are_kept_untyped() {
        let text = prometheus(&[("brand_new".into(), 5)]);
        assert!(text.contains("# TYPE scache_other untyped\nscache_other{name=\"brand_new\"} 5\n"));
        assert_eq!(label_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("scache-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scache.prom");
        let m = MetricsFile::start(path.clone()).unwrap();
        m.submit("a 1\n".into());
        assert!(m.finish("a 2\n".into(), Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a 2\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("scache.prom")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_slow_disk_never_blocks_and_only_the_newest_snapshot_waits() {
        let written = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&written);
        let m = MetricsFile::with_writer(
            PathBuf::from("unused"),
            Box::new(move |_, text| {
                std::thread::sleep(Duration::from_millis(300));
                log.lock().unwrap().push(text.to_string());
                Ok(())
            }),
        )
        .unwrap();
        let t0 = Instant::now();
        for i in 0..50 {
            m.submit(format!("snapshot {i}"));
        }
        assert!(t0.elapsed() < Duration::from_millis(100), "submit blocked");
        assert!(m.finish("last".into(), Duration::from_secs(5)));
        let written = written.lock().unwrap().clone();
        // The first snapshot may have been taken before the others came;
        // everything in between was replaced; the last is always written.
        assert!(written.len() <= 2, "{written:?}");
        assert_eq!(written.last().map(String::as_str), Some("last"));
    }

    #[test]
    fn a_hung_disk_does_not_hold_the_exit_forever() {
        let m = MetricsFile::with_writer(
            PathBuf::from("unused"),
            Box::new(|_, _| {
                std::thread::sleep(Duration::from_secs(3600));
                Ok(())
            }),
        )
        .unwrap();
        m.submit("x".into());
        let t0 = Instant::now();
        assert!(!m.finish("y".into(), Duration::from_millis(200)));
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}
