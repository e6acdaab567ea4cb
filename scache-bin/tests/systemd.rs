//! Packaging tests: the daemon started exactly the way systemd starts it
//! (socket activation and `Type=notify`), the standalone socket as the man
//! page describes it, and the man page itself checked against the binary
//! (every option in `--help`, every parameter in `--print-defaults`, with
//! the same defaults).
//!
//! systemd passes a socket-activated service its listener as descriptor 3,
//! with `LISTEN_FDS=1` and `LISTEN_PID` set to the service's own process ID
//! (known only after `fork`). Setting an environment variable between
//! `fork` and `exec` is not async-signal-safe, so the child is started
//! through `/bin/sh`, which exports its own `$$` and then `exec`s the daemon
//! (same process, same ID); the descriptor is moved to 3 in `pre_exec` with
//! `dup2`, which is async-signal-safe.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use scache_core::ConnectionCache;
use scache_proto::Client;
use scache_testkit::harness::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_scache");
const MAN_PAGE: &str = include_str!("../../man/scache.8");
const WAIT: Duration = Duration::from_secs(10);
const GREETING: &[u8] = b"protocol\0connection_cache_protocol\0\0";

/// A daemon process whose standard error goes to a file; killed if the
/// test fails before stopping it.
struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().expect("running").id() as i32)
    }

    /// What the daemon logged so far.
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the daemon to exit by itself.
    fn wait(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                start.elapsed() < WAIT,
                "daemon did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        kill(self.pid(), Signal::SIGTERM).expect("kill");
        self.wait()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A command for the daemon with a clean environment (no inherited
/// `MAIL_CONFIG`, `RUST_LOG`, `LISTEN_*`, `NOTIFY_SOCKET`) and its standard
/// error sent to `dir/name.log`.
fn command(program: &str, dir: &Path, name: &str) -> (Command, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).expect("log file"));
    (cmd, log)
}

fn spawn(mut cmd: Command, log: PathBuf) -> Daemon {
    let child = cmd.spawn().expect("spawn daemon");
    Daemon {
        child: Some(child),
        log,
    }
}

/// Starts `scache ARGS` as a socket-activated service: `listener` becomes
/// descriptor 3, `LISTEN_FDS=1`, `LISTEN_PID` = the daemon's PID, plus
/// `env`.
fn spawn_activated(
    dir: &Path,
    listener: &UnixListener,
    args: &[&str],
    env: &[(&str, &str)],
) -> Daemon {
    let (mut cmd, log) = command("/bin/sh", dir, "activated");
    cmd.arg("-c")
        .arg(r#"LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@""#)
        .arg(BIN)
        .args(args)
        .env("LISTEN_FDS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let raw = listener.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls dup2 and fcntl, which are async-signal-safe; it allocates
    // nothing and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                nix::fcntl::fcntl(
                    3,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )?;
            } else {
                // dup2 leaves the new descriptor without close-on-exec.
                nix::unistd::dup2(raw, 3)?;
            }
            Ok(())
        });
    }
    spawn(cmd, log)
}

/// Starts a standalone daemon `scache --listen PATH ARGS`.
fn spawn_standalone(dir: &Path, name: &str, socket: &Path, args: &[&str]) -> Daemon {
    let (mut cmd, log) = command(BIN, dir, name);
    cmd.arg("--listen").arg(socket).args(args);
    spawn(cmd, log)
}

/// Waits until a daemon answers on `socket` (the greeting arrives).
fn wait_for_socket(socket: &Path, daemon: &mut Daemon) {
    let start = Instant::now();
    loop {
        if let Ok(mut s) = UnixStream::connect(socket) {
            s.set_read_timeout(Some(WAIT)).unwrap();
            let mut greeting = [0u8; GREETING.len()];
            if s.read_exact(&mut greeting).is_ok() {
                assert_eq!(&greeting[..], GREETING);
                return;
            }
        }
        if let Some(status) = daemon.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
            panic!("daemon exited with {status}; log:\n{}", daemon.log());
        }
        assert!(
            start.elapsed() < WAIT,
            "no daemon on {}; log:\n{}",
            socket.display(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (st_dev, st_ino) of an open descriptor.
fn identity(fd: impl AsFd) -> (u64, u64) {
    let st = nix::sys::stat::fstat(fd.as_fd().as_raw_fd()).expect("fstat");
    (st.st_dev as u64, st.st_ino as u64)
}

/// `scache stats --socket PATH --format json`, parsed into name -> value.
fn stats(socket: &Path) -> BTreeMap<String, u64> {
    let out = Command::new(BIN)
        .args(["stats", "--format", "json", "--socket"])
        .arg(socket)
        .output()
        .expect("scache stats");
    assert!(
        out.status.success(),
        "scache stats failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let body = text.trim().trim_start_matches('{').trim_end_matches('}');
    body.split(',')
        .map(|pair| {
            let (name, value) = pair.split_once(':').expect("name:value");
            (
                name.trim_matches('"').to_string(),
                value.parse().expect("number"),
            )
        })
        .collect()
}

/// A client with no retry pause, so failures show up quickly.
fn client(socket: &Path) -> Client {
    Client::with_config(scache_proto::ClientConfig {
        retry_pause: Duration::ZERO,
        ..scache_proto::ClientConfig::new(socket)
    })
}

/// Saves one end of a fresh socket pair under `label` and takes it back;
/// asserts the descriptor that comes back is the very file saved.
fn round_trip(socket: &Path, label: &[u8]) {
    let mut cache = client(socket);
    let (saved, _peer) = UnixStream::pair().expect("socketpair");
    let saved_id = identity(&saved);
    cache
        .save_endp(
            Duration::from_secs(60),
            label,
            b"reuse_count=1\n",
            OwnedFd::from(saved),
        )
        .expect("save_endp");
    cache
        .save_dest(Duration::from_secs(60), b"dest", b"dest_prop", label)
        .expect("save_dest");
    let found = cache
        .find_dest(b"dest")
        .expect("find_dest")
        .expect("a cached session");
    assert_eq!(found.dest_prop, b"dest_prop");
    assert_eq!(found.endp_prop, b"reuse_count=1\n");
    assert_eq!(
        identity(&found.fd),
        saved_id,
        "find_dest must return the saved file"
    );
    let (again, _peer2) = UnixStream::pair().expect("socketpair");
    let again_id = identity(&again);
    cache
        .save_endp(Duration::from_secs(60), label, b"", OwnedFd::from(again))
        .expect("save_endp");
    let found = cache
        .find_endp(label)
        .expect("find_endp")
        .expect("a cached session");
    assert_eq!(
        identity(&found.fd),
        again_id,
        "find_endp must return the saved file"
    );
    assert!(
        cache.find_endp(label).expect("find_endp").is_none(),
        "the cache is now empty"
    );
}

#[test]
fn socket_activation_and_notify_like_systemd() {
    let dir = TempDir::new("scache-systemd").unwrap();
    let socket = dir.path().join("activated.sock");
    let unused = dir.path().join("unused.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o660)).unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();

    let mut daemon = spawn_activated(
        dir.path(),
        &listener,
        &["--listen", unused.to_str().unwrap()],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 ({e}); log:\n{}", daemon.log()));
    assert_eq!(&buf[..n], b"READY=1");

    // Ready means serving: no retry needed.
    round_trip(&socket, b"smtp\n192.0.2.1\n25\n");
    let s = stats(&socket);
    assert_eq!(s["saves_endp"], 2);
    assert_eq!(s["saves_dest"], 1);
    assert_eq!(s["dest_hits"], 1);
    assert_eq!(s["endp_hits"], 1);
    assert_eq!(s["endp_misses"], 1);
    assert_eq!(s["sess_count"], 0);
    assert_eq!(s["clients_refused"], 0);

    let status = daemon.terminate();
    assert!(
        status.success(),
        "SIGTERM must end with status 0, got {status}; log:\n{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains("using 1 listening socket(s) from systemd"),
        "log:\n{log}"
    );
    assert!(log.contains("exiting on signal 15"), "log:\n{log}");
    assert!(
        log.contains("statistics: domain lookup hits=1 miss=0 success=100%"),
        "log:\n{log}"
    );
    assert!(
        log.contains("statistics: address lookup hits=1 miss=1 success=50%"),
        "log:\n{log}"
    );
    // The socket belongs to systemd: the daemon neither created --listen
    // nor removed the inherited socket.
    assert!(
        !unused.exists(),
        "--listen path must not be created under socket activation"
    );
    assert!(fs::symlink_metadata(&socket)
        .unwrap()
        .file_type()
        .is_socket());
    drop(listener);
}

#[test]
fn notify_socket_in_the_abstract_namespace() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::SocketAddr;
    let dir = TempDir::new("scache-systemd").unwrap();
    let socket = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let name = format!("scache-test-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notify = UnixDatagram::bind_addr(&addr).unwrap();
    notify.set_read_timeout(Some(WAIT)).unwrap();
    let at_name = format!("@{name}");
    let unused = dir.path().join("unused.sock");
    let listen = format!("--listen={}", unused.display());
    let mut daemon = spawn_activated(
        dir.path(),
        &listener,
        &[&listen],
        &[("NOTIFY_SOCKET", &at_name)],
    );
    let mut buf = [0u8; 64];
    let n = notify
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no READY=1 ({e}); log:\n{}", daemon.log()));
    assert_eq!(&buf[..n], b"READY=1");
    // SIGTERM right after READY=1 (as `systemctl stop` may send it): the
    // daemon must already handle it (log, close, exit 0).
    let status = daemon.terminate();
    assert!(
        status.success(),
        "SIGTERM right after READY=1: {status}; log:\n{}",
        daemon.log()
    );
    assert!(!unused.exists());
}

#[test]
fn listen_pid_of_another_process_is_ignored() {
    // LISTEN_FDS meant for someone else (LISTEN_PID does not match): the
    // daemon must not touch descriptor 3 and binds --listen itself.
    let dir = TempDir::new("scache-systemd").unwrap();
    let socket = dir.path().join("own.sock");
    let (mut cmd, log) = command(BIN, dir.path(), "other-pid");
    cmd.arg("--listen")
        .arg(&socket)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_PID", "1");
    let mut daemon = spawn(cmd, log);
    wait_for_socket(&socket, &mut daemon);
    let log = daemon.log();
    assert!(!log.contains("from systemd"), "log:\n{log}");
    assert!(
        log.contains(&format!("listening on {} (mode 0600)", socket.display())),
        "log:\n{log}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn standalone_socket_is_what_the_man_page_says() {
    let dir = TempDir::new("scache-systemd").unwrap();

    // Default: mode 0600 whatever the umask, removed at exit.
    let socket = dir.path().join("default.sock");
    let mut daemon = spawn_standalone(dir.path(), "default", &socket, &[]);
    wait_for_socket(&socket, &mut daemon);
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o600, "default socket mode");
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    round_trip(&socket, b"endpoint");
    assert!(daemon.terminate().success());
    assert!(!socket.exists(), "the standalone socket is removed at exit");
    assert!(daemon.log().contains("exiting on signal 15"));

    // --socket-mode.
    let socket = dir.path().join("group.sock");
    let mut daemon = spawn_standalone(dir.path(), "group", &socket, &["--socket-mode", "0660"]);
    wait_for_socket(&socket, &mut daemon);
    let mode = fs::symlink_metadata(&socket).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o660);
    assert!(daemon.log().contains("(mode 0660)"));
    assert!(daemon.terminate().success());

    // SIGINT ends it the same way.
    let socket = dir.path().join("int.sock");
    let mut daemon = spawn_standalone(dir.path(), "int", &socket, &[]);
    wait_for_socket(&socket, &mut daemon);
    kill(daemon.pid(), Signal::SIGINT).unwrap();
    assert!(daemon.wait().success());
    assert!(!socket.exists());
}

#[test]
fn a_live_socket_is_never_clobbered() {
    let dir = TempDir::new("scache-systemd").unwrap();
    let socket = dir.path().join("live.sock");
    let mut first = spawn_standalone(dir.path(), "first", &socket, &[]);
    wait_for_socket(&socket, &mut first);
    let inode = fs::metadata(&socket).unwrap().ino();

    let mut second = spawn_standalone(dir.path(), "second", &socket, &[]);
    let status = second.wait();
    assert_eq!(status.code(), Some(1), "log:\n{}", second.log());
    assert!(
        second.log().contains("another daemon is listening there"),
        "log:\n{}",
        second.log()
    );
    // The first daemon still owns the same socket and still serves.
    assert_eq!(fs::metadata(&socket).unwrap().ino(), inode);
    round_trip(&socket, b"still-served");
    assert!(first.terminate().success());
}

#[test]
fn a_stale_socket_is_replaced_and_other_files_are_not() {
    let dir = TempDir::new("scache-systemd").unwrap();

    // A socket nobody listens on (a crashed daemon's) is replaced.
    let socket = dir.path().join("stale.sock");
    drop(UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let mut daemon = spawn_standalone(dir.path(), "stale", &socket, &[]);
    wait_for_socket(&socket, &mut daemon);
    assert!(
        daemon.log().contains("removed stale socket"),
        "log:\n{}",
        daemon.log()
    );
    assert!(daemon.terminate().success());

    // A regular file is left alone.
    let file = dir.path().join("file.sock");
    fs::write(&file, b"precious").unwrap();
    let mut daemon = spawn_standalone(dir.path(), "file", &file, &[]);
    assert_eq!(daemon.wait().code(), Some(1));
    assert!(
        daemon.log().contains("exists and is not a socket"),
        "log:\n{}",
        daemon.log()
    );
    assert_eq!(fs::read(&file).unwrap(), b"precious");
}

// ---------------------------------------------------------------------------
// The man page against the binary.

/// The text of one `.SH` section of the man page (up to the next `.SH`).
fn man_section(title: &str) -> &'static str {
    let start = MAN_PAGE
        .find(&format!("\n.SH {title}\n"))
        .unwrap_or_else(|| panic!("man page has no section {title}"));
    let rest = &MAN_PAGE[start + 1..];
    let end = rest[4..].find("\n.SH ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

/// `--name`, `-x` words of a roff line (with `\-` unescaped).
fn option_words(line: &str) -> Vec<String> {
    line.replace("\\-", "-")
        .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
        .filter(|w| w.starts_with('-') && w.len() > 1)
        .map(|w| w.trim_end_matches(['=', '.']).to_string())
        .collect()
}

/// Every option the man page documents in OPTIONS (the tag line of each
/// `.TP` entry).
fn man_options() -> Vec<String> {
    let section = man_section("OPTIONS");
    let lines: Vec<&str> = section.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with(".TP") {
            if let Some(tag) = lines.get(i + 1) {
                found.extend(option_words(tag));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

#[test]
fn help_and_man_page_list_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();

    let mut expected: Vec<String> = scache_bin::options::MASTER_OPTSTRING
        .chars()
        .filter(|c| *c != ':')
        .map(|c| format!("-{c}"))
        .collect();
    for o in [
        "--listen",
        "--config-dir",
        "--socket-mode",
        "--verbose",
        "--socket",
        "--format",
        "--limit",
        "-h",
        "--help",
        "--version",
        "--print-defaults",
    ] {
        expected.push(o.to_string());
    }
    expected.sort();
    expected.dedup();

    for option in &expected {
        let in_help = help
            .split(|c: char| c.is_whitespace() || c == ',' || c == '[' || c == ']' || c == '|')
            .any(|w| w == option);
        assert!(in_help, "--help does not list {option}:\n{help}");
    }
    assert_eq!(man_options(), expected, "man page OPTIONS entries");
    for word in ["stats", "list", "table", "json", "prometheus"] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}

/// `name -> default` as the man page documents it in CONFIGURATION
/// PARAMETERS (`.BR name " (default: value)"` tag lines).
fn man_parameters() -> BTreeMap<String, String> {
    let section = man_section("CONFIGURATION PARAMETERS");
    let mut found = BTreeMap::new();
    for line in section.lines() {
        let Some(rest) = line.strip_prefix(".BR ") else {
            continue;
        };
        let Some((name, default)) = rest.split_once(" \" (default: ") else {
            continue;
        };
        let default = default.trim_end_matches(")\"");
        found.insert(name.to_string(), default.to_string());
    }
    found
}

#[test]
fn print_defaults_and_man_page_cover_every_parameter() {
    let out = Command::new(BIN)
        .env_clear()
        .arg("--print-defaults")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: BTreeMap<String, String> = text
        .lines()
        .map(|line| {
            let (name, value) = line
                .split_once(" =")
                .unwrap_or_else(|| panic!("not postconf format: {line}"));
            (name.to_string(), value.trim_start().to_string())
        })
        .collect();

    // Every parameter the daemon reads is printed, in name order.
    let names: Vec<&str> = scache_bin::config::PARAMETERS
        .iter()
        .map(|p| p.name)
        .collect();
    let printed_names: Vec<&str> = text.lines().filter_map(|l| l.split(" =").next()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        printed_names, sorted,
        "--print-defaults must list every parameter, in name order"
    );

    // The man page documents the same parameters with the same defaults.
    let documented = man_parameters();
    assert_eq!(
        documented.keys().map(String::as_str).collect::<Vec<_>>(),
        sorted,
        "man page CONFIGURATION PARAMETERS entries"
    );
    for (name, doc_default) in &documented {
        let def = scache_bin::config::param_def(name).expect("known parameter");
        match def.default {
            scache_bin::config::DefaultValue::Computed => continue,
            scache_bin::config::DefaultValue::Text(value) => {
                let doc = doc_default.trim_end_matches(", no limit");
                let doc = if doc == "empty" { "" } else { doc };
                assert_eq!(doc, value, "man page default of {name}");
                assert_eq!(
                    printed[name.as_str()].as_str(),
                    value,
                    "--print-defaults value of {name}"
                );
            }
        }
    }
}

#[test]
fn version_names_the_program() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("scache {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        MAN_PAGE.contains(&format!("\"scache {}\"", env!("CARGO_PKG_VERSION"))),
        "the man page's .TH line must name this version"
    );
}
