//! Start-up for each mode: what Postfix's multi-server skeleton does before
//! its event loop (configuration, logging, inherited descriptors, chdir,
//! chroot, privilege drop), or the standalone equivalent (our own socket,
//! or one inherited from systemd), then the shared event loop.

use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::ExitCode;

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::backend::CacheBackend;
use crate::config::{self, Config, Params};
use crate::daemon::{block_shutdown_signals, AccessPolicy, Daemon, DaemonSetup, Mode, TurnClock};
use crate::listener::Listener;
use crate::logging::{self, fatal, Destination, LogSettings};
use crate::options::{MasterOptions, StandaloneOptions};

fn env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Master mode: started by Postfix's `master(8)` from `master.cf`.
pub fn master(o: MasterOptions) -> ExitCode {
    if let Err(e) = block_shutdown_signals() {
        fatal(format!("cannot block SIGTERM and SIGINT: {e}"));
    }
    // Logging first, from the environment master gave us.
    let settings = |tag: String, destination: Destination| LogSettings {
        tag,
        destination,
        stderr: o.log_to_stderr,
        verbose: o.verbose,
    };
    let _ = logging::init_master(settings(
        logging::initial_tag(env, &o.process_name),
        Destination::from_env(env),
    ));

    let dir = config::config_dir_from_env(env);
    let mut cfg = Config::load(&dir).unwrap_or_else(|e| fatal(e));
    cfg.apply_overrides(&o.overrides);
    cfg.force("process_name", &o.process_name);
    cfg.force("service_name", &o.service_name);
    let params = Params::from_config(&cfg).unwrap_or_else(|e| fatal(e));
    logging::reconfigure_master(settings(
        logging::configured_tag(&params),
        Destination::from_params(&params, env),
    ));
    for w in cfg
        .take_warnings()
        .into_iter()
        .chain(cfg.unknown_parameters())
    {
        log::warn!("{w}");
    }
    // Postfix's skeleton: in daemon mode (no -d) and not serving stdin
    // (-S), a terminal on stdin means a person typed the command line.
    if o.daemon_mode && !o.stdin_stream && std::io::stdin().is_terminal() {
        eprintln!("{}: fatal: do not run this command by hand", o.process_name);
        fatal("do not run this command by hand");
    }
    if let Err(e) = o.validate() {
        fatal(e);
    }
    let generation = match env("GENERATION") {
        None => 0,
        Some(g) => {
            let g = g.to_string_lossy().into_owned();
            match (g.bytes().all(|b| b.is_ascii_digit()) && !g.is_empty())
                .then(|| u32::from_str_radix(&g, 8).ok())
                .flatten()
            {
                Some(n) => n,
                None => fatal(format!("bad generation: {g}")),
            }
        }
    };
    log::debug!("process generation: {g} ({g:o})", g = generation);

    // Inherited descriptors: 5 = status, 6.. = listeners (or stdin with -S).
    // -S (one client on standard input) works without master's status
    // socket too.
    let status = match inherit_fd(5) {
        Some(fd) => Some(fd),
        None if o.stdin_stream => None,
        None => fatal("master status descriptor 5 is not open"),
    };
    let mut listeners = Vec::new();
    let mut stdin_client = None;
    if o.stdin_stream {
        let fd = inherit_fd(0).unwrap_or_else(|| fatal("-S: standard input is not open"));
        set_nonblocking(&fd);
        stdin_client = Some(fd);
    } else {
        for i in 0..o.socket_count.max(1) {
            let raw = 6 + i as RawFd;
            let fd = inherit_fd(raw)
                .unwrap_or_else(|| fatal(format!("listen descriptor {raw} is not open")));
            set_nonblocking(&fd);
            listeners.push(fd);
        }
    }
    for raw in [3, 4] {
        let _ = set_cloexec(raw);
    }

    // chdir, then chroot and privilege drop, as multi_server does.
    if let Err(e) = std::env::set_current_dir(&params.queue_directory) {
        fatal(format!(
            "chdir(\"{}\"): {e}",
            params.queue_directory.display()
        ));
    }
    // Every Postfix daemon checks mail_owner, with or without -u.
    let mail_owner = params.resolve_mail_owner().unwrap_or_else(|e| fatal(e));
    let owner = o.drop_privileges.then_some(mail_owner.clone());
    logging::init_timezone();
    drop_privileges(
        o.chroot.then_some(params.queue_directory.as_path()),
        owner.as_ref(),
    );

    // Default: ourselves, root, and Postfix's own processes.
    let access = access_policy(&params, &[mail_owner.uid]);
    let mode = match status {
        Some(status) => Mode::Master { status, generation },
        None => Mode::Standalone { socket_path: None },
    };
    serve(
        &params,
        mode,
        listeners,
        stdin_client,
        Some(params.max_idle),
        access,
    )
}

/// Standalone mode: our own socket (or one inherited from systemd).
pub fn standalone(o: StandaloneOptions) -> ExitCode {
    if let Err(e) = block_shutdown_signals() {
        fatal(format!("cannot block SIGTERM and SIGINT: {e}"));
    }
    let tag = logging::initial_tag(env, &o.process_name);
    let _ = logging::init_standalone(&tag, o.verbose);
    let dir = config::standalone_config_dir(o.config_dir.as_deref(), env);
    let mut cfg = match &dir {
        Some(d) => Config::load(d).unwrap_or_else(|e| fatal(e)),
        None => Config::new(Path::new("/etc/postfix")),
    };
    cfg.apply_overrides(&o.overrides);
    cfg.force("process_name", &o.process_name);
    cfg.force("service_name", &o.process_name);
    let params = Params::from_config(&cfg).unwrap_or_else(|e| fatal(e));
    for w in cfg
        .take_warnings()
        .into_iter()
        .chain(cfg.unknown_parameters())
    {
        log::warn!("{w}");
    }
    let (listeners, socket_path) = match systemd_listeners() {
        Some(fds) => {
            log::info!("using {} listening socket(s) from systemd", fds.len());
            (fds, None)
        }
        None => {
            let l = bind_socket(&o.listen, o.socket_mode);
            log::info!(
                "listening on {} (mode {:04o})",
                o.listen.display(),
                o.socket_mode
            );
            (vec![l], Some(o.listen.clone()))
        }
    };
    let access = access_policy(&params, &[]);
    logging::init_timezone();
    serve(
        &params,
        Mode::Standalone { socket_path },
        listeners,
        None,
        None,
        access,
    )
}

/// `scache_allowed_uids` (empty: our own uid, root and `also`) and
/// `scache_allowed_gids`.
fn access_policy(params: &Params, also: &[u32]) -> AccessPolicy {
    let mut uids = params.scache_allowed_uids.clone();
    if uids.is_empty() {
        uids = vec![nix::unistd::geteuid().as_raw(), 0];
        uids.extend_from_slice(also);
    }
    AccessPolicy {
        uids,
        gids: params.scache_allowed_gids.clone(),
    }
}

/// Builds the cache and runs the event loop; logs and exits 0 at the end.
fn serve(
    params: &Params,
    mode: Mode,
    listeners: Vec<OwnedFd>,
    stdin_client: Option<OwnedFd>,
    max_idle: Option<std::time::Duration>,
    access: AccessPolicy,
) -> ExitCode {
    let fd_limit = raise_fd_limit();
    let reserve = params.scache_fd_reserve.min(fd_limit / 2);
    let session_limit = params
        .scache_session_limit
        .unwrap_or(fd_limit.saturating_sub(reserve).max(1));
    let limits = scache_core::Limits {
        max_sessions: Some(session_limit),
        max_sessions_per_endpoint: params.scache_endpoint_session_limit,
        max_bindings_per_destination: params.scache_destination_binding_limit,
        max_labels: params.scache_label_limit,
        max_label_len: params.scache_label_length_limit,
        max_prop_len: params.scache_property_length_limit,
    };
    // The wire bound on one string: the longer of the two length limits
    // (an unlimited one still gets the protocol's default bound).
    let wire_default = scache_proto::attr::Limits::default();
    let longest = params
        .scache_label_length_limit
        .unwrap_or(wire_default.max_value_len)
        .max(
            params
                .scache_property_length_limit
                .unwrap_or(wire_default.max_value_len),
        );
    let proto_limits = scache_proto::attr::Limits {
        max_value_len: longest,
        ..wire_default
    };
    let clock = TurnClock::new();
    let mut cache = scache_core::MultiCache::with_limits(clock.clone(), limits);
    if params.scache_quit_before_close {
        cache.set_departure_hook(crate::backend::quit_before_close);
    }
    let backend = CacheBackend::new(
        cache,
        params.connection_cache_ttl_limit,
        params.scache_dead_connection_eviction,
    );
    log::debug!("descriptor limit {fd_limit}, session limit {session_limit}, reserve {reserve}");
    let setup = DaemonSetup {
        mode,
        listeners: listeners.into_iter().map(Listener::new).collect(),
        stdin_client,
        stats_interval: params.connection_cache_status_update_time,
        max_idle,
        ipc_timeout: params.ipc_timeout,
        proto_limits,
        fd_limit,
        access,
        daemon_timeout: Some(params.daemon_timeout),
        metrics_file: params.scache_metrics_file.clone(),
    };
    let standalone = matches!(setup.mode, Mode::Standalone { .. });
    let daemon =
        Daemon::new(setup, backend, clock).unwrap_or_else(|e| fatal(format!("event loop: {e}")));
    if standalone {
        // Only now are SIGTERM/SIGINT handled and the listeners registered.
        notify_systemd_ready();
    }
    daemon.run();
    ExitCode::SUCCESS
}

/// Takes ownership of an inherited descriptor if it is open.
fn inherit_fd(raw: RawFd) -> Option<OwnedFd> {
    // SAFETY: F_GETFD on any integer is harmless; it fails with EBADF when
    // the descriptor is not open.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) };
    fcntl(borrowed.as_raw_fd(), FcntlArg::F_GETFD).ok()?;
    let _ = fcntl(raw, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    // SAFETY: the descriptor is open (checked above) and was handed to this
    // process by its parent for exactly this use; nothing else in the
    // process owns it.
    Some(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn set_cloexec(raw: RawFd) -> nix::Result<nix::libc::c_int> {
    fcntl(raw, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
}

fn set_nonblocking(fd: &OwnedFd) {
    if let Ok(flags) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags));
    }
}

/// `setgid`, `initgroups`, `chroot` + `chdir("/")`, `setuid`: Postfix's
/// `chroot_uid()` order.
fn drop_privileges(root: Option<&Path>, owner: Option<&config::Owner>) {
    use nix::unistd::{chdir, chroot, initgroups, setgid, setuid, Gid, Uid};
    if let Some(owner) = owner {
        if let Err(e) = setgid(Gid::from_raw(owner.gid)) {
            fatal(format!("setgid({}): {e}", owner.gid));
        }
        let name = std::ffi::CString::new(owner.name.clone()).unwrap_or_default();
        if let Err(e) = initgroups(&name, Gid::from_raw(owner.gid)) {
            fatal(format!("initgroups: {e}"));
        }
    }
    if let Some(root) = root {
        if let Err(e) = chroot(root) {
            fatal(format!("chroot({}): {e}", root.display()));
        }
        if let Err(e) = chdir("/") {
            fatal(format!("chdir(\"/\"): {e}"));
        }
    }
    if let Some(owner) = owner {
        if let Err(e) = setuid(Uid::from_raw(owner.uid)) {
            fatal(format!("setuid({}): {e}", owner.uid));
        }
    }
}

/// Raises the soft descriptor limit to the hard one; returns the soft limit
/// in force.
fn raise_fd_limit() -> usize {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard as usize
            } else {
                soft as usize
            }
        }
        Err(_) => 1024,
    }
}

/// Binds and listens on a standalone socket: refuses to clobber a live
/// socket, removes a stale one, and sets the permission bits.
fn bind_socket(path: &Path, mode: u32) -> OwnedFd {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            fatal(format!(
                "{}: exists and is not a socket; not replacing it",
                path.display()
            ));
        }
        if UnixStream::connect(path).is_ok() {
            fatal(format!(
                "{}: another daemon is listening there",
                path.display()
            ));
        }
        if let Err(e) = std::fs::remove_file(path) {
            fatal(format!("remove stale socket {}: {e}", path.display()));
        }
        log::info!("removed stale socket {}", path.display());
    }
    // Create the socket with no access, then open it up to `mode`, so it is
    // never reachable with wider permissions than asked.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o777));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = bound.unwrap_or_else(|e| fatal(format!("bind {}: {e}", path.display())));
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        fatal(format!("chmod {}: {e}", path.display()));
    }
    if let Err(e) = listener.set_nonblocking(true) {
        fatal(format!("listen {}: {e}", path.display()));
    }
    OwnedFd::from(listener)
}

/// systemd socket activation: `LISTEN_PID` is us and `LISTEN_FDS` > 0 means
/// descriptors 3.. are listening sockets.
fn systemd_listeners() -> Option<Vec<OwnedFd>> {
    let pid: u32 = env("LISTEN_PID")?.to_str()?.parse().ok()?;
    if pid != std::process::id() {
        return None;
    }
    let n: i32 = env("LISTEN_FDS")?.to_str()?.parse().ok()?;
    if n <= 0 {
        return None;
    }
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    let fds: Vec<OwnedFd> = (0..n)
        .filter_map(|i| inherit_fd(3 + i))
        .inspect(set_nonblocking)
        .collect();
    (!fds.is_empty()).then_some(fds)
}

/// `Type=notify`: tell systemd we are ready (when `NOTIFY_SOCKET` is set).
fn notify_systemd_ready() {
    let Some(path) = env("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)
            .and_then(|addr| sock.send_to_addr(b"READY=1", &addr))
    } else {
        sock.send_to(b"READY=1", Path::new(&path))
    };
    if let Err(e) = sent {
        log::warn!("sd_notify: {e}");
    }
    let _ = sock.as_fd();
}
