//! Helpers shared by this crate's integration tests: fake servers on a
//! temporary Unix socket, exact-bytes reads, descriptor identity checks.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use scache_testkit::harness::TempDir;
use scache_testkit::wire;

/// The server greeting.
pub const GREETING: &[u8] = b"protocol\0connection_cache_protocol\0\0";
/// The sync message.
pub const DUMMY: &[u8] = b"dummy\0\0\0";

/// A listening socket in a private temporary directory, served by a
/// scripted thread.
pub struct FakeServer {
    _dir: Option<TempDir>,
    path: PathBuf,
    handle: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Binds a socket and runs `script` with the listener in a thread.
    pub fn start<F>(script: F) -> FakeServer
    where
        F: FnOnce(UnixListener) + Send + 'static,
    {
        let dir = TempDir::new("scache-proto-test").unwrap();
        let path = dir.path().join("scache");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || script(listener));
        FakeServer {
            _dir: Some(dir),
            path,
            handle: Some(handle),
        }
    }

    /// Binds the socket at `path` (whose directory the caller keeps) and
    /// runs `script` with the listener in a thread.
    pub fn start_at<F>(path: &Path, script: F) -> FakeServer
    where
        F: FnOnce(UnixListener) + Send + 'static,
    {
        let listener = UnixListener::bind(path).unwrap();
        let handle = std::thread::spawn(move || script(listener));
        FakeServer {
            _dir: None,
            path: path.to_path_buf(),
            handle: Some(handle),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the script to finish, propagating its panics.
    pub fn join(mut self) {
        if let Some(h) = self.handle.take() {
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
    }
}

/// A path where nothing listens (in a private temporary directory).
pub fn dead_path() -> (TempDir, PathBuf) {
    let dir = TempDir::new("scache-proto-test").unwrap();
    let path = dir.path().join("nothing-here");
    (dir, path)
}

/// Accepts one connection (with a 10 s read timeout) and sends the greeting.
pub fn accept_greeted(listener: &UnixListener) -> UnixStream {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(GREETING).unwrap();
    s
}

/// Reads exactly one message (nothing past it) and checks it is `want`,
/// byte for byte.
#[track_caller]
pub fn expect_message(s: &mut UnixStream, want: &[u8]) {
    expect_message_for(s, want, "message from the peer");
}

/// [`expect_message`], naming `what` (the case) in a failure.
#[track_caller]
pub fn expect_message_for(s: &mut UnixStream, want: &[u8], what: &str) {
    let got = match wire::read_message(s) {
        Ok(got) => got,
        Err(e) => panic!(
            "{what}: reading `{}` from the peer: {e}",
            String::from_utf8_lossy(want)
        ),
    };
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "{what}"
    );
    assert_eq!(got, want, "{what} (bytes)");
}

/// The server side of a `find_endp` miss: the request for `label`, then
/// `status 2` with an empty property.
#[track_caller]
pub fn answer_miss(s: &mut UnixStream, label: &str) {
    let request = wire::text_message(&format!("request=find_endp label={label}"));
    expect_message_for(s, &request, &format!("find_endp {label}"));
    s.write_all(b"status\x002\0property\0\0\0").unwrap();
}

/// The server side of a hand-over after a `status 0` find reply: a dummy
/// in, the descriptor out (the server's copy closed then), a dummy in.
#[track_caller]
pub fn hand_over(s: &mut UnixStream, fd: impl AsFd) {
    expect_message_for(s, DUMMY, "the dummy before the descriptor");
    scache_proto::unix::send_fd(s.as_fd(), fd.as_fd()).unwrap();
    drop(fd);
    expect_message_for(s, DUMMY, "the dummy after the descriptor");
}

/// Checks that `err` is the server's refusal with `status`.
#[track_caller]
pub fn assert_refused(err: scache_proto::ClientError, status: scache_proto::message::Status) {
    assert!(
        matches!(&err, scache_proto::ClientError::Refused { status: s, .. } if *s == status),
        "want a refusal with {status:?}, got {err}"
    );
}

/// Checks the peer sends nothing more and closes (or stays silent for
/// `wait`).
pub fn expect_silence(s: &mut UnixStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected bytes {:?}", String::from_utf8_lossy(&b[..n])),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
}

/// (st_dev, st_ino) of an open descriptor.
pub fn identity(fd: BorrowedFd<'_>) -> (u64, u64) {
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).unwrap();
    (st.st_dev as u64, st.st_ino as u64)
}

/// A fresh temporary file with a unique inode, removed from the file system
/// at once (the descriptor keeps it alive).
pub fn unique_file(dir: &Path, name: &str) -> File {
    let path = dir.join(name);
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    f
}

/// Number of open descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Builds an attr0 message from name/value pairs.
pub fn msg(attrs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in attrs {
        scache_proto::attr::put_attr(&mut out, n, v);
    }
    scache_proto::attr::put_end(&mut out);
    out
}

/// Whether two descriptors refer to the same file.
pub fn same_file(a: impl AsFd, b: impl AsFd) -> bool {
    identity(a.as_fd()) == identity(b.as_fd())
}
