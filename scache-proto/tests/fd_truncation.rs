//! `MSG_CTRUNC` for real: a receiver out of descriptor slots gets only some
//! of the descriptors sent, with `MSG_CTRUNC` set. The ones that did arrive
//! must be closed, not leaked. (One test alone in this binary: it lowers
//! the process's descriptor limit.)

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use scache_proto::unix::{recv_fd, recv_stream, RecvFdError};

fn open_null() -> std::io::Result<std::fs::File> {
    std::fs::File::open("/dev/null")
}

#[test]
fn truncated_control_data_closes_what_arrived() {
    let (a, b) = UnixStream::pair().unwrap();
    let f = open_null().unwrap();
    let three = [f.as_raw_fd(); 3];
    let send3 = || {
        let iov = [IoSlice::new(b"\0")];
        let cmsg = [ControlMessage::ScmRights(&three)];
        sendmsg::<()>(a.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
    };
    send3();
    send3();

    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, 64, hard).unwrap();
    // Fill every slot, then free exactly one.
    let mut filler: Vec<OwnedFd> = Vec::new();
    while let Ok(f) = open_null() {
        filler.push(f.into());
    }
    filler.pop();

    let truncated_one = recv_fd(b.as_fd());
    let mut buf = [0u8; 4];
    let truncated_two = recv_stream(b.as_fd(), &mut buf);
    // The one free slot is free again: one open succeeds, the next fails.
    let probe = open_null();
    let probe2 = open_null();
    drop(filler);
    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).unwrap();

    assert!(
        matches!(truncated_one, Err(RecvFdError::Truncated)),
        "{truncated_one:?}"
    );
    let got = truncated_two.unwrap();
    assert!(got.truncated);
    assert!(got.fd.is_none(), "a truncated receive hands out nothing");
    assert_eq!(got.extra_fds, 1, "the one that arrived was closed");
    assert!(probe.is_ok(), "slot leaked");
    assert!(probe2.is_err());
}
