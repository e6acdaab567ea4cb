//! The blocking client's connection state and its sending of requests
//! larger than a socket buffer. Written to pin what cargo-mutants found
//! untested (see docs/testing.md).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use scache_core::ConnectionCache;
use scache_proto::client::{Client, ClientConfig};
use scache_proto::message::{encode_request, Request};

fn config(path: &std::path::Path) -> ClientConfig {
    let mut c = ClientConfig::new(path);
    c.timeout = Duration::from_secs(10);
    c
}

#[test]
fn connected_until_disconnected_then_reconnects() {
    let server = FakeServer::start(|l| {
        let mut s = accept_greeted(&l);
        answer_miss(&mut s, "a");
        // The client hangs up; the next operation connects again.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        let mut s = accept_greeted(&l);
        answer_miss(&mut s, "b");
    });
    let mut client = Client::with_config(config(server.path()));
    assert!(!client.is_connected());
    let debug = format!("{client:?}");
    assert!(debug.starts_with("Client { path: "), "{debug}");
    assert!(debug.contains("connected: false"), "{debug}");
    assert!(client.find_endp(b"a").unwrap().is_none());
    assert!(client.is_connected());
    assert!(format!("{client:?}").contains("connected: true"));
    client.disconnect();
    assert!(!client.is_connected());
    assert!(client.find_endp(b"b").unwrap().is_none());
    assert!(client.is_connected());
    server.join();
}

#[test]
fn a_request_larger_than_the_socket_buffer_is_sent_whole() {
    let prop = vec![b'p'; 4 << 20];
    let mut request = Vec::new();
    encode_request(
        &mut request,
        &Request::SaveDest {
            ttl: 5,
            dest: b"d",
            dest_prop: &prop,
            endp: b"e",
        },
    )
    .unwrap();
    let want = request.len();
    let server = FakeServer::start(move |l| {
        let mut s = accept_greeted(&l);
        // Read slowly, so that the client's sends fill the buffer.
        std::thread::sleep(Duration::from_millis(200));
        let mut got = vec![0u8; want];
        s.read_exact(&mut got).unwrap();
        assert!(got == request, "the request arrived intact");
        s.write_all(b"status\x000\0\0").unwrap();
    });
    let mut client = Client::with_config(config(server.path()));
    client
        .save_dest(Duration::from_secs(5), b"d", &prop, b"e")
        .unwrap();
    server.join();
}

#[test]
fn a_server_that_hangs_up_mid_request_fails_the_send_at_once() {
    let server = FakeServer::start(|l| {
        for _ in 0..2 {
            // Greets, then hangs up without reading.
            drop(accept_greeted(&l));
        }
    });
    let mut c = config(server.path());
    c.timeout = Duration::from_secs(3);
    c.retry_pause = Duration::from_millis(10);
    let mut client = Client::with_config(c);
    let prop = vec![b'p'; 4 << 20];
    let t0 = std::time::Instant::now();
    let err = client
        .save_dest(Duration::from_secs(5), b"d", &prop, b"e")
        .unwrap_err();
    assert!(
        matches!(&err, scache_proto::ClientError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "an error, not a wait for the timeout: {:?}",
        t0.elapsed()
    );
    server.join();
}
