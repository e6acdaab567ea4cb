//! Logging in Postfix's formats, behind the `log` facade.
//!
//! Under `master(8)` records go to exactly one of (Postfix's
//! `maillog_client.c`):
//!
//! * **syslog**: one RFC 3164 datagram per record to `/dev/log`, byte for
//!   byte what glibc's `syslog()` sends for `openlog(tag, LOG_PID, ...)`:
//!   `<PRI>Mmm dd hh:mm:ss TAG[PID]: TEXT` (day space-padded, local time, no
//!   host name, no trailing newline); stream sockets get a trailing NUL;
//! * **postlog** (when `maillog_file` is set): one datagram per record to
//!   postlogd's socket `$queue_directory/public/$postlog_service_name`,
//!   `Mmm DD HH:MM:SS host TAG[PID]: TEXT` (day zero-padded, first label of
//!   the host name);
//!
//! plus, with `-V`, a copy on stderr as `TAG: TEXT` (`msg_vstream.c`).
//! Standalone mode logs through `env_logger` on stderr.
//!
//! In every mode the text is prefixed by severity as Postfix does
//! (`warning: `, `error: `, `fatal: `, `panic: `; nothing for info), every
//! non-printable byte is replaced with `?` (`msg_output.c`, UTF-8 not
//! allowed, as in Postfix's daemons), and the syslog/postlog text is cut at
//! 2000 bytes. `log::Level::Debug`/`Trace` records are Postfix's verbose
//! `msg_info()` lines: logged as info, only with `-v` (`-v -v` for trace).
//!
//! Sockets are connected when the logger is configured, so that they survive
//! a later `chroot()`; call [`init_timezone`] before the chroot too.

// The only unsafe code here is the C time-zone calls (`tzset`,
// `localtime_r`), which have no std or nix equivalent; the functions making
// them allow it explicitly, and every block says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

pub use crate::config::Facility;
use crate::config::Params;

/// Default syslog socket.
pub const SYSLOG_PATH: &str = "/dev/log";

/// Postfix's record length limit for syslog and postlog (bytes of text).
pub const RECORD_LIMIT: usize = 2000;

/// Host name postlog records use when none is known (Postfix's choice).
pub const UNKNOWN_HOSTNAME: &str = "amnesiac";

/// `log` target that marks a record as fatal (`fatal: `, `LOG_CRIT`).
/// [`fatal`] uses it; `log::error!(target: FATAL_TARGET, ...)` does too.
pub const FATAL_TARGET: &str = concat!(module_path!(), "::fatal");

/// `log` target that marks a record as a panic (`panic: `, `LOG_CRIT`).
pub const PANIC_TARGET: &str = concat!(module_path!(), "::panic");

/// Environment variable overriding the first half of the log tag.
pub const ENV_MAIL_LOGTAG: &str = "MAIL_LOGTAG";

/// Environment variable naming postlogd's socket before configuration.
pub const ENV_POSTLOG_SERVICE: &str = "POSTLOG_SERVICE";

/// Environment variable naming the postlog host before configuration.
pub const ENV_POSTLOG_HOSTNAME: &str = "POSTLOG_HOSTNAME";

/// Postfix severities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `msg_info`: no prefix, `LOG_INFO`.
    Info,
    /// `msg_warn`: `warning: `, `LOG_WARNING`.
    Warning,
    /// `msg_error`: `error: `, `LOG_ERR`.
    Error,
    /// `msg_fatal`: `fatal: `, `LOG_CRIT`.
    Fatal,
    /// `msg_panic`: `panic: `, `LOG_CRIT`.
    Panic,
}

impl Severity {
    /// The text prefix Postfix puts before the message.
    pub fn prefix(self) -> &'static str {
        match self {
            Severity::Info => "",
            Severity::Warning => "warning: ",
            Severity::Error => "error: ",
            Severity::Fatal => "fatal: ",
            Severity::Panic => "panic: ",
        }
    }

    /// The syslog severity code.
    pub fn syslog_level(self) -> u8 {
        match self {
            Severity::Info => 6,
            Severity::Warning => 4,
            Severity::Error => 3,
            Severity::Fatal | Severity::Panic => 2,
        }
    }

    /// The severity of a `log` record (see [`FATAL_TARGET`], [`PANIC_TARGET`]).
    pub fn of_record(record: &Record<'_>) -> Severity {
        if record.target() == FATAL_TARGET {
            return Severity::Fatal;
        }
        if record.target() == PANIC_TARGET {
            return Severity::Panic;
        }
        match record.level() {
            Level::Error => Severity::Error,
            Level::Warn => Severity::Warning,
            Level::Info | Level::Debug | Level::Trace => Severity::Info,
        }
    }
}

/// Syslog priorities: the facility is configuration (`syslog_facility`,
/// see [`Facility::from_name`]); the `<PRI>` value is ours.
impl Facility {
    /// The `<PRI>` value for a severity. Like glibc, facility 0 (`kern`)
    /// is replaced by the `openlog()` facility, which Postfix makes
    /// `LOG_MAIL`.
    pub fn priority(self, severity: Severity) -> u8 {
        let facility = if self.code() == 0 {
            Facility::MAIL.code()
        } else {
            self.code()
        };
        facility * 8 + severity.syslog_level()
    }
}

/// A broken-down local time (C `struct tm`, fields we print).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Calendar year.
    pub year: i32,
    /// Month, 0 = January.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub mday: u8,
    /// Hour, 0..=23.
    pub hour: u8,
    /// Minute, 0..=59.
    pub minute: u8,
    /// Second, 0..=60.
    pub second: u8,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

// C's `void tzset(void)` from <time.h>. Neither std nor nix offers it, and
// the libc crate declares it for Windows only.
extern "C" {
    fn tzset();
}

/// Loads the time zone (`tzset()` and one `localtime_r()`). Call it before
/// `chroot()`: inside the jail `/etc/localtime` is usually absent.
#[allow(unsafe_code)]
pub fn init_timezone() {
    // SAFETY: the declaration above matches C's `void tzset(void)`: no
    // arguments, no result, so no pointer or lifetime can be wrong. tzset()
    // reads `TZ` and the zone files and sets libc's time-zone state under
    // glibc's own lock. Its one hazard, another thread changing the
    // environment at the same time, cannot happen here: the program only
    // changes its environment in `run::systemd_listeners`, on the main
    // thread, before `init_timezone` and before any other thread exists.
    unsafe { tzset() };
    let _ = LocalTime::from_system_time(SystemTime::now());
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

impl LocalTime {
    /// The current local time.
    pub fn now() -> LocalTime {
        LocalTime::from_system_time(SystemTime::now())
    }

    /// Converts with the C library's `localtime_r()` (falls back to UTC if
    /// that fails).
    #[allow(unsafe_code)]
    pub fn from_system_time(t: SystemTime) -> LocalTime {
        let seconds = unix_seconds(t);
        // time_t may be narrower than 64 bits on some targets.
        #[allow(irrefutable_let_patterns)]
        let Ok(clock) = nix::libc::time_t::try_from(seconds) else {
            return LocalTime::utc(seconds);
        };
        // SAFETY: `struct tm` is plain old data: integers and, on glibc, the
        // `tm_zone` pointer, for which null is a valid value (and which we
        // never read). All-zero bytes are therefore a valid `tm`.
        let mut tm: nix::libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: `&clock` and `&mut tm` point to live, properly aligned
        // locals of the types localtime_r() expects, valid for the whole
        // call; localtime_r() is the re-entrant variant: it writes only into
        // `tm`, keeps no reference to either, and may run on several
        // threads at once. Like tzset() it reads the environment, which no
        // other thread modifies (see `init_timezone`).
        let result = unsafe { nix::libc::localtime_r(&clock, &mut tm) };
        if result.is_null() {
            return LocalTime::utc(seconds);
        }
        let field = |v: nix::libc::c_int| u8::try_from(v).unwrap_or(0);
        LocalTime {
            year: tm.tm_year.saturating_add(1900),
            month: field(tm.tm_mon).min(11),
            mday: field(tm.tm_mday),
            hour: field(tm.tm_hour),
            minute: field(tm.tm_min),
            second: field(tm.tm_sec),
        }
    }

    /// The UTC calendar time of `seconds` since the epoch.
    pub fn utc(seconds: i64) -> LocalTime {
        let days = seconds.div_euclid(86_400);
        let secs = seconds.rem_euclid(86_400);
        // Civil-from-days (proleptic Gregorian), H. Hinnant's algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        let small = |v: i64| u8::try_from(v).unwrap_or(0);
        LocalTime {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: small(month - 1),
            mday: small(day),
            hour: small(secs / 3600),
            minute: small(secs / 60 % 60),
            second: small(secs % 60),
        }
    }

    /// English month abbreviation (C locale `%b`).
    pub fn month_name(&self) -> &'static str {
        MONTHS[usize::from(self.month.min(11))]
    }

    /// `Mmm dd hh:mm:ss` with the day space-padded: glibc syslog's
    /// `"%h %e %T"`, and also `ctime()` characters 4..19.
    pub fn syslog_stamp(&self) -> String {
        format!(
            "{} {:>2} {:02}:{:02}:{:02}",
            self.month_name(),
            self.mday,
            self.hour,
            self.minute,
            self.second
        )
    }

    /// `Mmm DD HH:MM:SS` with the day zero-padded: postlog's
    /// `"%b %d %H:%M:%S"`.
    pub fn postlog_stamp(&self) -> String {
        format!(
            "{} {:02} {:02}:{:02}:{:02}",
            self.month_name(),
            self.mday,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// Postfix's `printable(text, '?')` with UTF-8 disabled: every byte that is
/// not printable ASCII becomes `?`.
pub fn sanitize(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if (0x20..0x7f).contains(&b) {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

/// At most [`RECORD_LIMIT`] bytes of a sanitized (ASCII) text.
fn cut(text: &str) -> &str {
    &text[..text.len().min(RECORD_LIMIT)]
}

/// `<tag>/<process name>` as Postfix's `mail_task()` builds it (only the
/// part after the last `/` of `process_name` is used).
pub fn mail_task(tag: &str, process_name: &str) -> String {
    let name = match process_name.rfind('/') {
        Some(i) if i + 1 < process_name.len() => &process_name[i + 1..],
        _ => process_name,
    };
    format!("{tag}/{name}")
}

/// The log tag before the configuration is read: `$MAIL_LOGTAG` if set,
/// else Postfix's default `syslog_name` (`postfix`), then `/process_name`.
pub fn initial_tag<E>(env: E, process_name: &str) -> String
where
    E: Fn(&str) -> Option<std::ffi::OsString>,
{
    match env(ENV_MAIL_LOGTAG) {
        Some(tag) => mail_task(&tag.to_string_lossy(), process_name),
        None => mail_task("postfix", process_name),
    }
}

/// The log tag after the configuration is read: Postfix's
/// `mail_params_init()` exports `MAIL_LOGTAG=$syslog_name`, so the
/// configured `syslog_name` wins over an inherited `MAIL_LOGTAG`.
pub fn configured_tag(params: &Params) -> String {
    mail_task(&params.syslog_name, &params.process_name)
}

/// One syslog datagram, exactly as glibc's `syslog()` formats it with
/// `LOG_PID` (without the trailing NUL added for stream sockets).
pub fn format_syslog(
    facility: Facility,
    severity: Severity,
    time: &LocalTime,
    tag: &str,
    pid: u32,
    text: &str,
) -> Vec<u8> {
    let clean = sanitize(text);
    let mut out = String::with_capacity(clean.len().min(RECORD_LIMIT) + tag.len() + 40);
    let _ = write!(
        out,
        "<{}>{} {}[{}]: {}{}",
        facility.priority(severity),
        time.syslog_stamp(),
        tag,
        pid,
        severity.prefix(),
        cut(&clean)
    );
    out.into_bytes()
}

/// One postlogd record (`msg_logger.c`): local time, first label of
/// `hostname`, `tag[pid]: `, severity prefix, text.
pub fn format_postlog(
    severity: Severity,
    time: &LocalTime,
    hostname: &str,
    tag: &str,
    pid: u32,
    text: &str,
) -> Vec<u8> {
    let clean = sanitize(text);
    let host = hostname.split('.').next().unwrap_or("");
    let mut out = String::with_capacity(clean.len().min(RECORD_LIMIT) + tag.len() + 60);
    let _ = write!(
        out,
        "{} {} {}[{}]: {}{}",
        time.postlog_stamp(),
        host,
        tag,
        pid,
        severity.prefix(),
        cut(&clean)
    );
    out.into_bytes()
}

/// One `-V` stderr line (`msg_vstream.c`): `tag: prefix text\n`, not cut.
pub fn format_stderr(severity: Severity, tag: &str, text: &str) -> String {
    format!("{tag}: {}{}\n", severity.prefix(), sanitize(text))
}

/// Where master-mode records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The syslog socket (normally [`SYSLOG_PATH`]).
    Syslog {
        /// Socket path.
        path: PathBuf,
        /// Facility for the priority.
        facility: Facility,
    },
    /// postlogd's datagram socket.
    Postlog {
        /// Socket path.
        path: PathBuf,
        /// Host name; its first label is logged.
        hostname: String,
    },
    /// Nowhere (stderr copy only, if enabled).
    Discard,
}

impl Destination {
    /// The choice before the configuration is read: postlog when
    /// `POSTLOG_SERVICE` is set and non-empty (host `POSTLOG_HOSTNAME`,
    /// else `amnesiac`), else syslog with facility `mail`.
    pub fn from_env<E>(env: E) -> Destination
    where
        E: Fn(&str) -> Option<std::ffi::OsString>,
    {
        match env(ENV_POSTLOG_SERVICE).filter(|v| !v.is_empty()) {
            Some(path) => Destination::Postlog {
                path: PathBuf::from(path),
                hostname: env(ENV_POSTLOG_HOSTNAME)
                    .filter(|v| !v.is_empty())
                    .map(|v| v.to_string_lossy().into_owned())
                    .unwrap_or_else(|| UNKNOWN_HOSTNAME.to_string()),
            },
            None => Destination::Syslog {
                path: PathBuf::from(SYSLOG_PATH),
                facility: Facility::MAIL,
            },
        }
    }

    /// The choice after the configuration is read: postlog when
    /// `maillog_file` is non-empty (socket `$queue_directory/public/
    /// $postlog_service_name`, host `$myhostname`), else syslog with
    /// `$syslog_facility`. `maillog_file` was checked against
    /// `maillog_file_prefixes` by [`Params::from_config`].
    pub fn from_params<E>(params: &Params, env: E) -> Destination
    where
        E: Fn(&str) -> Option<std::ffi::OsString>,
    {
        if params.maillog_file.is_empty() {
            return Destination::Syslog {
                path: PathBuf::from(SYSLOG_PATH),
                facility: params.syslog_facility,
            };
        }
        let hostname = if !params.myhostname.is_empty() {
            params.myhostname.clone()
        } else {
            env(ENV_POSTLOG_HOSTNAME)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned())
                .unwrap_or_else(|| UNKNOWN_HOSTNAME.to_string())
        };
        Destination::Postlog {
            path: params.postlog_socket_path(),
            hostname,
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            Destination::Syslog { path, .. } | Destination::Postlog { path, .. } => Some(path),
            Destination::Discard => None,
        }
    }
}

/// Configuration of the master-mode logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// The program tag, e.g. `postfix/scache` (see [`mail_task`]).
    pub tag: String,
    /// Where records go.
    pub destination: Destination,
    /// `-V`: also write every record to stderr.
    pub stderr: bool,
    /// `-v` count: 1 enables `debug` records, 2 also `trace`.
    pub verbose: u32,
}

impl LogSettings {
    fn level_filter(&self) -> LevelFilter {
        match self.verbose {
            0 => LevelFilter::Info,
            1 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        }
    }
}

/// A connected log socket.
enum Socket {
    Datagram(UnixDatagram),
    Stream(UnixStream),
}

fn connect(destination: &Destination) -> Option<Socket> {
    let path = destination.path()?;
    let datagram = UnixDatagram::unbound().ok()?;
    match datagram.connect(path) {
        Ok(()) => Some(Socket::Datagram(datagram)),
        // glibc falls back to a stream socket when /dev/log is one.
        Err(e) if e.raw_os_error() == Some(nix::libc::EPROTOTYPE) => {
            if matches!(destination, Destination::Syslog { .. }) {
                UnixStream::connect(path).ok().map(Socket::Stream)
            } else {
                None
            }
        }
        Err(_) => None,
    }
}

fn send(socket: &mut Socket, bytes: &[u8]) -> io::Result<()> {
    match socket {
        Socket::Datagram(d) => d.send(bytes).map(|_| ()),
        Socket::Stream(s) => {
            s.write_all(bytes)?;
            s.write_all(&[0])
        }
    }
}

type Clock = Box<dyn Fn() -> LocalTime + Send>;

struct LoggerState {
    settings: LogSettings,
    socket: Option<Socket>,
    stderr: Box<dyn Write + Send>,
    clock: Clock,
}

impl LoggerState {
    fn emit(&mut self, severity: Severity, text: &str) {
        let pid = std::process::id();
        let time = (self.clock)();
        let record = match &self.settings.destination {
            Destination::Syslog { facility, .. } => Some(format_syslog(
                *facility,
                severity,
                &time,
                &self.settings.tag,
                pid,
                text,
            )),
            Destination::Postlog { hostname, .. } => Some(format_postlog(
                severity,
                &time,
                hostname,
                &self.settings.tag,
                pid,
                text,
            )),
            Destination::Discard => None,
        };
        if let Some(bytes) = record {
            self.deliver(&bytes);
        }
        if self.settings.stderr {
            let line = format_stderr(severity, &self.settings.tag, text);
            let _ = self.stderr.write_all(line.as_bytes());
            let _ = self.stderr.flush();
        }
    }

    /// Sends one record. Like glibc (and `msg_logger.c`), a missing socket
    /// is retried on every record; a syslog send error reconnects once.
    fn deliver(&mut self, bytes: &[u8]) {
        if self.socket.is_none() {
            self.socket = connect(&self.settings.destination);
        }
        let Some(socket) = self.socket.as_mut() else {
            return;
        };
        if send(socket, bytes).is_ok() {
            return;
        }
        if matches!(self.settings.destination, Destination::Syslog { .. }) {
            self.socket = connect(&self.settings.destination);
            if let Some(socket) = self.socket.as_mut() {
                if send(socket, bytes).is_err() {
                    self.socket = None;
                }
            }
        }
    }
}

/// The master-mode `log::Log` implementation (syslog or postlog, plus the
/// `-V` stderr copy).
pub struct PostfixLogger {
    state: Mutex<LoggerState>,
}

impl PostfixLogger {
    /// A logger with the given settings; its socket is connected at once.
    pub fn new(settings: LogSettings) -> PostfixLogger {
        PostfixLogger::with_parts(settings, Box::new(io::stderr()), Box::new(LocalTime::now))
    }

    /// A logger with its stderr stream and clock supplied (tests).
    pub fn with_parts(
        settings: LogSettings,
        stderr: Box<dyn Write + Send>,
        clock: Box<dyn Fn() -> LocalTime + Send>,
    ) -> PostfixLogger {
        let socket = connect(&settings.destination);
        PostfixLogger {
            state: Mutex::new(LoggerState {
                settings,
                socket,
                stderr,
                clock,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LoggerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies new settings. The socket is kept when the destination path
    /// is unchanged (it may be unreachable after a chroot), else replaced.
    pub fn reconfigure(&self, settings: LogSettings) {
        let mut state = self.state();
        let same_path = state.settings.destination.path() == settings.destination.path()
            && std::mem::discriminant(&state.settings.destination)
                == std::mem::discriminant(&settings.destination);
        if !same_path {
            state.socket = connect(&settings.destination);
        }
        state.settings = settings;
    }

    /// Logs one record with an explicit severity.
    pub fn emit(&self, severity: Severity, text: &str) {
        self.state().emit(severity, text);
    }

    /// The current level filter (from the verbosity).
    pub fn level_filter(&self) -> LevelFilter {
        self.state().settings.level_filter()
    }
}

impl Log for PostfixLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level_filter()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        self.emit(Severity::of_record(record), &text);
    }

    fn flush(&self) {
        let _ = self.state().stderr.flush();
    }
}

/// An error installing the global logger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoggingError {
    /// A logger was already installed (a different kind, or twice).
    AlreadyInstalled,
}

impl fmt::Display for LoggingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoggingError::AlreadyInstalled => f.write_str("logging is already initialized"),
        }
    }
}

impl std::error::Error for LoggingError {}

const MODE_NONE: u8 = 0;
const MODE_MASTER: u8 = 1;
const MODE_STANDALONE: u8 = 2;

static MODE: AtomicU8 = AtomicU8::new(MODE_NONE);
static MASTER_LOGGER: OnceLock<PostfixLogger> = OnceLock::new();

/// Installs the master-mode logger as the global `log` logger (connects
/// its socket now: call before `chroot()`).
pub fn init_master(settings: LogSettings) -> Result<(), LoggingError> {
    if MODE.load(Ordering::SeqCst) != MODE_NONE {
        return Err(LoggingError::AlreadyInstalled);
    }
    let logger = MASTER_LOGGER.get_or_init(|| PostfixLogger::new(settings));
    log::set_logger(logger).map_err(|_| LoggingError::AlreadyInstalled)?;
    log::set_max_level(logger.level_filter());
    MODE.store(MODE_MASTER, Ordering::SeqCst);
    Ok(())
}

/// Changes the settings of the installed master-mode logger (after the
/// configuration is read: tag from `syslog_name`, postlog or syslog,
/// facility). Does nothing in other modes.
pub fn reconfigure_master(settings: LogSettings) {
    if let Some(logger) = MASTER_LOGGER.get() {
        logger.reconfigure(settings);
        log::set_max_level(logger.level_filter());
    }
}

/// Installs `env_logger` on stderr for standalone mode: `RUST_LOG` filters
/// (default `info`; `verbose` raises the default to debug/trace). Lines
/// read `Mmm dd hh:mm:ss tag[pid]: prefix text`, the same texts as under
/// master.
pub fn init_standalone(tag: &str, verbose: u32) -> Result<(), LoggingError> {
    if MODE.load(Ordering::SeqCst) != MODE_NONE {
        return Err(LoggingError::AlreadyInstalled);
    }
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match verbose {
        0 => {}
        1 => {
            builder.filter_level(LevelFilter::Debug);
        }
        _ => {
            builder.filter_level(LevelFilter::Trace);
        }
    }
    let tag = tag.to_string();
    builder
        .target(env_logger::Target::Stderr)
        .format(move |buf, record| {
            let severity = Severity::of_record(record);
            writeln!(
                buf,
                "{} {}[{}]: {}{}",
                LocalTime::now().syslog_stamp(),
                tag,
                std::process::id(),
                severity.prefix(),
                sanitize(&record.args().to_string())
            )
        });
    builder
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    MODE.store(MODE_STANDALONE, Ordering::SeqCst);
    Ok(())
}

/// Logs `fatal: msg` and exits with status 1, like Postfix's `msg_fatal()`
/// (which also sleeps one second first under master, to slow down a
/// respawn loop; we do the same in master mode). Without an installed
/// logger, or when its filter drops the record, the message goes to stderr
/// as `scache: fatal: msg`.
pub fn fatal(msg: impl fmt::Display) -> ! {
    let text = msg.to_string();
    let mode = MODE.load(Ordering::SeqCst);
    let metadata = Metadata::builder()
        .target(FATAL_TARGET)
        .level(Level::Error)
        .build();
    if mode == MODE_NONE || !log::logger().enabled(&metadata) {
        // No logger, or one filtering fatal records out (RUST_LOG=off):
        // a fatal error must still be seen.
        eprintln!("scache: fatal: {}", sanitize(&text));
    } else {
        log::logger().log(
            &Record::builder()
                .target(FATAL_TARGET)
                .level(Level::Error)
                .args(format_args!("{text}"))
                .build(),
        );
        log::logger().flush();
    }
    if mode == MODE_MASTER {
        std::thread::sleep(Duration::from_secs(1));
    }
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const T: LocalTime = LocalTime {
        year: 2026,
        month: 10,
        mday: 8,
        hour: 9,
        minute: 3,
        second: 7,
    };

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("scache-log-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn receiver(dir: &Path) -> (UnixDatagram, PathBuf) {
        let path = dir.join("log");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        (sock, path)
    }

    fn recv(sock: &UnixDatagram) -> Vec<u8> {
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).unwrap();
        buf.truncate(n);
        buf
    }

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logger(destination: Destination, stderr: bool, verbose: u32) -> (PostfixLogger, Capture) {
        let capture = Capture::default();
        let logger = PostfixLogger::with_parts(
            LogSettings {
                tag: "postfix/scache".into(),
                destination,
                stderr,
                verbose,
            },
            Box::new(capture.clone()),
            Box::new(|| T),
        );
        (logger, capture)
    }

    fn log_at(logger: &PostfixLogger, level: Level, target: &str, text: &str) {
        logger.log(
            &Record::builder()
                .level(level)
                .target(target)
                .args(format_args!("{text}"))
                .build(),
        );
    }

    /// An environment, as `initial_tag` and `Destination::from_env` read it.
    type Env = fn(&str) -> Option<std::ffi::OsString>;

    /// A logger to the syslog socket `path` with facility `mail`, no stderr
    /// copy and no `-v`.
    fn syslog_logger(path: &Path) -> (PostfixLogger, Capture) {
        let destination = Destination::Syslog {
            path: path.to_path_buf(),
            facility: Facility::MAIL,
        };
        logger(destination, false, 0)
    }

    /// A record to log (level, target, text) and the datagram it must
    /// produce, with `{pid}` standing for our process ID; `None` when the
    /// logger's level filter drops it.
    type RecordCase<'a> = (Level, &'a str, &'a str, Option<&'a str>);

    /// Logs each case's record and checks the next datagram on `sock`.
    fn check_records(logger: &PostfixLogger, sock: &UnixDatagram, cases: &[RecordCase<'_>]) {
        let pid = std::process::id().to_string();
        for (level, target, text, want) in cases {
            log_at(logger, *level, target, text);
            if let Some(want) = want {
                let want = want.replace("{pid}", &pid);
                assert_eq!(
                    String::from_utf8(recv(sock)).as_deref(),
                    Ok(want.as_str()),
                    "{level} {target} {text:?}"
                );
            }
        }
    }

    #[test]
    fn stamps() {
        assert_eq!(T.syslog_stamp(), "Nov  8 09:03:07");
        assert_eq!(T.postlog_stamp(), "Nov 08 09:03:07");
        let t = LocalTime { mday: 28, ..T };
        assert_eq!(t.syslog_stamp(), "Nov 28 09:03:07");
    }

    #[test]
    fn utc_conversion() {
        let cases = [
            (
                0,
                LocalTime {
                    year: 1970,
                    month: 0,
                    mday: 1,
                    hour: 0,
                    minute: 0,
                    second: 0,
                },
            ),
            // 2026-11-28 10:57:47 UTC
            (
                1_795_863_467,
                LocalTime {
                    year: 2026,
                    month: 10,
                    mday: 28,
                    hour: 10,
                    minute: 57,
                    second: 47,
                },
            ),
        ];
        for (seconds, want) in cases {
            assert_eq!(LocalTime::utc(seconds), want, "utc({seconds})");
        }
        assert_eq!(LocalTime::utc(-1).year, 1969);
    }

    #[test]
    fn local_time_matches_utc_when_tz_is_utc() {
        // Only meaningful where the machine's zone is UTC, as on CI.
        if std::env::var_os("TZ").is_none()
            && std::fs::read_link("/etc/localtime")
                .map(|p| p.ends_with("UTC") || p.ends_with("Etc/UTC"))
                .unwrap_or(false)
        {
            let t = UNIX_EPOCH + Duration::from_secs(1_795_863_467);
            assert_eq!(
                LocalTime::from_system_time(t),
                LocalTime::utc(1_795_863_467)
            );
        }
    }

    #[test]
    fn priorities() {
        // Facility names are tested with Facility, in config/params.rs.
        let kern = Facility::from_name("kern").unwrap();
        let local0 = Facility::from_name("local0").unwrap();
        let cases = [
            (Facility::MAIL, Severity::Info, 22),
            (Facility::MAIL, Severity::Warning, 20),
            (Facility::MAIL, Severity::Error, 19),
            (Facility::MAIL, Severity::Fatal, 18),
            (Facility::MAIL, Severity::Panic, 18),
            (kern, Severity::Info, 22),
            (local0, Severity::Info, 134),
        ];
        for (facility, severity, want) in cases {
            assert_eq!(
                facility.priority(severity),
                want,
                "{facility:?} {severity:?}"
            );
        }
    }

    #[test]
    fn syslog_format_matches_glibc() {
        // Captured from Debian's scache: <18>Nov 28 10:57:47 postfix/scache[8290]: fatal: ...
        let t = LocalTime {
            mday: 28,
            hour: 10,
            minute: 57,
            second: 47,
            ..T
        };
        // (severity, time, pid, text, datagram), facility mail, tag postfix/scache
        let cases: &[(Severity, LocalTime, u32, &str, &str)] = &[
            (
                Severity::Fatal,
                t,
                8290,
                "open /tmp/pfx2/main.cf: No such file or directory",
                "<18>Nov 28 10:57:47 postfix/scache[8290]: fatal: open /tmp/pfx2/main.cf: No such file or directory",
            ),
            (
                Severity::Info,
                T,
                1,
                "x",
                "<22>Nov  8 09:03:07 postfix/scache[1]: x",
            ),
        ];
        for (severity, time, pid, text, want) in cases {
            assert_eq!(
                format_syslog(
                    Facility::MAIL,
                    *severity,
                    time,
                    "postfix/scache",
                    *pid,
                    text
                ),
                want.as_bytes(),
                "{severity:?} {text:?}"
            );
        }
    }

    #[test]
    fn sanitize_and_cut() {
        assert_eq!(sanitize("a\tb\u{1}c\u{e9}d"), "a?b?c??d");
        let long = "x".repeat(2500);
        let rec = format_syslog(Facility::MAIL, Severity::Warning, &T, "t", 1, &long);
        let prefix = b"<20>Nov  8 09:03:07 t[1]: warning: ";
        assert_eq!(rec.len(), prefix.len() + 2000);
        assert!(rec.starts_with(prefix));
        let rec = format_postlog(Severity::Info, &T, "h", "t", 1, &long);
        assert_eq!(rec.len(), "Nov 08 09:03:07 h t[1]: ".len() + 2000);
        // stderr is not cut
        assert_eq!(
            format_stderr(Severity::Info, "t", &long).len(),
            3 + 2500 + 1
        );
    }

    #[test]
    fn postlog_format() {
        // (severity, host name, text, record), tag postfix/scache, pid 42
        let cases: &[(Severity, &str, &str, &str)] = &[
            (
                Severity::Warning,
                "mail.example.com",
                "hello",
                "Nov 08 09:03:07 mail postfix/scache[42]: warning: hello",
            ),
            (
                Severity::Info,
                "vm",
                "statistics: x",
                "Nov 08 09:03:07 vm postfix/scache[42]: statistics: x",
            ),
        ];
        for (severity, hostname, text, want) in cases {
            assert_eq!(
                format_postlog(*severity, &T, hostname, "postfix/scache", 42, text),
                want.as_bytes(),
                "{severity:?} {hostname} {text:?}"
            );
        }
    }

    #[test]
    fn stderr_format() {
        let cases = [
            (
                Severity::Fatal,
                "invalid option: x",
                "postfix/scache: fatal: invalid option: x\n",
            ),
            (Severity::Info, "hi", "postfix/scache: hi\n"),
        ];
        for (severity, text, want) in cases {
            assert_eq!(
                format_stderr(severity, "postfix/scache", text),
                want,
                "{severity:?} {text:?}"
            );
        }
    }

    #[test]
    fn tags() {
        for (process_name, want) in [
            ("scache", "postfix/scache"),
            ("/usr/lib/postfix/sbin/scache", "postfix/scache"),
        ] {
            assert_eq!(mail_task("postfix", process_name), want, "{process_name}");
        }
        let cases: &[(Env, &str, &str)] = &[
            (|_| None, "scache", "postfix/scache"),
            (
                |n| (n == "MAIL_LOGTAG").then(|| "postfix-b".into()),
                "scache-rs",
                "postfix-b/scache-rs",
            ),
        ];
        for (env, process_name, want) in cases {
            assert_eq!(initial_tag(env, process_name), *want, "{process_name}");
        }
    }

    #[test]
    fn destination_from_env() {
        let cases: &[(&str, Env, Destination)] = &[
            (
                "nothing set",
                |_| None,
                Destination::Syslog {
                    path: PathBuf::from("/dev/log"),
                    facility: Facility::MAIL,
                },
            ),
            (
                "POSTLOG_SERVICE",
                |n| match n {
                    "POSTLOG_SERVICE" => Some("/var/spool/postfix/public/postlog".into()),
                    _ => None,
                },
                Destination::Postlog {
                    path: PathBuf::from("/var/spool/postfix/public/postlog"),
                    hostname: "amnesiac".into(),
                },
            ),
        ];
        for (what, env, want) in cases {
            assert_eq!(&Destination::from_env(env), want, "{what}");
        }
        let env = |n: &str| match n {
            "POSTLOG_SERVICE" => Some("".into()),
            _ => None,
        };
        assert!(matches!(
            Destination::from_env(env),
            Destination::Syslog { .. }
        ));
    }

    #[test]
    fn syslog_datagrams_exact_bytes() {
        let dir = temp_dir("syslog");
        let (sock, path) = receiver(&dir);
        let (logger, stderr) = syslog_logger(&path);
        check_records(
            &logger,
            &sock,
            &[
                (
                    Level::Info,
                    "x",
                    "statistics: start interval Nov  8 09:03:07",
                    Some("<22>Nov  8 09:03:07 postfix/scache[{pid}]: statistics: start interval Nov  8 09:03:07"),
                ),
                (
                    Level::Warn,
                    "x",
                    "unrecognized request: \"x\", ignored",
                    Some("<20>Nov  8 09:03:07 postfix/scache[{pid}]: warning: unrecognized request: \"x\", ignored"),
                ),
                (
                    Level::Error,
                    "x",
                    "oops",
                    Some("<19>Nov  8 09:03:07 postfix/scache[{pid}]: error: oops"),
                ),
                (
                    Level::Error,
                    FATAL_TARGET,
                    "watchdog timeout",
                    Some("<18>Nov  8 09:03:07 postfix/scache[{pid}]: fatal: watchdog timeout"),
                ),
                (
                    Level::Error,
                    PANIC_TARGET,
                    "bug",
                    Some("<18>Nov  8 09:03:07 postfix/scache[{pid}]: panic: bug"),
                ),
                // Debug records need -v.
                (Level::Debug, "x", "hidden", None),
                (
                    Level::Info,
                    "x",
                    "shown",
                    Some("<22>Nov  8 09:03:07 postfix/scache[{pid}]: shown"),
                ),
            ],
        );
        assert!(stderr.0.lock().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn verbose_and_stderr_copy() {
        let dir = temp_dir("verbose");
        let (sock, path) = receiver(&dir);
        let (logger, stderr) = logger(
            Destination::Syslog {
                path,
                facility: Facility::from_name("local3").unwrap(),
            },
            true,
            1,
        );
        check_records(
            &logger,
            &sock,
            &[
                (
                    Level::Debug,
                    "x",
                    "daemon started",
                    Some("<158>Nov  8 09:03:07 postfix/scache[{pid}]: daemon started"),
                ),
                (Level::Trace, "x", "not at -v", None),
                (
                    Level::Warn,
                    "x",
                    "w",
                    Some("<156>Nov  8 09:03:07 postfix/scache[{pid}]: warning: w"),
                ),
            ],
        );
        assert_eq!(
            String::from_utf8(stderr.0.lock().unwrap().clone()).unwrap(),
            "postfix/scache: daemon started\npostfix/scache: warning: w\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn postlog_datagrams_exact_bytes() {
        let dir = temp_dir("postlog");
        let (sock, path) = receiver(&dir);
        let (logger, _) = logger(
            Destination::Postlog {
                path,
                hostname: "vm.localdomain".into(),
            },
            false,
            0,
        );
        check_records(
            &logger,
            &sock,
            &[
                (
                    Level::Info,
                    "x",
                    "statistics: domain lookup hits=1 miss=1 success=50%",
                    Some("Nov 08 09:03:07 vm postfix/scache[{pid}]: statistics: domain lookup hits=1 miss=1 success=50%"),
                ),
                (
                    Level::Error,
                    FATAL_TARGET,
                    "x\ny",
                    Some("Nov 08 09:03:07 vm postfix/scache[{pid}]: fatal: x?y"),
                ),
            ],
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn absent_socket_drops_then_connects_when_it_appears() {
        let dir = temp_dir("absent");
        let path = dir.join("log");
        let (logger, _) = syslog_logger(&path);
        log_at(&logger, Level::Info, "x", "dropped");
        let (sock, _) = receiver(&dir);
        log_at(&logger, Level::Info, "x", "delivered");
        let got = recv(&sock);
        assert!(
            got.ends_with(b"]: delivered"),
            "{}",
            String::from_utf8_lossy(&got)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn syslog_reconnects_after_restart() {
        let dir = temp_dir("restart");
        let (sock, path) = receiver(&dir);
        let (logger, _) = syslog_logger(&path);
        log_at(&logger, Level::Info, "x", "one");
        assert!(recv(&sock).ends_with(b"one"));
        drop(sock);
        std::fs::remove_file(&path).unwrap();
        let (sock, _) = receiver(&dir);
        log_at(&logger, Level::Info, "x", "two");
        assert!(recv(&sock).ends_with(b"two"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stream_syslog_socket_gets_nul_terminated_records() {
        use std::io::Read;
        use std::os::unix::net::UnixListener;
        let dir = temp_dir("stream");
        let path = dir.join("log");
        let listener = UnixListener::bind(&path).unwrap();
        let (logger, _) = syslog_logger(&path);
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        log_at(&logger, Level::Info, "x", "s");
        let want = format!(
            "<22>Nov  8 09:03:07 postfix/scache[{}]: s\0",
            std::process::id()
        );
        let mut got = vec![0u8; want.len()];
        conn.read_exact(&mut got).unwrap();
        assert_eq!(got, want.into_bytes());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reconfigure_keeps_or_switches_socket() {
        let dir = temp_dir("reconf");
        let (sock, path) = receiver(&dir);
        let (logger, _) = syslog_logger(&path);
        // Same path: keep the connected socket even if the path vanishes
        // (as after a chroot).
        let renamed = dir.join("moved");
        std::fs::rename(&path, &renamed).unwrap();
        logger.reconfigure(LogSettings {
            tag: "postfix-b/scache".into(),
            destination: Destination::Syslog {
                path: path.clone(),
                facility: Facility::MAIL,
            },
            stderr: false,
            verbose: 2,
        });
        assert_eq!(logger.level_filter(), LevelFilter::Trace);
        log_at(&logger, Level::Trace, "x", "kept");
        assert_eq!(
            recv(&sock),
            format!(
                "<22>Nov  8 09:03:07 postfix-b/scache[{}]: kept",
                std::process::id()
            )
            .into_bytes()
        );
        // Switch to postlog.
        let (postlog, postlog_path) = {
            let p = dir.join("postlog");
            let s = UnixDatagram::bind(&p).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            (s, p)
        };
        logger.reconfigure(LogSettings {
            tag: "postfix/scache".into(),
            destination: Destination::Postlog {
                path: postlog_path,
                hostname: "h.example".into(),
            },
            stderr: false,
            verbose: 0,
        });
        log_at(&logger, Level::Info, "x", "to postlog");
        assert_eq!(
            recv(&postlog),
            format!(
                "Nov 08 09:03:07 h postfix/scache[{}]: to postlog",
                std::process::id()
            )
            .into_bytes()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn discard_destination_only_writes_stderr() {
        let (logger, stderr) = logger(Destination::Discard, true, 0);
        log_at(&logger, Level::Info, "x", "only here");
        assert_eq!(
            String::from_utf8(stderr.0.lock().unwrap().clone()).unwrap(),
            "postfix/scache: only here\n"
        );
    }
}
