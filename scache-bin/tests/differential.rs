//! Differential tests: the same request sequences sent to Postfix's own
//! daemon (`/usr/lib/postfix/sbin/scache`) and to ours, both started the way
//! master(8) starts them. Replies must be byte-identical and the descriptors
//! handed back must be the very files that were saved.

mod common;

use std::os::fd::OwnedFd;
use std::time::Duration;

use common::*;
use scache_testkit::harness::postfix_scache_for_test;
use scache_testkit::wire::text_message;

/// Runs a scenario against a daemon and returns its transcript: every reply
/// as text, and for every descriptor received which saved one it is.
fn transcript(
    program: &std::path::PathBuf,
    scenario: fn(&mut Peer, &mut Vec<String>, &mut Saved),
) -> Vec<String> {
    let h = start(program, &[]);
    let mut peer = Peer::connect(&h);
    let mut log = Vec::new();
    let mut saved = Saved::default();
    scenario(&mut peer, &mut log, &mut saved);
    log
}

/// Descriptors saved so far, to name the ones that come back.
#[derive(Default)]
struct Saved {
    ids: Vec<(u64, u64)>,
    keep: Vec<OwnedFd>,
}

impl Saved {
    /// A new session descriptor; returns (its name, the end to send).
    fn new_session(&mut self) -> (usize, OwnedFd) {
        let (a, b) = session();
        self.ids.push(identity(&a));
        self.keep.push(b);
        (self.ids.len() - 1, a)
    }

    fn name(&self, fd: &Option<OwnedFd>) -> String {
        match fd {
            None => "no fd".into(),
            Some(fd) => {
                let id = identity(fd);
                match self.ids.iter().position(|x| *x == id) {
                    Some(i) => format!("fd #{i}"),
                    None => "UNKNOWN fd".into(),
                }
            }
        }
    }
}

fn save(
    peer: &mut Peer,
    log: &mut Vec<String>,
    saved: &mut Saved,
    ttl: &str,
    label: &[u8],
    prop: &[u8],
) {
    let (n, fd) = saved.new_session();
    let reply = peer.save_endp(ttl, label, prop, fd);
    log.push(format!(
        "save_endp {} {} fd #{n} -> {}",
        show(label),
        show(prop),
        show(&reply)
    ));
}

fn find_endp(peer: &mut Peer, log: &mut Vec<String>, saved: &mut Saved, label: &[u8]) {
    let (reply, fd) = peer.find_endp(label);
    log.push(format!(
        "find_endp {} -> {} {}",
        show(label),
        show(&reply),
        saved.name(&fd)
    ));
}

fn find_dest(peer: &mut Peer, log: &mut Vec<String>, saved: &mut Saved, label: &[u8]) {
    let (reply, fd) = peer.find_dest(label);
    log.push(format!(
        "find_dest {} -> {} {}",
        show(label),
        show(&reply),
        saved.name(&fd)
    ));
}

fn save_dest(
    peer: &mut Peer,
    log: &mut Vec<String>,
    ttl: &str,
    dest: &[u8],
    prop: &[u8],
    endp: &[u8],
) {
    let reply = peer.save_dest(ttl, dest, prop, endp);
    log.push(format!(
        "save_dest {} {} {} -> {}",
        show(dest),
        show(prop),
        show(endp),
        show(&reply)
    ));
}

fn raw(peer: &mut Peer, log: &mut Vec<String>, request: &[u8]) {
    let reply = peer.ask(request);
    log.push(format!("{} -> {}", show(request), show(&reply)));
}

/// All four operations, FIFO order, binding order and refresh, with labels
/// and properties shaped like Postfix's (multi-line).
fn operations(peer: &mut Peer, log: &mut Vec<String>, saved: &mut Saved) {
    let e1: &[u8] = b"smtp\n192.0.2.1\n25\n*\n*\n*\n";
    let e2: &[u8] = b"smtp\n192.0.2.2\n25\n*\n*\n*\n";
    let d: &[u8] = b"smtp\nexample.com\n*\n*\n*\n";
    let p1: &[u8] = b"tls_level=0\nreuse_count=1\nendpoint_features=0\nexpire_time=1764320000\n";
    find_endp(peer, log, saved, e1);
    save(peer, log, saved, "100", e1, p1);
    find_endp(peer, log, saved, e1);
    find_endp(peer, log, saved, e1);
    // FIFO
    for _ in 0..3 {
        save(peer, log, saved, "2", e1, p1);
    }
    for _ in 0..4 {
        find_endp(peer, log, saved, e1);
    }
    // destinations
    find_dest(peer, log, saved, d);
    save_dest(peer, log, "2", d, b"dprop1\nhost_name=mx1\n", e1);
    save_dest(peer, log, "2", d, b"dprop2\n", e2);
    save(peer, log, saved, "2", e2, b"e2prop");
    find_dest(peer, log, saved, d);
    save(peer, log, saved, "2", e1, b"e1prop");
    save(peer, log, saved, "2", e2, b"e2prop-b");
    // refresh in place: the e1 binding stays first
    save_dest(peer, log, "2", d, b"dprop1\nhost_name=mx1\n", e1);
    find_dest(peer, log, saved, d);
    find_dest(peer, log, saved, d);
    find_dest(peer, log, saved, d);
    // same endpoint, another dest_prop: a new binding at the end
    save_dest(peer, log, "2", d, b"dprop3\n", e1);
    save(peer, log, saved, "2", e1, b"e1prop-c");
    find_dest(peer, log, saved, d);
    find_endp(peer, log, saved, b"");
    save(peer, log, saved, "2", b"", b"");
    find_endp(peer, log, saved, b"");
}

/// Malformed requests from the spec (those both daemons answer alike),
/// then a good one: still in sync afterwards. Each transcript line names
/// its request.
fn malformed(peer: &mut Peer, log: &mut Vec<String>, _saved: &mut Saved) {
    for request in [
        "request=save_endp ttl=0 label=x property=p",
        "request=save_endp ttl=-5 label=x property=p",
        "request=save_endp ttl=4294967296 label=x property=p",
        "request=save_endp ttl=abc label=x property=p",
        "request=save_endp ttl=5 label=x",
        "request=save_dest ttl=0 label=d property=p label=e",
        "request=save_dest ttl=5 label=d property=p",
        "request=find_endp",
        "request=find_dest",
        "request=bogus",
        "request=FIND_ENDP label=x",
        "request=find_endp label=x",
    ] {
        raw(peer, log, &text_message(request));
    }
}

fn compare(name: &str, scenario: fn(&mut Peer, &mut Vec<String>, &mut Saved)) -> Vec<String> {
    let ours = transcript(&ours(), scenario);
    if let Some(postfix) = postfix_scache_for_test(name) {
        let theirs = transcript(&postfix, scenario);
        for (i, (a, b)) in theirs.iter().zip(ours.iter()).enumerate() {
            assert_eq!(
                a, b,
                "{name}: step {i} differs (left: Postfix, right: ours)"
            );
        }
        assert_eq!(theirs.len(), ours.len());
    }
    ours
}

#[test]
fn operations_match_postfix() {
    let t = compare("operations_match_postfix", operations);
    // Independent of Postfix: the expected results.
    assert!(
        t[0].ends_with("status\\02\\0property\\0\\0\\0 no fd"),
        "{}",
        t[0]
    );
    assert!(
        t[2].contains("status\\00\\0property\\0tls_level=0") && t[2].ends_with("fd #0"),
        "{}",
        t[2]
    );
    assert!(t[3].ends_with("no fd"));
    assert!(
        t[7].ends_with("fd #1")
            && t[8].ends_with("fd #2")
            && t[9].ends_with("fd #3")
            && t[10].ends_with("no fd")
    );
}

#[test]
fn malformed_requests_match_postfix() {
    let t = compare("malformed_requests_match_postfix", malformed);
    assert!(t[0].ends_with("-> status\\01\\0\\0"), "{}", t[0]);
    assert!(
        t[7].ends_with("-> status\\01\\0property\\0\\0\\0"),
        "{}",
        t[7]
    );
    assert!(
        t[8].ends_with("-> status\\01\\0property\\0\\0property\\0\\0\\0"),
        "{}",
        t[8]
    );
    assert!(t
        .last()
        .unwrap()
        .ends_with("-> status\\02\\0property\\0\\0\\0"));
}

/// TTLs are capped at connection_cache_ttl_limit (2s): a session saved with
/// ttl 100 is gone 3 s later, in both daemons; a binding too.
#[test]
fn ttl_is_capped_like_postfix() {
    fn scenario(peer: &mut Peer, log: &mut Vec<String>, saved: &mut Saved) {
        save(peer, log, saved, "100", b"e", b"p");
        save(peer, log, saved, "100", b"e", b"p");
        save_dest(peer, log, "100", b"d", b"dp", b"e");
        find_endp(peer, log, saved, b"e");
        std::thread::sleep(Duration::from_millis(3200));
        find_endp(peer, log, saved, b"e");
        save(peer, log, saved, "100", b"e", b"p");
        find_dest(peer, log, saved, b"d");
    }
    let t = compare("ttl_is_capped_like_postfix", scenario);
    assert!(t[3].ends_with("fd #0"));
    assert!(t[4].ends_with("no fd"), "{}", t[4]);
    assert!(
        t[6].ends_with("no fd"),
        "binding must have expired: {}",
        t[6]
    );
}
