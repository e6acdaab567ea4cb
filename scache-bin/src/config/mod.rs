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
//!
//! Where each concern lives:
//!
//! * [`Config`] (this file): loading `main.cf`, overrides, forced values,
//!   raw lookups and computed defaults, warnings;
//! * `lines.rs`: `main.cf` logical lines, [`split_nameval`], [`split_list`];
//! * `expand.rs`: `$name` expansion ([`Config::expand`]);
//! * `values.rs`: typed reads (strings with limits, booleans, integers,
//!   lists);
//! * `time.rs`: time values ([`Config::get_time`], [`conv_time`]);
//! * `error.rs`: [`ConfigError`] and its Postfix message texts;
//! * `schema.rs`: the parameters we know ([`PARAMETERS`]) and
//!   [`print_defaults`];
//! * `params.rs`: [`Params`], every value the daemon uses, checked;
//! * `os.rs`: host name, user and group lookups (the only system calls).

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

mod error;
mod expand;
mod lines;
mod os;
mod params;
mod schema;
mod time;
mod values;

pub use error::ConfigError;
pub use lines::{split_list, split_nameval, NameValueError};
pub use os::{system_hostname, Owner};
pub use params::{check_maillog_file, Facility, Params};
pub use schema::{param_def, print_defaults, DefaultValue, ParamDef, ParamKind, PARAMETERS};
pub use time::conv_time;

use lines::logical_lines;

/// Compiled-in configuration directory (Postfix's `DEF_CONFIG_DIR`).
pub const DEFAULT_CONFIG_DIR: &str = "/etc/postfix";

/// Name of the configuration file inside the configuration directory.
pub const MAIN_CF: &str = "main.cf";

/// Environment variable naming the configuration directory.
pub const ENV_MAIL_CONFIG: &str = "MAIL_CONFIG";

/// Computed defaults being evaluated (a parameter is undefined while its
/// own default is computed, as in Postfix where it is not yet in the
/// dictionary): bits for `myhostname` and `mydomain`.
const COMPUTING_MYHOSTNAME: u8 = 1;
const COMPUTING_MYDOMAIN: u8 = 2;

/// A `-o name=value` configuration override, already split and trimmed like
/// Postfix's `split_nameval()` does. The command line is parsed in
/// `options`, which records `-i` and `-m` as overrides of `max_idle` and
/// `max_use` too, in command-line order (last one wins);
/// [`Config::apply_overrides`] applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// Parameter name.
    pub name: String,
    /// Raw parameter value (not `$name`-expanded; may be empty).
    pub value: String,
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

/// Where a configuration entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// A `main.cf` line.
    MainCf { path: String, line: usize },
    /// A `-o name=value` option (or `-i`, `-m`).
    Override,
}

/// A loaded configuration: raw `name = value` entries from `main.cf` and
/// overrides, on top of the defaults in [`PARAMETERS`].
#[derive(Debug, Clone)]
pub struct Config {
    config_dir: PathBuf,
    entries: HashMap<String, String>,
    /// Where each name was set, for [`Config::unknown_parameters`]:
    /// `main.cf` names (path, line of the last definition) in file order,
    /// then `-o` names in command-line order.
    origins: Vec<(String, Origin)>,
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
            origins: Vec::new(),
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
            self.origins.push((
                name.to_string(),
                Origin::MainCf {
                    path: path.to_string(),
                    line,
                },
            ));
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
            self.origins.push((o.name.clone(), Origin::Override));
        }
    }

    /// Warnings for names the daemon does not know (not in
    /// [`PARAMETERS`]): every `-o` name, and the `scache_*` names of
    /// `main.cf` (its other names are Postfix's, for other programs, and
    /// stay silent). One warning per name and place, `unknown parameter
    /// NAME (...)`, with a "did you mean" when a known name is close
    /// (a typo). Nothing is fatal: as Postfix, the daemon ignores unused
    /// parameters.
    pub fn unknown_parameters(&self) -> Vec<String> {
        let mut seen: Vec<(&str, bool)> = Vec::new();
        let mut out = Vec::new();
        // The last main.cf definition of a name is the one in force.
        let last_line = |name: &str| {
            self.origins.iter().rev().find_map(|(n, o)| match o {
                Origin::MainCf { path, line } if n == name => Some((path.as_str(), *line)),
                _ => None,
            })
        };
        for (name, origin) in &self.origins {
            let is_override = matches!(origin, Origin::Override);
            if param_def(name).is_some()
                || (!is_override && !name.starts_with("scache_"))
                || seen.contains(&(name.as_str(), is_override))
            {
                continue;
            }
            seen.push((name.as_str(), is_override));
            let place = match (origin, last_line(name)) {
                (Origin::Override, _) => "-o option".to_string(),
                (_, Some((path, line))) => format!("{path}, line {line}"),
                (Origin::MainCf { path, line }, None) => format!("{path}, line {line}"),
            };
            let mut text = format!("unknown parameter {name} ({place})");
            if let Some(close) = schema::closest_parameter(name) {
                text.push_str(&format!("; did you mean {close}?"));
            }
            out.push(text);
        }
        out
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

    fn lookup_eval(&self, name: &str) -> Result<String, ConfigError> {
        match self.raw(name) {
            Some(raw) => self.expand(&raw),
            None => Err(ConfigError::Unknown {
                name: name.to_string(),
            }),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A configuration for unit tests: host name `vm`, `main_cf` as the
    /// text of `/etc/postfix/main.cf`.
    pub(super) fn test_config(main_cf: &str) -> Config {
        let mut c = Config::new(Path::new("/etc/postfix"));
        c.set_system_hostname("vm");
        c.parse_main_cf("/etc/postfix/main.cf", main_cf).unwrap();
        c
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
    fn computed_defaults_do_not_loop() {
        // Postfix gives "" here; we only promise to terminate.
        let c = test_config("myhostname = $mydomain\n");
        assert!(c.get_str("myhostname").is_ok());
        let c = test_config("mydomain = $myhostname\n");
        assert_eq!(c.get_str("myhostname").unwrap(), "vm.");
        assert_eq!(c.get_str("mydomain").unwrap(), "vm.");
    }

    #[test]
    fn defaults_match_postconf_d() {
        // (system host name, main.cf, parameter, value)
        let cases: &[(&str, &str, &str, &str)] = &[
            ("vm", "", "syslog_name", "postfix"),
            ("vm", "", "queue_directory", "/var/spool/postfix"),
            ("vm", "", "mail_owner", "postfix"),
            ("vm", "", "myhostname", "vm.localdomain"),
            ("vm", "", "mydomain", "localdomain"),
            ("vm", "", "config_directory", "/etc/postfix"),
            ("vm", "", "daemon_directory", "/usr/lib/postfix/sbin"),
            (
                "vm",
                "multi_instance_name = postfix-out\n",
                "syslog_name",
                "postfix-out",
            ),
            (
                "vm",
                "mydomain = example.org\n",
                "myhostname",
                "vm.example.org",
            ),
            ("vm", "mydomain = example.org\n", "mydomain", "example.org"),
            ("mx1.example.com", "", "myhostname", "mx1.example.com"),
            ("mx1.example.com", "", "mydomain", "example.com"),
            ("vm", "myhostname = a.b.c\n", "mydomain", "b.c"),
        ];
        for (host, main_cf, name, want) in cases {
            let mut c = test_config(main_cf);
            c.set_system_hostname(host);
            assert_eq!(
                c.get_str(name).as_deref(),
                Ok(*want),
                "host {host}, main.cf {main_cf:?}: {name}"
            );
        }
    }

    #[test]
    fn unknown_parameters_are_named_with_a_suggestion() {
        let mut c = test_config(
            "scache_sesion_limit = 5\nsmtpd_banner = x\nscache_whatever = 1\n\
             scache_sesion_limit = 6\nscache_session_limit = 7\n",
        );
        c.apply_overrides(&[
            Override {
                name: "scache_fd_reserv".into(),
                value: "3".into(),
            },
            Override {
                name: "connection_cache_ttl_limit".into(),
                value: "3s".into(),
            },
            Override {
                name: "smtp_tls_security_level".into(),
                value: "may".into(),
            },
            Override {
                name: "scache_fd_reserv".into(),
                value: "4".into(),
            },
        ]);
        assert_eq!(
            c.unknown_parameters(),
            vec![
                "unknown parameter scache_sesion_limit (/etc/postfix/main.cf, line 4); \
                 did you mean scache_session_limit?"
                    .to_string(),
                "unknown parameter scache_whatever (/etc/postfix/main.cf, line 3)".to_string(),
                "unknown parameter scache_fd_reserv (-o option); did you mean scache_fd_reserve?"
                    .to_string(),
                "unknown parameter smtp_tls_security_level (-o option)".to_string(),
            ]
        );
    }

    /// An environment for the `*_config_dir*` functions.
    type Env = fn(&str) -> Option<std::ffi::OsString>;

    #[test]
    fn standalone_config_directory() {
        let cases: &[(&str, Option<&str>, Env, Option<&str>)] = &[
            ("nothing set", None, |_| None, None),
            (
                "--config-dir wins",
                Some("/x"),
                |_| Some("/y".into()),
                Some("/x"),
            ),
            (
                "MAIL_CONFIG",
                None,
                |n| (n == "MAIL_CONFIG").then(|| "/y".into()),
                Some("/y"),
            ),
            ("empty MAIL_CONFIG", None, |_| Some("".into()), None),
        ];
        for (what, explicit, env, want) in cases {
            assert_eq!(
                standalone_config_dir(explicit.map(Path::new), env),
                want.map(PathBuf::from),
                "{what}"
            );
        }
    }

    #[test]
    fn config_dir_from_environment() {
        let cases: &[(&str, Env, &str)] = &[
            ("nothing set", |_| None, "/etc/postfix"),
            (
                "MAIL_CONFIG",
                |n| (n == "MAIL_CONFIG").then(|| "/tmp/pfx".into()),
                "/tmp/pfx",
            ),
            ("empty MAIL_CONFIG", |_| Some("".into()), "/etc/postfix"),
        ];
        for (what, env, want) in cases {
            assert_eq!(config_dir_from_env(env), PathBuf::from(want), "{what}");
        }
    }
}
