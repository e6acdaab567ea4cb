//! [`ConfigError`]: what can be wrong with the configuration, with
//! Postfix's fatal message text for each problem.

use std::fmt;

use super::{NameValueError, MAIN_CF};

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
