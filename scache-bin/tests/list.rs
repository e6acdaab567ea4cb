//! `scache list` against a known set of saves: what is shown, in which
//! order, bounded by `--limit`; the same access control as `stats`; and
//! Postfix's own daemon, which does not know the request.

mod common;

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use scache_testkit::harness::{postfix_scache_for_test, skip_or_fail, HarnessBuilder, TempDir};

const T: Duration = Duration::from_secs(10);

struct Standalone(Child);

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, extra: &[&str]) -> (Standalone, std::path::PathBuf) {
    let sock = dir.join("scache.sock");
    let child = Command::new(ours())
        .arg("--listen")
        .arg(&sock)
        .args(["-o", "connection_cache_ttl_limit=60s"])
        .args(extra)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + T;
    while !sock.exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(sock.exists());
    (Standalone(child), sock)
}

fn list(sock: &Path, args: &[&str]) -> Output {
    Command::new(ours())
        .args(["list", "--socket"])
        .arg(sock)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

const A: &[u8] = b"smtp\n192.0.2.1\n25\n";
const B: &[u8] = b"smtp\n192.0.2.2\n25\n";
const C: &[u8] = b"smtp\n[2001:db8::1]\n25\n";
const D: &[u8] = b"smtp\nexample.com\n25\n";
const E: &[u8] = b"smtp\nexample.net\n25\n";

/// A: 3 sessions (the oldest saved first), B: 1, C: 2; D bound to B then
/// A, E bound to C.
fn populate(sock: &Path) -> (Peer, Vec<std::os::fd::OwnedFd>) {
    let stream = UnixStream::connect(sock).unwrap();
    stream.set_read_timeout(Some(T)).unwrap();
    let mut p = Peer { sock: stream };
    assert_eq!(
        p.recv_msg().unwrap(),
        b"protocol\0connection_cache_protocol\0\0"
    );
    let mut far = Vec::new();
    let mut save = |p: &mut Peer, ttl: &str, label: &[u8]| {
        let (a, b) = session();
        far.push(b);
        assert_eq!(p.save_endp(ttl, label, b"p", a), b"status\x000\0\0");
    };
    save(&mut p, "30", A);
    std::thread::sleep(Duration::from_millis(300));
    save(&mut p, "30", A);
    save(&mut p, "30", A);
    save(&mut p, "20", B);
    save(&mut p, "30", C);
    save(&mut p, "30", C);
    assert_eq!(p.save_dest("40", D, b"dp", B), b"status\x000\0\0");
    assert_eq!(p.save_dest("40", D, b"dp", A), b"status\x000\0\0");
    assert_eq!(p.save_dest("40", E, b"ep", C), b"status\x000\0\0");
    (p, far)
}

#[test]
fn list_shows_a_known_set_of_saves() {
    let dir = TempDir::new("scache-list").unwrap();
    let (_daemon, sock) = start(dir.path(), &[]);
    let _kept = populate(&sock);

    let json = stdout(&list(&sock, &["--format", "json"]));
    // Endpoints by sessions: A (3), C (2), B (1).
    let a = json
        .find("\"label\":\"smtp\\n192.0.2.1\\n25\\n\",\"sessions\":3")
        .expect(&json);
    let c = json
        .find("\"label\":\"smtp\\n[2001:db8::1]\\n25\\n\",\"sessions\":2")
        .expect(&json);
    let b = json
        .find("\"label\":\"smtp\\n192.0.2.2\\n25\\n\",\"sessions\":1")
        .expect(&json);
    assert!(a < c && c < b, "{json}");
    assert!(
        json.starts_with("{\"endpoints_total\":3,\"destinations_total\":2,"),
        "{json}"
    );
    // The oldest of A is about 300 ms old; its last session lives ~30 s.
    let field = |from: usize, name: &str| -> u64 {
        let at = from + json[from..].find(name).unwrap() + name.len();
        json[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let age = field(a, "\"oldest_age_ms\":");
    assert!((300..5000).contains(&age), "{age}: {json}");
    let ttl = field(a, "\"ttl_left_ms\":");
    assert!((25_000..=30_000).contains(&ttl), "{ttl}");
    // Destinations by reachable sessions: D (B + A = 4) before E (2);
    // D's bindings in order: B then A.
    let d = json.find("{\"label\":\"smtp\\nexample.com\\n25\\n\",\"sessions\":4,\"bindings_total\":2,\"bindings\":[{\"endpoint\":\"smtp\\n192.0.2.2\\n25\\n\"").expect(&json);
    let e = json
        .find("{\"label\":\"smtp\\nexample.net\\n25\\n\",\"sessions\":2")
        .expect(&json);
    assert!(d < e && json[d..e].contains("\"endpoint\":\"smtp\\n192.0.2.1\\n25\\n\""));

    // --limit bounds endpoints, destinations and bindings per destination.
    let one = stdout(&list(&sock, &["--format", "json", "--limit", "1"]));
    assert_eq!(one.matches("\"sessions\":").count(), 2, "{one}");
    assert!(one.contains("\"endpoints_total\":3,\"destinations_total\":2"));
    assert!(one
        .contains("\"bindings_total\":2,\"bindings\":[{\"endpoint\":\"smtp\\n192.0.2.2\\n25\\n\""));
    assert_eq!(one.matches("\"endpoint\":").count(), 1, "{one}");

    // The table, escaped labels, same order.
    let table = stdout(&list(&sock, &[]));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "endpoints: 3 cached, 3 shown");
    assert!(
        lines[2].starts_with("       3  ") && lines[2].ends_with("  smtp\\n192.0.2.1\\n25\\n"),
        "{table}"
    );
    assert!(
        lines[3].ends_with("  smtp\\n[2001:db8::1]\\n25\\n"),
        "{table}"
    );
    assert!(lines[4].ends_with("  smtp\\n192.0.2.2\\n25\\n"), "{table}");
    assert!(
        table.contains("\ndestinations: 2 cached, 2 shown\n"),
        "{table}"
    );
    assert!(
        table.contains("       4         2  smtp\\nexample.com\\n25\\n\n"),
        "{table}"
    );
    println!("{table}");
}

#[test]
fn list_has_the_access_control_of_stats() {
    if !nix::unistd::geteuid().is_root() {
        skip_or_fail(
            "list_has_the_access_control_of_stats",
            "not root (needed to run a client under another uid)",
        );
        return;
    }
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("scache-list-acl").unwrap();
    let (_daemon, sock) = start(dir.path(), &["--socket-mode", "0666"]);
    let _kept = populate(&sock);
    let out = Command::new(ours())
        .args(["list", "--socket"])
        .arg(&sock)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "labels must not leak");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the daemon refused the connection: uid 65534 gid 65534 is not allowed"),
        "{err}"
    );
}

#[test]
fn postfix_does_not_support_list() {
    let Some(postfix) = postfix_scache_for_test("postfix_does_not_support_list") else {
        return;
    };
    let h = HarnessBuilder::new(postfix).spawn().unwrap();
    h.wait_ready(T).unwrap();
    let out = list(h.socket_path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err,
        format!(
            "scache list: {}: the daemon does not support the list request (status 1): it is \
             not scache-rs (Postfix's own scache(8) knows only save_endp, find_endp, save_dest \
             and find_dest) or an older version\n",
            h.socket_path().display()
        )
    );
}
