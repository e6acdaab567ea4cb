//! Unix-domain socket primitives: the only module that makes socket system
//! calls.
//!
//! Descriptors travel as Postfix sends them: one data byte (`\0`) carrying
//! one `SCM_RIGHTS` control message with exactly one descriptor
//! ([`send_fd`], [`recv_fd`]). Every receive uses `MSG_CMSG_CLOEXEC` and a
//! control buffer large enough for the most descriptors Linux passes in one
//! message (`SCM_MAX_FD`, 253), so every descriptor that arrives is either
//! handed to the caller or closed here: none is ever leaked, even when a
//! peer sends several, or sends one along with ordinary stream data
//! ([`recv_stream`]).
//!
//! ```
//! use std::os::fd::AsFd;
//! use std::os::unix::net::UnixStream;
//! use scache_proto::unix::{recv_fd, send_fd};
//!
//! let (a, b) = UnixStream::pair().unwrap();
//! let file = std::fs::File::open("/").unwrap();
//! send_fd(a.as_fd(), file.as_fd()).unwrap();
//! let received = recv_fd(b.as_fd()).unwrap(); // a new descriptor, same open file
//! # drop(received);
//! ```
//!
//! Most of this goes through `nix`. Receiving does not: `nix`'s `recvmsg`
//! with `ControlMessageOwned::ScmRights` does hand over several
//! descriptors sent in one message, but its `RecvMsg::cmsgs()` refuses to
//! walk the control messages at all once the kernel set `MSG_CTRUNC` (it
//! returns `ENOBUFS`, checked with nix 0.29 and 0.30). The kernel sets that
//! flag when this process runs out of descriptor slots part-way through a
//! message, after installing the descriptors that did fit: they would be
//! unreachable, hence leaked. So receiving calls `libc::recvmsg` (through
//! `nix`'s re-export) and walks the control data itself, closing whatever
//! arrived. Each `unsafe` block says why it is sound; the other modules
//! forbid `unsafe`.

use std::fmt;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

/// The most descriptors Linux passes in one `SCM_RIGHTS` message.
const SCM_MAX_FD: usize = 253;

/// Control buffer size for [`SCM_MAX_FD`] descriptors.
// SAFETY: CMSG_SPACE is a pure size computation.
const CONTROL_SPACE: usize =
    unsafe { libc::CMSG_SPACE((SCM_MAX_FD * mem::size_of::<libc::c_int>()) as libc::c_uint) }
        as usize;

/// A control buffer aligned for `cmsghdr`.
#[repr(C, align(8))]
struct ControlBuf([u8; CONTROL_SPACE]);

/// Control buffer size for one descriptor.
// SAFETY: CMSG_SPACE is a pure size computation.
const ONE_FD_SPACE: usize =
    unsafe { libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as libc::c_uint) } as usize;

/// A control buffer for one descriptor, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct OneFdControl([u8; ONE_FD_SPACE]);

fn retry_eintr<T>(mut f: impl FnMut() -> nix::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map_err(io::Error::from),
        }
    }
}

/// Sends descriptor `fd` over `sock`: one data byte `\0` with one
/// `SCM_RIGHTS` control message, flag `MSG_NOSIGNAL` (a closed peer gives
/// `EPIPE`, never `SIGPIPE`). The caller keeps its own copy of `fd`.
///
/// On a non-blocking socket a full send buffer surfaces as
/// [`io::ErrorKind::WouldBlock`].
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    // By hand rather than with nix's `sendmsg`, which allocates its control
    // buffer on the heap for every call: this is once per session handed
    // out, on the daemon's busiest path.
    let mut data = [0u8];
    let mut control = OneFdControl([0; ONE_FD_SPACE]);
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is a plain C struct; all-zero bytes is a valid value
    // (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = ONE_FD_SPACE as _;
    // SAFETY: the control buffer is ONE_FD_SPACE = CMSG_SPACE(one int)
    // bytes, aligned for cmsghdr, so CMSG_FIRSTHDR returns its start and
    // the header and one int of data fit in it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as libc::c_uint) as _;
        libc::CMSG_DATA(cmsg)
            .cast::<libc::c_int>()
            .write_unaligned(fd.as_raw_fd());
    }
    let sent = loop {
        // SAFETY: `msg` points to one iovec describing `data` and to
        // `control`, both alive for the duration of the call; sendmsg only
        // reads them.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    if sent == 1 {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "descriptor message not sent",
        ))
    }
}

/// Sends stream bytes without blocking and without `SIGPIPE`
/// (`MSG_NOSIGNAL | MSG_DONTWAIT`). Returns how many bytes were sent; a full
/// send buffer surfaces as [`io::ErrorKind::WouldBlock`].
pub fn send_stream(sock: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    retry_eintr(|| {
        socket::send(
            sock.as_raw_fd(),
            data,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        )
    })
}

/// Why [`recv_fd`] did not produce a descriptor. Any descriptor that did
/// arrive has been closed.
#[derive(Debug)]
pub enum RecvFdError {
    /// The receive failed (including [`io::ErrorKind::WouldBlock`] on a
    /// non-blocking socket with nothing to read).
    Io(io::Error),
    /// The peer closed the connection.
    Eof,
    /// A data byte arrived without a descriptor.
    NoDescriptor,
    /// More than one descriptor arrived (all closed).
    TooManyDescriptors(usize),
    /// The kernel truncated the control data (`MSG_CTRUNC`), for example
    /// because this process is out of descriptors.
    Truncated,
}

impl fmt::Display for RecvFdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvFdError::Io(e) => write!(f, "cannot receive file descriptor: {e}"),
            RecvFdError::Eof => {
                f.write_str("connection closed while a file descriptor was expected")
            }
            RecvFdError::NoDescriptor => f.write_str("data but no file descriptor received"),
            RecvFdError::TooManyDescriptors(n) => {
                write!(f, "{n} file descriptors received where one was expected")
            }
            RecvFdError::Truncated => f.write_str("file descriptor control data truncated"),
        }
    }
}

impl std::error::Error for RecvFdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvFdError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<RecvFdError> for io::Error {
    fn from(e: RecvFdError) -> io::Error {
        match e {
            RecvFdError::Io(e) => e,
            RecvFdError::Eof => io::Error::new(io::ErrorKind::UnexpectedEof, e.to_string()),
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Receives exactly one descriptor sent by [`send_fd`] (or Postfix's
/// `LOCAL_SEND_FD`): reads exactly one data byte with `MSG_CMSG_CLOEXEC`.
/// `MSG_CTRUNC`, no descriptor, or more than one descriptor is an error, and
/// every descriptor that arrived is closed. Blocks if `sock` is blocking.
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, RecvFdError> {
    let mut byte = [0u8; 1];
    let got = recv_raw(sock, &mut byte, 0).map_err(RecvFdError::Io)?;
    if got.truncated {
        return Err(RecvFdError::Truncated);
    }
    if got.extra_fds > 0 {
        return Err(RecvFdError::TooManyDescriptors(got.extra_fds + 1));
    }
    match (got.len, got.fd) {
        (_, Some(fd)) => Ok(fd),
        (0, None) => Err(RecvFdError::Eof),
        (_, None) => Err(RecvFdError::NoDescriptor),
    }
}

/// What one [`recv_stream`] call read.
#[derive(Debug)]
pub struct Received {
    /// Bytes placed at the start of the buffer; 0 means end of file.
    pub len: usize,
    /// The first descriptor that arrived, if any. Its data byte (Postfix
    /// sends `\0`) is part of the bytes read: on Linux a read never goes
    /// past the data that carried a descriptor, so it is the last byte.
    pub fd: Option<OwnedFd>,
    /// Further descriptors that arrived in the same read; already closed.
    pub extra_fds: usize,
    /// The kernel truncated the control data (`MSG_CTRUNC`); descriptors
    /// that did not fit were never installed.
    pub truncated: bool,
}

/// Reads stream bytes without blocking (`MSG_DONTWAIT`), accepting any
/// descriptor that comes along (`MSG_CMSG_CLOEXEC`): the general read the
/// daemon uses for every read, so a descriptor is never lost and unexpected
/// ones are closed. Nothing to read surfaces as
/// [`io::ErrorKind::WouldBlock`]. `buf` must not be empty.
#[inline]
pub fn recv_stream(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Received> {
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "recv_stream needs a non-empty buffer",
        ));
    }
    let got = recv_raw(sock, buf, libc::MSG_DONTWAIT)?;
    Ok(Received {
        len: got.len,
        fd: got.fd,
        extra_fds: got.extra_fds,
        truncated: got.truncated,
    })
}

struct RawReceived {
    len: usize,
    fd: Option<OwnedFd>,
    extra_fds: usize,
    truncated: bool,
}

/// `recvmsg(2)` with room for [`SCM_MAX_FD`] descriptors and
/// `MSG_CMSG_CLOEXEC`; every descriptor received is owned before returning.
#[inline]
fn recv_raw(sock: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<RawReceived> {
    // Not zeroed (1 KiB per read otherwise): the kernel writes the control
    // data and reports its length; only that much is ever read below.
    let mut control = mem::MaybeUninit::<ControlBuf>::uninit();
    let control_ptr: *mut u8 = control.as_mut_ptr().cast();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is a plain C struct; all-zero bytes is a valid value
    // (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    let len = loop {
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control_ptr.cast();
        msg.msg_controllen = CONTROL_SPACE as _;
        msg.msg_flags = 0;
        // SAFETY: `msg` points to one iovec describing `buf` and to
        // `control` (CONTROL_SPACE bytes), both valid for writes of the
        // given lengths and alive for the duration of the call.
        let n =
            unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };

    let mut fd = None;
    let mut extra_fds = 0;
    let control_start = control_ptr as usize;
    let control_end = control_start + (msg.msg_controllen as usize).min(CONTROL_SPACE);
    // SAFETY: `msg` was filled by a successful recvmsg; CMSG_FIRSTHDR only
    // reads msg_control/msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return either null or a pointer
        // to a complete, aligned cmsghdr within the first msg_controllen
        // bytes of the control buffer, which the kernel wrote (the rest of
        // the buffer is never read, so it need not be initialised).
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_DATA computes an address inside this cmsg.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            // SAFETY: CMSG_LEN is a pure size computation.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let payload = (hdr.cmsg_len as usize).saturating_sub(header);
            // Never read past what the kernel reported as written.
            let room = control_end.saturating_sub(data as usize);
            let count = payload.min(room) / mem::size_of::<libc::c_int>();
            for i in 0..count {
                // SAFETY: `i < count` keeps the read within the control data
                // the kernel wrote; the data may be unaligned.
                let raw = unsafe { data.cast::<libc::c_int>().add(i).read_unaligned() };
                if raw < 0 {
                    continue;
                }
                // SAFETY: the kernel installed this descriptor in our table
                // for this call alone; nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                if fd.is_none() {
                    fd = Some(owned);
                } else {
                    extra_fds += 1;
                    drop(owned);
                }
            }
        }
        // SAFETY: `cmsg` is a valid header of `msg`'s control data.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    let truncated = msg.msg_flags & libc::MSG_CTRUNC != 0;
    if truncated {
        // The caller cannot trust what came; close it all.
        if let Some(first) = fd.take() {
            drop(first);
            extra_fds += 1;
        }
    }
    Ok(RawReceived {
        len,
        fd,
        extra_fds,
        truncated,
    })
}

/// The credentials of the peer of a connected Unix socket (`SO_PEERCRED`):
/// `(pid, uid, gid)`.
pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<(i32, u32, u32)> {
    let cred = socket::getsockopt(&sock, sockopt::PeerCredentials)?;
    Ok((cred.pid(), cred.uid(), cred.gid()))
}

/// Connects a new non-blocking, close-on-exec stream socket to the Unix
/// socket at `path`. A listener whose backlog is full surfaces as
/// [`io::ErrorKind::WouldBlock`] (Linux does not queue non-blocking Unix
/// connects), so this never blocks.
pub fn connect_stream(path: &Path) -> io::Result<OwnedFd> {
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    retry_eintr(|| socket::connect(sock.as_raw_fd(), &addr))?;
    Ok(sock)
}

/// What [`wait`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (data, a descriptor, end of file or an error).
    Read,
    /// Writable (buffer space or an error).
    Write,
}

/// Waits until `sock` is ready for `interest` or `timeout` passes. Returns
/// `false` on timeout. Hang-ups and errors count as ready: the next I/O call
/// reports them.
pub fn wait(sock: BorrowedFd<'_>, interest: Interest, timeout: Duration) -> io::Result<bool> {
    let events = match interest {
        Interest::Read => PollFlags::POLLIN,
        Interest::Write => PollFlags::POLLOUT,
    };
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(sock, events)];
    let n = retry_eintr(|| poll(&mut fds, ms))?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    const _: () = assert!(CONTROL_SPACE >= 16 + SCM_MAX_FD * 4);

    #[test]
    fn recv_stream_without_fd() {
        let (a, b) = UnixStream::pair().unwrap();
        send_stream(a.as_fd(), b"hello\0").unwrap();
        let mut buf = [0u8; 16];
        let got = recv_stream(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"hello\0");
        assert!(got.fd.is_none());
        let err = recv_stream(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(a);
        assert_eq!(recv_stream(b.as_fd(), &mut buf).unwrap().len, 0);
    }

    #[test]
    fn recv_fd_errors() {
        let (a, b) = UnixStream::pair().unwrap();
        send_stream(a.as_fd(), b"x").unwrap();
        assert!(matches!(recv_fd(b.as_fd()), Err(RecvFdError::NoDescriptor)));
        drop(a);
        assert!(matches!(recv_fd(b.as_fd()), Err(RecvFdError::Eof)));
    }
}
