//! Start a connection-cache daemon exactly the way Postfix's `master(8)` does.
//!
//! The same test can then run Postfix's own `/usr/lib/postfix/sbin/scache`
//! and ours, and compare what they say on the wire, in the log and on the
//! status channel. The harness is used by this crate's tests, by the daemon's
//! integration tests and by the benchmark load generator.
//!
//! What the child gets (see `docs/master.md`, "The contract with Postfix's
//! master(8)"):
//!
//! | what | value |
//! |---|---|
//! | fd 0, 1 | `/dev/null` (stdout configurable) |
//! | fd 2 | `/dev/null` unless [`HarnessBuilder::stderr`] says otherwise |
//! | fd 3, 4 | read and write end of one non-blocking pipe (the "mail flow" pipe) |
//! | fd 5 | child end of a Unix stream socketpair: the status channel |
//! | fd 6 | a non-blocking listening Unix stream socket at `<queue>/private/scache` |
//! | argv | `<basename of program> -l -t unix -n scache` then the test's own arguments |
//! | env | only `MAIL_CONFIG`, `MAIL_LOGTAG=postfix`, `LANG=C`, `GENERATION` (octal), `POSTLOG_SERVICE`/`POSTLOG_HOSTNAME` when logging goes to postlog, and what the test adds |
//! | cwd | the private `queue_directory` |
//! | umask, signals | `077`; SIGPIPE ignored, as under master |
//!
//! The private configuration directory holds a `main.cf` with at least
//! `queue_directory = <tempdir>/queue` and `maillog_file = /dev/stdout`. The
//! latter puts the daemon in "postlog" logging mode: it sends one datagram per
//! log record to `$queue_directory/public/postlog`, a socket the harness binds
//! itself and reads in a background thread ([`Harness::log_lines`],
//! [`Harness::wait_for_log`]). Another thread reads the parent end of the
//! status socketpair and decodes the 12-byte records
//! ([`Harness::status_records`]).
//!
//! ```no_run
//! use scache_testkit::harness::{HarnessBuilder, postfix_scache_path};
//! use std::io::{Read, Write};
//! use std::time::Duration;
//!
//! let program = postfix_scache_path().expect("Postfix is installed");
//! let h = HarnessBuilder::new(program).arg("-o").arg("max_idle=5s").spawn()?;
//! let mut conn = h.connect()?; // waits for and checks the greeting
//! conn.write_all(b"request\0find_endp\0label\0x\0\0")?;
//! let mut reply = [0u8; 20];
//! conn.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"status\x002\0property\0\0\0");
//! assert!(h.wait_for_status_records(2, Duration::from_secs(5)).len() >= 2);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::stat::{umask, Mode};
use nix::unistd::{dup2, pipe2, Pid};

pub use scache_bin::status::StatusRecord;

/// Where Debian's `postfix` package installs Postfix's own daemon.
pub const POSTFIX_SCACHE: &str = "/usr/lib/postfix/sbin/scache";

/// The greeting a connection-cache server sends right after accepting.
pub const GREETING: &[u8] = b"protocol\0connection_cache_protocol\0\0";

/// How long [`Harness::connect`] waits for the greeting. Postfix's daemon
/// resolves host names at start-up and can take a few seconds.
pub const GREETING_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variable: when set to `1`, a test that lacks what it needs
/// always fails, even with [`ALLOW_SKIP_ENV`] set (CI sets it).
pub const REQUIRE_POSTFIX_ENV: &str = "SCACHE_REQUIRE_POSTFIX";

/// Environment variable: when set to `1` (and [`REQUIRE_POSTFIX_ENV`] is
/// not), a test that lacks what it needs (Postfix, `promtool`, root,
/// `prlimit`) passes after printing a `SKIPPED` notice. Without it such a
/// test fails, naming what to install: `cargo test` shows the output of
/// failing tests only, so a skip that passes would go unseen.
pub const ALLOW_SKIP_ENV: &str = "SCACHE_ALLOW_SKIP";

/// What a test does when it cannot run here because `missing` is missing
/// (a sentence: "/usr/lib/postfix/sbin/scache not found"): it fails
/// (panics) unless [`ALLOW_SKIP_ENV`]` = 1` and not
/// [`REQUIRE_POSTFIX_ENV`]` = 1`; then it prints a `SKIPPED` notice and
/// returns, and the test returns early.
pub fn skip_or_fail(test_name: &str, missing: &str) {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| v == "1");
    match skip_verdict(
        set(REQUIRE_POSTFIX_ENV),
        set(ALLOW_SKIP_ENV),
        test_name,
        missing,
    ) {
        Ok(notice) => eprintln!("{notice}"),
        Err(failure) => panic!("{failure}"),
    }
}

/// [`skip_or_fail`]'s decision: `Ok(notice)` to skip, `Err(message)` to
/// fail.
fn skip_verdict(
    require: bool,
    allow_skip: bool,
    test_name: &str,
    missing: &str,
) -> Result<String, String> {
    if require {
        Err(format!(
            "{test_name}: {missing}, and {REQUIRE_POSTFIX_ENV}=1"
        ))
    } else if !allow_skip {
        Err(format!(
            "{test_name}: {missing}. Install it (see README), or set {ALLOW_SKIP_ENV}=1 to \
             skip the tests that need it"
        ))
    } else {
        Ok(format!(
            "{test_name}: SKIPPED ({ALLOW_SKIP_ENV}=1): {missing}"
        ))
    }
}

/// The first listening descriptor master hands a daemon.
pub const MASTER_LISTEN_FD: i32 = 6;
/// The status channel descriptor.
pub const MASTER_STATUS_FD: i32 = 5;
/// Read end of the mail-flow pipe.
pub const MASTER_FLOW_READ: i32 = 3;
/// Write end of the mail-flow pipe.
pub const MASTER_FLOW_WRITE: i32 = 4;

/// Path of Postfix's own `scache` daemon if it is installed and executable.
pub fn postfix_scache_path() -> Option<PathBuf> {
    let p = PathBuf::from(POSTFIX_SCACHE);
    match fs::metadata(&p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Some(p),
        _ => None,
    }
}

/// Postfix's daemon for a test that needs it. When it is missing the test
/// fails, unless skipping is allowed ([`skip_or_fail`]): then `None`.
pub fn postfix_scache_for_test(test_name: &str) -> Option<PathBuf> {
    match postfix_scache_path() {
        Some(p) => Some(p),
        None => {
            skip_or_fail(
                test_name,
                &format!("{POSTFIX_SCACHE} not found (install Debian's postfix package)"),
            );
            None
        }
    }
}

/// A temporary directory removed (recursively) when dropped.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory (mode 0755) under [`std::env::temp_dir`]
    /// whose name starts with `prefix`.
    pub fn new(prefix: &str) -> io::Result<TempDir> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{prefix}-{}-{n}-{nanos:08x}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => {
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
                    return Ok(TempDir { path });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "could not create a unique temporary directory",
        ))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the directory on disk (for post-mortem inspection) and returns
    /// its path.
    pub fn into_path(self) -> PathBuf {
        let p = self.path.clone();
        std::mem::forget(self);
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Builds and starts a daemon under the harness. See the [module docs](self).
#[derive(Debug)]
pub struct HarnessBuilder {
    program: PathBuf,
    argv0: Option<OsString>,
    service: String,
    master_args: bool,
    args: Vec<OsString>,
    main_cf: Vec<(String, String)>,
    env: BTreeMap<OsString, Option<OsString>>,
    generation: u32,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
    keep_dir: bool,
    tcp: bool,
}

impl HarnessBuilder {
    /// A builder for the daemon program at `program` (Postfix's
    /// `/usr/lib/postfix/sbin/scache`, ours, or any compatible one).
    pub fn new(program: impl Into<PathBuf>) -> HarnessBuilder {
        HarnessBuilder {
            program: program.into(),
            argv0: None,
            service: "scache".to_string(),
            master_args: true,
            args: Vec::new(),
            main_cf: Vec::new(),
            env: BTreeMap::new(),
            generation: 1,
            stdout: None,
            stderr: None,
            keep_dir: false,
            tcp: false,
        }
    }

    /// Appends one argument after the master-style ones (e.g. `-v`, or `-o`
    /// then `max_idle=1s`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets `name = value` in the private `main.cf` (replacing the harness
    /// default or an earlier setting of the same name). An empty value is
    /// written as `name =`.
    pub fn main_cf(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        let value = value.into();
        self.main_cf.retain(|(n, _)| *n != name);
        self.main_cf.push((name, value));
        self
    }

    /// Adds (or replaces) one environment variable. The environment is
    /// otherwise exactly master's (see the module docs).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Removes one variable from the child's environment, including one the
    /// harness would set (e.g. `GENERATION`, to test its absence).
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.insert(key.as_ref().to_owned(), None);
        self
    }

    /// The generation number passed in `GENERATION` (written in octal as
    /// master does). Default 1.
    pub fn generation(mut self, generation: u32) -> Self {
        self.generation = generation;
        self
    }

    /// Where the daemon's stderr goes (default `/dev/null`, as under master).
    /// With [`Stdio::piped`], read it through [`Harness::take_stderr`].
    pub fn stderr(mut self, stderr: Stdio) -> Self {
        self.stderr = Some(stderr);
        self
    }

    /// Where the daemon's stdout goes (default `/dev/null`).
    pub fn stdout(mut self, stdout: Stdio) -> Self {
        self.stdout = Some(stdout);
        self
    }

    /// argv\[0\] (default: the program's file name). Postfix daemons derive
    /// their log tag (`postfix/<argv0>`) from it.
    pub fn argv0(mut self, argv0: impl AsRef<OsStr>) -> Self {
        self.argv0 = Some(argv0.as_ref().to_owned());
        self
    }

    /// The service name: passed as `-n <name>` and used for the listening
    /// socket `private/<name>`. Default `scache`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service = name.into();
        self
    }

    /// With `false`, argv is only argv\[0\] and the test's own arguments
    /// (no `-l -t unix -n <service>`), to test option handling.
    pub fn master_args(mut self, on: bool) -> Self {
        self.master_args = on;
        self
    }

    /// Keep the temporary directory after the harness is dropped (its path is
    /// printed to stderr), for post-mortem inspection.
    pub fn keep_dir(mut self, keep: bool) -> Self {
        self.keep_dir = keep;
        self
    }

    /// Serve a TCP listener on 127.0.0.1 (an `inet` service: `-t inet`)
    /// instead of a Unix socket; see [`Harness::tcp_addr`].
    pub fn tcp_listener(mut self, tcp: bool) -> Self {
        self.tcp = tcp;
        self
    }

    /// Creates the private configuration and queue directories, the sockets
    /// and the pipe, and starts the daemon. Does not wait for it to be ready:
    /// [`Harness::connect`] does.
    pub fn spawn(self) -> io::Result<Harness> {
        let dir = TempDir::new("scache-harness")?;
        let config_dir = dir.path().join("config");
        let queue_dir = dir.path().join("queue");
        for d in [
            config_dir.clone(),
            queue_dir.clone(),
            queue_dir.join("private"),
            queue_dir.join("public"),
            queue_dir.join("pid"),
        ] {
            fs::create_dir_all(&d)?;
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755))?;
        }

        // main.cf: harness defaults first, then the test's settings.
        let mut settings: Vec<(String, String)> = vec![
            (
                "queue_directory".into(),
                queue_dir.to_string_lossy().into_owned(),
            ),
            ("maillog_file".into(), "/dev/stdout".into()),
        ];
        for (n, v) in &self.main_cf {
            settings.retain(|(k, _)| k != n);
            settings.push((n.clone(), v.clone()));
        }
        let mut text = String::from("# written by scache_testkit::harness\n");
        for (n, v) in &settings {
            if v.is_empty() {
                text.push_str(&format!("{n} =\n"));
            } else {
                text.push_str(&format!("{n} = {v}\n"));
            }
        }
        let main_cf_path = config_dir.join("main.cf");
        fs::write(&main_cf_path, text)?;
        // Postfix re-reads a configuration file that changed within the last
        // second or so (300 ms sleeps, about 2 s in all) before trusting it:
        // backdate it so the daemon starts at once.
        fs::File::options()
            .write(true)
            .open(&main_cf_path)?
            .set_modified(SystemTime::now() - Duration::from_secs(60))?;
        let setting = |name: &str| {
            settings
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let postlog_mode = setting("maillog_file").is_some_and(|v| !v.is_empty());

        // The postlog socket (bound even in syslog mode: it is harmless).
        let postlog_service = setting("postlog_service_name").unwrap_or_else(|| "postlog".into());
        let log_path = queue_dir.join("public").join(&postlog_service);
        let log_sock = UnixDatagram::bind(&log_path)?;
        fs::set_permissions(&log_path, fs::Permissions::from_mode(0o666))?;
        log_sock.set_read_timeout(Some(Duration::from_millis(100)))?;

        // The listener (fd 6), the status channel (fd 5), the flow pipe (3, 4).
        let socket_path = queue_dir.join("private").join(&self.service);
        let (listener, tcp_addr): (OwnedFd, _) = if self.tcp {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.set_nonblocking(true)?;
            let addr = l.local_addr()?;
            (l.into(), Some(addr))
        } else {
            let l = UnixListener::bind(&socket_path)?;
            fs::set_permissions(&socket_path, fs::Permissions::from_mode(0o666))?;
            l.set_nonblocking(true)?;
            (l.into(), None)
        };
        let (status_parent, status_child) = UnixStream::pair()?;
        let (flow_r, flow_w) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;

        // Copies numbered above 10, so that dup2 onto 3..6 in the child
        // cannot clobber a source that happens to sit at 3..6.
        let high = |fd: &dyn AsFd| -> io::Result<OwnedFd> {
            let raw = fcntl(fd.as_fd().as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(11))?;
            // SAFETY: fcntl(F_DUPFD_CLOEXEC) returned a fresh descriptor we own.
            Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
        };
        let src_flow_r = high(&flow_r)?;
        let src_flow_w = high(&flow_w)?;
        let src_status = high(&status_child)?;
        let src_listen = high(&listener)?;
        drop(status_child);
        let plan = [
            (src_flow_r.as_raw_fd(), MASTER_FLOW_READ),
            (src_flow_w.as_raw_fd(), MASTER_FLOW_WRITE),
            (src_status.as_raw_fd(), MASTER_STATUS_FD),
            (src_listen.as_raw_fd(), MASTER_LISTEN_FD),
        ];

        let argv0 = self.argv0.clone().unwrap_or_else(|| {
            self.program
                .file_name()
                .map(|s| s.to_owned())
                .unwrap_or_else(|| OsString::from("scache"))
        });
        let mut cmd = Command::new(&self.program);
        cmd.arg0(&argv0);
        if self.master_args {
            let transport = if self.tcp { "inet" } else { "unix" };
            cmd.args(["-l", "-t", transport, "-n", &self.service]);
        }
        cmd.args(&self.args);
        cmd.env_clear();
        cmd.env("MAIL_CONFIG", &config_dir);
        cmd.env("MAIL_LOGTAG", "postfix");
        cmd.env("LANG", "C");
        cmd.env("GENERATION", format!("{:o}", self.generation));
        if postlog_mode {
            // What master exports in postlog mode (observed on Postfix 3.7):
            // the socket's full path and the full myhostname.
            cmd.env("POSTLOG_SERVICE", &log_path);
            cmd.env(
                "POSTLOG_HOSTNAME",
                setting("myhostname").unwrap_or_else(local_hostname),
            );
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.current_dir(&queue_dir);
        cmd.stdin(Stdio::null());
        cmd.stdout(self.stdout.unwrap_or_else(Stdio::null));
        cmd.stderr(self.stderr.unwrap_or_else(Stdio::null));
        // SAFETY: the closure only calls async-signal-safe functions (dup2,
        // signal, umask) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for (from, to) in plan {
                    // dup2 clears close-on-exec on the new descriptor.
                    dup2(from, to)?;
                }
                signal::signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
                umask(Mode::from_bits_truncate(0o077));
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        drop((src_flow_r, src_flow_w, src_status, src_listen));
        let pid = child.id() as i32;

        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let log_thread = {
            let shared = shared.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("harness-log-{pid}"))
                .spawn(move || log_reader(log_sock, &shared, &stop))?
        };
        let status_thread = {
            let shared = shared.clone();
            let reader = status_parent.try_clone()?;
            std::thread::Builder::new()
                .name(format!("harness-status-{pid}"))
                .spawn(move || status_reader(reader, &shared))?
        };

        Ok(Harness {
            child: Mutex::new(ChildState {
                child,
                status: None,
            }),
            pid,
            generation: self.generation,
            socket_path,
            config_dir,
            queue_dir,
            status: Mutex::new(Some(status_parent)),
            shared,
            stop,
            threads: Mutex::new(vec![log_thread, status_thread]),
            _listener: listener,
            tcp_addr,
            _flow: (flow_r, flow_w),
            dir: Some(dir),
            keep_dir: self.keep_dir,
        })
    }
}

fn local_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[derive(Default)]
struct Shared {
    logs: Mutex<Vec<String>>,
    log_cv: Condvar,
    records: Mutex<Vec<StatusRecord>>,
    status_cv: Condvar,
    status_eof: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_reader(sock: UnixDatagram, shared: &Shared, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n])
                    .trim_end_matches('\n')
                    .to_string();
                lock(&shared.logs).push(line);
                shared.log_cv.notify_all();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}

fn status_reader(mut sock: UnixStream, shared: &Shared) {
    let mut buf = [0u8; StatusRecord::SIZE];
    loop {
        match sock.read_exact(&mut buf) {
            Ok(()) => {
                lock(&shared.records).push(StatusRecord::from_bytes(&buf));
                shared.status_cv.notify_all();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    shared.status_eof.store(true, Ordering::Relaxed);
    shared.status_cv.notify_all();
}

struct ChildState {
    child: Child,
    status: Option<ExitStatus>,
}

impl ChildState {
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }
}

/// A running daemon started by [`HarnessBuilder::spawn`].
///
/// Every method takes `&self`, so one harness can be shared between threads
/// (e.g. a load generator's workers). Dropping it kills and reaps the daemon
/// and removes the temporary directory.
pub struct Harness {
    child: Mutex<ChildState>,
    pid: i32,
    generation: u32,
    socket_path: PathBuf,
    config_dir: PathBuf,
    queue_dir: PathBuf,
    status: Mutex<Option<UnixStream>>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    _listener: OwnedFd,
    tcp_addr: Option<std::net::SocketAddr>,
    _flow: (OwnedFd, OwnedFd),
    dir: Option<TempDir>,
    keep_dir: bool,
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Harness")
            .field("pid", &self.pid)
            .field("generation", &self.generation)
            .field("socket_path", &self.socket_path)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// The daemon's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The generation number it was given.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The TCP address of the listener, for a daemon started with
    /// [`HarnessBuilder::tcp_listener`].
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp_addr
    }

    /// Path of the listening socket (`<queue>/private/<service>`).
    pub fn socket_path(&self) -> &Path {
        &self.socket_path
    }

    /// The private configuration directory (`MAIL_CONFIG`).
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The private `queue_directory` (the daemon's working directory).
    pub fn queue_dir(&self) -> &Path {
        &self.queue_dir
    }

    /// Connects without reading anything (the greeting is still pending).
    pub fn connect_raw(&self) -> io::Result<UnixStream> {
        UnixStream::connect(&self.socket_path)
    }

    /// Connects, waits up to [`GREETING_TIMEOUT`] for the server greeting and
    /// checks it. The returned (blocking, no timeout) stream is positioned
    /// right after the greeting. Fails early if the daemon exits.
    pub fn connect(&self) -> io::Result<UnixStream> {
        self.connect_timeout(GREETING_TIMEOUT)
    }

    /// [`Harness::connect`] with an explicit greeting timeout.
    pub fn connect_timeout(&self, timeout: Duration) -> io::Result<UnixStream> {
        let mut s = self.connect_raw()?;
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(GREETING.len());
        let mut buf = [0u8; 64];
        s.set_read_timeout(Some(Duration::from_millis(100)))?;
        while got.len() < GREETING.len() {
            let want = GREETING.len() - got.len();
            match s.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "daemon closed the connection after {:?} of the greeting{}",
                            String::from_utf8_lossy(&got),
                            self.exit_note()
                        ),
                    ))
                }
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) =>
                {
                    if let Some(st) = self.try_wait()? {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            format!("daemon exited ({st}) before greeting"),
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "no greeting within {timeout:?} (got {:?})",
                                String::from_utf8_lossy(&got)
                            ),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if got != GREETING {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad greeting {:?}", String::from_utf8_lossy(&got)),
            ));
        }
        s.set_read_timeout(None)?;
        Ok(s)
    }

    /// Waits until the daemon answers with its greeting (one throw-away
    /// connection), i.e. has finished starting up.
    pub fn wait_ready(&self, timeout: Duration) -> io::Result<()> {
        self.connect_timeout(timeout).map(drop)
    }

    fn exit_note(&self) -> String {
        match self.try_wait() {
            Ok(Some(st)) => format!("; daemon exited ({st})"),
            _ => String::new(),
        }
    }

    /// Every log record received so far, in arrival order, as sent (one
    /// datagram each: `Mmm dd HH:MM:SS host prog[pid]: text`).
    pub fn log_lines(&self) -> Vec<String> {
        lock(&self.shared.logs).clone()
    }

    /// Like [`Harness::log_lines`], but only the text after `prog[pid]: `
    /// (e.g. `warning: ...`), for comparisons that ignore time and host.
    pub fn log_messages(&self) -> Vec<String> {
        self.log_lines()
            .iter()
            .map(|l| match l.find("]: ") {
                Some(i) => l[i + 3..].to_string(),
                None => l.clone(),
            })
            .collect()
    }

    /// Waits until some log record contains `needle`; `true` if one did
    /// within `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut logs = lock(&self.shared.logs);
        loop {
            if logs.iter().any(|l| l.contains(needle)) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            logs = self
                .shared
                .log_cv
                .wait_timeout(logs, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every status record received so far.
    pub fn status_records(&self) -> Vec<StatusRecord> {
        lock(&self.shared.records).clone()
    }

    /// Waits until at least `count` status records arrived (or the channel
    /// reached EOF, or `timeout` passed) and returns them all.
    pub fn wait_for_status_records(&self, count: usize, timeout: Duration) -> Vec<StatusRecord> {
        let deadline = Instant::now() + timeout;
        let mut recs = lock(&self.shared.records);
        loop {
            if recs.len() >= count || self.shared.status_eof.load(Ordering::Relaxed) {
                return recs.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                return recs.clone();
            }
            recs = self
                .shared
                .status_cv
                .wait_timeout(recs, (deadline - now).min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Closes the harness's end of the status channel, as master does on
    /// `postfix reload` or when it exits: the daemon should log its
    /// statistics and exit with status 0. Records sent afterwards are lost.
    pub fn close_status(&self) {
        if let Some(s) = lock(&self.status).take() {
            // shutdown also wakes the reader thread, which holds a clone.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The read end of the daemon's stderr if the builder asked for
    /// [`Stdio::piped`] (once).
    pub fn take_stderr(&self) -> Option<std::process::ChildStderr> {
        lock(&self.child).child.stderr.take()
    }

    /// The read end of the daemon's stdout if the builder asked for
    /// [`Stdio::piped`] (once).
    pub fn take_stdout(&self) -> Option<std::process::ChildStdout> {
        lock(&self.child).child.stdout.take()
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: Signal) -> io::Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        signal::kill(Pid::from_raw(self.pid), sig).map_err(io::Error::from)
    }

    /// Sends SIGTERM (what `postfix stop` does through master).
    pub fn terminate(&self) -> io::Result<()> {
        self.signal(Signal::SIGTERM)
    }

    /// Sends SIGKILL.
    pub fn kill(&self) -> io::Result<()> {
        self.signal(Signal::SIGKILL)
    }

    /// The exit status if the daemon has exited (reaps it).
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        lock(&self.child).try_wait()
    }

    /// Waits up to `timeout` for the daemon to exit.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Number of open descriptors of the daemon (entries of `/proc/PID/fd`).
    pub fn fd_count(&self) -> io::Result<usize> {
        Ok(fs::read_dir(format!("/proc/{}/fd", self.pid))?.count())
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> io::Result<u64> {
        let s = fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS"))
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        {
            let mut c = lock(&self.child);
            if c.status.is_none() {
                let _ = c.child.kill();
                if let Ok(st) = c.child.wait() {
                    c.status = Some(st);
                }
            }
        }
        self.close_status();
        self.stop.store(true, Ordering::Relaxed);
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
        if let Some(dir) = self.dir.take() {
            if self.keep_dir {
                eprintln!("harness: kept {}", dir.into_path().display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const T: Duration = Duration::from_secs(10);
    const FIND_MISS: &[u8] = b"status\x002\0property\0\0\0";

    fn find_miss(s: &mut UnixStream) {
        s.write_all(b"request\0find_endp\0label\0x\0\0").unwrap();
        let mut reply = vec![0u8; FIND_MISS.len()];
        s.set_read_timeout(Some(T)).unwrap();
        s.read_exact(&mut reply).unwrap();
        assert_eq!(reply, FIND_MISS, "{:?}", String::from_utf8_lossy(&reply));
    }

    fn dump(h: &Harness) -> String {
        format!("log:\n{}", h.log_lines().join("\n"))
    }

    #[test]
    fn status_record_round_trip() {
        let r = StatusRecord {
            pid: 4242,
            generation: 0o17,
            avail: StatusRecord::AVAIL,
        };
        assert_eq!(StatusRecord::from_bytes(&r.to_bytes()), r);
    }

    #[test]
    fn a_missing_tool_fails_unless_skipping_is_allowed() {
        let v = |require, allow| skip_verdict(require, allow, "t", "x not found");
        assert!(v(false, false)
            .unwrap_err()
            .contains("set SCACHE_ALLOW_SKIP=1"));
        assert_eq!(
            v(false, true),
            Ok("t: SKIPPED (SCACHE_ALLOW_SKIP=1): x not found".into())
        );
        assert!(v(true, true)
            .unwrap_err()
            .contains("SCACHE_REQUIRE_POSTFIX=1"));
        assert!(v(true, false).is_err());
    }

    #[test]
    fn temp_dir_is_removed() {
        let d = TempDir::new("harness-selftest").unwrap();
        let p = d.path().to_path_buf();
        fs::write(p.join("f"), b"x").unwrap();
        drop(d);
        assert!(!p.exists());
    }

    #[test]
    fn master_environment_and_descriptors() {
        // A shell stands in for the daemon and reports what it was given.
        let h = HarnessBuilder::new("/bin/sh")
            .master_args(false)
            .generation(9)
            .arg("-c")
            .arg(
                "{ env | sort; echo cwd=$(pwd); echo umask=$(umask); \
                 for f in 3 4 5 6; do echo fd$f=$(readlink /proc/$$/fd/$f); done; \
                 } > \"$MAIL_CONFIG/../report\"; exec sleep 30",
            )
            .spawn()
            .unwrap();
        let report = h.config_dir().parent().unwrap().join("report");
        let deadline = Instant::now() + T;
        let mut text = String::new();
        while Instant::now() < deadline {
            text = fs::read_to_string(&report).unwrap_or_default();
            if text.contains("fd6=") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let q = h.queue_dir().to_string_lossy().into_owned();
        assert!(text.contains("GENERATION=11\n"), "{text}");
        assert!(text.contains("MAIL_LOGTAG=postfix\n"), "{text}");
        assert!(text.contains("LANG=C\n"), "{text}");
        assert!(
            text.contains(&format!("POSTLOG_SERVICE={q}/public/postlog\n")),
            "{text}"
        );
        assert!(text.contains(&format!("cwd={q}\n")), "{text}");
        assert!(text.contains("umask=0077"), "{text}");
        assert!(text.contains("fd3=pipe:"), "{text}");
        assert!(text.contains("fd4=pipe:"), "{text}");
        assert!(text.contains("fd5=socket:"), "{text}");
        assert!(text.contains("fd6=socket:"), "{text}");
        let main_cf = fs::read_to_string(h.config_dir().join("main.cf")).unwrap();
        assert!(main_cf.contains(&format!("queue_directory = {q}\n")));
        assert!(main_cf.contains("maillog_file = /dev/stdout\n"));
        // /bin/sh -> sh: no MAIL_CONFIG-independent env leaks (no PATH etc.).
        assert!(!text.contains("\nPATH="), "{text}");
    }

    #[test]
    fn postfix_bad_generation_is_fatal_and_stderr_is_readable() {
        let Some(prog) = postfix_scache_for_test("postfix_bad_generation_is_fatal") else {
            return;
        };
        let h = HarnessBuilder::new(prog)
            .env("GENERATION", "12x")
            .arg("-V")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let st = h.wait_exit(T).expect("exits");
        assert_eq!(st.code(), Some(1), "{st}");
        let mut err = String::new();
        h.take_stderr().unwrap().read_to_string(&mut err).unwrap();
        assert!(err.contains("fatal: "), "{err}");
        assert!(h.wait_for_log("fatal: ", T), "{}", dump(&h));
        assert!(h.connect_timeout(Duration::from_secs(1)).is_err());
    }

    #[test]
    fn postfix_greeting_and_find_endp_miss() {
        let Some(prog) = postfix_scache_for_test("postfix_greeting_and_find_endp_miss") else {
            return;
        };
        let h = HarnessBuilder::new(prog).spawn().unwrap();
        let mut s = h.connect().unwrap();
        find_miss(&mut s);
        find_miss(&mut s);
        assert!(h.fd_count().unwrap() >= 4);
        assert!(h.rss_kib().unwrap() > 0);
    }

    #[test]
    fn postfix_status_records() {
        let Some(prog) = postfix_scache_for_test("postfix_status_records") else {
            return;
        };
        let h = HarnessBuilder::new(prog).generation(0o123).spawn().unwrap();
        let mut s = h.connect().unwrap();
        assert!(h.status_records().is_empty(), "nothing before a request");
        find_miss(&mut s);
        let recs = h.wait_for_status_records(2, T);
        assert_eq!(
            recs,
            vec![
                StatusRecord {
                    pid: h.pid(),
                    generation: 0o123,
                    avail: StatusRecord::TAKEN
                },
                StatusRecord {
                    pid: h.pid(),
                    generation: 0o123,
                    avail: StatusRecord::AVAIL
                },
            ]
        );
    }

    #[test]
    fn postfix_log_collection() {
        let Some(prog) = postfix_scache_for_test("postfix_log_collection") else {
            return;
        };
        let h = HarnessBuilder::new(prog).spawn().unwrap();
        let mut s = h.connect().unwrap();
        s.write_all(b"request\0no_such_request\0\0").unwrap();
        let tag = format!("postfix/scache[{}]: warning: ", h.pid());
        assert!(h.wait_for_log(&tag, T), "{}", dump(&h));
        assert!(h
            .log_messages()
            .iter()
            .any(|m| m.starts_with("warning: ") && m.contains("no_such_request")));
    }

    #[test]
    fn postfix_exits_after_status_eof_with_statistics() {
        let Some(prog) = postfix_scache_for_test("postfix_exits_after_status_eof") else {
            return;
        };
        let h = HarnessBuilder::new(prog).spawn().unwrap();
        let mut s = h.connect().unwrap();
        find_miss(&mut s);
        h.wait_for_status_records(2, T);
        h.close_status();
        let st = h.wait_exit(T).expect("daemon exits after status EOF");
        assert_eq!(st.code(), Some(0), "{st}");
        assert!(
            h.wait_for_log("statistics: address lookup hits=0 miss=1 success=0%", T),
            "{}",
            dump(&h)
        );
        assert!(h.wait_for_log("statistics: start interval ", T));
    }

    #[test]
    fn postfix_exits_after_max_idle() {
        let Some(prog) = postfix_scache_for_test("postfix_exits_after_max_idle") else {
            return;
        };
        let h = HarnessBuilder::new(prog)
            .arg("-o")
            .arg("max_idle=1s")
            .spawn()
            .unwrap();
        let mut s = h.connect().unwrap();
        find_miss(&mut s);
        // Connected: the idle timer does not run.
        std::thread::sleep(Duration::from_millis(2500));
        assert!(
            h.try_wait().unwrap().is_none(),
            "exited while a client was connected"
        );
        let t0 = Instant::now();
        drop(s);
        let st = h.wait_exit(T).expect("daemon exits after max_idle");
        assert_eq!(st.code(), Some(0), "{st}");
        assert!(
            t0.elapsed() >= Duration::from_millis(500),
            "{:?}",
            t0.elapsed()
        );
        assert!(
            h.wait_for_log("statistics: address lookup", T),
            "{}",
            dump(&h)
        );
    }

    #[test]
    fn postfix_terminate_and_drop() {
        let Some(prog) = postfix_scache_for_test("postfix_terminate_and_drop") else {
            return;
        };
        let h = HarnessBuilder::new(prog).spawn().unwrap();
        let _s = h.connect().unwrap();
        let dir = h.queue_dir().parent().unwrap().to_path_buf();
        h.terminate().unwrap();
        let st = h.wait_exit(T).expect("exits on SIGTERM");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc_sigterm()));
        drop(h);
        assert!(!dir.exists());
    }

    fn libc_sigterm() -> i32 {
        Signal::SIGTERM as i32
    }
}
