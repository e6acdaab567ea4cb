//! The contract with Postfix's master(8) (`docs/master.md`), checked on ours and,
//! where Postfix is installed, on Postfix's own daemon with the same test:
//! status records, exit on status EOF and after `max_idle`, `-o`
//! overrides, time units, fatal errors with Postfix's wording.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use scache_testkit::harness::{postfix_scache_for_test, Harness, HarnessBuilder, StatusRecord};

const T: Duration = Duration::from_secs(10);

/// Runs `check` on ours, then on Postfix's daemon when installed.
fn both(name: &str, check: fn(&PathBuf)) {
    check(&ours());
    if let Some(postfix) = postfix_scache_for_test(name) {
        check(&postfix);
    }
}

fn find_miss(h: &Harness) -> Peer {
    let mut peer = Peer::connect(h);
    let reply = peer.ask(&req(&[b"request", b"find_endp", b"label", b"x"]));
    assert_eq!(show(&reply), "status\\02\\0property\\0\\0\\0");
    peer
}

fn dump(h: &Harness) -> String {
    h.log_lines().join("\n")
}

#[test]
fn status_records_bracket_each_request() {
    both("status_records_bracket_each_request", |prog| {
        let h = HarnessBuilder::new(prog).generation(0o123).spawn().unwrap();
        let _peer = find_miss(&h);
        let recs = h.wait_for_status_records(2, T);
        assert_eq!(recs.len(), 2, "{prog:?}: {recs:?}");
        for (rec, avail) in recs.iter().zip([StatusRecord::TAKEN, StatusRecord::AVAIL]) {
            assert_eq!(rec.pid, h.pid(), "{prog:?}");
            assert_eq!(rec.generation, 0o123, "{prog:?}");
            assert_eq!(rec.avail, avail, "{prog:?}");
        }
    });
}

#[test]
fn exits_with_statistics_when_master_closes_the_status_socket() {
    both(
        "exits_with_statistics_when_master_closes_the_status_socket",
        |prog| {
            let h = HarnessBuilder::new(prog).spawn().unwrap();
            let _peer = find_miss(&h);
            h.close_status();
            let st = h.wait_exit(T).expect("exit after status EOF");
            assert_eq!(st.code(), Some(0), "{prog:?}");
            assert!(
                h.wait_for_log("statistics: start interval ", T),
                "{prog:?}: {}",
                dump(&h)
            );
            assert!(
                h.wait_for_log("statistics: address lookup hits=0 miss=1 success=0%", T),
                "{prog:?}: {}",
                dump(&h)
            );
        },
    );
}

#[test]
fn exits_max_idle_after_the_last_client_leaves() {
    both("exits_max_idle_after_the_last_client_leaves", |prog| {
        let h = HarnessBuilder::new(prog)
            .arg("-o")
            .arg("max_idle=1s")
            .spawn()
            .unwrap();
        let peer = find_miss(&h);
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            h.try_wait().unwrap().is_none(),
            "{prog:?}: exited while a client was connected"
        );
        let t0 = Instant::now();
        drop(peer);
        let st = h.wait_exit(T).expect("exit after max_idle");
        assert_eq!(st.code(), Some(0));
        assert!(
            t0.elapsed() >= Duration::from_millis(500),
            "{prog:?}: {:?}",
            t0.elapsed()
        );
        assert!(
            h.wait_for_log("statistics: address lookup", T),
            "{prog:?}: {}",
            dump(&h)
        );
    });
}

/// Starts `prog` with `args`, waits for it to exit and for a log record
/// containing `want` (the records travel apart from the exit), and returns
/// (exit code, log messages).
fn fatal_run(
    prog: &PathBuf,
    main_cf: &[(&str, &str)],
    args: &[&str],
    want: &str,
) -> (Option<i32>, Vec<String>) {
    let mut b = HarnessBuilder::new(prog);
    for (n, v) in main_cf {
        b = b.main_cf(*n, *v);
    }
    for a in args {
        b = b.arg(a);
    }
    let h = b.spawn().unwrap();
    // Postfix's daemon checks positional arguments only when it serves a
    // client (ours refuses them at start): connect to trigger it.
    if h.wait_exit(Duration::from_secs(3)).is_none() {
        let _ = h
            .connect_raw()
            .map(|mut s| std::io::Write::write_all(&mut s, b"request\0find_endp\0label\0x\0\0"));
    }
    let st = h.wait_exit(T).expect("a fatal error ends the daemon");
    // Up to T for the record; the caller's assertion shows the log if it
    // never came.
    h.wait_for_log(want, T);
    (st.code(), h.log_messages())
}

/// The same mistake gives the same fatal message and exit status 1 in both
/// daemons.
#[test]
fn bad_parameters_are_fatal_with_postfix_messages() {
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: &[Case] = &[
        (
            &[],
            &["-o", "max_idle=2x"],
            "fatal: parameter max_idle: bad time value or unit: 2x",
        ),
        (
            &[],
            &["-o", "max_idle=0"],
            "fatal: invalid max_idle: 0 (min 1)",
        ),
        (
            &[],
            &["-o", "connection_cache_ttl_limit=-1"],
            "fatal: parameter connection_cache_ttl_limit: bad time value or unit: -1",
        ),
        (
            &[("connection_cache_status_update_time", "0s")],
            &[],
            "fatal: invalid connection_cache_status_update_time: 0 (min 1)",
        ),
        (
            &[],
            &["extra-argument"],
            "fatal: unexpected command-line argument: extra-argument",
        ),
    ];
    let postfix = postfix_scache_for_test("bad_parameters_are_fatal_with_postfix_messages");
    for (main_cf, args, want) in cases {
        let (code, log) = fatal_run(&ours(), main_cf, args, want);
        assert_eq!(code, Some(1), "ours {args:?}: {log:?}");
        assert!(
            log.iter().any(|l| l == want),
            "ours {args:?}: want {want:?} in {log:?}"
        );
        if let Some(p) = &postfix {
            let (code, plog) = fatal_run(p, main_cf, args, want);
            assert_eq!(code, Some(1), "postfix {args:?}: {plog:?}");
            assert!(
                plog.iter().any(|l| l == want),
                "postfix {args:?}: want {want:?} in {plog:?}"
            );
        }
    }
}

/// Time units: `-o connection_cache_ttl_limit=1m` caps TTLs at 60 s, so a
/// session saved with ttl 30 outlives the default 2 s cap.
#[test]
fn overrides_with_time_units_apply() {
    let h = HarnessBuilder::new(ours())
        .arg("-o")
        .arg("connection_cache_ttl_limit=1m")
        .spawn()
        .unwrap();
    let mut peer = Peer::connect(&h);
    let (a, _far) = session();
    let id = identity(&a);
    assert_eq!(peer.save_endp("30", b"e", b"p", a), b"status\x000\0\0");
    std::thread::sleep(Duration::from_millis(3000));
    let (_, fd) = peer.find_endp(b"e");
    assert_eq!(identity(fd.expect("still cached after 3 s")), id);
}

/// SIGTERM: Postfix's daemon dies silently; ours logs its statistics,
/// closes every cached descriptor and exits 0.
#[test]
fn sigterm_logs_statistics_and_closes_sessions() {
    let h = HarnessBuilder::new(ours()).spawn().unwrap();
    let mut peer = Peer::connect(&h);
    let (a, far) = session();
    assert_eq!(peer.save_endp("2", b"e", b"p", a), b"status\x000\0\0");
    h.terminate().unwrap();
    let st = h.wait_exit(T).expect("exit on SIGTERM");
    assert_eq!(st.code(), Some(0));
    assert!(
        h.wait_for_log(
            "statistics: max simultaneous domains=0 addresses=1 connection=1",
            T
        ),
        "{}",
        dump(&h)
    );
    // The far end sees the cached descriptor closed.
    let mut far = std::os::unix::net::UnixStream::from(far);
    far.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut far, &mut b).unwrap(), 0);
}

/// A client that stops in mid-request delays only itself and is dropped
/// after `ipc_timeout`; an idle client (between requests) is kept.
#[test]
fn a_stalled_client_is_dropped_after_ipc_timeout() {
    let h = HarnessBuilder::new(ours())
        .arg("-o")
        .arg("ipc_timeout=1s")
        .spawn()
        .unwrap();
    let mut stalled = Peer::connect(&h);
    // The clock starts when the daemon reads the partial request, which is
    // after this instant: the disconnection cannot come sooner than
    // ipc_timeout after it (less the daemon's millisecond clock rounding
    // its deadline down).
    let sent = Instant::now();
    stalled.send(b"request\0find_endp\0lab");
    let mut idle = find_miss(&h);
    assert!(
        stalled.is_closed(),
        "the stalled client must be disconnected"
    );
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(1000 - 2) && waited < Duration::from_secs(4),
        "disconnected {waited:?} after the partial request (ipc_timeout 1s)"
    );
    assert!(
        h.wait_for_log("warning: timeout on client connection", T),
        "{}",
        dump(&h)
    );
    // The idle one is still served.
    let reply = idle.ask(&req(&[b"request", b"find_endp", b"label", b"x"]));
    assert_eq!(show(&reply), "status\\02\\0property\\0\\0\\0");
}

/// An `inet` service (master passes `-t inet` and a TCP listener on fd 6):
/// clients are served as on a Unix socket, on ours and Postfix's.
#[test]
fn inet_service_is_served() {
    both("inet_service_is_served", |prog| {
        use std::io::{Read, Write};
        let h = HarnessBuilder::new(prog)
            .tcp_listener(true)
            .spawn()
            .unwrap();
        let addr = h.tcp_addr().expect("a TCP listener");
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(T)).unwrap();
        let mut greeting = [0u8; 36];
        if let Err(e) = conn.read_exact(&mut greeting) {
            panic!("{prog:?}: {e}; log: {}", dump(&h));
        }
        assert_eq!(
            &greeting, b"protocol\0connection_cache_protocol\0\0",
            "{prog:?}"
        );
        conn.write_all(b"request\0find_endp\0label\0x\0\0").unwrap();
        let mut reply = [0u8; 20];
        conn.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"status\x002\0property\0\0\0", "{prog:?}");
    });
}
