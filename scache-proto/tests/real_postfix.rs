//! Against the real thing: Postfix's own `scache(8)` daemon
//! (`/usr/lib/postfix/sbin/scache`, Debian's `postfix` package), started the
//! way `master(8)` starts it by `scache_testkit::harness`.
//!
//! - our blocking `Client` goes through every operation with real
//!   descriptors, and a descriptor taken out refers to the same open file
//!   that was saved (st_dev/st_ino);
//! - raw exchanges check that the bytes Postfix sends are exactly the bytes
//!   our encoders produce, for every reply shape.
//!
//! A missing daemon fails these tests, unless `SCACHE_ALLOW_SKIP=1` (see
//! `scache_testkit::harness::skip_or_fail`).

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use scache_core::ConnectionCache;
use scache_proto::client::{Client, ClientConfig};
use scache_proto::message::{self, RequestKind, Status};
use scache_proto::unix::{recv_fd, send_fd};
use scache_proto::ClientError;
use scache_testkit::harness::{postfix_scache_for_test, Harness, HarnessBuilder, TempDir};
use scache_testkit::wire::text_message;

const T: Duration = Duration::from_secs(10);

/// The tests of this file run one at a time: one counts descriptors.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn postfix(test: &str) -> Option<Harness> {
    // (callers hold `serial()` first)
    let prog = postfix_scache_for_test(test)?;
    let h = HarnessBuilder::new(prog)
        // Postfix clamps ttls to this (default 2s): keep sessions long
        // enough for a slow test machine.
        .main_cf("connection_cache_ttl_limit", "3600s")
        .spawn()
        .expect("spawn Postfix's scache");
    h.wait_ready(T).expect("Postfix's scache greets");
    Some(h)
}

fn warnings(h: &Harness) -> Vec<String> {
    h.log_messages()
        .into_iter()
        .filter(|m| m.starts_with("warning:") || m.starts_with("fatal:") || m.starts_with("panic:"))
        .collect()
}

/// Every label and property byte but NUL, newlines included.
fn all_bytes() -> Vec<u8> {
    (1..=255u8).collect()
}

#[test]
fn client_every_operation_against_postfix() {
    let _serial = serial();
    let Some(h) = postfix("client_every_operation_against_postfix") else {
        return;
    };
    let dir = TempDir::new("real-postfix").unwrap();
    let mut config = ClientConfig::new(h.socket_path());
    config.timeout = T;
    config.retry_pause = Duration::from_millis(100);
    let mut client = Client::with_config(config);
    let fds_before = open_fds();

    let endp = b"smtp\n192.0.2.1\n25\n*\n*\n".to_vec();
    let endp_prop = b"reuse_count=0\nendpoint_features=0\nexpire_time=1700000300\n".to_vec();
    let dest = b"smtp\nexample.com\n*\n*\n".to_vec();
    let dest_prop =
        b"destination=example.com\nhost_name=mx.example.com\nhost_addr=192.0.2.1\nhost_port=25\n"
            .to_vec();
    let ttl = Duration::from_secs(300);

    // find_endp / find_dest on an empty cache.
    assert!(client.find_endp(&endp).unwrap().is_none());
    assert!(client.find_dest(&dest).unwrap().is_none());

    // save_endp, then find_endp returns the same open file.
    let a = unique_file(dir.path(), "a");
    let a_id = identity(a.as_fd());
    client
        .save_endp(ttl, &endp, &endp_prop, OwnedFd::from(a))
        .unwrap();
    let found = client.find_endp(&endp).unwrap().expect("session saved");
    assert_eq!(found.endp_prop, endp_prop);
    assert_eq!(identity(found.fd.as_fd()), a_id);
    drop(found);
    assert!(client.find_endp(&endp).unwrap().is_none(), "taken out");

    // save_dest + save_endp, then find_dest.
    let b = unique_file(dir.path(), "b");
    let b_id = identity(b.as_fd());
    client
        .save_endp(ttl, &endp, &endp_prop, OwnedFd::from(b))
        .unwrap();
    client.save_dest(ttl, &dest, &dest_prop, &endp).unwrap();
    let found = client.find_dest(&dest).unwrap().expect("destination bound");
    assert_eq!(found.dest_prop, dest_prop);
    assert_eq!(found.endp_prop, endp_prop);
    assert_eq!(identity(found.fd.as_fd()), b_id);
    drop(found);
    assert!(client.find_dest(&dest).unwrap().is_none(), "session taken");
    assert!(client.find_endp(&endp).unwrap().is_none());

    // Two sessions under one endpoint: both come back, once each.
    let c = unique_file(dir.path(), "c");
    let d = unique_file(dir.path(), "d");
    let mut want = vec![identity(c.as_fd()), identity(d.as_fd())];
    client
        .save_endp(ttl, &endp, b"c", OwnedFd::from(c))
        .unwrap();
    client
        .save_endp(ttl, &endp, b"d", OwnedFd::from(d))
        .unwrap();
    let mut got = Vec::new();
    while let Some(found) = client.find_endp(&endp).unwrap() {
        got.push(identity(found.fd.as_fd()));
        assert_eq!(
            identity(found.fd.as_fd()) == want[0],
            found.endp_prop == b"c"
        );
    }
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Opaque bytes: every byte value but NUL, and large properties.
    let odd = all_bytes();
    let big: Vec<u8> = (0..20_000u32)
        .map(|i| b"abc\ndef*\xff"[i as usize % 9])
        .collect();
    let e = unique_file(dir.path(), "e");
    let e_id = identity(e.as_fd());
    client.save_endp(ttl, &odd, &big, OwnedFd::from(e)).unwrap();
    client.save_dest(ttl, &big, &odd, &odd).unwrap();
    let found = client.find_dest(&big).unwrap().expect("odd bytes");
    assert_eq!(found.dest_prop, odd);
    assert_eq!(found.endp_prop, big);
    assert_eq!(identity(found.fd.as_fd()), e_id);
    drop(found);

    // A live socket survives the trip through Postfix and still talks.
    let (session, mut peer) = UnixStream::pair().unwrap();
    client
        .save_endp(ttl, b"socket", b"", OwnedFd::from(session))
        .unwrap();
    let found = client.find_endp(b"socket").unwrap().expect("socket");
    let mut taken = UnixStream::from(found.fd);
    taken.write_all(b"RSET\r\n").unwrap();
    let mut buf = [0u8; 6];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"RSET\r\n");
    drop(taken);
    drop(peer);

    // A new connection picks up where the old one left.
    client.disconnect();
    assert!(client.find_endp(b"nothing").unwrap().is_none());

    assert!(!client.is_disabled());
    assert_eq!(warnings(&h), Vec::<String>::new(), "Postfix complained");
    client.disconnect();
    assert_eq!(open_fds(), fds_before, "descriptor leak in the client");

    // Our `stats` extension: Postfix answers "malformed" (status 1), which
    // is a clean refusal, not a failure that disables caching.
    let err = client.stats().unwrap_err();
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
    assert!(
        err.to_string()
            .starts_with("the daemon does not support the stats request (status 1)"),
        "{err}"
    );
    assert!(!client.is_disabled());
    assert!(client.find_endp(b"nothing").unwrap().is_none());
    assert!(h.wait_for_log("unrecognized request: \"stats\"", T));
}

fn expect_reply(s: &mut UnixStream, want: &[u8]) {
    s.set_read_timeout(Some(T)).unwrap();
    expect_message(s, want);
}

/// A fresh connection that Postfix has greeted.
fn conn(h: &Harness) -> UnixStream {
    let s = h.connect().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

#[test]
fn exact_bytes_against_postfix() {
    let _serial = serial();
    let Some(h) = postfix("exact_bytes_against_postfix") else {
        return;
    };
    let dir = TempDir::new("real-postfix").unwrap();
    let mut enc = Vec::new();
    let mut ours = |f: &dyn Fn(&mut Vec<u8>)| {
        enc.clear();
        f(&mut enc);
        enc.clone()
    };

    // The greeting (checked byte for byte against ours).
    let mut s = h.connect_raw().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    expect_reply(&mut s, &ours(&|o| message::encode_greeting(o)));

    // save_endp: dummy, descriptor, status 0.
    let f = unique_file(dir.path(), "f");
    let f_id = identity(f.as_fd());
    s.write_all(&text_message(
        "request=save_endp ttl=300 label=ep\nx property=pp\n",
    ))
    .unwrap();
    expect_reply(&mut s, &ours(&|o| message::encode_dummy(o)));
    send_fd(s.as_fd(), f.as_fd()).unwrap();
    expect_reply(&mut s, &ours(&|o| message::encode_status(o, Status::Ok)));

    // find_endp hit: status 0 + property; dummy; descriptor; dummy.
    s.write_all(&text_message("request=find_endp label=ep\nx"))
        .unwrap();
    expect_reply(
        &mut s,
        &ours(&|o| message::encode_find_endp_reply(o, Status::Ok, b"pp\n")),
    );
    s.write_all(&text_message("dummy=")).unwrap();
    let got = recv_fd(s.as_fd()).unwrap();
    assert_eq!(identity(got.as_fd()), f_id);
    s.write_all(&text_message("dummy=")).unwrap();

    // find_endp miss: status 2 + empty property.
    s.write_all(&text_message("request=find_endp label=ep\nx"))
        .unwrap();
    expect_reply(
        &mut s,
        &ours(&|o| message::encode_find_endp_reply(o, Status::Fail, b"")),
    );

    // save_dest: status 0.
    s.write_all(&text_message(
        "request=save_dest ttl=300 label=dest property=dp label=ep\nx",
    ))
    .unwrap();
    expect_reply(&mut s, &ours(&|o| message::encode_status(o, Status::Ok)));

    // find_dest miss (bound, but no session): status 2 + two empty properties.
    s.write_all(&text_message("request=find_dest label=dest"))
        .unwrap();
    expect_reply(
        &mut s,
        &ours(&|o| message::encode_find_dest_reply(o, Status::Fail, b"", b"")),
    );

    // find_dest hit.
    s.write_all(&text_message(
        "request=save_endp ttl=300 label=ep\nx property=pp2",
    ))
    .unwrap();
    expect_reply(&mut s, b"dummy\0\0\0");
    send_fd(s.as_fd(), f.as_fd()).unwrap();
    expect_reply(&mut s, b"status\x000\0\0");
    s.write_all(&text_message("request=find_dest label=dest"))
        .unwrap();
    expect_reply(
        &mut s,
        &ours(&|o| message::encode_find_dest_reply(o, Status::Ok, b"dp", b"pp2")),
    );
    s.write_all(b"dummy\0\0\0").unwrap();
    let got = recv_fd(s.as_fd()).unwrap();
    assert_eq!(identity(got.as_fd()), f_id);
    s.write_all(b"dummy\0\0\0").unwrap();

    // Unknown request: status 1.
    s.write_all(&text_message("request=no_such_request"))
        .unwrap();
    expect_reply(
        &mut s,
        &ours(&|o| message::encode_malformed(o, RequestKind::Unknown)),
    );

    // Extra attributes after the expected ones are tolerated (served).
    let mut e = conn(&h);
    e.write_all(&text_message("request=find_endp label=none extra=v"))
        .unwrap();
    expect_reply(
        &mut e,
        &ours(&|o| message::encode_find_endp_reply(o, Status::Fail, b"")),
    );
    drop(e);
    assert!(h.wait_for_log("unexpected attribute extra", T));

    // save_endp with an fd-less byte where the descriptor should be: status 2.
    s.write_all(&text_message("request=save_endp ttl=300 label=x property="))
        .unwrap();
    expect_reply(&mut s, b"dummy\0\0\0");
    s.write_all(b"\0").unwrap();
    expect_reply(&mut s, &ours(&|o| message::encode_status(o, Status::Fail)));
}

#[test]
fn malformed_shapes_against_postfix() {
    let _serial = serial();
    let Some(h) = postfix("malformed_shapes_against_postfix") else {
        return;
    };
    // Each on a fresh connection: Postfix does not resynchronise after a
    // malformed request.
    use RequestKind::{FindDest, FindEndp, SaveDest, SaveEndp, Unknown};
    let cases: &[(RequestKind, &str)] = &[
        (SaveEndp, "request=save_endp ttl=0 label=e property=p"),
        (SaveEndp, "request=save_endp ttl=-5 label=e property=p"),
        (SaveEndp, "request=save_endp ttl=5x label=e property=p"),
        (
            SaveEndp,
            "request=save_endp ttl=2147483648 label=e property=p",
        ),
        (SaveEndp, "request=save_endp label=e property=p"),
        (SaveEndp, "request=save_endp ttl=5 label=e"),
        (FindEndp, "request=find_endp"),
        (FindEndp, "request=find_endp property=x"),
        (SaveDest, "request=save_dest ttl=5 label=d property=p"),
        (
            SaveDest,
            "request=save_dest ttl=0 label=d property=p label=e",
        ),
        (FindDest, "request=find_dest"),
        (FindDest, "request=find_dest ttl=1"),
        (Unknown, "request=FIND_ENDP label=e"),
        (Unknown, "request="),
    ];
    for &(kind, text) in cases {
        let request = text_message(text);
        // Our parser agrees on the kind and that it is malformed.
        let mut dec = scache_proto::attr::Decoder::new(Default::default());
        let scache_proto::attr::Decoded::Complete { message: msg, .. } = dec.decode(&request)
        else {
            panic!("{text}: one whole request");
        };
        let err = message::parse_request(&msg).unwrap_err();
        assert_eq!(err.kind(), kind, "{text}: {err}");
        // And on the bytes of the answer.
        let mut want = Vec::new();
        message::encode_malformed(&mut want, kind);
        let mut s = conn(&h);
        s.write_all(&request).unwrap();
        expect_message_for(&mut s, &want, text);
    }

    // No `request` first: Postfix answers nothing at all (we answer status
    // 1; see encode_malformed).
    let mut s = conn(&h);
    s.write_all(&msg(&[(b"label", b"e")])).unwrap();
    expect_silence(&mut s, Duration::from_millis(500));
}

#[test]
fn ttl_syntax_agrees_with_postfix() {
    let _serial = serial();
    let Some(h) = postfix("ttl_syntax_agrees_with_postfix") else {
        return;
    };
    let save_dest = |ttl: &[u8]| {
        msg(&[
            (b"request", b"save_dest"),
            (b"ttl", ttl),
            (b"label", b"d"),
            (b"property", b"p"),
            (b"label", b"e"),
        ])
    };
    // (ttl text, accepted by Postfix, accepted by us)
    let cases: &[(&[u8], bool, bool)] = &[
        (b"5", true, true),
        (b" 5", true, true),
        (b"\n5", true, true),
        (b"+5", true, true),
        (b"007", true, true),
        (b"2147483647", true, true),
        (b"5 ", false, false),
        (b"", false, false),
        (b"0", false, false),
        (b"-5", false, false),
        (b"5x", false, false),
        (b"2147483648", false, false),
        (b"4294967295", false, false),
        // Postfix's `%u` wraps these to 1 and accepts them; docs/protocol.md
        // says to reject anything that is not a positive 31-bit integer.
        (b"4294967297", true, false),
        (b"-4294967295", true, false),
    ];
    for &(ttl, postfix_ok, ours_ok) in cases {
        let request = save_dest(ttl);
        let mut s = conn(&h);
        s.write_all(&request).unwrap();
        let want: &[u8] = if postfix_ok {
            b"status\x000\0\0"
        } else {
            b"status\x001\0\0"
        };
        expect_message_for(
            &mut s,
            want,
            &format!("ttl {:?}", String::from_utf8_lossy(ttl)),
        );
        assert_eq!(
            message::parse_ttl(ttl).is_some(),
            ours_ok,
            "{:?}",
            String::from_utf8_lossy(ttl)
        );
    }
}
