//! Transcript tests: for every exchange of `docs/protocol.md`, the exact bytes
//! both ways, between our blocking `Client` and a scripted fake server on a
//! real Unix socket (descriptors really pass), and through the pure
//! `ClientExchange` fed one byte at a time.

mod common;

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use common::*;
use scache_core::ConnectionCache;
use scache_proto::attr::Limits;
use scache_proto::client::{Client, ClientConfig, ClientExchange, Outcome, Step};
use scache_proto::message::{Request, Status};
use scache_proto::unix::recv_fd;

const ENDP: &[u8] = b"smtp\n192.0.2.1\n25\n*\n";
const ENDP_PROP: &[u8] = b"reuse_count=0\nendpoint_features=0\nexpire_time=1700000000\n";
const DEST: &[u8] = b"smtp\nexample.com\n*\n";
const DEST_PROP: &[u8] = b"destination=example.com\nhost_name=mx.example.com\n";

fn client_for(server: &FakeServer) -> Client {
    let mut config = ClientConfig::new(server.path());
    config.retry_pause = Duration::from_millis(10);
    Client::with_config(config)
}

/// A file to pass as the session (its directory, the file, its identity).
fn session_file() -> (scache_testkit::harness::TempDir, std::fs::File, (u64, u64)) {
    let dir = scache_testkit::harness::TempDir::new("transcript").unwrap();
    let file = unique_file(dir.path(), "session");
    let id = identity(file.as_fd());
    (dir, file, id)
}

#[test]
fn save_endp_transcript() {
    let (_dir, file, want) = session_file();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        expect_message(
            &mut s,
            b"request\0save_endp\0ttl\x002\0label\0smtp\n192.0.2.1\n25\n*\n\0property\0\
              reuse_count=0\nendpoint_features=0\nexpire_time=1700000000\n\0\0",
        );
        s.write_all(b"dummy\0\0\0").unwrap();
        let fd = recv_fd(s.as_fd()).unwrap();
        assert_eq!(identity(fd.as_fd()), want);
        s.write_all(b"status\x000\0\0").unwrap();
        expect_silence(&mut s, Duration::from_millis(200));
    });
    let mut client = client_for(&server);
    client
        .save_endp(Duration::from_secs(2), ENDP, ENDP_PROP, OwnedFd::from(file))
        .unwrap();
    drop(client);
    server.join();
}

#[test]
fn save_endp_fd_not_received_transcript() {
    // The server could not receive the descriptor: status 2.
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        expect_message(
            &mut s,
            b"request\0save_endp\0ttl\x00300\0label\0e\0property\0\0\0",
        );
        s.write_all(b"dummy\0\0\0").unwrap();
        let _fd = recv_fd(s.as_fd()).unwrap();
        s.write_all(b"status\x002\0\0").unwrap();
    });
    let mut client = client_for(&server);
    let fd = OwnedFd::from(std::fs::File::open("/").unwrap());
    let err = client
        .save_endp(Duration::from_secs(300), b"e", b"", fd)
        .unwrap_err();
    assert_refused(err, Status::Fail);
    assert!(!client.is_disabled());
    server.join();
}

#[test]
fn find_endp_hit_and_miss_transcript() {
    let (_dir, file, want) = session_file();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        // Hit.
        expect_message(
            &mut s,
            b"request\0find_endp\0label\0smtp\n192.0.2.1\n25\n*\n\0\0",
        );
        s.write_all(b"status\x000\0property\0reuse_count=0\nendpoint_features=0\nexpire_time=1700000000\n\0\0")
            .unwrap();
        // The server closes its copy once handed out.
        hand_over(&mut s, file);
        // Miss: no dummy follows; the next bytes are the next request.
        answer_miss(&mut s, "nope");
        expect_message(&mut s, b"request\0find_endp\0label\0bad\0\0");
        s.write_all(b"status\x001\0property\0\0\0").unwrap();
        expect_silence(&mut s, Duration::from_millis(200));
    });
    let mut client = client_for(&server);
    let found = client.find_endp(ENDP).unwrap().expect("hit");
    assert_eq!(found.endp_prop, ENDP_PROP);
    assert_eq!(identity(found.fd.as_fd()), want);
    assert!(client.find_endp(b"nope").unwrap().is_none());
    let err = client.find_endp(b"bad").unwrap_err();
    assert_refused(err, Status::Bad);
    drop(client);
    server.join();
}

#[test]
fn save_dest_transcript() {
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        expect_message(
            &mut s,
            b"request\0save_dest\0ttl\x002\0label\0smtp\nexample.com\n*\n\0property\0\
              destination=example.com\nhost_name=mx.example.com\n\0label\0smtp\n192.0.2.1\n25\n*\n\0\0",
        );
        s.write_all(b"status\x000\0\0").unwrap();
        expect_message(
            &mut s,
            b"request\0save_dest\0ttl\x001\0label\0d\0property\0\0label\0e\0\0",
        );
        s.write_all(b"status\x001\0\0").unwrap();
    });
    let mut client = client_for(&server);
    client
        .save_dest(Duration::from_secs(2), DEST, DEST_PROP, ENDP)
        .unwrap();
    let err = client
        .save_dest(Duration::from_millis(500), b"d", b"", b"e")
        .unwrap_err();
    assert_refused(err, Status::Bad);
    server.join();
}

#[test]
fn find_dest_hit_and_miss_transcript() {
    let (_dir, file, want) = session_file();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        expect_message(
            &mut s,
            b"request\0find_dest\0label\0smtp\nexample.com\n*\n\0\0",
        );
        s.write_all(
            b"status\x000\0property\0destination=example.com\nhost_name=mx.example.com\n\0\
              property\0reuse_count=0\nendpoint_features=0\nexpire_time=1700000000\n\0\0",
        )
        .unwrap();
        hand_over(&mut s, file);
        expect_message(&mut s, b"request\0find_dest\0label\0x\0\0");
        s.write_all(b"status\x002\0property\0\0property\0\0\0")
            .unwrap();
        expect_silence(&mut s, Duration::from_millis(200));
    });
    let mut client = client_for(&server);
    let found = client.find_dest(DEST).unwrap().expect("hit");
    assert_eq!(found.dest_prop, DEST_PROP);
    assert_eq!(found.endp_prop, ENDP_PROP);
    assert_eq!(identity(found.fd.as_fd()), want);
    assert!(client.find_dest(b"x").unwrap().is_none());
    drop(client);
    server.join();
}

#[test]
fn stats_transcript() {
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        expect_message(&mut s, b"request\0stats\0\0");
        s.write_all(b"status\x000\0sess_count\x003\0dest_hits\x0012\0\0")
            .unwrap();
        // Postfix's daemon does not know `stats`.
        expect_message(&mut s, b"request\0stats\0\0");
        s.write_all(b"status\x001\0\0").unwrap();
    });
    let mut client = client_for(&server);
    assert_eq!(
        client.stats().unwrap(),
        vec![
            ("sess_count".to_string(), "3".to_string()),
            ("dest_hits".to_string(), "12".to_string())
        ]
    );
    let err = client.stats().unwrap_err();
    assert_refused(err, Status::Bad);
    assert!(!client.is_disabled());
    server.join();
}

/// Drives a pure exchange with the server's bytes fed one at a time,
/// returning everything the client wrote (after the request itself).
fn feed_bytewise(ex: &mut ClientExchange, server: &[u8], out: &mut Vec<u8>) {
    for b in server {
        assert_eq!(ex.poll_step(), Step::ReadBytes);
        ex.handle_bytes(std::slice::from_ref(b), out).unwrap();
    }
}

fn greeted() -> ClientExchange {
    let mut ex = ClientExchange::new(Limits::default());
    let mut out = Vec::new();
    feed_bytewise(&mut ex, GREETING, &mut out);
    assert!(out.is_empty());
    assert_eq!(ex.poll_step(), Step::Idle);
    ex
}

#[test]
fn pure_exchanges_bytewise() {
    // save_endp
    let mut ex = greeted();
    let mut out = Vec::new();
    ex.start(
        &Request::SaveEndp {
            ttl: 2,
            endp: ENDP,
            endp_prop: ENDP_PROP,
        },
        &mut out,
    )
    .unwrap();
    assert!(out.starts_with(b"request\0save_endp\0ttl\x002\0label\0"));
    out.clear();
    feed_bytewise(&mut ex, DUMMY, &mut out);
    assert_eq!(ex.poll_step(), Step::SendFd);
    assert!(out.is_empty());
    ex.handle_fd_sent().unwrap();
    feed_bytewise(&mut ex, b"status\x000\0\0", &mut out);
    assert_eq!(ex.poll_outcome(), Some(Outcome::Saved(Status::Ok)));
    assert!(out.is_empty());

    // find_endp hit: dummy, fd, dummy
    ex.start(&Request::FindEndp { endp: ENDP }, &mut out)
        .unwrap();
    assert_eq!(
        out,
        b"request\0find_endp\0label\0smtp\n192.0.2.1\n25\n*\n\0\0"
    );
    out.clear();
    feed_bytewise(&mut ex, b"status\x000\0property\0p\nq\0\0", &mut out);
    assert_eq!(out, DUMMY);
    assert_eq!(ex.poll_step(), Step::RecvFd);
    out.clear();
    ex.handle_fd_received(&mut out).unwrap();
    assert_eq!(out, DUMMY);
    assert_eq!(
        ex.poll_outcome(),
        Some(Outcome::FoundEndp {
            status: Status::Ok,
            endp_prop: b"p\nq".to_vec()
        })
    );

    // find_dest miss: no dummy
    out.clear();
    ex.start(&Request::FindDest { dest: DEST }, &mut out)
        .unwrap();
    out.clear();
    feed_bytewise(
        &mut ex,
        b"status\x002\0property\0\0property\0\0\0",
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(
        ex.poll_outcome(),
        Some(Outcome::FoundDest {
            status: Status::Fail,
            dest_prop: vec![],
            endp_prop: vec![]
        })
    );

    // save_dest
    ex.start(
        &Request::SaveDest {
            ttl: 7,
            dest: b"d",
            dest_prop: b"dp",
            endp: b"e",
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out,
        b"request\0save_dest\0ttl\x007\0label\0d\0property\0dp\0label\0e\0\0"
    );
    out.clear();
    feed_bytewise(&mut ex, b"status\x000\0\0", &mut out);
    assert_eq!(ex.poll_outcome(), Some(Outcome::Saved(Status::Ok)));
    assert_eq!(ex.poll_step(), Step::Idle);
}
