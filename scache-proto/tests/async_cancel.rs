//! AsyncClient futures dropped once the descriptor has been asked for: the
//! exchange is finished by a task of its own, and the session is saved back
//! (find_endp) or closed (find_dest), never leaked. The server is scripted
//! so that the drop surely falls between the asking dummy and the
//! descriptor.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use scache_proto::unix::{recv_fd, send_fd};
use scache_proto::AsyncClient;

/// These tests count the process's descriptors: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Serves one find: greeting, the request, a hit with `reply`, the asking
/// dummy; then waits for `go` before sending `session`; then expects the
/// closing dummy.
fn serve_hit(
    s: &mut UnixStream,
    request: &[u8],
    reply: &[u8],
    go: &mpsc::Receiver<()>,
    session: &OwnedFd,
) {
    expect_message(s, request);
    s.write_all(reply).unwrap();
    expect_message(s, DUMMY);
    go.recv().unwrap();
    send_fd(s.as_fd(), session.as_fd()).unwrap();
    expect_message(s, DUMMY);
}

#[test]
fn cancelled_find_endp_saves_the_session_back() {
    let _serial = serial();
    let before = open_fds();
    let (go_tx, go) = mpsc::channel();
    let (cached, far) = UnixStream::pair().unwrap();
    let id = identity(cached.as_fd());
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        let cached = OwnedFd::from(cached);
        serve_hit(
            &mut s,
            b"request\0find_endp\0label\0e\0\0",
            b"status\x000\0property\0p\0\0",
            &go,
            &cached,
        );
        drop(cached);
        // The finishing task saves it back, on the same connection.
        expect_message(
            &mut s,
            b"request\0save_endp\0ttl\x002\0label\0e\0property\0p\0\0",
        );
        s.write_all(DUMMY).unwrap();
        let back = recv_fd(s.as_fd()).unwrap();
        assert_eq!(identity(back.as_fd()), id, "the same session came back");
        s.write_all(b"status\x000\0\0").unwrap();
        expect_silence(&mut s, Duration::from_millis(200));
    });
    let rt = runtime();
    let client = AsyncClient::new(server.path());
    rt.block_on(async {
        let find = client.find_endp(b"e");
        assert!(
            tokio::time::timeout(Duration::from_millis(200), find)
                .await
                .is_err(),
            "the server holds the descriptor back"
        );
        go_tx.send(()).unwrap();
        // Give the finishing task time to run.
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    drop(client);
    drop(rt);
    server.join();
    drop(far);
    assert_eq!(open_fds(), before, "descriptors leaked");
}

#[test]
fn cancelled_find_dest_closes_the_session() {
    let _serial = serial();
    let before = open_fds();
    let (go_tx, go) = mpsc::channel();
    let (cached, far) = UnixStream::pair().unwrap();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        let cached = OwnedFd::from(cached);
        serve_hit(
            &mut s,
            b"request\0find_dest\0label\0d\0\0",
            b"status\x000\0property\0dp\0property\0ep\0\0",
            &go,
            &cached,
        );
        drop(cached);
        expect_silence(&mut s, Duration::from_millis(200));
    });
    let rt = runtime();
    let client = AsyncClient::new(server.path());
    rt.block_on(async {
        let find = client.find_dest(b"d");
        assert!(tokio::time::timeout(Duration::from_millis(200), find)
            .await
            .is_err());
        go_tx.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
    server.join();
    // Every copy of the session is closed: its peer sees EOF.
    let mut far = far;
    far.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut far, &mut b).unwrap(), 0);
    drop(client);
    drop(rt);
    drop(far);
    assert_eq!(open_fds(), before, "descriptors leaked");
}

#[test]
fn cancelled_before_the_reply_closes_the_connection_only() {
    let _serial = serial();
    let before = open_fds();
    let (cached, _far) = UnixStream::pair().unwrap();
    let (go_tx, go) = mpsc::channel::<()>();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        expect_message(&mut s, b"request\0find_endp\0label\0e\0\0");
        go.recv().unwrap();
        // The client is gone before the reply: it never asks for the
        // descriptor, which stays with the server.
        expect_silence(&mut s, Duration::from_secs(2));
        drop(cached);
    });
    let rt = runtime();
    let client = AsyncClient::new(server.path());
    rt.block_on(async {
        let find = client.find_endp(b"e");
        assert!(tokio::time::timeout(Duration::from_millis(100), find)
            .await
            .is_err());
    });
    go_tx.send(()).unwrap();
    server.join();
    drop(client);
    drop(rt);
    drop(_far);
    assert_eq!(open_fds(), before, "descriptors leaked");
}

/// The futures of every operation are `Send` (tasks on a multi-threaded
/// runtime can call the client) and the client is `Clone + Send + Sync`.
#[test]
fn client_and_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn shared<T: Clone + Send + Sync>() {}
    shared::<AsyncClient>();
    let client = AsyncClient::new("/nonexistent");
    let (a, _b) = UnixStream::pair().unwrap();
    send(&client.find_endp(b"e"));
    send(&client.find_dest(b"d"));
    send(&client.save_dest(Duration::from_secs(1), b"d", b"", b"e"));
    send(&client.save_endp(Duration::from_secs(1), b"e", b"", OwnedFd::from(a)));
    send(&client.stats());
}
