//! The library clients against real daemons: AsyncClient (the same answers
//! from Postfix's daemon and ours, many tasks at once, cancellation),
//! recovery of both clients when the daemon restarts, bad input, the
//! tokio mini-MTA example, and no descriptor leaked anywhere.

mod common;

#[path = "../../scache-proto/examples/mini_mta.rs"]
mod mini_mta;

use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{identity, ours, session, start};
use scache_core::ConnectionCache;
use scache_proto::message::Status;
use scache_proto::{AsyncClient, Client, ClientConfig, ClientError, Recovery};
use scache_testkit::harness::{postfix_scache_for_test, TempDir};

const TTL: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The tests of this file count the process's descriptors: they run one
/// at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// What a client saw, in a form both daemons must give identically.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Saved,
    Miss,
    Found {
        dest_prop: Option<Vec<u8>>,
        endp_prop: Vec<u8>,
        /// Which of the sessions saved in this script came back.
        which: usize,
    },
}

/// Saves a new session (a socket pair's end) and notes its identity.
/// The far ends stay open: a session whose peer hung up is evicted by our
/// daemon's dead-peer watch.
async fn save(
    client: &AsyncClient,
    ends: &mut Vec<((u64, u64), OwnedFd)>,
    endp: &[u8],
    prop: &[u8],
) -> Seen {
    let (mine, far) = session();
    ends.push((identity(&mine), far));
    client.save_endp(TTL, endp, prop, mine).await.unwrap();
    Seen::Saved
}

/// Which of the sessions saved by the script came back.
fn which(ends: &[((u64, u64), OwnedFd)], fd: &OwnedFd) -> usize {
    ends.iter()
        .position(|(e, _)| *e == identity(fd))
        .expect("a session saved by this script")
}

/// The same script of operations through an AsyncClient; sessions are
/// socket pairs, recognised by the identity of the open file.
async fn script(client: &AsyncClient) -> Vec<Seen> {
    let mut ends = Vec::new();
    let mut seen = Vec::new();
    let e1: &[u8] = b"smtp\n192.0.2.1\n25\n";
    seen.push(save(client, &mut ends, e1, b"reuse_count=1\n").await);
    seen.push(save(client, &mut ends, e1, b"reuse_count=2\n").await);
    client
        .save_dest(TTL, b"smtp\nexample.com\n25\n", b"host=mx1\n", e1)
        .await
        .unwrap();
    seen.push(Seen::Saved);
    for _ in 0..3 {
        seen.push(
            match client.find_dest(b"smtp\nexample.com\n25\n").await.unwrap() {
                Some(f) => Seen::Found {
                    dest_prop: Some(f.dest_prop),
                    endp_prop: f.endp_prop,
                    which: which(&ends, &f.fd),
                },
                None => Seen::Miss,
            },
        );
    }
    seen.push(save(client, &mut ends, b"lmtp\n/run/x\n", b"").await);
    seen.push(match client.find_endp(b"lmtp\n/run/x\n").await.unwrap() {
        Some(f) => Seen::Found {
            dest_prop: None,
            endp_prop: f.endp_prop,
            which: which(&ends, &f.fd),
        },
        None => Seen::Miss,
    });
    seen.push(match client.find_endp(b"unknown").await.unwrap() {
        Some(_) => panic!("nothing was saved there"),
        None => Seen::Miss,
    });
    seen
}

#[test]
fn async_client_gets_the_same_answers_from_postfix_and_ours() {
    let _serial = serial();
    let rt = runtime();
    let mut runs = Vec::new();
    let mut programs = vec![("ours", ours())];
    if let Some(postfix) = postfix_scache_for_test("async_client_differential") {
        programs.push(("postfix", postfix));
    }
    for (name, program) in programs {
        let h = start(&program, &[]);
        let client = AsyncClient::new(h.socket_path());
        let seen = rt.block_on(script(&client));
        runs.push((name, seen));
    }
    let expected = vec![
        Seen::Saved,
        Seen::Saved,
        Seen::Saved,
        Seen::Found {
            dest_prop: Some(b"host=mx1\n".to_vec()),
            endp_prop: b"reuse_count=1\n".to_vec(),
            which: 0,
        },
        Seen::Found {
            dest_prop: Some(b"host=mx1\n".to_vec()),
            endp_prop: b"reuse_count=2\n".to_vec(),
            which: 1,
        },
        Seen::Miss,
        Seen::Saved,
        Seen::Found {
            dest_prop: None,
            endp_prop: Vec::new(),
            which: 2,
        },
        Seen::Miss,
    ];
    for (name, seen) in &runs {
        assert_eq!(seen, &expected, "{name}");
    }
}

/// 64 tasks share one client: every session comes back to the task that
/// saved it (the same open file), nothing waits on another task's
/// exchange for long, and no descriptor is left over.
#[test]
fn many_tasks_share_one_async_client() {
    let _serial = serial();
    let rt = runtime();
    let h = start(&ours(), &[]);
    let before = open_fds();
    let client = AsyncClient::new(h.socket_path());
    let started = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let client = client.clone();
                tokio::spawn(async move {
                    let endp = format!("smtp\n10.0.0.{t}\n25\n");
                    for round in 0..20 {
                        let (mine, far) = session();
                        let id = identity(&mine);
                        let prop = format!("round={round}\n");
                        client
                            .save_endp(TTL, endp.as_bytes(), prop.as_bytes(), mine)
                            .await
                            .unwrap();
                        let found = client.find_endp(endp.as_bytes()).await.unwrap().unwrap();
                        assert_eq!(identity(&found.fd), id, "task {t} round {round}");
                        assert_eq!(found.endp_prop, prop.as_bytes());
                        drop(far);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "2,560 operations took {:?}",
        started.elapsed()
    );
    let connections = client.config().max_connections;
    drop(client);
    drop(rt);
    let after = open_fds();
    assert!(
        after <= before,
        "descriptors: {before} before, {after} after (client had up to {connections} connections)"
    );
}

/// A future dropped while it waits for the reply: our daemon puts the
/// session back; nothing leaks; the client keeps working. The daemon is
/// stopped (SIGSTOP) while the future is polled once, so the drop surely
/// comes before the reply.
#[test]
fn cancelled_find_keeps_the_session() {
    let _serial = serial();
    let rt = runtime();
    let h = start(&ours(), &[]);
    let client = AsyncClient::new(h.socket_path());
    rt.block_on(async {
        // One operation first, so a connection is open and greeted.
        assert!(client.find_endp(b"e").await.unwrap().is_none());
        let before = open_fds();
        let (mine, _far) = session();
        let id = identity(&mine);
        client.save_endp(TTL, b"e", b"p", mine).await.unwrap();
        for round in 0..5 {
            h.signal(nix::sys::signal::Signal::SIGSTOP).unwrap();
            let cancelled = tokio::time::timeout(Duration::ZERO, client.find_endp(b"e")).await;
            assert!(
                cancelled.is_err(),
                "round {round}: answered by a stopped daemon"
            );
            h.signal(nix::sys::signal::Signal::SIGCONT).unwrap();
        }
        let found = client.find_endp(b"e").await.unwrap().expect("still cached");
        assert_eq!(identity(&found.fd), id);
        drop(found);
        assert!(client.find_endp(b"e").await.unwrap().is_none());
        assert!(open_fds() <= before + 1, "descriptors leaked");
    });
}

/// Errors, never panics or leaks: a dead daemon, a label over the daemon's
/// limit, a full cache.
#[test]
fn async_client_errors_are_clean() {
    let _serial = serial();
    let rt = runtime();
    let h = start(
        &ours(),
        &["scache_label_length_limit=16", "scache_session_limit=1"],
    );
    let before = open_fds();
    let client = AsyncClient::new(h.socket_path());
    rt.block_on(async {
        let (mine, far) = session();
        match client
            .save_endp(TTL, b"a label longer than sixteen bytes", b"", mine)
            .await
        {
            Err(ClientError::Refused { status, .. }) => assert_eq!(status, Status::Fail),
            other => panic!("{other:?}"),
        }
        // The daemon closed its copy: the far end sees EOF.
        assert!(common::sees_eof(&far, Duration::from_secs(2)));
        // A full cache makes room: the older session goes.
        let (one, far_one) = session();
        let (two, _far_two) = session();
        let id_two = identity(&two);
        client.save_endp(TTL, b"e", b"1", one).await.unwrap();
        client.save_endp(TTL, b"e", b"2", two).await.unwrap();
        assert!(common::sees_eof(&far_one, Duration::from_secs(2)));
        let found = client.find_endp(b"e").await.unwrap().unwrap();
        assert_eq!(identity(&found.fd), id_two);
    });
    drop(client);
    drop(h);
    let dead = TempDir::new("scache-dead").unwrap();
    let mut config = ClientConfig::new(dead.path().join("scache"));
    config.retry_pause = Duration::from_millis(10);
    let client = AsyncClient::with_config(config);
    rt.block_on(async {
        let (mine, _far) = session();
        assert!(matches!(
            client.save_endp(TTL, b"e", b"", mine).await,
            Err(ClientError::Io(_))
        ));
        assert!(matches!(
            client.find_endp(b"e").await,
            Err(ClientError::Unavailable { .. })
        ));
    });
    drop(client);
    drop(rt);
    assert!(open_fds() <= before, "descriptors leaked");
}

/// Our daemon, standalone, on `socket`.
fn standalone(socket: &Path) -> Child {
    let child = Command::new(ours())
        .arg("--listen")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "daemon not listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn recovering_config(socket: &Path) -> ClientConfig {
    let mut config = ClientConfig::new(socket);
    config.retry_pause = Duration::from_millis(20);
    config.recovery = Recovery::Backoff {
        first: Duration::from_millis(300),
        max: Duration::from_secs(60),
    };
    config
}

#[test]
fn blocking_client_recovers_after_the_daemon_restarts() {
    let _serial = serial();
    let dir = TempDir::new("scache-restart-path").unwrap();
    let socket = dir.path().join("scache.sock");
    let client = std::cell::RefCell::new(Client::with_config(recovering_config(&socket)));
    restart_scenario_at(
        &socket,
        || client.borrow_mut().find_endp(b"e").map(drop),
        || client.borrow().paused_until(),
    );
}

#[test]
fn async_client_recovers_after_the_daemon_restarts() {
    let _serial = serial();
    let rt = runtime();
    let dir = TempDir::new("scache-restart-path").unwrap();
    let socket = dir.path().join("scache.sock");
    let client = AsyncClient::with_config(recovering_config(&socket));
    restart_scenario_at(
        &socket,
        || rt.block_on(client.find_endp(b"e")).map(drop),
        || client.paused_until(),
    );
}

/// Starts our daemon at `socket`, kills it, shows that `op` fails fast
/// while the client pauses, restarts the daemon at the same path, and shows
/// that the same client object works again after the pause.
fn restart_scenario_at<F>(socket: &Path, mut op: F, until: impl Fn() -> Option<Instant>)
where
    F: FnMut() -> Result<(), ClientError>,
{
    let mut daemon = standalone(socket);
    op().expect("works while the daemon runs");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert!(op().is_err(), "the daemon is gone");
    let paused_until = until().expect("paused after the failure");
    let t0 = Instant::now();
    for _ in 0..50 {
        match op() {
            Err(ClientError::Unavailable { .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "not fast: {:?}",
        t0.elapsed()
    );
    let mut daemon = standalone(socket);
    std::thread::sleep(paused_until.saturating_duration_since(Instant::now()));
    op().expect("the same client works again");
    assert_eq!(until(), None);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn mini_mta_reuses_connections_through_both_caches() {
    let _serial = serial();
    let rt = runtime();
    let h = start(&ours(), &[]);
    let in_process = rt.block_on(mini_mta::run_in_process()).unwrap();
    let daemon = rt
        .block_on(mini_mta::run_with_daemon(h.socket_path()))
        .unwrap();
    for (name, r) in [
        ("SharedCache", in_process),
        ("AsyncClient + daemon", daemon),
    ] {
        eprintln!(
            "mini-MTA via {name}: {} messages, {} connections, {:.1}% reuse",
            r.messages,
            r.connections,
            r.reuse_percent()
        );
        assert_eq!(r.messages, mini_mta::MESSAGES, "{name}");
        assert_eq!(r.protocol_errors, 0, "{name}: the sink saw protocol errors");
        assert!(r.reuse_percent() >= 90.0, "{name}: {r:?}");
        assert_eq!(
            r.connections + r.reused,
            r.messages,
            "{name}: every delivery either reused or opened a connection"
        );
    }
}
