//! The metrics operators scrape: `scache stats --format prometheus` passes
//! `promtool check metrics`, and `scache_metrics_file` is written
//! standalone and under master (without chroot), every
//! `connection_cache_status_update_time` and at exit.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use scache_testkit::harness::{skip_or_fail, HarnessBuilder, TempDir};

const T: Duration = Duration::from_secs(10);

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

struct Standalone(Child);

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Standalone {
    fn start(dir: &Path, extra: &[&str]) -> (Standalone, PathBuf) {
        let sock = dir.join("scache.sock");
        let child = Command::new(ours())
            .arg("--listen")
            .arg(&sock)
            .args(extra)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        assert!(wait_until(T, || sock.exists()));
        (Standalone(child), sock)
    }

    fn terminate(mut self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(self.0.wait().unwrap().success());
    }
}

/// A peer that has read the greeting.
fn peer(sock: &Path) -> Peer {
    let stream = UnixStream::connect(sock).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut p = Peer { sock: stream };
    assert_eq!(
        p.recv_msg().unwrap(),
        b"protocol\0connection_cache_protocol\0\0"
    );
    p
}

/// Something in every counter family: saves, lookups both ways,
/// renewals, evictions, expirations.
fn exercise(sock: &Path) -> Vec<std::os::fd::OwnedFd> {
    let mut p = peer(sock);
    let mut keep = Vec::new();
    for _ in 0..3 {
        let (a, b) = session();
        keep.push(b);
        assert_eq!(p.save_endp("1", b"e", b"p", a), b"status\x000\0\0");
    }
    let (a, far) = session();
    assert_eq!(p.save_endp("60", b"dead", b"p", a), b"status\x000\0\0");
    drop(far); // evicted: peer_closed
    assert_eq!(p.save_dest("1", b"d", b"dp", b"e"), b"status\x000\0\0");
    assert_eq!(p.save_dest("1", b"d", b"dp", b"e"), b"status\x000\0\0");
    assert!(p.find_endp(b"e").1.is_some());
    assert!(p.find_endp(b"nope").1.is_none());
    assert!(p.find_dest(b"d").1.is_some());
    assert!(p.find_dest(b"nope").1.is_none());
    // One session left under "e": it expires after 1 s.
    std::thread::sleep(Duration::from_millis(1300));
    keep
}

fn stats_prometheus(sock: &Path) -> String {
    let out = Command::new(ours())
        .args(["stats", "--format", "prometheus", "--socket"])
        .arg(sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `promtool check metrics` on `text`: its output (empty when all is
/// well) and whether it succeeded; `None` when promtool is missing (and
/// skipping is allowed).
fn promtool(test: &str, text: &str) -> Option<(bool, String)> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(_) => {
            skip_or_fail(
                test,
                "promtool not found (apt-get install --no-install-recommends prometheus)",
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut said = String::from_utf8_lossy(&out.stdout).into_owned();
    said.push_str(&String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), said))
}

#[test]
fn promtool_accepts_the_metrics() {
    let dir = TempDir::new("scache-promtool").unwrap();
    let (daemon, sock) = Standalone::start(dir.path(), &[]);
    let _keep = exercise(&sock);
    let text = stats_prometheus(&sock);
    for want in [
        "scache_uptime_seconds ",
        "scache_sessions 0\n",
        "scache_lookups_total{request=\"find_dest\",result=\"hit\"} 1\n",
        "scache_lookups_total{request=\"find_endp\",result=\"miss\"} 1\n",
        "scache_saves_total{request=\"save_endp\"} 4\n",
        "scache_binding_renewals_total 1\n",
        "scache_evictions_total{what=\"session\",cause=\"peer_closed\"} 1\n",
        "scache_expirations_total{what=\"session\"} 1\n",
        "scache_expirations_total{what=\"binding\"} 1\n",
    ] {
        assert!(text.contains(want), "{want}\n---\n{text}");
    }
    daemon.terminate();
    let Some((ok, said)) = promtool("promtool_accepts_the_metrics", &text) else {
        return;
    };
    assert!(
        ok && said.is_empty(),
        "promtool check metrics says:\n{said}\n---\n{text}"
    );
}

#[test]
fn the_metrics_file_standalone() {
    let dir = TempDir::new("scache-metrics-file").unwrap();
    let file = dir.path().join("scache.prom");
    let (daemon, sock) = Standalone::start(
        dir.path(),
        &[
            "-o",
            &format!("scache_metrics_file={}", file.display()),
            "-o",
            "connection_cache_status_update_time=1s",
            "-o",
            "connection_cache_ttl_limit=60s",
        ],
    );
    // Written at start.
    assert!(wait_until(T, || file.exists()));
    let mut p = peer(&sock);
    let (a, _far) = session();
    assert_eq!(p.save_endp("60", b"e", b"p", a), b"status\x000\0\0");
    // ... and every second.
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(5), || read()
            .contains("\nscache_sessions 1\n")),
        "{}",
        read()
    );
    let text = read();
    assert_eq!(text, {
        // The file holds exactly what `stats --format prometheus` prints
        // (but the live values).
        let live = stats_prometheus(&sock);
        let shape = |t: &str| -> Vec<String> {
            t.lines()
                .map(|l| l.rsplit_once(' ').map_or(l, |(k, _)| k).to_string())
                .collect()
        };
        assert_eq!(shape(&text), shape(&live));
        text.clone()
    });
    // At exit: the state after exit.
    drop(p);
    daemon.terminate();
    let text = read();
    assert!(text.contains("\nscache_sessions 0\n"), "{text}");
    assert!(
        text.contains("scache_saves_total{request=\"save_endp\"} 1\n"),
        "{text}"
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["scache.prom".to_string()],
        "no temporary file left"
    );
    if let Some((ok, said)) = promtool("the_metrics_file_standalone", &text) {
        assert!(ok && said.is_empty(), "{said}");
    }
}

/// Under master (no chroot): a relative path is relative to
/// `$queue_directory` (the daemon's working directory), an absolute one
/// is used as is; the last write happens when master goes away.
#[test]
fn the_metrics_file_under_master() {
    let elsewhere = TempDir::new("scache-metrics-abs").unwrap();
    for (setting, relative) in [
        ("scache.prom".to_string(), true),
        (
            elsewhere.path().join("scache.prom").display().to_string(),
            false,
        ),
    ] {
        let h = HarnessBuilder::new(ours())
            .main_cf("scache_metrics_file", &setting)
            .args(["-o", "connection_cache_status_update_time=1s"])
            .spawn()
            .unwrap();
        let file = if relative {
            h.queue_dir().join(&setting)
        } else {
            PathBuf::from(&setting)
        };
        let mut p = Peer::connect(&h);
        let reply = p.ask(&find_endp_req(b"x"));
        assert_eq!(show(&reply), "status\\02\\0property\\0\\0\\0");
        let read = || std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            wait_until(Duration::from_secs(5), || read().contains(
                "scache_lookups_total{request=\"find_endp\",result=\"miss\"} 1\n"
            )),
            "{setting}: {:?}\n{:?}",
            read(),
            h.log_messages()
        );
        drop(p);
        h.close_status();
        assert_eq!(h.wait_exit(T).and_then(|s| s.code()), Some(0));
        assert!(read().contains("\nscache_clients 0\n"), "{}", read());
        // Readable by a collector running as another user, whatever the
        // umask (077 under master).
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let warnings: Vec<_> = h
            .log_messages()
            .into_iter()
            .filter(|m| m.contains("warning"))
            .collect();
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

/// A metrics file that cannot be written is a warning, logged once, and
/// the daemon serves on.
#[test]
fn an_unwritable_metrics_file_is_a_warning() {
    let dir = TempDir::new("scache-metrics-bad").unwrap();
    let file = dir.path().join("no/such/dir/scache.prom");
    let err_path = dir.path().join("stderr");
    let sock = dir.path().join("scache.sock");
    let child = Command::new(ours())
        .arg("--listen")
        .arg(&sock)
        .args([
            "-o",
            &format!("scache_metrics_file={}", file.display()),
            "-o",
            "connection_cache_status_update_time=1s",
        ])
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let daemon = Standalone(child);
    assert!(wait_until(T, || sock.exists()));
    std::thread::sleep(Duration::from_millis(2500));
    let mut p = peer(&sock);
    assert!(p.find_endp(b"x").1.is_none());
    drop(p);
    daemon.terminate();
    let err = std::fs::read_to_string(&err_path).unwrap();
    let warnings = err.matches("cannot write metrics to").count();
    assert_eq!(warnings, 1, "{err}");
}
