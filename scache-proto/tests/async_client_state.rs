//! AsyncClient against scripted servers: save_dest and stats reach the
//! server, a failed try is retried once, answers are not retried, and
//! Recovery::Never disables. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

mod common;

use std::io::Write;
use std::time::Duration;

use common::*;
use scache_proto::client::{ClientConfig, Recovery};
use scache_proto::message::Status;
use scache_proto::{AsyncClient, ClientError};
use scache_testkit::wire;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config(path: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new(path);
    c.timeout = Duration::from_secs(10);
    c.retry_pause = Duration::from_millis(10);
    c
}

#[test]
fn save_dest_and_stats_reach_the_server() {
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        expect_message(
            &mut s,
            &wire::text_message("request=save_dest ttl=5 label=d property=p label=e"),
        );
        s.write_all(b"status\x000\0\0").unwrap();
        expect_message(&mut s, &wire::text_message("request=stats"));
        s.write_all(b"status\x000\0sess_count\x003\0\0").unwrap();
    });
    let client = AsyncClient::with_config(config(server.path()));
    let debug = format!("{client:?}");
    assert!(debug.starts_with("AsyncClient { path: "), "{debug}");
    assert!(debug.contains("idle: 0"), "{debug}");
    runtime().block_on(async {
        client
            .save_dest(Duration::from_secs(5), b"d", b"p", b"e")
            .await
            .unwrap();
        let counters = client.stats().await.unwrap();
        assert_eq!(counters, [("sess_count".to_string(), "3".to_string())]);
    });
    // The connection went back to the idle set.
    assert!(format!("{client:?}").contains("idle: 1"));
    server.join();
}

#[test]
fn a_failed_try_is_retried_once_on_a_new_connection() {
    let server = FakeServer::start(|l| {
        // The first connection is dropped before the greeting.
        drop(l.accept().unwrap());
        let mut s = accept_greeted(&l);
        answer_miss(&mut s, "e");
    });
    let client = AsyncClient::with_config(config(server.path()));
    let found = runtime().block_on(client.find_endp(b"e")).unwrap();
    assert!(found.is_none());
    assert_eq!(client.paused_until(), None);
    server.join();
}

#[test]
fn an_answer_is_not_retried_nor_counted_as_a_failure() {
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        expect_message(&mut s, &wire::text_message("request=find_endp label=e"));
        s.write_all(b"status\x001\0property\0\0\0").unwrap();
    });
    let mut c = config(server.path());
    c.recovery = Recovery::Never;
    let client = AsyncClient::with_config(c);
    let err = runtime().block_on(client.find_endp(b"e")).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                status: Status::Bad,
                ..
            }
        ),
        "{err}"
    );
    assert!(!client.is_disabled());
    server.join();
}

#[test]
fn with_recovery_never_two_failed_tries_disable_caching() {
    let (_dir, path) = dead_path();
    let mut c = config(&path);
    c.recovery = Recovery::Never;
    let client = AsyncClient::with_config(c);
    assert!(!client.is_disabled());
    let err = runtime().block_on(client.find_endp(b"e")).unwrap_err();
    assert!(matches!(err, ClientError::Io(_)), "{err}");
    assert!(client.is_disabled());
    assert!(matches!(
        runtime().block_on(client.find_endp(b"e")),
        Err(ClientError::Disabled)
    ));
}

#[test]
fn a_descriptor_sent_along_with_a_reply_is_a_protocol_error() {
    use std::os::fd::AsFd;
    let server = FakeServer::start(|l| {
        for _ in 0..2 {
            let mut s = accept_greeted(&l);
            expect_message(&mut s, &wire::text_message("request=find_endp label=e"));
            let f = std::fs::File::open("/").unwrap();
            scache_proto::unix::send_fd(s.as_fd(), f.as_fd()).unwrap();
            let _ = s.write_all(b"status\x002\0property\0\0\0");
        }
    });
    let client = AsyncClient::with_config(config(server.path()));
    let err = runtime().block_on(client.find_endp(b"e")).unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Protocol(scache_proto::client::ProtocolError::UnexpectedDescriptor)
        ),
        "{err}"
    );
    server.join();
}

#[test]
fn a_find_dropped_before_its_reply_just_closes_the_connection() {
    use std::io::Read;
    use std::sync::mpsc;
    let (got_tx, got_rx) = mpsc::channel();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        expect_message(&mut s, &wire::text_message("request=find_endp label=e"));
        got_tx.send(()).unwrap();
        // No reply. The client's future is dropped before the descriptor
        // was asked for: nothing finishes the exchange, the connection is
        // closed at once.
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .expect("end of file, not a client still waiting");
        assert!(rest.is_empty(), "{rest:?}");
    });
    let client = AsyncClient::with_config(config(server.path()));
    runtime().block_on(async {
        let waited = tokio::task::spawn_blocking(move || got_rx.recv().unwrap());
        tokio::select! {
            r = client.find_endp(b"e") => panic!("no reply was sent: {r:?}"),
            _ = waited => {}
        }
        // The runtime keeps running while the server looks.
        tokio::task::spawn_blocking(move || server.join())
            .await
            .unwrap();
    });
}

#[test]
fn invalid_arguments_are_neither_retried_nor_counted_as_a_failure() {
    use std::io::Read;
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        // Nothing is sent: the request cannot be encoded.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    });
    let mut c = config(server.path());
    c.recovery = Recovery::Never;
    c.timeout = Duration::from_secs(2);
    let client = AsyncClient::with_config(c);
    let err = runtime()
        .block_on(client.find_endp(b"bad\0label"))
        .unwrap_err();
    assert!(matches!(err, ClientError::Invalid(_)), "{err}");
    assert!(!client.is_disabled());
    drop(client);
    server.join();
}
