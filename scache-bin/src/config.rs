//! Postfix-compatible configuration: `main.cf`, `-o` overrides, `$name`
//! expansion and typed parameter values.
//!
//! What Postfix does, and what this module reproduces (facts from Postfix
//! 3.7's `mail_conf*.c`, `dict.c`, `readlline.c`, `split_nameval.c`,
//! `mac_parse.c`, `mac_expand.c`, `conv_time.c`, checked against Debian's
//! `/usr/lib/postfix/sbin/scache`):
//!
//! * `main.cf` is read as logical lines: a line starting with white space
//!   continues the previous one (the newline is dropped, the leading white
//!   space kept); blank lines and lines whose first non-blank character is
//!   `#` are skipped, also in the middle of a logical line; every logical
//!   line is `name = value` with white space around both trimmed; the last
//!   definition wins (with a warning when the value differs).
//! * `-o name=value` overrides are applied after `main.cf` is loaded;
//!   `process_name` and `service_name` are forced after them.
//! * Values are stored raw and expanded when a parameter is read, recursively,
//!   with `$name`, `${name}`, `$(name)`, `${name?value}`, `${name:value}`,
//!   `${name?{v1}:{v2}}`, relational `${{a} == {b} ? {t} : {f}}` (`==`, `!=`,
//!   `<`, `<=`, `>=`, `>`; numeric when both sides are all digits) and `$$`.
//!   Undefined names expand to nothing.
//! * Typed reads (`get_int`, `get_time`, ...) fail with Postfix's fatal
//!   message texts ([`ConfigError`]'s `Display`).

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::logging::Facility;
use crate::options::Override;

/// Compiled-in configuration directory (Postfix's `DEF_CONFIG_DIR`).
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postfix";

/// Name of the configuration file inside the configuration directory.
pub const MAIN_CF: &str = "main.cf";

/// Environment variable naming the configuration directory.
pub const ENV_MAIL_CONFIG: &str = "MAIL_CONFIG";

/// Postfix's limit on nested macro expansion (`mac_expand.c`).
const MAX_NESTING: usize = 100;

/// Computed defaults being evaluated (a parameter is undefined while its
/// own default is computed, as in Postfix where it is not yet in the
/// dictionary): bits for `myhostname` and `mydomain`.
const COMPUTING_MYHOSTNAME: u8 = 1;
const COMPUTING_MYDOMAIN: u8 = 2;

/// White space as C's `isspace()` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// White space around `{}` operands in expansions (Postfix's `CHARS_SPACE`).
fn is_expr_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Why a `name = value` text could not be split (Postfix's
/// `split_nameval()` diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameValueError {
    /// Nothing before the `=` (or an empty text).
    MissingName,
    /// The name is not followed by `=` (after optional white space).
    MissingEquals,
}

impl fmt::Display for NameValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameValueError::MissingName => "missing attribute name",
            NameValueError::MissingEquals => "missing '=' after attribute name",
        })
    }
}

impl std::error::Error for NameValueError {}

/// Splits `name = value` like Postfix's `split_nameval()`: leading white
/// space skipped, the name runs up to white space or `=`, white space around
/// `=` and at the end of the value is dropped. The value may be empty.
pub fn split_nameval(text: &str) -> Result<(&str, &str), NameValueError> {
    let bytes = text.as_bytes();
    let start = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    if start == bytes.len() || bytes[start] == b'=' {
        return Err(NameValueError::MissingName);
    }
    let name_end = start
        + bytes[start..]
            .iter()
            .position(|&b| is_c_space(b) || b == b'=')
            .unwrap_or(bytes.len() - start);
    let eq = name_end
        + bytes[name_end..]
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(bytes.len() - name_end);
    if bytes.get(eq) != Some(&b'=') {
        return Err(NameValueError::MissingEquals);
    }
    let value_start = eq
        + 1
        + bytes[eq + 1..]
            .iter()
            .position(|&b| !is_c_space(b))
            .unwrap_or(bytes.len() - eq - 1);
    let value_end = bytes[value_start..]
        .iter()
        .rposition(|&b| !is_c_space(b))
        .map_or(value_start, |i| value_start + i + 1);
    Ok((&text[start..name_end], &text[value_start..value_end]))
}

/// A configuration error. `Display` gives Postfix's fatal message text for
/// the same problem (to be logged with the `fatal: ` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `main.cf` could not be opened: "open PATH: REASON".
    Open {
        /// The file.
        path: String,
        /// The system error text.
        reason: String,
    },
    /// `main.cf` could not be read: "read PATH: REASON".
    Read {
        /// The file.
        path: String,
        /// The system error text.
        reason: String,
    },
    /// A logical line of `main.cf` is not `name = value`.
    Syntax {
        /// The file.
        path: String,
        /// First physical line of the logical line.
        line: usize,
        /// What is wrong.
        reason: NameValueError,
        /// The logical line.
        text: String,
    },
    /// A `$name` expansion syntax error. Postfix logs [`warning`]
    /// (`ConfigError::warning`) as a warning and then this fatal text.
    ///
    /// [`warning`]: ConfigError::warning
    Macro {
        /// The warning Postfix logs before the fatal error.
        warning: String,
    },
    /// A relational expansion compares numbers too large for a `long`.
    MacroConversion {
        /// The operand.
        value: String,
    },
    /// A parameter that neither the configuration nor our defaults define.
    Unknown {
        /// The parameter name.
        name: String,
    },
    /// A time value with bad syntax or unit.
    BadTime {
        /// The parameter name.
        name: String,
        /// The expanded value.
        value: String,
    },
    /// A time value outside its limits.
    TimeRange {
        /// The parameter name.
        name: String,
        /// The value in seconds.
        value: i64,
        /// The violated limit in seconds.
        limit: i64,
        /// `true` when `limit` is a minimum.
        below: bool,
    },
    /// An integer value with bad syntax.
    BadNumber {
        /// The parameter name.
        name: String,
        /// The expanded value.
        value: String,
    },
    /// An integer value outside its limits.
    IntRange {
        /// The parameter name.
        name: String,
        /// The value.
        value: i64,
        /// The violated limit.
        limit: i64,
        /// `true` when `limit` is a minimum.
        below: bool,
    },
    /// A boolean that is neither `yes` nor `no`.
    BadBool {
        /// The parameter name.
        name: String,
        /// The expanded value.
        value: String,
    },
    /// A string value too short or too long.
    StringLength {
        /// The parameter name.
        name: String,
        /// The expanded value.
        value: String,
        /// The violated length limit.
        limit: usize,
        /// `true` when `limit` is a minimum.
        below: bool,
    },
    /// An unknown `syslog_facility` name.
    BadFacility {
        /// `$config_directory`.
        config_dir: String,
        /// The expanded value.
        value: String,
    },
    /// `maillog_file` does not start with one of `maillog_file_prefixes`.
    MaillogPrefix {
        /// The expanded `maillog_file`.
        file: String,
    },
    /// A user name (`mail_owner`, `scache_allowed_uids`) that does not exist.
    UnknownUser {
        /// `$config_directory`.
        config_dir: String,
        /// The parameter name.
        name: String,
        /// The user name.
        value: String,
    },
    /// A group name (`scache_allowed_gids`) that does not exist.
    UnknownGroup {
        /// `$config_directory`.
        config_dir: String,
        /// The parameter name.
        name: String,
        /// The group name.
        value: String,
    },
    /// `mail_owner` has user ID 0.
    PrivilegedUser {
        /// `$config_directory`.
        config_dir: String,
        /// The user name.
        value: String,
    },
    /// `mail_owner` has group ID 0.
    PrivilegedGroup {
        /// `$config_directory`.
        config_dir: String,
        /// The user name.
        value: String,
    },
}

impl ConfigError {
    /// The warning Postfix logs just before this error's fatal message, if
    /// any (expansion syntax errors only).
    pub fn warning(&self) -> Option<&str> {
        match self {
            ConfigError::Macro { warning } => Some(warning),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Open { path, reason } => write!(f, "open {path}: {reason}"),
            ConfigError::Read { path, reason } => write!(f, "read {path}: {reason}"),
            ConfigError::Syntax {
                path,
                line,
                reason,
                text,
            } => write!(f, "{path}, line {line}: {reason}: \"{text}\""),
            ConfigError::Macro { .. } => {
                f.write_str("dictionary mail_dict: macro processing error")
            }
            ConfigError::MacroConversion { value } => {
                write!(f, "mac_exp_eval: bad conversion: {value}")
            }
            ConfigError::Unknown { name } => write!(f, "unknown parameter: {name}"),
            ConfigError::BadTime { name, value } => {
                write!(f, "parameter {name}: bad time value or unit: {value}")
            }
            ConfigError::TimeRange {
                name,
                value,
                limit,
                below,
            } => {
                let which = if *below { "min" } else { "max" };
                write!(f, "invalid {name}: {value} ({which} {limit})")
            }
            ConfigError::BadNumber { name, value } => {
                write!(f, "bad numerical configuration: {name} = {value}")
            }
            ConfigError::IntRange {
                name,
                value,
                limit,
                below,
            } => {
                let op = if *below { '<' } else { '>' };
                write!(f, "invalid {name} parameter value {value} {op} {limit}")
            }
            ConfigError::BadBool { name, value } => {
                write!(f, "bad boolean configuration: {name} = {value}")
            }
            ConfigError::StringLength {
                name,
                value,
                limit,
                below,
            } => {
                let op = if *below { '<' } else { '>' };
                let len = value.len();
                write!(f, "bad string length {len} {op} {limit}: {name} = {value}")
            }
            ConfigError::BadFacility { config_dir, value } => write!(
                f,
                "file {config_dir}/{MAIN_CF}: parameter syslog_facility: unrecognized value: {value}"
            ),
            ConfigError::MaillogPrefix { file } => write!(
                f,
                "maillog_file value '{file}' does not match any prefix in maillog_file_prefixes"
            ),
            ConfigError::UnknownUser {
                config_dir,
                name,
                value,
            } => write!(
                f,
                "file {config_dir}/{MAIN_CF}: parameter {name}: unknown user name value: {value}"
            ),
            ConfigError::UnknownGroup {
                config_dir,
                name,
                value,
            } => write!(
                f,
                "file {config_dir}/{MAIN_CF}: parameter {name}: unknown group name value: {value}"
            ),
            ConfigError::PrivilegedUser { config_dir, value } => write!(
                f,
                "file {config_dir}/{MAIN_CF}: parameter mail_owner: user {value} has privileged user ID"
            ),
            ConfigError::PrivilegedGroup { config_dir, value } => write!(
                f,
                "file {config_dir}/{MAIN_CF}: parameter mail_owner: user {value} has privileged group ID"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A parameter's default value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A fixed text (possibly containing `$name` expressions).
    Text(&'static str),
    /// Computed at run time (`myhostname`, `mydomain`, `config_directory`,
    /// `process_name`, `service_name`).
    Computed,
}

/// The kind of value a parameter holds (documentation and `--help` only;
/// typed reads are explicit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Free text.
    Str,
    /// `yes` or `no`.
    Bool,
    /// A decimal integer.
    Int,
    /// A time: a number with an optional unit `s`, `m`, `h`, `d`, `w`.
    Time,
    /// A list of names or numbers separated by commas or white space.
    List,
}

/// One parameter we read, with its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDef {
    /// Postfix-style parameter name.
    pub name: &'static str,
    /// Default value (Debian Postfix 3.7's `postconf -d` for Postfix's own).
    pub default: DefaultValue,
    /// Value kind.
    pub kind: ParamKind,
    /// One-line description, with unit and limits.
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    default: &'static str,
    kind: ParamKind,
    doc: &'static str,
) -> ParamDef {
    ParamDef {
        name,
        default: DefaultValue::Text(default),
        kind,
        doc,
    }
}

const fn computed(name: &'static str, kind: ParamKind, doc: &'static str) -> ParamDef {
    ParamDef {
        name,
        default: DefaultValue::Computed,
        kind,
        doc,
    }
}

/// Every parameter we read (and the ones their defaults refer to), with
/// Postfix's defaults (Debian's `postconf -d`, Postfix 3.7) and our own new
/// `scache_*` parameters.
pub const PARAMETERS: &[ParamDef] = &[
    def("command_directory", "/usr/sbin", ParamKind::Str, "Postfix administrative commands (for $name references)"),
    computed("config_directory", ParamKind::Str, "the main.cf directory: $MAIL_CONFIG, else /etc/postfix (read-only)"),
    def("connection_cache_status_update_time", "600s", ParamKind::Time, "how often statistics are logged (min 1s)"),
    def("connection_cache_ttl_limit", "2s", ParamKind::Time, "maximal time-to-live of a cached connection or binding (min 1s)"),
    def("daemon_directory", "/usr/lib/postfix/sbin", ParamKind::Str, "Postfix daemon programs (for $name references)"),
    def("daemon_timeout", "18000s", ParamKind::Time, "watchdog: maximal time to handle one event (min 1s)"),
    def("data_directory", "/var/lib/postfix", ParamKind::Str, "Postfix writable data files (for $name references)"),
    def("ipc_timeout", "3600s", ParamKind::Time, "time limit for reading or writing one client request or reply (min 1s)"),
    def("mail_name", "Postfix", ParamKind::Str, "mail system name (for $name references)"),
    def("mail_owner", "postfix", ParamKind::Str, "user to run as with -u"),
    def("maillog_file", "", ParamKind::Str, "when non-empty, log through postlogd(8) instead of syslog"),
    def("maillog_file_prefixes", "/var, /dev/stdout", ParamKind::List, "allowed prefixes of maillog_file"),
    def("max_idle", "100s", ParamKind::Time, "exit after no client was connected for this long (min 1s)"),
    def("max_use", "100", ParamKind::Int, "read for compatibility (min 1); scache ignores it"),
    def("meta_directory", "/etc/postfix", ParamKind::Str, "Postfix meta files (for $name references)"),
    def("multi_instance_name", "", ParamKind::Str, "name of this Postfix instance (used by the default syslog_name)"),
    computed("mydomain", ParamKind::Str, "domain part of $myhostname, else localdomain"),
    computed("myhostname", ParamKind::Str, "gethostname(), qualified with $mydomain (else .localdomain) when it has no dot"),
    def("postlog_service_name", "postlog", ParamKind::Str, "postlogd's socket: $queue_directory/public/$postlog_service_name"),
    computed("process_name", ParamKind::Str, "basename of argv[0] (read-only)"),
    def("queue_directory", "/var/spool/postfix", ParamKind::Str, "working directory; the chroot jail with -c"),
    def("scache_allowed_gids", "", ParamKind::List, "group IDs or names whose clients are served, in addition to scache_allowed_uids"),
    def("scache_allowed_uids", "", ParamKind::List, "user IDs or names whose clients are served; empty: the daemon's own user and root"),
    def("scache_dead_connection_eviction", "yes", ParamKind::Bool, "close cached connections whose peer has hung up or sent data"),
    def("scache_destination_binding_limit", "0", ParamKind::Int, "maximal endpoint bindings per destination (0: unlimited)"),
    def("scache_endpoint_session_limit", "0", ParamKind::Int, "maximal cached connections per endpoint (0: unlimited)"),
    def("scache_fd_reserve", "64", ParamKind::Int, "descriptors kept free for clients and logging (0: none)"),
    def("scache_label_length_limit", "4096", ParamKind::Int, "maximal length of a destination or endpoint label, in bytes (0: unlimited)"),
    def("scache_label_limit", "0", ParamKind::Int, "maximal number of destination plus endpoint labels (0: unlimited)"),
    def("scache_property_length_limit", "65536", ParamKind::Int, "maximal length of a dest_prop or endp_prop, in bytes (0: unlimited)"),
    def("scache_session_limit", "0", ParamKind::Int, "maximal cached connections in total (0: derived from RLIMIT_NOFILE minus scache_fd_reserve)"),
    computed("service_name", ParamKind::Str, "master.cf service name: -n, else process_name (read-only)"),
    def("syslog_facility", "mail", ParamKind::Str, "syslog facility name"),
    def("syslog_name", "${multi_instance_name?{$multi_instance_name}:{postfix}}", ParamKind::Str, "first part of the log tag (tag/process_name[pid])"),
];

/// Looks up a parameter definition by name.
pub fn param_def(name: &str) -> Option<&'static ParamDef> {
    PARAMETERS.iter().find(|p| p.name == name)
}

/// The configuration directory Postfix would use: `$MAIL_CONFIG` when set
/// and non-empty, else [`DEFAULT_CONFIG_DIR`]. `env` reads the environment.
pub fn config_dir_from_env<E>(env: E) -> PathBuf
where
    E: Fn(&str) -> Option<std::ffi::OsString>,
{
    match env(ENV_MAIL_CONFIG) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(DEFAULT_CONFIG_DIR),
    }
}

/// The configuration directory of standalone mode: `--config-dir` when
/// given, else `$MAIL_CONFIG` when set and non-empty, else none (defaults
/// only, no `main.cf` needed).
pub fn standalone_config_dir<E>(explicit: Option<&Path>, env: E) -> Option<PathBuf>
where
    E: Fn(&str) -> Option<std::ffi::OsString>,
{
    if let Some(dir) = explicit {
        return Some(dir.to_path_buf());
    }
    env(ENV_MAIL_CONFIG)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// The local host name from `gethostname()` (empty if that fails).
pub fn system_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is a valid writable buffer of the length we pass;
    // gethostname writes at most that many bytes and does not keep the
    // pointer.
    let rc = unsafe { nix::libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::new();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// A loaded configuration: raw `name = value` entries from `main.cf` and
/// overrides, on top of the defaults in [`PARAMETERS`].
#[derive(Debug, Clone)]
pub struct Config {
    config_dir: PathBuf,
    entries: HashMap<String, String>,
    forced: HashMap<String, String>,
    hostname: String,
    warnings: Vec<String>,
    computing: Cell<u8>,
}

impl Config {
    /// A configuration without `main.cf` (defaults only), for configuration
    /// directory `config_dir` (the value of `config_directory`).
    pub fn new(config_dir: &Path) -> Config {
        Config {
            config_dir: config_dir.to_path_buf(),
            entries: HashMap::new(),
            forced: HashMap::new(),
            hostname: system_hostname(),
            warnings: Vec::new(),
            computing: Cell::new(0),
        }
    }

    /// Reads `config_dir/main.cf`. A missing or unreadable file is an error
    /// ("open /etc/postfix/main.cf: No such file or directory"). As in
    /// Postfix, `config_directory` is then set to `config_dir`, whatever
    /// `main.cf` says (a later `-o` may still change it).
    pub fn load(config_dir: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::new(config_dir);
        let path = config_dir.join(MAIN_CF);
        let shown = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| {
            let reason = io_reason(&e);
            if e.kind() == std::io::ErrorKind::InvalidData || e.raw_os_error() == Some(21) {
                ConfigError::Read {
                    path: shown.clone(),
                    reason,
                }
            } else {
                ConfigError::Open {
                    path: shown.clone(),
                    reason,
                }
            }
        })?;
        config.parse_main_cf(&shown, &String::from_utf8_lossy(&bytes))?;
        let dir = config_dir.display().to_string();
        config.set("config_directory", &dir);
        Ok(config)
    }

    /// Parses `main.cf` text (named `path` in messages) into this
    /// configuration; later definitions replace earlier ones.
    pub fn parse_main_cf(&mut self, path: &str, text: &str) -> Result<(), ConfigError> {
        for (line, logical) in logical_lines(path, text, &mut self.warnings) {
            let (name, value) = split_nameval(&logical).map_err(|reason| ConfigError::Syntax {
                path: path.to_string(),
                line,
                reason,
                text: logical.clone(),
            })?;
            if let Some(old) = self.entries.get(name) {
                if old != value {
                    self.warnings.push(format!(
                        "{path}, line {line}: overriding earlier entry: {name}={old}"
                    ));
                }
            }
            self.entries.insert(name.to_string(), value.to_string());
        }
        Ok(())
    }

    /// Sets a raw value, like `-o name=value` (Postfix's `mail_conf_update`).
    pub fn set(&mut self, name: &str, value: &str) {
        self.entries.insert(name.to_string(), value.to_string());
    }

    /// Applies `-o` overrides in order.
    pub fn apply_overrides(&mut self, overrides: &[Override]) {
        for o in overrides {
            self.set(&o.name, &o.value);
        }
    }

    /// Forces a read-only parameter (`process_name`, `service_name`): later
    /// [`set`](Self::set) calls and `main.cf` cannot change it.
    pub fn force(&mut self, name: &str, value: &str) {
        self.forced.insert(name.to_string(), value.to_string());
    }

    /// Replaces the host name used for the `myhostname` default (tests).
    pub fn set_system_hostname(&mut self, hostname: &str) {
        self.hostname = hostname.to_string();
    }

    /// The configuration directory (`config_directory`).
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Takes the warnings found while reading `main.cf` (continuation lines
    /// without a preceding line, redefinitions), to be logged as warnings.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// The raw (unexpanded) value of a parameter: forced, else configured,
    /// else the default. `None` for a name nobody defines.
    pub fn raw(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some(v) = self.forced.get(name) {
            return Some(Cow::Borrowed(v));
        }
        if let Some(v) = self.entries.get(name) {
            return Some(Cow::Borrowed(v));
        }
        match param_def(name)?.default {
            DefaultValue::Text(t) => Some(Cow::Borrowed(t)),
            DefaultValue::Computed => self.computed_default(name),
        }
    }

    /// Runs `compute` unless the same computed default is already being
    /// computed further up (then the parameter is undefined).
    fn guarded<T>(&self, flag: u8, compute: impl FnOnce() -> Option<T>) -> Option<T> {
        let busy = self.computing.get();
        if busy & flag != 0 {
            return None;
        }
        self.computing.set(busy | flag);
        let result = compute();
        self.computing.set(self.computing.get() & !flag);
        result
    }

    fn computed_default(&self, name: &str) -> Option<Cow<'_, str>> {
        match name {
            "config_directory" => Some(Cow::Owned(self.config_dir.display().to_string())),
            "myhostname" => self.guarded(COMPUTING_MYHOSTNAME, || {
                if self.hostname.contains('.') {
                    return Some(Cow::Borrowed(self.hostname.as_str()));
                }
                // Postfix consults an explicitly configured mydomain only.
                let domain = match self.entries.get("mydomain") {
                    Some(raw) => self.expand(raw).ok()?,
                    None => "localdomain".to_string(),
                };
                Some(Cow::Owned(format!("{}.{}", self.hostname, domain)))
            }),
            "mydomain" => self.guarded(COMPUTING_MYDOMAIN, || {
                let host = self.get_str("myhostname").ok()?;
                match host.split_once('.') {
                    Some((_, domain)) => Some(Cow::Owned(domain.to_string())),
                    None => Some(Cow::Borrowed("localdomain")),
                }
            }),
            "process_name" => Some(Cow::Borrowed("scache")),
            "service_name" => self.raw("process_name").map(|v| Cow::Owned(v.into_owned())),
            _ => None,
        }
    }

    /// Expands `$name` expressions in `text` as Postfix does when a
    /// parameter is read (recursively, undefined names give nothing).
    pub fn expand(&self, text: &str) -> Result<String, ConfigError> {
        let mut out = String::new();
        let mut expander = Expander {
            config: self,
            level: 0,
        };
        expander.parse(text, &mut out).map_err(|e| match e {
            MacroError::Syntax(warning) => ConfigError::Macro { warning },
            MacroError::Conversion(value) => ConfigError::MacroConversion { value },
        })?;
        Ok(out)
    }

    fn lookup_eval(&self, name: &str) -> Result<String, ConfigError> {
        match self.raw(name) {
            Some(raw) => self.expand(&raw),
            None => Err(ConfigError::Unknown {
                name: name.to_string(),
            }),
        }
    }

    /// The expanded value of a string parameter.
    pub fn get_str(&self, name: &str) -> Result<String, ConfigError> {
        self.lookup_eval(name)
    }

    /// The expanded value of a string parameter whose length (in bytes) must
    /// be at least `min` and at most `max` (0: no limit), as Postfix checks.
    pub fn get_str_checked(
        &self,
        name: &str,
        min: usize,
        max: usize,
    ) -> Result<String, ConfigError> {
        let value = self.lookup_eval(name)?;
        if min != 0 && value.len() < min {
            return Err(ConfigError::StringLength {
                name: name.to_string(),
                value,
                limit: min,
                below: true,
            });
        }
        if max != 0 && value.len() > max {
            return Err(ConfigError::StringLength {
                name: name.to_string(),
                value,
                limit: max,
                below: false,
            });
        }
        Ok(value)
    }

    /// A boolean parameter: `yes` or `no`, any case.
    pub fn get_bool(&self, name: &str) -> Result<bool, ConfigError> {
        let value = self.lookup_eval(name)?;
        if value.eq_ignore_ascii_case("yes") {
            Ok(true)
        } else if value.eq_ignore_ascii_case("no") {
            Ok(false)
        } else {
            Err(ConfigError::BadBool {
                name: name.to_string(),
                value,
            })
        }
    }

    /// An integer parameter (a C `int`, parsed like `strtol`: optional
    /// leading white space and sign, then digits, nothing after), checked
    /// against `min` and `max` where 0 means "no limit" as in Postfix.
    pub fn get_int(&self, name: &str, min: i32, max: i32) -> Result<i32, ConfigError> {
        let value = self.lookup_eval(name)?;
        let parsed = match c_strtol(&value) {
            Some((Some(n), end)) if end == value.len() && !value.is_empty() => {
                i32::try_from(n).ok()
            }
            _ => None,
        };
        let Some(n) = parsed else {
            return Err(ConfigError::BadNumber {
                name: name.to_string(),
                value,
            });
        };
        if min != 0 && n < min {
            return Err(ConfigError::IntRange {
                name: name.to_string(),
                value: i64::from(n),
                limit: i64::from(min),
                below: true,
            });
        }
        if max != 0 && n > max {
            return Err(ConfigError::IntRange {
                name: name.to_string(),
                value: i64::from(n),
                limit: i64::from(max),
                below: false,
            });
        }
        Ok(n)
    }

    /// A time parameter in Postfix syntax: a decimal number with an
    /// optional unit letter `s`, `m`, `h`, `d` or `w`; without a unit the
    /// unit of the parameter's default value applies; only the first
    /// character after the number is looked at. `min` and `max` are seconds
    /// (0: no limit).
    pub fn get_time(&self, name: &str, min: i32, max: i32) -> Result<Duration, ConfigError> {
        let default_unit = self.default_time_unit(name);
        let value = self.lookup_eval(name)?;
        let Some(seconds) = conv_time(&value, default_unit) else {
            return Err(ConfigError::BadTime {
                name: name.to_string(),
                value,
            });
        };
        if min != 0 && seconds < min {
            return Err(ConfigError::TimeRange {
                name: name.to_string(),
                value: i64::from(seconds),
                limit: i64::from(min),
                below: true,
            });
        }
        if max != 0 && seconds > max {
            return Err(ConfigError::TimeRange {
                name: name.to_string(),
                value: i64::from(seconds),
                limit: i64::from(max),
                below: false,
            });
        }
        Ok(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
    }

    /// The first letter of the (expanded) default value: the unit of a time
    /// value written without one. Seconds if the default has none.
    fn default_time_unit(&self, name: &str) -> u8 {
        let default = match param_def(name).map(|p| p.default) {
            Some(DefaultValue::Text(t)) => self.expand(t).unwrap_or_default(),
            _ => String::new(),
        };
        default
            .bytes()
            .find(u8::is_ascii_alphabetic)
            .unwrap_or(b's')
    }

    /// A list parameter split on commas and white space.
    pub fn get_list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        Ok(split_list(&self.lookup_eval(name)?))
    }
}

fn io_reason(e: &std::io::Error) -> String {
    // Strip Rust's " (os error N)" suffix: Postfix prints strerror() only.
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Splits a list on Postfix's `CHARS_COMMA_SP` (`, \t\r\n`).
pub fn split_list(text: &str) -> Vec<String> {
    text.split([',', ' ', '\t', '\r', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits `main.cf` text into logical lines, each with the number of its
/// first physical line, as Postfix's `readllines()` does.
fn logical_lines(path: &str, text: &str, warnings: &mut Vec<String>) -> Vec<(usize, String)> {
    let mut result: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    let mut orphan: Option<(usize, String)> = None;
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let starts_blank = line.len() != trimmed.len();
        if starts_blank {
            if let Some((_, text)) = current.as_mut() {
                text.push_str(line);
            } else if let Some((_, text)) = orphan.as_mut() {
                text.push_str(line);
            } else {
                orphan = Some((number, line.to_string()));
            }
            continue;
        }
        if let Some((_, text)) = orphan.take() {
            warnings.push(orphan_warning(path, &text));
        }
        if let Some(done) = current.take() {
            result.push(done);
        }
        current = Some((number, line.to_string()));
    }
    if let Some((_, text)) = orphan.take() {
        warnings.push(orphan_warning(path, &text));
    }
    if let Some(done) = current.take() {
        result.push(done);
    }
    result
}

fn orphan_warning(path: &str, text: &str) -> String {
    let shown = truncate_bytes(text, 30);
    let more = if text.len() > 30 { "..." } else { "" };
    format!("{path}: logical line must not start with whitespace: \"{shown}{more}\"")
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// C `strtol(text, &end, 10)`: returns the value (`None` on overflow,
/// i.e. `ERANGE`) and the end offset; no digits gives `(Some(0), 0)`.
fn c_strtol(text: &str) -> Option<(Option<i64>, usize)> {
    let bytes = text.as_bytes();
    let mut i = bytes
        .iter()
        .position(|&b| !is_c_space(b))
        .unwrap_or(bytes.len());
    let negative = match bytes.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut value: Option<i64> = Some(0);
    while let Some(&b) = bytes.get(i) {
        if !b.is_ascii_digit() {
            break;
        }
        let digit = i64::from(b - b'0');
        value = value.and_then(|v| v.checked_mul(10)).and_then(|v| {
            if negative {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        i += 1;
    }
    if i == digits_start {
        return Some((Some(0), 0));
    }
    Some((value, i))
}

/// Postfix 3.7's `conv_time()`: seconds, or `None` for a bad value or unit.
pub fn conv_time(text: &str, default_unit: u8) -> Option<i32> {
    if text.is_empty() {
        return None;
    }
    let (value, end) = c_strtol(text)?;
    let value = i32::try_from(value?).ok()?;
    if value < 0 {
        return None;
    }
    let unit = text.as_bytes().get(end).copied().unwrap_or(default_unit);
    let scale: i32 = match unit {
        b's' => return Some(value),
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86_400,
        b'w' => 604_800,
        _ => return None,
    };
    if value < i32::MAX / scale {
        Some(value * scale)
    } else {
        None
    }
}

enum MacroError {
    /// Syntax error; Postfix's warning text.
    Syntax(String),
    /// Relational operand out of range for a C long.
    Conversion(String),
}

/// `"%.20s"`.
fn at_most_20(text: &str) -> &str {
    truncate_bytes(text, 20)
}

struct Expander<'a> {
    config: &'a Config,
    level: usize,
}

impl Expander<'_> {
    /// `mac_parse()`: split into literal text and `$` expressions.
    fn parse(&mut self, value: &str, out: &mut String) -> Result<(), MacroError> {
        let bytes = value.as_bytes();
        let mut literal = String::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] != b'$' {
                let next = bytes[i..]
                    .iter()
                    .position(|&b| b == b'$')
                    .map_or(bytes.len(), |p| i + p);
                literal.push_str(&value[i..next]);
                i = next;
                continue;
            }
            if bytes.get(i + 1) == Some(&b'$') {
                literal.push('$');
                i += 2;
                continue;
            }
            if !literal.is_empty() {
                self.literal(&literal, out)?;
                literal.clear();
            }
            i += 1;
            let expr: &str;
            match bytes.get(i) {
                Some(&open @ (b'{' | b'(')) => {
                    let close = if open == b'{' { b'}' } else { b')' };
                    let start = i + 1;
                    let mut depth = 1;
                    let mut j = start;
                    loop {
                        let Some(&b) = bytes.get(j) else {
                            return Err(MacroError::Syntax(format!(
                                "truncated macro reference: \"{value}\""
                            )));
                        };
                        if b == open {
                            depth += 1;
                        } else if b == close {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        j += 1;
                    }
                    expr = &value[start..j];
                    i = j + 1;
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                    {
                        i += 1;
                    }
                    expr = &value[start..i];
                }
            }
            if expr.is_empty() {
                return Err(MacroError::Syntax(format!("empty macro name: \"{value}\"")));
            }
            self.expression(expr, out)?;
        }
        if !literal.is_empty() {
            self.literal(&literal, out)?;
        }
        Ok(())
    }

    fn enter(&mut self, text: &str) -> Result<(), MacroError> {
        self.level += 1;
        if self.level > MAX_NESTING + 1 {
            return Err(MacroError::Syntax(format!(
                "unreasonable macro call nesting: \"{text}\""
            )));
        }
        Ok(())
    }

    fn literal(&mut self, text: &str, out: &mut String) -> Result<(), MacroError> {
        self.enter(text)?;
        out.push_str(text);
        self.level -= 1;
        Ok(())
    }

    /// `mac_expand_callback()` for one `$...` expression.
    fn expression(&mut self, buf: &str, out: &mut String) -> Result<(), MacroError> {
        self.enter(buf)?;
        let lookup: Option<String>;
        let mut op: Option<u8> = None;
        let mut rest: &str;

        if let Some(curly) = find_left_curly(buf) {
            let (is_true, after) = self.relational(curly)?;
            lookup = Some(if is_true { "true" } else { "" }.to_string());
            rest = after;
            if let Some(&ch) = rest.as_bytes().first() {
                if ch != b'?' && ch != b':' {
                    return Err(MacroError::Syntax(format!(
                        "\"?\" or \":\" expected at: \"...}}>>>{}\"",
                        at_most_20(rest)
                    )));
                }
                op = Some(ch);
                rest = &rest[1..];
            }
        } else {
            let bytes = buf.as_bytes();
            let mut name_end = bytes.len();
            rest = "";
            for (i, &ch) in bytes.iter().enumerate() {
                if ch == b'?' || ch == b':' {
                    name_end = i;
                    op = Some(ch);
                    rest = &buf[i + 1..];
                    break;
                }
                if !ch.is_ascii_alphanumeric() && ch != b'_' {
                    return Err(MacroError::Syntax(format!(
                        "attribute name syntax error at: \"...{}>>>{}\"",
                        &buf[..i],
                        at_most_20(&buf[i..])
                    )));
                }
            }
            lookup = self.config.raw(&buf[..name_end]).map(Cow::into_owned);
        }

        let defined_non_empty = lookup.as_deref().is_some_and(|v| !v.is_empty());
        match op {
            Some(b'?') => {
                let (if_true, after) = operand(rest)?;
                if defined_non_empty {
                    self.parse(if_true, out)?;
                }
                if !after.is_empty() {
                    let Some(after) = after.strip_prefix(':') else {
                        return Err(MacroError::Syntax(format!(
                            "\":\" expected at: \"...{if_true}}}>>>{}\"",
                            at_most_20(after)
                        )));
                    };
                    self.if_false(after, defined_non_empty, out)?;
                }
            }
            Some(_) => self.if_false(rest, defined_non_empty, out)?,
            None => {
                if let Some(value) = lookup.as_deref().filter(|v| !v.is_empty()) {
                    self.parse(value, out)?;
                }
            }
        }
        self.level -= 1;
        Ok(())
    }

    fn if_false(
        &mut self,
        text: &str,
        defined_non_empty: bool,
        out: &mut String,
    ) -> Result<(), MacroError> {
        let (if_false, after) = operand(text)?;
        if !defined_non_empty {
            self.parse(if_false, out)?;
        }
        if !after.is_empty() {
            return Err(MacroError::Syntax(format!(
                "unexpected input at: \"...{if_false}}}>>>{}\"",
                at_most_20(after)
            )));
        }
        Ok(())
    }

    /// `{left} OP {right}`: evaluates and returns the text after it.
    fn relational<'t>(&mut self, text: &'t str) -> Result<(bool, &'t str), MacroError> {
        let (left, after_left) = extract_curly(text)?;
        let op_len = after_left
            .bytes()
            .take_while(|b| b"<>!=?+-*/~&|%".contains(b))
            .count();
        let op = &after_left[..op_len];
        if !matches!(op, "==" | "!=" | "<" | "<=" | ">=" | ">") {
            return Err(MacroError::Syntax(format!(
                "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" expected at: \"...{left}}}>>>{}\"",
                at_most_20(after_left)
            )));
        }
        let after_op = &after_left[op_len..];
        let Some(right_text) = find_left_curly(after_op) else {
            return Err(MacroError::Syntax(format!(
                "\"{{expression}}\" expected at: \"...{{{left}}} {op}>>>{}\"",
                at_most_20(after_op)
            )));
        };
        let (right, rest) = extract_curly(right_text)?;
        let mut left_value = String::new();
        self.parse(left, &mut left_value)?;
        let mut right_value = String::new();
        self.parse(right, &mut right_value)?;
        let ordering = if all_digits(&left_value) && all_digits(&right_value) {
            let l: i64 = left_value
                .parse()
                .map_err(|_| MacroError::Conversion(left_value.clone()))?;
            let r: i64 = right_value
                .parse()
                .map_err(|_| MacroError::Conversion(right_value.clone()))?;
            l.cmp(&r)
        } else {
            left_value.as_bytes().cmp(right_value.as_bytes())
        };
        let result = match op {
            "==" => ordering.is_eq(),
            "!=" => ordering.is_ne(),
            "<" => ordering.is_lt(),
            "<=" => ordering.is_le(),
            ">=" => ordering.is_ge(),
            _ => ordering.is_gt(),
        };
        Ok((result, rest))
    }
}

fn all_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// Skips white space; returns the text from the `{` if one follows.
fn find_left_curly(text: &str) -> Option<&str> {
    let skip = text.bytes().take_while(|&b| is_expr_space(b)).count();
    let rest = &text[skip..];
    rest.starts_with('{').then_some(rest)
}

/// `text` starts with `{`: returns the balanced payload and the text after
/// the closing `}` and any white space.
fn extract_curly(text: &str) -> Result<(&str, &str), MacroError> {
    let bytes = text.as_bytes();
    let mut depth = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if b == b'{' {
            depth += 1;
        } else if b == b'}' {
            depth -= 1;
            if depth == 0 {
                let after = &text[i + 1..];
                let skip = after.bytes().take_while(|&b| is_expr_space(b)).count();
                return Ok((&text[1..i], &after[skip..]));
            }
        }
    }
    Err(MacroError::Syntax(format!(
        "unbalanced {{}} in attribute expression: \"{text}\""
    )))
}

/// A `?`/`:` result operand: `{text}` (then the rest), or all of it.
fn operand(text: &str) -> Result<(&str, &str), MacroError> {
    match find_left_curly(text) {
        Some(curly) => extract_curly(curly),
        None => Ok((text, "")),
    }
}

/// Every parameter value the daemon uses, typed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// `syslog_facility` (default `mail`).
    pub syslog_facility: Facility,
    /// `maillog_file` (default empty: log to syslog).
    pub maillog_file: String,
    /// `maillog_file_prefixes` (default `/var, /dev/stdout`).
    pub maillog_file_prefixes: Vec<String>,
    /// `postlog_service_name` (default `postlog`).
    pub postlog_service_name: String,
    /// `myhostname`.
    pub myhostname: String,
    /// `mydomain`.
    pub mydomain: String,
    /// `syslog_name` (default `postfix`, or `$multi_instance_name`).
    pub syslog_name: String,
    /// `mail_owner` (default `postfix`).
    pub mail_owner: String,
    /// `queue_directory` (default `/var/spool/postfix`).
    pub queue_directory: PathBuf,
    /// `config_directory`.
    pub config_directory: PathBuf,
    /// `process_name` (read-only).
    pub process_name: String,
    /// `service_name` (read-only).
    pub service_name: String,
    /// `max_use` (default 100, min 1). Read for Postfix's checks only:
    /// scache disables the use limit.
    pub max_use: u32,
    /// `max_idle` (default 100s, min 1s).
    pub max_idle: Duration,
    /// `ipc_timeout` (default 3600s, min 1s).
    pub ipc_timeout: Duration,
    /// `daemon_timeout` (default 18000s, min 1s).
    pub daemon_timeout: Duration,
    /// `connection_cache_ttl_limit` (default 2s, min 1s).
    pub connection_cache_ttl_limit: Duration,
    /// `connection_cache_status_update_time` (default 600s, min 1s).
    pub connection_cache_status_update_time: Duration,
    /// `scache_dead_connection_eviction` (default yes).
    pub scache_dead_connection_eviction: bool,
    /// `scache_session_limit`; `None` (0): derive from `RLIMIT_NOFILE`.
    pub scache_session_limit: Option<usize>,
    /// `scache_endpoint_session_limit`; `None` (0): unlimited.
    pub scache_endpoint_session_limit: Option<usize>,
    /// `scache_destination_binding_limit`; `None` (0): unlimited.
    pub scache_destination_binding_limit: Option<usize>,
    /// `scache_label_limit`; `None` (0): unlimited.
    pub scache_label_limit: Option<usize>,
    /// `scache_label_length_limit` in bytes (default 4096); `None` (0): unlimited.
    pub scache_label_length_limit: Option<usize>,
    /// `scache_property_length_limit` in bytes (default 65536); `None` (0): unlimited.
    pub scache_property_length_limit: Option<usize>,
    /// `scache_fd_reserve` (default 64).
    pub scache_fd_reserve: usize,
    /// `scache_allowed_uids`, resolved to numbers (empty: own uid and root).
    pub scache_allowed_uids: Vec<u32>,
    /// `scache_allowed_gids`, resolved to numbers.
    pub scache_allowed_gids: Vec<u32>,
}

/// A user's IDs as resolved for `mail_owner`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The user name.
    pub name: String,
    /// Its user ID.
    pub uid: u32,
    /// Its primary group ID.
    pub gid: u32,
}

impl Params {
    /// Reads and checks every parameter, in the order Postfix 3.7's
    /// `mail_params_init()` + `multi_server_main()` + `scache` read them
    /// (so the first error reported is the same), then our own.
    ///
    /// `mail_owner` is not looked up here (see [`Params::resolve_mail_owner`]):
    /// standalone mode must work without a `postfix` user.
    pub fn from_config(config: &Config) -> Result<Params, ConfigError> {
        let config_dir_text = config.get_str("config_directory")?;
        let syslog_facility_name = config.get_str_checked("syslog_facility", 1, 0)?;
        let maillog_file = config.get_str("maillog_file")?;
        let maillog_file_prefixes =
            split_list(&config.get_str_checked("maillog_file_prefixes", 1, 0)?);
        let postlog_service_name = config.get_str_checked("postlog_service_name", 1, 0)?;
        let syslog_facility =
            Facility::from_name(&syslog_facility_name).ok_or_else(|| ConfigError::BadFacility {
                config_dir: config_dir_text.clone(),
                value: syslog_facility_name.clone(),
            })?;
        let myhostname = config.get_str_checked("myhostname", 1, 0)?;
        let mydomain = config.get_str_checked("mydomain", 1, 0)?;
        let syslog_name = config.get_str_checked("syslog_name", 1, 0)?;
        let mail_owner = config.get_str_checked("mail_owner", 1, 0)?;
        let queue_directory = config.get_str_checked("queue_directory", 1, 0)?;
        let process_name = config.get_str("process_name")?;
        let service_name = config.get_str("service_name")?;
        let max_use = config.get_int("max_use", 1, 0)?;
        let max_idle = config.get_time("max_idle", 1, 0)?;
        let ipc_timeout = config.get_time("ipc_timeout", 1, 0)?;
        let daemon_timeout = config.get_time("daemon_timeout", 1, 0)?;
        check_maillog_file(&maillog_file, &maillog_file_prefixes)?;
        let connection_cache_ttl_limit = config.get_time("connection_cache_ttl_limit", 1, 0)?;
        let connection_cache_status_update_time =
            config.get_time("connection_cache_status_update_time", 1, 0)?;

        let scache_dead_connection_eviction = config.get_bool("scache_dead_connection_eviction")?;
        let limit = |name: &str| -> Result<Option<usize>, ConfigError> {
            let n = non_negative(config, name)?;
            Ok((n != 0).then_some(n))
        };
        let scache_session_limit = limit("scache_session_limit")?;
        let scache_endpoint_session_limit = limit("scache_endpoint_session_limit")?;
        let scache_destination_binding_limit = limit("scache_destination_binding_limit")?;
        let scache_label_limit = limit("scache_label_limit")?;
        let scache_label_length_limit = limit("scache_label_length_limit")?;
        let scache_property_length_limit = limit("scache_property_length_limit")?;
        let scache_fd_reserve = non_negative(config, "scache_fd_reserve")?;
        let scache_allowed_uids =
            resolve_ids(config, &config_dir_text, "scache_allowed_uids", true)?;
        let scache_allowed_gids =
            resolve_ids(config, &config_dir_text, "scache_allowed_gids", false)?;

        Ok(Params {
            syslog_facility,
            maillog_file,
            maillog_file_prefixes,
            postlog_service_name,
            myhostname,
            mydomain,
            syslog_name,
            mail_owner,
            queue_directory: PathBuf::from(queue_directory),
            config_directory: PathBuf::from(config_dir_text),
            process_name,
            service_name,
            max_use: u32::try_from(max_use).unwrap_or(1),
            max_idle,
            ipc_timeout,
            daemon_timeout,
            connection_cache_ttl_limit,
            connection_cache_status_update_time,
            scache_dead_connection_eviction,
            scache_session_limit,
            scache_endpoint_session_limit,
            scache_destination_binding_limit,
            scache_label_limit,
            scache_label_length_limit,
            scache_property_length_limit,
            scache_fd_reserve,
            scache_allowed_uids,
            scache_allowed_gids,
        })
    }

    /// Looks up `mail_owner` as Postfix's `mail_params_init()` does in
    /// every daemon (unknown user, or user or group ID 0, is fatal). Call it
    /// in master mode, before the chroot.
    pub fn resolve_mail_owner(&self) -> Result<Owner, ConfigError> {
        let config_dir = self.config_directory.display().to_string();
        let user = match nix::unistd::User::from_name(&self.mail_owner) {
            Ok(Some(user)) => user,
            _ => {
                return Err(ConfigError::UnknownUser {
                    config_dir,
                    name: "mail_owner".to_string(),
                    value: self.mail_owner.clone(),
                })
            }
        };
        if user.uid.is_root() {
            return Err(ConfigError::PrivilegedUser {
                config_dir,
                value: self.mail_owner.clone(),
            });
        }
        if user.gid.as_raw() == 0 {
            return Err(ConfigError::PrivilegedGroup {
                config_dir,
                value: self.mail_owner.clone(),
            });
        }
        Ok(Owner {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// postlogd's socket: `$queue_directory/public/$postlog_service_name`.
    pub fn postlog_socket_path(&self) -> PathBuf {
        self.queue_directory
            .join("public")
            .join(&self.postlog_service_name)
    }
}

/// Postfix's `maillog_client_init()` check: a non-empty `maillog_file` must
/// start with one of the prefixes.
pub fn check_maillog_file(file: &str, prefixes: &[String]) -> Result<(), ConfigError> {
    if file.is_empty() || prefixes.iter().any(|p| file.starts_with(p.as_str())) {
        Ok(())
    } else {
        Err(ConfigError::MaillogPrefix {
            file: file.to_string(),
        })
    }
}

fn non_negative(config: &Config, name: &str) -> Result<usize, ConfigError> {
    let n = config.get_int(name, 0, 0)?;
    usize::try_from(n).map_err(|_| ConfigError::IntRange {
        name: name.to_string(),
        value: i64::from(n),
        limit: 0,
        below: true,
    })
}

fn resolve_ids(
    config: &Config,
    config_dir: &str,
    name: &str,
    users: bool,
) -> Result<Vec<u32>, ConfigError> {
    let mut ids = Vec::new();
    for item in config.get_list(name)? {
        if let Ok(id) = item.parse::<u32>() {
            ids.push(id);
            continue;
        }
        let found = if users {
            nix::unistd::User::from_name(&item)
                .ok()
                .flatten()
                .map(|u| u.uid.as_raw())
        } else {
            nix::unistd::Group::from_name(&item)
                .ok()
                .flatten()
                .map(|g| g.gid.as_raw())
        };
        match found {
            Some(id) => ids.push(id),
            None if users => {
                return Err(ConfigError::UnknownUser {
                    config_dir: config_dir.to_string(),
                    name: name.to_string(),
                    value: item,
                })
            }
            None => {
                return Err(ConfigError::UnknownGroup {
                    config_dir: config_dir.to_string(),
                    name: name.to_string(),
                    value: item,
                })
            }
        }
    }
    Ok(ids)
}

/// `postconf -d` style listing of every parameter in [`PARAMETERS`]:
/// `name = default` lines in name order, computed defaults evaluated with
/// `config` (use [`Config::new`] for pure defaults).
pub fn print_defaults(config: &Config) -> String {
    let mut out = String::new();
    for p in PARAMETERS {
        let value = match p.default {
            DefaultValue::Text(t) => t.to_string(),
            DefaultValue::Computed => config
                .computed_default(p.name)
                .map(Cow::into_owned)
                .unwrap_or_default(),
        };
        if value.is_empty() {
            out.push_str(&format!("{} =\n", p.name));
        } else {
            out.push_str(&format!("{} = {}\n", p.name, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(main_cf: &str) -> Config {
        let mut c = Config::new(Path::new("/etc/postfix"));
        c.set_system_hostname("vm");
        c.parse_main_cf("/etc/postfix/main.cf", main_cf).unwrap();
        c
    }

    fn expand(c: &Config, text: &str) -> String {
        c.expand(text).unwrap()
    }

    #[test]
    fn split_nameval_like_postfix() {
        assert_eq!(split_nameval("a=b"), Ok(("a", "b")));
        assert_eq!(split_nameval("  a  =  b c  "), Ok(("a", "b c")));
        assert_eq!(split_nameval("a ="), Ok(("a", "")));
        assert_eq!(split_nameval("a= \r"), Ok(("a", "")));
        assert_eq!(split_nameval("a==b"), Ok(("a", "=b")));
        assert_eq!(split_nameval(""), Err(NameValueError::MissingName));
        assert_eq!(split_nameval("  =x"), Err(NameValueError::MissingName));
        assert_eq!(split_nameval("a b=c"), Err(NameValueError::MissingEquals));
        assert_eq!(split_nameval("abc"), Err(NameValueError::MissingEquals));
    }

    #[test]
    fn main_cf_logical_lines() {
        let mut c = Config::new(Path::new("/x"));
        c.parse_main_cf(
            "/x/main.cf",
            "  orphan = 1\n# comment\n\nmax_use = 1\n  0\n#c\n\t0\r\nfoo=bar # not a comment\nmax_idle = 5\nmax_idle = 5\nmax_idle = 7\n",
        )
        .unwrap();
        assert_eq!(c.raw("max_use").unwrap(), "1  0\t0");
        assert_eq!(c.raw("foo").unwrap(), "bar # not a comment");
        assert_eq!(c.raw("max_idle").unwrap(), "7");
        assert_eq!(c.raw("orphan"), None);
        assert_eq!(
            c.take_warnings(),
            vec![
                "/x/main.cf: logical line must not start with whitespace: \"  orphan = 1\""
                    .to_string(),
                "/x/main.cf, line 11: overriding earlier entry: max_idle=5".to_string(),
            ]
        );
        assert!(c.take_warnings().is_empty());
    }

    #[test]
    fn main_cf_syntax_error_names_first_line() {
        let mut c = Config::new(Path::new("/x"));
        let e = c
            .parse_main_cf(
                "/tmp/pfx3/main.cf",
                "max_idle = 5\nmax_idle = 7\nfoo\n  bar\n",
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "/tmp/pfx3/main.cf, line 3: missing '=' after attribute name: \"foo  bar\""
        );
    }

    #[test]
    fn long_orphan_warning_is_cut() {
        let mut c = Config::new(Path::new("/x"));
        c.parse_main_cf("/m", "   0123456789012345678901234567890123\n")
            .unwrap();
        assert_eq!(
            c.take_warnings(),
            vec!["/m: logical line must not start with whitespace: \"   012345678901234567890123456...\"".to_string()]
        );
    }

    #[test]
    fn missing_main_cf() {
        let dir =
            std::env::temp_dir().join(format!("scache-config-missing-{}", std::process::id()));
        let e = Config::load(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("open {}/main.cf: No such file or directory", dir.display())
        );
    }

    #[test]
    fn load_from_file_and_overrides() {
        let dir = std::env::temp_dir().join(format!("scache-config-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("main.cf"),
            "max_idle = 30s\nconfig_directory = /nowhere\nsyslog_name = mine\n",
        )
        .unwrap();
        let mut c = Config::load(&dir).unwrap();
        c.apply_overrides(&[Override {
            name: "syslog_name".into(),
            value: "$mail_name-x".into(),
        }]);
        c.force("process_name", "scache");
        c.set("process_name", "evil");
        assert_eq!(
            c.get_time("max_idle", 1, 0).unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(c.get_str("syslog_name").unwrap(), "Postfix-x");
        assert_eq!(c.get_str("process_name").unwrap(), "scache");
        // The directory we read wins over main.cf's config_directory.
        assert_eq!(c.config_dir(), dir.as_path());
        assert_eq!(
            c.get_str("config_directory").unwrap(),
            dir.display().to_string()
        );
        c.set("config_directory", "/other");
        assert_eq!(c.get_str("config_directory").unwrap(), "/other");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn expansion_forms() {
        let c = config("a = A\nempty =\nnested = <$a>\nrec = [$nested]\nd = $$a\n");
        assert_eq!(expand(&c, "$a ${a} $(a)"), "A A A");
        assert_eq!(expand(&c, "x$undefined.y"), "x.y");
        assert_eq!(expand(&c, "$rec"), "[<A>]");
        assert_eq!(expand(&c, "$d"), "$a");
        assert_eq!(expand(&c, "$$$a"), "$A");
        assert_eq!(expand(&c, "${a?yes}|${empty?yes}|${nope?yes}"), "yes||");
        assert_eq!(expand(&c, "${a:no}|${empty:no}|${nope:no}"), "|no|no");
        assert_eq!(expand(&c, "${a?{1}:{2}}${empty?{1}:{2}}"), "12");
        assert_eq!(expand(&c, "${a?{ $a }}"), " A ");
        assert_eq!(expand(&c, "${a? {1} }x${nope: {1} }"), "1x1");
        assert_eq!(expand(&c, "${a?{1}:2}${nope?{1}:2}"), "12");
        assert_eq!(expand(&c, "1${a?x}:y"), "1x:y");
        assert_eq!(expand(&c, "${mail_owner?1}:{2}}x"), "1:{2}}x");
        assert_eq!(expand(&c, "${a?$$}"), "$");
        assert_eq!(expand(&c, "$a.b-c"), "A.b-c");
        assert_eq!(expand(&c, "$5"), "");
    }

    #[test]
    fn relational_expressions() {
        let c = config("owner = postfix\n");
        assert_eq!(expand(&c, "${{1} < {2}?{3}:{4}}"), "3");
        assert_eq!(expand(&c, "${{10} < {9}?{3}:{4}}"), "4");
        assert_eq!(expand(&c, "${{10} == {010}?{3}:{4}}"), "3");
        assert_eq!(expand(&c, "${{a}!={b}}x"), "truex");
        assert_eq!(expand(&c, "${{a}=={b}}x"), "x");
        assert_eq!(expand(&c, "${ {a} == {a} ? {7} : {8} }"), "7");
        assert_eq!(expand(&c, "${{ 9 } == {9}?{3}:{4}}"), "4");
        assert_eq!(expand(&c, "${{-1} < {1}?{3}:{4}}"), "3");
        assert_eq!(expand(&c, "${{9} <= {a}?{3}:{4}}"), "3");
        assert_eq!(expand(&c, "${{b} > {a}}"), "true");
        assert_eq!(expand(&c, "${{1}>={1}}"), "true");
        assert_eq!(expand(&c, "${{$owner}=={postfix}}"), "true");
        let e = c.expand("${{99999999999999999999} == {1}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "mac_exp_eval: bad conversion: 99999999999999999999"
        );
    }

    #[test]
    fn expansion_errors_have_postfix_warnings() {
        let c = config("a = $b\nb = $a\n");
        let warn = |text: &str| {
            let e = c.expand(text).unwrap_err();
            assert_eq!(
                e.to_string(),
                "dictionary mail_dict: macro processing error"
            );
            e.warning().unwrap().to_string()
        };
        assert_eq!(warn("$"), "empty macro name: \"$\"");
        assert_eq!(warn("x$"), "empty macro name: \"x$\"");
        assert_eq!(warn("${}"), "empty macro name: \"${}\"");
        assert_eq!(warn("${x"), "truncated macro reference: \"${x\"");
        assert_eq!(warn("$a"), "unreasonable macro call nesting: \"b\"");
        assert_eq!(
            warn("${a b}"),
            "attribute name syntax error at: \"...a>>> b\""
        );
        assert_eq!(
            warn("$(a{b)x"),
            "attribute name syntax error at: \"...a>>>{b\""
        );
        assert_eq!(
            warn("${a(b}x"),
            "attribute name syntax error at: \"...a>>>(b\""
        );
        assert_eq!(
            warn("${{a}==}"),
            "\"{expression}\" expected at: \"...{a} ==>>>\""
        );
        assert_eq!(
            warn("${{1}=~{1}}"),
            "\"==\" or \"!=\"\" or \"<\"\" or \"<=\"\" or \">=\"\" or \">\" expected at: \"...1}>>>=~{1}\""
        );
        assert_eq!(
            warn("${mail_owner?{1}  junk}"),
            "\":\" expected at: \"...1}>>>junk\""
        );
        assert_eq!(
            warn("${x:{1} junk}"),
            "unexpected input at: \"...1}>>>junk\""
        );
        assert_eq!(warn("${x?{1"), "truncated macro reference: \"${x?{1\"");
        assert_eq!(
            warn("${{a} == {b}junk}"),
            "\"?\" or \":\" expected at: \"...}>>>junk\""
        );
        assert_eq!(
            warn("${{a} == {b}"),
            "truncated macro reference: \"${{a} == {b}\""
        );
        assert_eq!(
            warn("$({a == x)"),
            "unbalanced {} in attribute expression: \"{a == x\""
        );
        assert_eq!(
            warn("$({a} == x)"),
            "\"{expression}\" expected at: \"...{a} ==>>> x\""
        );
        assert_eq!(
            warn("${a ? {1} : {2} }"),
            "attribute name syntax error at: \"...a>>> ? {1} : {2} \""
        );
    }

    #[test]
    fn computed_defaults_do_not_loop() {
        // Postfix gives "" here; we only promise to terminate.
        let c = config("myhostname = $mydomain\n");
        assert!(c.get_str("myhostname").is_ok());
        let c = config("mydomain = $myhostname\n");
        assert_eq!(c.get_str("myhostname").unwrap(), "vm.");
        assert_eq!(c.get_str("mydomain").unwrap(), "vm.");
    }

    #[test]
    fn deep_but_finite_recursion_is_fine() {
        let mut text = String::new();
        for i in 0..50 {
            text.push_str(&format!("p{i} = $p{}\n", i + 1));
        }
        text.push_str("p50 = end\n");
        let c = config(&text);
        assert_eq!(expand(&c, "$p0"), "end");
    }

    #[test]
    fn defaults_match_postconf_d() {
        let c = config("");
        assert_eq!(c.get_str("syslog_name").unwrap(), "postfix");
        assert_eq!(c.get_str("queue_directory").unwrap(), "/var/spool/postfix");
        assert_eq!(c.get_str("mail_owner").unwrap(), "postfix");
        assert_eq!(c.get_str("myhostname").unwrap(), "vm.localdomain");
        assert_eq!(c.get_str("mydomain").unwrap(), "localdomain");
        assert_eq!(c.get_str("config_directory").unwrap(), "/etc/postfix");
        assert_eq!(
            c.get_str("daemon_directory").unwrap(),
            "/usr/lib/postfix/sbin"
        );
        let c = config("multi_instance_name = postfix-out\n");
        assert_eq!(c.get_str("syslog_name").unwrap(), "postfix-out");
        let c = config("mydomain = example.org\n");
        assert_eq!(c.get_str("myhostname").unwrap(), "vm.example.org");
        assert_eq!(c.get_str("mydomain").unwrap(), "example.org");
        let mut c = config("");
        c.set_system_hostname("mx1.example.com");
        assert_eq!(c.get_str("myhostname").unwrap(), "mx1.example.com");
        assert_eq!(c.get_str("mydomain").unwrap(), "example.com");
        let c = config("myhostname = a.b.c\n");
        assert_eq!(c.get_str("mydomain").unwrap(), "b.c");
    }

    #[test]
    fn time_values() {
        let t = |v: &str| {
            let mut c = config("");
            c.set("connection_cache_ttl_limit", v);
            c.get_time("connection_cache_ttl_limit", 1, 0)
                .map(|d| d.as_secs())
                .map_err(|e| e.to_string())
        };
        assert_eq!(t("2sx"), Ok(2));
        assert_eq!(t("2"), Ok(2));
        assert_eq!(t(" 2"), Ok(2));
        assert_eq!(t("+2"), Ok(2));
        assert_eq!(t("3m"), Ok(180));
        assert_eq!(t("1h"), Ok(3600));
        assert_eq!(t("1d"), Ok(86400));
        assert_eq!(t("5w"), Ok(3_024_000));
        assert_eq!(t("$max_idle"), Ok(100));
        assert_eq!(
            t("2 s"),
            Err("parameter connection_cache_ttl_limit: bad time value or unit: 2 s".into())
        );
        assert_eq!(
            t(""),
            Err("parameter connection_cache_ttl_limit: bad time value or unit: ".into())
        );
        assert_eq!(
            t("0"),
            Err("invalid connection_cache_ttl_limit: 0 (min 1)".into())
        );
        assert_eq!(
            t("s"),
            Err("invalid connection_cache_ttl_limit: 0 (min 1)".into())
        );
        assert_eq!(
            t("scachex"),
            Err("invalid connection_cache_ttl_limit: 0 (min 1)".into())
        );
        assert!(t("2x").unwrap_err().ends_with("bad time value or unit: 2x"));
        assert!(t("-1").unwrap_err().ends_with("bad time value or unit: -1"));
        assert!(t("99999999999")
            .unwrap_err()
            .ends_with("bad time value or unit: 99999999999"));
        assert!(t("3550000w")
            .unwrap_err()
            .ends_with("bad time value or unit: 3550000w"));
        assert_eq!(t("2147483647"), Ok(2_147_483_647));
        assert_eq!(
            t("${x?{1}:{0}}"),
            Err("invalid connection_cache_ttl_limit: 0 (min 1)".into())
        );
        let mut c = config("");
        c.set("max_idle", "5");
        assert_eq!(
            c.get_time("max_idle", 1, 4).unwrap_err().to_string(),
            "invalid max_idle: 5 (max 4)"
        );
    }

    #[test]
    fn default_unit_comes_from_default_value() {
        assert_eq!(conv_time("12", b'h'), Some(12 * 3600));
        assert_eq!(conv_time("12s", b'h'), Some(12));
        assert_eq!(conv_time("12", b'x'), None);
    }

    #[test]
    fn int_values() {
        let i = |v: &str| {
            let mut c = config("");
            c.set("max_use", v);
            c.get_int("max_use", 1, 0).map_err(|e| e.to_string())
        };
        assert_eq!(i("5"), Ok(5));
        assert_eq!(i(" 5"), Ok(5));
        assert_eq!(i("+5"), Ok(5));
        assert_eq!(
            i("abc"),
            Err("bad numerical configuration: max_use = abc".into())
        );
        assert_eq!(
            i("5x"),
            Err("bad numerical configuration: max_use = 5x".into())
        );
        assert_eq!(i(""), Err("bad numerical configuration: max_use = ".into()));
        assert_eq!(
            i("2147483648"),
            Err("bad numerical configuration: max_use = 2147483648".into())
        );
        assert_eq!(i("0"), Err("invalid max_use parameter value 0 < 1".into()));
        assert_eq!(
            i("-5"),
            Err("invalid max_use parameter value -5 < 1".into())
        );
        assert_eq!(i("${nosuch:7}"), Ok(7));
        let mut c = config("");
        c.set("max_use", "9");
        assert_eq!(
            c.get_int("max_use", 1, 8).unwrap_err().to_string(),
            "invalid max_use parameter value 9 > 8"
        );
    }

    #[test]
    fn bool_and_string_values() {
        let mut c = config("");
        for (v, want) in [("yes", true), ("YES", true), ("No", false)] {
            c.set("scache_dead_connection_eviction", v);
            assert_eq!(c.get_bool("scache_dead_connection_eviction"), Ok(want));
        }
        c.set("scache_dead_connection_eviction", "true");
        assert_eq!(
            c.get_bool("scache_dead_connection_eviction")
                .unwrap_err()
                .to_string(),
            "bad boolean configuration: scache_dead_connection_eviction = true"
        );
        c.set("syslog_name", "");
        assert_eq!(
            c.get_str_checked("syslog_name", 1, 0)
                .unwrap_err()
                .to_string(),
            "bad string length 0 < 1: syslog_name = "
        );
        c.set("syslog_name", "abcdef");
        assert_eq!(
            c.get_str_checked("syslog_name", 1, 3)
                .unwrap_err()
                .to_string(),
            "bad string length 6 > 3: syslog_name = abcdef"
        );
        assert!(matches!(
            c.get_str("no_such_parameter"),
            Err(ConfigError::Unknown { .. })
        ));
    }

    #[test]
    fn params_defaults() {
        let mut c = config("");
        c.force("process_name", "scache");
        c.force("service_name", "scache");
        let p = Params::from_config(&c).unwrap();
        assert_eq!(p.connection_cache_ttl_limit, Duration::from_secs(2));
        assert_eq!(
            p.connection_cache_status_update_time,
            Duration::from_secs(600)
        );
        assert_eq!(p.max_idle, Duration::from_secs(100));
        assert_eq!(p.max_use, 100);
        assert_eq!(p.ipc_timeout, Duration::from_secs(3600));
        assert_eq!(p.daemon_timeout, Duration::from_secs(18000));
        assert_eq!(p.queue_directory, PathBuf::from("/var/spool/postfix"));
        assert_eq!(p.syslog_name, "postfix");
        assert_eq!(p.syslog_facility, Facility::MAIL);
        assert_eq!(p.maillog_file, "");
        assert_eq!(
            p.maillog_file_prefixes,
            vec!["/var".to_string(), "/dev/stdout".to_string()]
        );
        assert_eq!(
            p.postlog_socket_path(),
            PathBuf::from("/var/spool/postfix/public/postlog")
        );
        assert_eq!(p.myhostname, "vm.localdomain");
        assert!(p.scache_dead_connection_eviction);
        assert_eq!(p.scache_session_limit, None);
        assert_eq!(p.scache_endpoint_session_limit, None);
        assert_eq!(p.scache_destination_binding_limit, None);
        assert_eq!(p.scache_label_limit, None);
        assert_eq!(p.scache_label_length_limit, Some(4096));
        assert_eq!(p.scache_property_length_limit, Some(65536));
        assert_eq!(p.scache_fd_reserve, 64);
        assert!(p.scache_allowed_uids.is_empty() && p.scache_allowed_gids.is_empty());
    }

    #[test]
    fn params_error_order_like_postfix() {
        let first_error = |overrides: &[(&str, &str)]| {
            let mut c = config("");
            for (n, v) in overrides {
                c.set(n, v);
            }
            Params::from_config(&c).unwrap_err().to_string()
        };
        assert_eq!(
            first_error(&[("syslog_name", ""), ("syslog_facility", "foo")]),
            "file /etc/postfix/main.cf: parameter syslog_facility: unrecognized value: foo"
        );
        assert_eq!(
            first_error(&[("syslog_facility", "foo"), ("maillog_file_prefixes", "")]),
            "bad string length 0 < 1: maillog_file_prefixes = "
        );
        assert_eq!(
            first_error(&[("syslog_name", ""), ("postlog_service_name", "")]),
            "bad string length 0 < 1: postlog_service_name = "
        );
        assert_eq!(
            first_error(&[("syslog_name", ""), ("myhostname", "")]),
            "bad string length 0 < 1: myhostname = "
        );
        assert_eq!(
            first_error(&[("queue_directory", ""), ("mail_owner", "")]),
            "bad string length 0 < 1: mail_owner = "
        );
        assert_eq!(
            first_error(&[("max_idle", "0"), ("max_use", "0")]),
            "invalid max_use parameter value 0 < 1"
        );
        assert_eq!(
            first_error(&[("ipc_timeout", "0"), ("max_idle", "0")]),
            "invalid max_idle: 0 (min 1)"
        );
        assert_eq!(
            first_error(&[("daemon_timeout", "0"), ("ipc_timeout", "0")]),
            "invalid ipc_timeout: 0 (min 1)"
        );
        assert_eq!(
            first_error(&[("maillog_file", "/x"), ("max_idle", "0")]),
            "invalid max_idle: 0 (min 1)"
        );
        assert_eq!(
            first_error(&[("connection_cache_ttl_limit", "0"), ("maillog_file", "/x")]),
            "maillog_file value '/x' does not match any prefix in maillog_file_prefixes"
        );
        assert_eq!(
            first_error(&[
                ("connection_cache_status_update_time", "0"),
                ("connection_cache_ttl_limit", "0")
            ]),
            "invalid connection_cache_ttl_limit: 0 (min 1)"
        );
        assert_eq!(
            first_error(&[("scache_session_limit", "-1")]),
            "invalid scache_session_limit parameter value -1 < 0"
        );
        assert_eq!(
            first_error(&[("scache_allowed_uids", "no-such-user-hopefully")]),
            "file /etc/postfix/main.cf: parameter scache_allowed_uids: unknown user name value: no-such-user-hopefully"
        );
    }

    #[test]
    fn maillog_file_prefixes() {
        let prefixes = split_list("/var, /dev/stdout");
        assert!(check_maillog_file("", &prefixes).is_ok());
        assert!(check_maillog_file("/var/log/postfix.log", &prefixes).is_ok());
        assert!(check_maillog_file("/dev/stdout", &prefixes).is_ok());
        assert!(check_maillog_file("/variable", &prefixes).is_ok());
        assert_eq!(
            check_maillog_file("/tmp/x", &prefixes)
                .unwrap_err()
                .to_string(),
            "maillog_file value '/tmp/x' does not match any prefix in maillog_file_prefixes"
        );
    }

    #[test]
    fn allowed_ids_numbers_and_names() {
        let mut c = config("");
        c.set("scache_allowed_uids", "0, 1000 root");
        c.set("scache_allowed_gids", "5,root");
        let p = Params::from_config(&c).unwrap();
        assert_eq!(p.scache_allowed_uids, vec![0, 1000, 0]);
        assert_eq!(p.scache_allowed_gids, vec![5, 0]);
    }

    #[test]
    fn mail_owner_checks() {
        let mut c = config("");
        c.set("mail_owner", "root");
        let p = Params::from_config(&c).unwrap();
        assert_eq!(
            p.resolve_mail_owner().unwrap_err().to_string(),
            "file /etc/postfix/main.cf: parameter mail_owner: user root has privileged user ID"
        );
        c.set("mail_owner", "no-such-user-hopefully");
        let p = Params::from_config(&c).unwrap();
        assert_eq!(
            p.resolve_mail_owner().unwrap_err().to_string(),
            "file /etc/postfix/main.cf: parameter mail_owner: unknown user name value: no-such-user-hopefully"
        );
    }

    #[test]
    fn print_defaults_lists_every_parameter() {
        let mut c = Config::new(Path::new("/etc/postfix"));
        c.set_system_hostname("vm");
        let text = print_defaults(&c);
        for p in PARAMETERS {
            assert!(
                text.contains(&format!("\n{} =", p.name))
                    || text.starts_with(&format!("{} =", p.name)),
                "{}",
                p.name
            );
        }
        assert!(text.contains("\nconnection_cache_ttl_limit = 2s\n"));
        assert!(text.contains("\nmaillog_file =\n"));
        assert!(text.contains("\nmyhostname = vm.localdomain\n"));
        assert!(text
            .contains("\nsyslog_name = ${multi_instance_name?{$multi_instance_name}:{postfix}}\n"));
        let names: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(
            names, sorted,
            "PARAMETERS must stay sorted like postconf -d"
        );
    }

    #[test]
    fn standalone_config_directory() {
        assert_eq!(standalone_config_dir(None, |_| None), None);
        assert_eq!(
            standalone_config_dir(Some(Path::new("/x")), |_| Some("/y".into())),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            standalone_config_dir(None, |n| (n == "MAIL_CONFIG").then(|| "/y".into())),
            Some(PathBuf::from("/y"))
        );
        assert_eq!(standalone_config_dir(None, |_| Some("".into())), None);
    }

    #[test]
    fn config_dir_from_environment() {
        assert_eq!(config_dir_from_env(|_| None), PathBuf::from("/etc/postfix"));
        assert_eq!(
            config_dir_from_env(|n| (n == "MAIL_CONFIG").then(|| "/tmp/pfx".into())),
            PathBuf::from("/tmp/pfx")
        );
        assert_eq!(
            config_dir_from_env(|_| Some("".into())),
            PathBuf::from("/etc/postfix")
        );
    }
}
