//! Command-line parsing for the `scache` daemon.
//!
//! The binary starts in one of three ways, decided from the arguments alone
//! (see [`parse`]):
//!
//! * **Master mode**: started by Postfix's `master(8)` with the options of
//!   Postfix's multi-server skeleton (`-c -d -D -i -l -m -n -o -s -S -t -u -v
//!   -V -z`), parsed with POSIX `getopt` semantics exactly as
//!   `multi_server.c` does (`+` mode: options stop at the first non-option,
//!   clustered flags, attached or separate option arguments, `--`).
//! * **Standalone mode**: `scache --listen PATH ...` with GNU-style long
//!   options; chosen as soon as any `--long` option is present.
//! * **Statistics client**: `scache stats [--socket PATH] [--format FMT]`,
//!   chosen when the first argument is the word `stats`, and `scache list
//!   [--socket PATH] [--format FMT] [--limit N]` when it is `list`.
//!
//! Error texts of master mode are Postfix's own fatal messages, so that a
//! misconfigured `master.cf` line logs the same lines as the stock daemon.

#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

pub use crate::config::Override;
use crate::config::{split_nameval, NameValueError};

/// Socket path used by standalone mode when `--listen` is not given, and by
/// `scache stats` when `--socket` is not given: `scache.sock` in the current
/// directory.
pub const DEFAULT_LISTEN_PATH: &str = "scache.sock";

/// Permission bits given to the standalone listening socket when
/// `--socket-mode` is not given: owner read/write only (`0600`), so that only
/// the user running the daemon can hand it descriptors.
pub const DEFAULT_SOCKET_MODE: u32 = 0o600;

/// The option string of Postfix's multi-server skeleton (`multi_server.c`).
pub const MASTER_OPTSTRING: &str = "cdDi:lm:n:o:s:St:uvVz";

/// Name of the environment variable that makes a Postfix daemon verbose.
pub const ENV_MAIL_VERBOSE: &str = "MAIL_VERBOSE";

/// Name of the environment variable that makes a Postfix daemon run
/// `debugger_command` on itself.
pub const ENV_MAIL_DEBUG: &str = "MAIL_DEBUG";

/// What the command line asks the program to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run as a daemon under Postfix's `master(8)`.
    Master(MasterOptions),
    /// Run as a daemon on a socket of our own.
    Standalone(StandaloneOptions),
    /// Query a running daemon for its statistics.
    Stats(StatsOptions),
    /// Ask a running daemon what it caches.
    List(ListOptions),
    /// Print [`help_text`] and exit successfully.
    Help,
    /// Print [`version_text`] and exit successfully.
    Version,
    /// Print every configuration parameter we read with its default value,
    /// `postconf -d` style, and exit successfully.
    PrintDefaults,
}

/// Transport types accepted by the multi-server skeleton (`-t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A UNIX-domain stream listener (`unix`), the normal case for scache.
    Unix,
    /// A TCP listener (`inet`).
    Inet,
    /// A UNIX-domain listener whose clients pass a connection (`pass`).
    Pass,
}

impl Transport {
    /// Looks up a `-t` value, case-insensitively like Postfix (`strcasecmp`).
    pub fn from_name(name: &str) -> Option<Transport> {
        if name.eq_ignore_ascii_case("unix") {
            Some(Transport::Unix)
        } else if name.eq_ignore_ascii_case("inet") {
            Some(Transport::Inet)
        } else if name.eq_ignore_ascii_case("pass") {
            Some(Transport::Pass)
        } else {
            None
        }
    }

    /// The canonical lower-case name (`unix`, `inet`, `pass`).
    pub fn name(self) -> &'static str {
        match self {
            Transport::Unix => "unix",
            Transport::Inet => "inet",
            Transport::Pass => "pass",
        }
    }
}

/// Options given by `master(8)` (Postfix's multi-server skeleton options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterOptions {
    /// `basename(argv[0])`: the read-only `process_name` parameter and the
    /// second half of the log tag (`postfix/<process_name>`).
    pub process_name: String,
    /// `-n name`, else [`process_name`](Self::process_name): the read-only
    /// `service_name` parameter and the name used in fatal messages.
    pub service_name: String,
    /// `-c`: chroot to `$queue_directory`.
    pub chroot: bool,
    /// `false` with `-d` ("not daemon mode"). In daemon mode (the default)
    /// a standard input that is a terminal is fatal ("do not run this
    /// command by hand"), as in Postfix; `-d` (or `-S`) allows it.
    pub daemon_mode: bool,
    /// `-D` or environment `MAIL_DEBUG`: run `debugger_command` on ourself.
    pub debug_me: bool,
    /// `-l`: master says the process limit is 1.
    pub process_limit_one: bool,
    /// `-z`: master says the process limit is 0 (unlimited).
    pub process_limit_zero: bool,
    /// `-o name=value`, `-i max_idle`, `-m max_use` in command-line order.
    pub overrides: Vec<Override>,
    /// `-s n`: number of listening descriptors starting at fd 6 (default 1).
    pub socket_count: u32,
    /// `-S`: one-shot mode, the client connection is on stdin/stdout.
    pub stdin_stream: bool,
    /// `-t type`, the raw value (validated by [`MasterOptions::validate`]).
    pub transport: Option<String>,
    /// `-u`: drop privileges to `$mail_owner`.
    pub drop_privileges: bool,
    /// Verbosity: the number of `-v`, plus one if `MAIL_VERBOSE` is set.
    pub verbose: u32,
    /// `-V`: also log to stderr.
    pub log_to_stderr: bool,
}

impl MasterOptions {
    /// The checks `multi_server_main()` makes *after* reading the
    /// configuration: scache is a "solitary" service (needs `-l`, unless
    /// `-S`), and without `-S` a supported `-t` type is required.
    ///
    /// Returns the transport (`None` in `-S` mode, where `-t` is ignored).
    /// Call it after the configuration is loaded so that errors come out in
    /// the same order as Postfix's.
    pub fn validate(&self) -> Result<Option<Transport>, OptionsError> {
        if !self.stdin_stream && !self.process_limit_one {
            return Err(OptionsError::ProcessLimit {
                service: self.service_name.clone(),
            });
        }
        if self.stdin_stream {
            return Ok(None);
        }
        match &self.transport {
            None => Err(OptionsError::NoTransport),
            Some(name) => match Transport::from_name(name) {
                Some(t) => Ok(Some(t)),
                None => Err(OptionsError::UnsupportedTransport(name.clone())),
            },
        }
    }
}

/// Options of standalone mode (`scache --listen PATH ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneOptions {
    /// `basename(argv[0])`, used as the log tag.
    pub process_name: String,
    /// `--listen PATH`: the UNIX-domain socket to create
    /// (default [`DEFAULT_LISTEN_PATH`]).
    pub listen: PathBuf,
    /// `--config-dir DIR`: read `DIR/main.cf`. Without it no `main.cf` is
    /// read unless `MAIL_CONFIG` is set (the caller decides).
    pub config_dir: Option<PathBuf>,
    /// `-o name=value` overrides in command-line order.
    pub overrides: Vec<Override>,
    /// `--socket-mode OCTAL`: permission bits of the listening socket
    /// (default [`DEFAULT_SOCKET_MODE`]).
    pub socket_mode: u32,
    /// Verbosity: the number of `-v`/`--verbose`.
    pub verbose: u32,
}

/// Output formats of `scache stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsFormat {
    /// Human-readable aligned table (the default).
    Table,
    /// One JSON object.
    Json,
    /// Prometheus text exposition format.
    Prometheus,
}

impl StatsFormat {
    /// Looks up a `--format` value (`table`, `json`, `prometheus`).
    pub fn from_name(name: &str) -> Option<StatsFormat> {
        match name {
            "table" => Some(StatsFormat::Table),
            "json" => Some(StatsFormat::Json),
            "prometheus" => Some(StatsFormat::Prometheus),
            _ => None,
        }
    }
}

/// Options of the `scache stats` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsOptions {
    /// `--socket PATH`: the daemon's socket (default [`DEFAULT_LISTEN_PATH`]).
    pub socket: PathBuf,
    /// `--format FMT` (default [`StatsFormat::Table`]).
    pub format: StatsFormat,
}

/// Output formats of `scache list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// Aligned columns for a person (the default).
    Table,
    /// One JSON object.
    Json,
}

/// Options of the `scache list` subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// `--socket PATH`: the daemon's socket (default [`DEFAULT_LISTEN_PATH`]).
    pub socket: PathBuf,
    /// `--format FMT` (default [`ListFormat::Table`]).
    pub format: ListFormat,
    /// `--limit N`: at most N endpoints, N destinations and N bindings per
    /// destination (default [`DEFAULT_LIST_LIMIT`]).
    pub limit: u32,
}

/// How many endpoints (and destinations, and bindings per destination)
/// `scache list` shows without `--limit`.
pub const DEFAULT_LIST_LIMIT: u32 = 50;

/// A command-line error. In master mode the [`Display`](fmt::Display) text
/// is Postfix's fatal message for the same mistake (log it with `fatal: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionsError {
    /// Unknown master-mode option letter, or one whose argument is missing
    /// (`getopt` reports both the same way): "invalid option: x".
    InvalidOption(u8),
    /// A `-o` argument that is not `name=value`.
    BadOverride {
        /// The `-o` argument as given.
        arg: String,
        /// What is wrong with it.
        reason: NameValueError,
    },
    /// `-s` with a count that is not a positive number.
    InvalidSocketCount(String),
    /// A positional argument (scache takes none).
    UnexpectedArgument(String),
    /// Neither `-t` nor `-S`.
    NoTransport,
    /// A `-t` type other than `unix`, `inet`, `pass`.
    UnsupportedTransport(String),
    /// `-l` missing (and not `-S`): scache must run as a single process.
    ProcessLimit {
        /// The service name (`-n`, else the process name).
        service: String,
    },
    /// Standalone mode: a long option we do not know.
    UnknownLongOption(String),
    /// Standalone mode: a short option letter we do not know.
    UnknownShortOption(char),
    /// Standalone mode: an option that needs a value got none.
    MissingValue(String),
    /// Standalone mode: a flag option was given `=value`.
    UnexpectedValue(String),
    /// `--socket-mode` is not an octal mode between 0 and 0777.
    BadSocketMode(String),
    /// `--format` is not one of `table`, `json`, `prometheus` (`table`,
    /// `json` for `list`).
    BadFormat(String),
    /// `--limit` is not a number from 0 to 100000.
    BadLimit(String),
}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionsError::InvalidOption(c) => {
                let shown = if c.is_ascii() { char::from(*c) } else { '?' };
                write!(f, "invalid option: {shown}")
            }
            OptionsError::BadOverride { arg, reason } => {
                write!(f, "invalid \"-o {arg}\" option value: {reason}")
            }
            OptionsError::InvalidSocketCount(v) => write!(f, "invalid socket_count: {v}"),
            OptionsError::UnexpectedArgument(v) => {
                write!(f, "unexpected command-line argument: {v}")
            }
            OptionsError::NoTransport => f.write_str("no transport type specified"),
            OptionsError::UnsupportedTransport(v) => {
                write!(f, "unsupported transport type: {v}")
            }
            OptionsError::ProcessLimit { service } => {
                write!(f, "service {service} requires a process limit of 1")
            }
            OptionsError::UnknownLongOption(o) => {
                write!(f, "unrecognized option '{o}' (try --help)")
            }
            OptionsError::UnknownShortOption(c) => {
                write!(f, "invalid option -- '{c}' (try --help)")
            }
            OptionsError::MissingValue(o) => write!(f, "option '{o}' requires an argument"),
            OptionsError::UnexpectedValue(o) => {
                write!(f, "option '{o}' doesn't allow an argument")
            }
            OptionsError::BadSocketMode(v) => write!(
                f,
                "invalid --socket-mode value '{v}': expected an octal mode such as 0600"
            ),
            OptionsError::BadFormat(v) => write!(
                f,
                "invalid --format value '{v}': expected table, json or prometheus \
                 (table or json for list)"
            ),
            OptionsError::BadLimit(v) => write!(
                f,
                "invalid --limit value '{v}': expected a number from 0 to 100000"
            ),
        }
    }
}

impl std::error::Error for OptionsError {}

/// Parses the process's command line (`std::env::args_os()`, including
/// `argv[0]`) with the process environment.
pub fn parse<I>(args: I) -> Result<Command, OptionsError>
where
    I: IntoIterator<Item = OsString>,
{
    parse_with_env(args, |name| std::env::var_os(name))
}

/// Like [`parse`], with the environment supplied by `env` (for tests).
///
/// Mode selection: a first argument `stats` selects the statistics client;
/// a first argument `-h` prints the help; no argument at all selects
/// standalone mode on [`DEFAULT_LISTEN_PATH`]; otherwise any `--long`
/// option (before a bare `--`) selects standalone mode; otherwise master
/// mode.
pub fn parse_with_env<I, E>(args: I, env: E) -> Result<Command, OptionsError>
where
    I: IntoIterator<Item = OsString>,
    E: Fn(&str) -> Option<OsString>,
{
    let args: Vec<OsString> = args.into_iter().collect();
    let process_name = args
        .first()
        .map(|a| basename(a))
        .unwrap_or_else(|| "scache".to_string());
    let rest: &[OsString] = args.get(1..).unwrap_or(&[]);

    match rest.first().map(|a| a.as_bytes()) {
        Some(b"stats") => return parse_stats(&rest[1..]),
        Some(b"list") => return parse_list(&rest[1..]),
        // A person asking for help: master(8) always passes its own
        // options first (`-l` or `-z`, `-n`, `-t` ...), so `-h` can only
        // come first from a command line typed by hand. Elsewhere it stays
        // what it is for Postfix's skeleton: an invalid option.
        Some(b"-h") => return Ok(Command::Help),
        // No arguments at all: master(8) never starts a daemon so, so a
        // person is running it: standalone on the default socket.
        None => {
            return Ok(Command::Standalone(StandaloneOptions {
                process_name,
                listen: PathBuf::from(DEFAULT_LISTEN_PATH),
                config_dir: None,
                overrides: Vec::new(),
                socket_mode: DEFAULT_SOCKET_MODE,
                verbose: 0,
            }))
        }
        _ => {}
    }
    let standalone = rest
        .iter()
        .take_while(|a| a.as_bytes() != b"--")
        .any(|a| a.as_bytes().starts_with(b"--"));
    if standalone {
        parse_standalone(process_name, rest)
    } else {
        parse_master(process_name, rest, &env).map(Command::Master)
    }
}

/// `basename(argv[0])` as Postfix computes it: the text after the last `/`.
fn basename(arg0: &OsStr) -> String {
    let bytes = arg0.as_bytes();
    let base = match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => &bytes[i + 1..],
        None => bytes,
    };
    String::from_utf8_lossy(base).into_owned()
}

fn lossy(arg: &OsStr) -> String {
    arg.to_string_lossy().into_owned()
}

/// C `atoi()`: optional leading white space and sign, then digits; anything
/// after them is ignored; no digits gives 0.
fn atoi(text: &str) -> i64 {
    let t = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut value: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if negative {
        -value
    } else {
        value
    }
}

fn parse_override(arg: &str) -> Result<Override, OptionsError> {
    match split_nameval(arg) {
        Ok((name, value)) => Ok(Override {
            name: name.to_string(),
            value: value.to_string(),
        }),
        Err(reason) => Err(OptionsError::BadOverride {
            arg: arg.to_string(),
            reason,
        }),
    }
}

/// POSIX `getopt(argc, argv, "+cdDi:lm:n:o:s:St:uvVz")` as used by Postfix.
fn parse_master<E>(
    process_name: String,
    args: &[OsString],
    env: &E,
) -> Result<MasterOptions, OptionsError>
where
    E: Fn(&str) -> Option<OsString>,
{
    let mut opts = MasterOptions {
        service_name: process_name.clone(),
        process_name,
        chroot: false,
        daemon_mode: true,
        debug_me: env(ENV_MAIL_DEBUG).is_some(),
        process_limit_one: false,
        process_limit_zero: false,
        overrides: Vec::new(),
        socket_count: 1,
        stdin_stream: false,
        transport: None,
        drop_privileges: false,
        verbose: u32::from(env(ENV_MAIL_VERBOSE).is_some()),
        log_to_stderr: false,
    };
    let optstring = MASTER_OPTSTRING.as_bytes();

    let mut index = 0;
    while index < args.len() {
        let arg = args[index].as_bytes();
        if arg == b"--" {
            index += 1;
            break;
        }
        if arg.len() < 2 || arg[0] != b'-' {
            break;
        }
        index += 1;
        let mut pos = 1;
        while pos < arg.len() {
            let letter = arg[pos];
            pos += 1;
            let spec = optstring
                .iter()
                .position(|&c| c == letter && c != b':')
                .ok_or(OptionsError::InvalidOption(letter))?;
            let takes_value = optstring.get(spec + 1) == Some(&b':');
            let value = if takes_value {
                let value = if pos < arg.len() {
                    lossy(OsStr::from_bytes(&arg[pos..]))
                } else if index < args.len() {
                    index += 1;
                    lossy(&args[index - 1])
                } else {
                    return Err(OptionsError::InvalidOption(letter));
                };
                pos = arg.len();
                value
            } else {
                String::new()
            };
            match letter {
                b'c' => opts.chroot = true,
                b'd' => opts.daemon_mode = false,
                b'D' => opts.debug_me = true,
                b'i' => opts.overrides.push(Override {
                    name: "max_idle".to_string(),
                    value,
                }),
                b'l' => opts.process_limit_one = true,
                b'm' => opts.overrides.push(Override {
                    name: "max_use".to_string(),
                    value,
                }),
                b'n' => opts.service_name = value,
                b'o' => opts.overrides.push(parse_override(&value)?),
                b's' => {
                    let count = atoi(&value);
                    if count <= 0 {
                        return Err(OptionsError::InvalidSocketCount(value));
                    }
                    opts.socket_count = u32::try_from(count).unwrap_or(u32::MAX);
                }
                b'S' => opts.stdin_stream = true,
                b't' => opts.transport = Some(value),
                b'u' => opts.drop_privileges = true,
                b'v' => opts.verbose = opts.verbose.saturating_add(1),
                b'V' => opts.log_to_stderr = true,
                b'z' => opts.process_limit_zero = true,
                other => return Err(OptionsError::InvalidOption(other)),
            }
        }
    }
    if let Some(extra) = args.get(index) {
        return Err(OptionsError::UnexpectedArgument(lossy(extra)));
    }
    Ok(opts)
}

/// Splits `--name=value` into (`--name`, `Some(value)`), keeping the value's
/// bytes as they are (a path need not be UTF-8).
fn split_long(arg: &OsStr) -> (String, Option<OsString>) {
    let bytes = arg.as_bytes();
    match bytes.iter().position(|&b| b == b'=') {
        Some(i) => (
            lossy(OsStr::from_bytes(&bytes[..i])),
            Some(OsStr::from_bytes(&bytes[i + 1..]).to_os_string()),
        ),
        None => (lossy(arg), None),
    }
}

/// Takes the value of a long option: attached (`--x=v`) or the next word.
fn long_value(
    name: &str,
    attached: Option<OsString>,
    args: &[OsString],
    index: &mut usize,
) -> Result<OsString, OptionsError> {
    if let Some(v) = attached {
        return Ok(v);
    }
    match args.get(*index) {
        Some(v) => {
            *index += 1;
            Ok(v.clone())
        }
        None => Err(OptionsError::MissingValue(name.to_string())),
    }
}

fn no_value(name: &str, attached: Option<OsString>) -> Result<(), OptionsError> {
    match attached {
        Some(_) => Err(OptionsError::UnexpectedValue(name.to_string())),
        None => Ok(()),
    }
}

fn parse_socket_mode(text: &str) -> Result<u32, OptionsError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if !digits.is_empty() && !digits.starts_with('+') && mode <= 0o777 => Ok(mode),
        _ => Err(OptionsError::BadSocketMode(text.to_string())),
    }
}

fn parse_standalone(process_name: String, args: &[OsString]) -> Result<Command, OptionsError> {
    let mut opts = StandaloneOptions {
        process_name,
        listen: PathBuf::from(DEFAULT_LISTEN_PATH),
        config_dir: None,
        overrides: Vec::new(),
        socket_mode: DEFAULT_SOCKET_MODE,
        verbose: 0,
    };
    let mut index = 0;
    while index < args.len() {
        let raw = &args[index];
        index += 1;
        let bytes = raw.as_bytes();
        if bytes == b"--" {
            if let Some(extra) = args.get(index) {
                return Err(OptionsError::UnexpectedArgument(lossy(extra)));
            }
            break;
        }
        if bytes.starts_with(b"--") {
            let (name, attached) = split_long(raw);
            let name = name.as_str();
            match name {
                "--help" => {
                    no_value(name, attached)?;
                    return Ok(Command::Help);
                }
                "--version" => {
                    no_value(name, attached)?;
                    return Ok(Command::Version);
                }
                "--print-defaults" => {
                    no_value(name, attached)?;
                    return Ok(Command::PrintDefaults);
                }
                "--verbose" => {
                    no_value(name, attached)?;
                    opts.verbose = opts.verbose.saturating_add(1);
                }
                "--listen" => {
                    let v = long_value(name, attached, args, &mut index)?;
                    if v.is_empty() {
                        return Err(OptionsError::MissingValue(name.to_string()));
                    }
                    opts.listen = PathBuf::from(v);
                }
                "--config-dir" => {
                    let v = long_value(name, attached, args, &mut index)?;
                    if v.is_empty() {
                        return Err(OptionsError::MissingValue(name.to_string()));
                    }
                    opts.config_dir = Some(PathBuf::from(v));
                }
                "--socket-mode" => {
                    let v = long_value(name, attached, args, &mut index)?;
                    opts.socket_mode = parse_socket_mode(&lossy(&v))?;
                }
                _ => return Err(OptionsError::UnknownLongOption(name.to_string())),
            }
            continue;
        }
        if bytes.len() >= 2 && bytes[0] == b'-' {
            let text = lossy(raw);
            for (at, letter) in text.char_indices().skip(1) {
                match letter {
                    'v' => opts.verbose = opts.verbose.saturating_add(1),
                    'h' => return Ok(Command::Help),
                    'o' => {
                        let rest = &text[at + letter.len_utf8()..];
                        let value = if !rest.is_empty() {
                            rest.to_string()
                        } else {
                            match args.get(index) {
                                Some(v) => {
                                    index += 1;
                                    lossy(v)
                                }
                                None => return Err(OptionsError::MissingValue("-o".to_string())),
                            }
                        };
                        opts.overrides.push(parse_override(&value)?);
                        break;
                    }
                    other => return Err(OptionsError::UnknownShortOption(other)),
                }
            }
            continue;
        }
        return Err(OptionsError::UnexpectedArgument(lossy(raw)));
    }
    Ok(Command::Standalone(opts))
}

fn parse_stats(args: &[OsString]) -> Result<Command, OptionsError> {
    let mut opts = StatsOptions {
        socket: PathBuf::from(DEFAULT_LISTEN_PATH),
        format: StatsFormat::Table,
    };
    let mut index = 0;
    while index < args.len() {
        let raw = &args[index];
        index += 1;
        let text = lossy(raw);
        if text == "-h" {
            return Ok(Command::Help);
        }
        if !text.starts_with("--") || text == "--" {
            return Err(OptionsError::UnexpectedArgument(text));
        }
        let (name, attached) = split_long(raw);
        let name = name.as_str();
        match name {
            "--help" => {
                no_value(name, attached)?;
                return Ok(Command::Help);
            }
            "--socket" => {
                let v = long_value(name, attached, args, &mut index)?;
                if v.is_empty() {
                    return Err(OptionsError::MissingValue(name.to_string()));
                }
                opts.socket = PathBuf::from(v);
            }
            "--format" => {
                let v = lossy(&long_value(name, attached, args, &mut index)?);
                opts.format = StatsFormat::from_name(&v).ok_or(OptionsError::BadFormat(v))?;
            }
            _ => return Err(OptionsError::UnknownLongOption(name.to_string())),
        }
    }
    Ok(Command::Stats(opts))
}

fn parse_list(args: &[OsString]) -> Result<Command, OptionsError> {
    let mut opts = ListOptions {
        socket: PathBuf::from(DEFAULT_LISTEN_PATH),
        format: ListFormat::Table,
        limit: DEFAULT_LIST_LIMIT,
    };
    let mut index = 0;
    while index < args.len() {
        let raw = &args[index];
        index += 1;
        let text = lossy(raw);
        if text == "-h" {
            return Ok(Command::Help);
        }
        if !text.starts_with("--") || text == "--" {
            return Err(OptionsError::UnexpectedArgument(text));
        }
        let (name, attached) = split_long(raw);
        let name = name.as_str();
        match name {
            "--help" => {
                no_value(name, attached)?;
                return Ok(Command::Help);
            }
            "--socket" => {
                let v = long_value(name, attached, args, &mut index)?;
                if v.is_empty() {
                    return Err(OptionsError::MissingValue(name.to_string()));
                }
                opts.socket = PathBuf::from(v);
            }
            "--format" => {
                let v = lossy(&long_value(name, attached, args, &mut index)?);
                opts.format = match v.as_str() {
                    "table" => ListFormat::Table,
                    "json" => ListFormat::Json,
                    _ => return Err(OptionsError::BadFormat(v)),
                };
            }
            "--limit" => {
                let v = lossy(&long_value(name, attached, args, &mut index)?);
                opts.limit = match v.parse::<u32>() {
                    Ok(n) if n <= 100_000 && !v.starts_with('+') => n,
                    _ => return Err(OptionsError::BadLimit(v)),
                };
            }
            _ => return Err(OptionsError::UnknownLongOption(name.to_string())),
        }
    }
    Ok(Command::List(opts))
}

/// The `--help` text: every option of every mode.
pub fn help_text(program: &str) -> String {
    format!(
        "\
Usage:
  {program} [--listen PATH] [--config-dir DIR] [-o name=value]...
         [--socket-mode OCTAL] [-v|--verbose]...
  {program} stats [--socket PATH] [--format table|json|prometheus]
  {program} list [--socket PATH] [--format table|json] [--limit N]
  {program} -h | --help | --version | --print-defaults
  {program} [-cdDlSuvVz] [-i max_idle] [-m max_use] [-n service]
         [-o name=value]... [-s count] [-t type]   (master mode)

A connection cache daemon compatible with Postfix's scache(8).
Without arguments it runs standalone on ./{DEFAULT_LISTEN_PATH}.

Standalone mode (no arguments, or any --long option):
  --listen PATH         create and listen on this UNIX-domain socket
                        (default: {DEFAULT_LISTEN_PATH} in the current directory);
                        a stale socket is replaced, a live one is refused
  --config-dir DIR      read DIR/main.cf (default: no main.cf, unless
                        MAIL_CONFIG is set in the environment)
  -o name=value         override a configuration parameter (repeatable)
  --socket-mode OCTAL   permissions of the listening socket (default: {DEFAULT_SOCKET_MODE:04o})
  -v, --verbose         verbose logging (repeatable); RUST_LOG also works
  --print-defaults      print every parameter we read with its default value
  -h, --help            print this help and exit (-h: as the first argument)
  --version             print the version and exit

Clients of a running daemon:
  stats                 ask a running daemon for its statistics
    --socket PATH       the daemon's socket (default: {DEFAULT_LISTEN_PATH})
    --format FMT        table (default), json or prometheus
  list                  ask a running daemon what it caches: endpoints
                        (sessions, oldest age, time to live left) and
                        destinations (bindings in order), most sessions first
    --socket PATH       the daemon's socket (default: {DEFAULT_LISTEN_PATH})
    --format FMT        table (default) or json
    --limit N           at most N endpoints, destinations, and bindings per
                        destination (default: {DEFAULT_LIST_LIMIT})

Master mode (started by Postfix's master(8) from master.cf; options
first, as master passes them, not --long ones):
  -c          chroot to $queue_directory      -u        run as $mail_owner
  -d          allow a terminal on stdin       -D        accepted, no effect
  -i value    set max_idle                    -m value  set max_use
  -l          process limit is 1 (required)   -z        process limit is 0
  -n name     service name                    -o n=v    parameter override
  -s count    number of listen sockets (fd 6 and up, default 1)
  -S          serve one client on stdin/stdout
  -t type     listener type: unix, inet or pass
  -v          verbose logging (repeatable)    -V        also log to stderr
  Environment: MAIL_CONFIG (main.cf directory, default /etc/postfix),
  MAIL_LOGTAG, MAIL_VERBOSE, MAIL_DEBUG, GENERATION, POSTLOG_SERVICE,
  POSTLOG_HOSTNAME.
"
    )
}

/// The `--version` text.
pub fn version_text() -> String {
    format!("scache {}\n", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    fn master(list: &[&str]) -> Result<MasterOptions, OptionsError> {
        match parse_with_env(args(list), no_env)? {
            Command::Master(m) => Ok(m),
            other => panic!("not master mode: {other:?}"),
        }
    }

    fn ov(name: &str, value: &str) -> Override {
        Override {
            name: name.to_string(),
            value: value.to_string(),
        }
    }

    #[test]
    fn stock_master_cf_line() {
        let m = master(&["scache", "-l", "-t", "unix", "-u", "-c"]).unwrap();
        assert!(m.process_limit_one && m.drop_privileges && m.chroot && m.daemon_mode);
        assert_eq!(m.transport.as_deref(), Some("unix"));
        assert_eq!(m.process_name, "scache");
        assert_eq!(m.service_name, "scache");
        assert_eq!(m.socket_count, 1);
        assert_eq!(m.verbose, 0);
        assert_eq!(m.validate(), Ok(Some(Transport::Unix)));
    }

    #[test]
    fn renamed_binary_gets_service_name() {
        let m = master(&[
            "/usr/lib/postfix/sbin/scache-rs",
            "-l",
            "-n",
            "scache",
            "-t",
            "unix",
        ])
        .unwrap();
        assert_eq!(m.process_name, "scache-rs");
        assert_eq!(m.service_name, "scache");
    }

    #[test]
    fn clustered_and_attached() {
        let m = master(&["scache", "-lut", "unix", "-vvV", "-dDz", "-s2", "-ofoo=bar"]).unwrap();
        assert!(m.process_limit_one && m.drop_privileges && !m.daemon_mode && m.debug_me);
        assert!(m.process_limit_zero && m.log_to_stderr);
        assert_eq!(m.verbose, 2);
        assert_eq!(m.socket_count, 2);
        assert_eq!(m.overrides, vec![ov("foo", "bar")]);
        let m = master(&["scache", "-ltunix"]).unwrap();
        assert_eq!(m.transport.as_deref(), Some("unix"));
    }

    #[test]
    fn overrides_keep_order_and_trim() {
        let m = master(&[
            "scache",
            "-l",
            "-t",
            "unix",
            "-o",
            " max_idle = 5s ",
            "-i",
            "7",
            "-m",
            "3",
            "-o",
            "maillog_file=",
        ])
        .unwrap();
        assert_eq!(
            m.overrides,
            vec![
                ov("max_idle", "5s"),
                ov("max_idle", "7"),
                ov("max_use", "3"),
                ov("maillog_file", "")
            ]
        );
    }

    #[test]
    fn option_argument_may_look_like_an_option() {
        let m = master(&["scache", "-l", "-n", "-x", "-t", "unix"]).unwrap();
        assert_eq!(m.service_name, "-x");
    }

    #[test]
    fn bad_override_text_is_postfix_text() {
        let cases: &[(&str, &str)] = &[
            (
                "connection_cache_ttl_limit",
                "invalid \"-o connection_cache_ttl_limit\" option value: missing '=' after attribute name",
            ),
            (
                " = 5",
                "invalid \"-o  = 5\" option value: missing attribute name",
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                master(&["scache", "-o", value]).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "-o {value:?}"
            );
        }
        let e = master(&["scache", "-o", "a b=5"]).unwrap_err();
        assert!(e.to_string().ends_with("missing '=' after attribute name"));
    }

    #[test]
    fn invalid_options() {
        let cases: &[(&[&str], &str)] = &[
            (&["scache", "-x"], "invalid option: x"),
            (&["scache", "-lx"], "invalid option: x"),
            // A missing option argument is reported like an unknown option.
            (&["scache", "-S", "-t"], "invalid option: t"),
            (&["scache", "-:"], "invalid option: :"),
        ];
        for (list, want) in cases {
            assert_eq!(
                master(list).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{list:?}"
            );
        }
    }

    #[test]
    fn socket_count_like_atoi() {
        let cases: &[(&str, Result<u32, OptionsError>)] = &[
            ("3x", Ok(3)),
            ("abc", Err(OptionsError::InvalidSocketCount("abc".into()))),
            ("-2", Err(OptionsError::InvalidSocketCount("-2".into()))),
        ];
        for (count, want) in cases {
            assert_eq!(
                &master(&["scache", "-s", count]).map(|m| m.socket_count),
                want,
                "-s {count:?}"
            );
        }
        assert_eq!(
            master(&["scache", "-s", "0"]).unwrap_err().to_string(),
            "invalid socket_count: 0"
        );
    }

    #[test]
    fn positional_arguments_rejected() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["scache", "-l", "foo", "-t", "unix"],
                "unexpected command-line argument: foo",
            ),
            (
                &["scache", "-l", "--", "-t"],
                "unexpected command-line argument: -t",
            ),
            (
                &["scache", "-l", "-"],
                "unexpected command-line argument: -",
            ),
        ];
        for (list, want) in cases {
            assert_eq!(
                master(list).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{list:?}"
            );
        }
        assert!(master(&["scache", "-l", "-t", "unix", "--"]).is_ok());
    }

    #[test]
    fn validate_order_and_texts() {
        type Want = Result<Option<Transport>, &'static str>;
        let cases: &[(&[&str], Want)] = &[
            (
                &["scache", "-t", "unix"],
                Err("service scache requires a process limit of 1"),
            ),
            (
                &["scache-rs", "-n", "scache", "-t", "unix"],
                Err("service scache requires a process limit of 1"),
            ),
            (&["scache", "-l"], Err("no transport type specified")),
            (
                &["scache", "-l", "-t", "fifo"],
                Err("unsupported transport type: fifo"),
            ),
            (&["scache", "-l", "-t", "INET"], Ok(Some(Transport::Inet))),
            (&["scache", "-S", "-t", "fifo"], Ok(None)),
        ];
        for (list, want) in cases {
            let m = master(list).unwrap();
            assert_eq!(
                m.validate().map_err(|e| e.to_string()),
                want.map_err(str::to_string),
                "{list:?}"
            );
        }
        let m = master(&["scache", "-v"]).unwrap();
        assert!(matches!(
            m.validate(),
            Err(OptionsError::ProcessLimit { .. })
        ));
    }

    #[test]
    fn environment_verbose_and_debug() {
        let env = |name: &str| match name {
            "MAIL_VERBOSE" | "MAIL_DEBUG" => Some(OsString::new()),
            _ => None,
        };
        let Command::Master(m) = parse_with_env(args(&["scache", "-l", "-v"]), env).unwrap() else {
            panic!("not master mode");
        };
        assert_eq!(m.verbose, 2);
        assert!(m.debug_me);
    }

    #[test]
    fn standalone_mode() {
        let c = parse_with_env(
            args(&[
                "scache",
                "--listen",
                "/tmp/s.sock",
                "--config-dir=/etc/x",
                "-o",
                "max_idle=5",
                "-omax_use=2",
                "--socket-mode",
                "0660",
                "-vv",
                "--verbose",
            ]),
            no_env,
        )
        .unwrap();
        let Command::Standalone(s) = c else {
            panic!("not standalone: {c:?}")
        };
        assert_eq!(s.listen, PathBuf::from("/tmp/s.sock"));
        assert_eq!(s.config_dir, Some(PathBuf::from("/etc/x")));
        assert_eq!(s.overrides, vec![ov("max_idle", "5"), ov("max_use", "2")]);
        assert_eq!(s.socket_mode, 0o660);
        assert_eq!(s.verbose, 3);
    }

    #[test]
    fn standalone_defaults_and_errors() {
        let Command::Standalone(s) =
            parse_with_env(args(&["scache", "--listen=x.sock"]), no_env).unwrap()
        else {
            panic!()
        };
        assert_eq!(s.socket_mode, DEFAULT_SOCKET_MODE);
        assert_eq!(s.config_dir, None);
        assert_eq!(s.verbose, 0);

        let e = |list: &[&str]| parse_with_env(args(list), no_env).unwrap_err();
        let cases: &[(&[&str], OptionsError)] = &[
            (
                &["scache", "--bogus"],
                OptionsError::UnknownLongOption("--bogus".into()),
            ),
            (
                &["scache", "--listen"],
                OptionsError::MissingValue("--listen".into()),
            ),
            (
                &["scache", "--listen", "x", "-x"],
                OptionsError::UnknownShortOption('x'),
            ),
            (
                &["scache", "--listen", "x", "y"],
                OptionsError::UnexpectedArgument("y".into()),
            ),
            (
                &["scache", "--socket-mode=999", "--listen=x"],
                OptionsError::BadSocketMode("999".into()),
            ),
            (
                &["scache", "--socket-mode=1777"],
                OptionsError::BadSocketMode("1777".into()),
            ),
            (
                &["scache", "--help=yes"],
                OptionsError::UnexpectedValue("--help".into()),
            ),
            (
                &["scache", "--listen=x", "-o"],
                OptionsError::MissingValue("-o".into()),
            ),
        ];
        for (list, want) in cases {
            assert_eq!(
                parse_with_env(args(list), no_env).as_ref(),
                Err(want),
                "{list:?}"
            );
        }
        assert!(matches!(
            e(&["scache", "--listen=x", "-o", "novalue"]),
            OptionsError::BadOverride { .. }
        ));
    }

    #[test]
    fn help_version_print_defaults() {
        let cases: &[(&[&str], Command)] = &[
            (&["scache", "--help"], Command::Help),
            (&["scache", "--listen=x", "-h"], Command::Help),
            (&["scache", "--version"], Command::Version),
            (&["scache", "--print-defaults"], Command::PrintDefaults),
            (&["scache", "stats", "--help"], Command::Help),
            (&["scache", "list", "-h"], Command::Help),
            (&["scache", "-h"], Command::Help),
            (&["scache", "-h", "-l"], Command::Help),
        ];
        for (list, want) in cases {
            assert_eq!(
                parse_with_env(args(list), no_env).as_ref(),
                Ok(want),
                "{list:?}"
            );
        }
        let help = help_text("scache");
        for option in [
            "--listen",
            "--config-dir",
            "-o name=value",
            "--socket-mode",
            "--verbose",
            "--print-defaults",
            "--help",
            "--version",
            "stats",
            "--socket",
            "--format",
        ] {
            assert!(help.contains(option), "help lacks {option}");
        }
        assert!(version_text().starts_with("scache "));
        // -h anywhere but first is Postfix's invalid option.
        assert_eq!(
            parse_with_env(args(&["scache", "-l", "-h"]), no_env),
            Err(OptionsError::InvalidOption(b'h'))
        );
    }

    #[test]
    fn no_arguments_is_standalone_on_the_default_socket() {
        let Command::Standalone(s) = parse_with_env(args(&["scache"]), no_env).unwrap() else {
            panic!("not standalone")
        };
        assert_eq!(s.listen, PathBuf::from(DEFAULT_LISTEN_PATH));
        assert_eq!(s.socket_mode, DEFAULT_SOCKET_MODE);
    }

    #[test]
    fn long_option_after_double_dash_is_master_mode() {
        let e = parse_with_env(args(&["scache", "-l", "--", "--listen"]), no_env).unwrap_err();
        assert_eq!(e, OptionsError::UnexpectedArgument("--listen".into()));
    }

    #[test]
    fn stats_subcommand() {
        let stats = |socket: &str, format| {
            Ok(Command::Stats(StatsOptions {
                socket: PathBuf::from(socket),
                format,
            }))
        };
        let cases: &[(&[&str], Result<Command, OptionsError>)] = &[
            (
                &["scache", "stats"],
                stats(DEFAULT_LISTEN_PATH, StatsFormat::Table),
            ),
            (
                &["scache", "stats", "--socket", "/run/s", "--format=json"],
                stats("/run/s", StatsFormat::Json),
            ),
            (
                &["scache", "stats", "--format", "prometheus"],
                stats(DEFAULT_LISTEN_PATH, StatsFormat::Prometheus),
            ),
            (
                &["scache", "stats", "--format=xml"],
                Err(OptionsError::BadFormat("xml".into())),
            ),
            (
                &["scache", "stats", "extra"],
                Err(OptionsError::UnexpectedArgument("extra".into())),
            ),
            (
                &["scache", "stats", "--socket"],
                Err(OptionsError::MissingValue("--socket".into())),
            ),
        ];
        for (list, want) in cases {
            assert_eq!(&parse_with_env(args(list), no_env), want, "{list:?}");
        }
    }

    #[test]
    fn list_subcommand() {
        let list = |socket: &str, format, limit| {
            Ok(Command::List(ListOptions {
                socket: PathBuf::from(socket),
                format,
                limit,
            }))
        };
        let cases: &[(&[&str], Result<Command, OptionsError>)] = &[
            (
                &["scache", "list"],
                list(DEFAULT_LISTEN_PATH, ListFormat::Table, DEFAULT_LIST_LIMIT),
            ),
            (
                &[
                    "scache",
                    "list",
                    "--socket=/s",
                    "--format",
                    "json",
                    "--limit",
                    "3",
                ],
                list("/s", ListFormat::Json, 3),
            ),
            (
                &["scache", "list", "--limit=0"],
                list(DEFAULT_LISTEN_PATH, ListFormat::Table, 0),
            ),
            (
                &["scache", "list", "--format=prometheus"],
                Err(OptionsError::BadFormat("prometheus".into())),
            ),
            (
                &["scache", "list", "--limit", "-1"],
                Err(OptionsError::BadLimit("-1".into())),
            ),
            (
                &["scache", "list", "--limit", "100001"],
                Err(OptionsError::BadLimit("100001".into())),
            ),
            (
                &["scache", "list", "x"],
                Err(OptionsError::UnexpectedArgument("x".into())),
            ),
        ];
        for (list_args, want) in cases {
            assert_eq!(
                &parse_with_env(args(list_args), no_env),
                want,
                "{list_args:?}"
            );
        }
    }

    #[test]
    fn non_utf8_arguments_do_not_panic() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(vec![b'-', 0xc3, 0xa9]);
        let e = parse_with_env(vec![OsString::from("scache"), bad], no_env).unwrap_err();
        assert_eq!(e.to_string(), "invalid option: ?");
        let path = OsString::from_vec(vec![b'/', 0xff]);
        let c = parse_with_env(
            vec![
                OsString::from("scache"),
                OsString::from("--listen"),
                path.clone(),
            ],
            no_env,
        )
        .unwrap();
        let Command::Standalone(s) = c else { panic!() };
        assert_eq!(s.listen.as_os_str(), path.as_os_str());
        assert!(parse_with_env(Vec::<OsString>::new(), no_env).is_ok());
    }
}
