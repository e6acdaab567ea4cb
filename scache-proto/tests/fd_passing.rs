//! Descriptor passing with real descriptors: identity preserved (st_dev and
//! st_ino), extra descriptors closed, no descriptor leaked (counted in
//! /proc/self/fd; the tests of this file run one at a time for that).

mod common;

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use common::*;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use scache_proto::unix::{peer_cred, recv_fd, recv_stream, send_fd, send_stream, RecvFdError};
use scache_testkit::harness::TempDir;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends `data` with all of `fds` in one SCM_RIGHTS message.
fn send_many(sock: &UnixStream, data: &[u8], fds: &[RawFd]) {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
}

fn files(dir: &TempDir, n: usize) -> Vec<std::fs::File> {
    (0..n)
        .map(|i| unique_file(dir.path(), &format!("f{i}")))
        .collect()
}

fn is_cloexec(fd: &OwnedFd) -> bool {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    nix::fcntl::FdFlag::from_bits_truncate(flags).contains(nix::fcntl::FdFlag::FD_CLOEXEC)
}

#[test]
fn one_descriptor_round_trip_keeps_identity() {
    let _g = serial();
    let dir = TempDir::new("fdpass").unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    let before = open_fds();
    for f in files(&dir, 3) {
        send_fd(a.as_fd(), f.as_fd()).unwrap();
        let got = recv_fd(b.as_fd()).unwrap();
        assert_ne!(got.as_raw_fd(), f.as_raw_fd(), "a new descriptor");
        assert_eq!(identity(got.as_fd()), identity(f.as_fd()));
        assert!(is_cloexec(&got), "MSG_CMSG_CLOEXEC");
    }
    assert_eq!(open_fds(), before);
}

#[test]
fn sockets_pass_too_and_stay_connected() {
    let _g = serial();
    let (a, b) = UnixStream::pair().unwrap();
    let (mut session, mut peer) = UnixStream::pair().unwrap();
    send_fd(a.as_fd(), session.as_fd()).unwrap();
    let got = UnixStream::from(recv_fd(b.as_fd()).unwrap());
    drop(session.try_clone().unwrap());
    use std::io::{Read, Write};
    (&got).write_all(b"RSET\r\n").unwrap();
    let mut buf = [0u8; 6];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"RSET\r\n");
    session.write_all(b"250\r\n").unwrap();
    let mut buf = [0u8; 5];
    peer.read_exact(&mut buf).unwrap();
    drop(got);
}

#[test]
fn several_descriptors_are_all_closed() {
    let _g = serial();
    let dir = TempDir::new("fdpass").unwrap();
    let fs = files(&dir, 4);
    let raws: Vec<RawFd> = fs.iter().map(|f| f.as_raw_fd()).collect();
    let (a, b) = UnixStream::pair().unwrap();
    let before = open_fds();
    send_many(&a, b"\0", &raws);
    match recv_fd(b.as_fd()) {
        Err(RecvFdError::TooManyDescriptors(4)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(open_fds(), before, "every received descriptor closed");

    // The same through recv_stream: the first is kept, the rest closed.
    send_many(&a, b"xy\0", &raws[..3]);
    let mut buf = [0u8; 16];
    let got = recv_stream(b.as_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"xy\0");
    assert_eq!(got.extra_fds, 2);
    assert!(!got.truncated);
    let fd = got.fd.expect("first descriptor kept");
    assert_eq!(identity(fd.as_fd()), identity(fs[0].as_fd()));
    assert_eq!(open_fds(), before + 1);
    drop(fd);
    assert_eq!(open_fds(), before);
}

#[test]
fn max_descriptors_in_one_message_do_not_leak() {
    let _g = serial();
    let (a, b) = UnixStream::pair().unwrap();
    let f = std::fs::File::open("/").unwrap();
    let raws = vec![f.as_raw_fd(); 253];
    let before = open_fds();
    send_many(&a, b"\0", &raws);
    let mut buf = [0u8; 4];
    let got = recv_stream(b.as_fd(), &mut buf).unwrap();
    assert_eq!(got.extra_fds, 252);
    assert!(!got.truncated);
    drop(got);
    assert_eq!(open_fds(), before);
}

#[test]
fn stream_bytes_and_descriptor_in_one_read() {
    let _g = serial();
    let dir = TempDir::new("fdpass").unwrap();
    let f = unique_file(dir.path(), "s");
    let (a, b) = UnixStream::pair().unwrap();
    // Bytes first, then a descriptor with its data byte (as a client that
    // does not wait for the dummy would do): one read gets both, and the
    // descriptor's byte is the last one.
    send_stream(a.as_fd(), b"dummy\0\0\0").unwrap();
    send_fd(a.as_fd(), f.as_fd()).unwrap();
    send_stream(a.as_fd(), b"after").unwrap();
    let mut buf = [0u8; 64];
    let got = recv_stream(b.as_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"dummy\0\0\0\0");
    let fd = got.fd.expect("descriptor");
    assert_eq!(identity(fd.as_fd()), identity(f.as_fd()));
    let got = recv_stream(b.as_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"after");
    assert!(got.fd.is_none());
}

#[test]
fn recv_fd_takes_exactly_one_byte() {
    let _g = serial();
    let (a, b) = UnixStream::pair().unwrap();
    let f = std::fs::File::open("/").unwrap();
    send_fd(a.as_fd(), f.as_fd()).unwrap();
    send_stream(a.as_fd(), b"status\0").unwrap();
    let fd = recv_fd(b.as_fd()).unwrap();
    assert_eq!(identity(fd.as_fd()), identity(f.as_fd()));
    let mut buf = [0u8; 16];
    let got = recv_stream(b.as_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"status\0");
}

#[test]
fn send_fd_to_closed_peer_is_epipe_not_sigpipe() {
    let _g = serial();
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let f = std::fs::File::open("/").unwrap();
    let err = send_fd(a.as_fd(), f.as_fd()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    let err = send_stream(a.as_fd(), b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
}

#[test]
fn recv_stream_on_empty_socket_would_block() {
    let _g = serial();
    let (_a, b) = UnixStream::pair().unwrap();
    let mut buf = [0u8; 4];
    let err = recv_stream(b.as_fd(), &mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(recv_stream(b.as_fd(), &mut []).is_err());
}

#[test]
fn peer_credentials() {
    let _g = serial();
    let (a, _b) = UnixStream::pair().unwrap();
    let (pid, uid, gid) = peer_cred(a.as_fd()).unwrap();
    assert_eq!(pid, std::process::id() as i32);
    assert_eq!(uid, nix::unistd::getuid().as_raw());
    assert_eq!(gid, nix::unistd::getgid().as_raw());
}

#[test]
fn no_leak_over_many_exchanges() {
    let _g = serial();
    let dir = TempDir::new("fdpass").unwrap();
    let f = unique_file(dir.path(), "s");
    let (a, b) = UnixStream::pair().unwrap();
    let before = open_fds();
    for i in 0..500 {
        send_fd(a.as_fd(), f.as_fd()).unwrap();
        if i % 2 == 0 {
            drop(recv_fd(b.as_fd()).unwrap());
        } else {
            let mut buf = [0u8; 8];
            drop(recv_stream(b.as_fd(), &mut buf).unwrap());
        }
    }
    assert_eq!(open_fds(), before);
}
