//! The listening sockets the daemon serves: Unix-domain ones (Postfix's
//! `unix` services, standalone mode, systemd) and TCP ones (master's
//! `inet` services).
#![forbid(unsafe_code)]

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{getsockname, AddressFamily, SockaddrLike, SockaddrStorage};

/// One listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A Unix-domain stream socket.
    Unix(UnixListener),
    /// A TCP socket (IPv4 or IPv6).
    Tcp(TcpListener),
}

impl Listener {
    /// Wraps an inherited (or freshly bound) listening socket, after its
    /// address family.
    pub fn new(fd: OwnedFd) -> Listener {
        let family = getsockname::<SockaddrStorage>(std::os::fd::AsRawFd::as_raw_fd(&fd))
            .ok()
            .and_then(|addr| addr.family());
        match family {
            Some(AddressFamily::Inet | AddressFamily::Inet6) => Listener::Tcp(fd.into()),
            _ => Listener::Unix(fd.into()),
        }
    }

    /// Accepts one connection: non-blocking, close-on-exec.
    pub fn accept(&self) -> io::Result<OwnedFd> {
        match self {
            Listener::Unix(l) => {
                let (stream, _) = l.accept()?;
                stream.set_nonblocking(true)?;
                Ok(stream.into())
            }
            Listener::Tcp(l) => {
                let (stream, _) = l.accept()?;
                stream.set_nonblocking(true)?;
                Ok(stream.into())
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Unix(l) => l.as_fd(),
            Listener::Tcp(l) => l.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn accepts_unix_and_tcp_connections() {
        let dir = std::env::temp_dir().join(format!("scache-listener-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("sock");
        let _ = std::fs::remove_file(&path);
        let unix = Listener::new(UnixListener::bind(&path).unwrap().into());
        assert!(matches!(unix, Listener::Unix(_)));
        let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
        let mut server = std::os::unix::net::UnixStream::from(unix.accept().unwrap());
        client.write_all(b"x").unwrap();
        server.set_nonblocking(false).unwrap();
        let mut b = [0u8; 1];
        server.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        let _ = std::fs::remove_dir_all(&dir);

        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(tcp) = TcpListener::bind(addr) else {
                continue; // no IPv6 here
            };
            let local = tcp.local_addr().unwrap();
            let tcp = Listener::new(tcp.into());
            assert!(matches!(tcp, Listener::Tcp(_)), "{addr}");
            let mut client = std::net::TcpStream::connect(local).unwrap();
            let mut server = std::net::TcpStream::from(tcp.accept().unwrap());
            client.write_all(b"y").unwrap();
            server.set_nonblocking(false).unwrap();
            server.read_exact(&mut b).unwrap();
            assert_eq!(&b, b"y", "{addr}");
        }
    }
}
