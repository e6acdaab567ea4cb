//! [`Params`]: every parameter value the daemon uses, read and checked in
//! the order Postfix reads them.

use std::path::PathBuf;
use std::time::Duration;

use super::os::{self, Owner};
use super::{split_list, Config, ConfigError};

/// A syslog facility (the `syslog_facility` parameter). The `<PRI>` value
/// of a record, [`Facility::priority`], is computed in `logging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(u8);

impl Facility {
    /// `LOG_MAIL`, Postfix's default.
    pub const MAIL: Facility = Facility(2);

    /// Looks up a `syslog_facility` name as Postfix on Linux does (`auth`,
    /// `authpriv`, `cron`, `daemon`, `ftp`, `kern`, `lpr`, `mail`, `news`,
    /// `syslog`, `user`, `uucp`, `local0`..`local7`; case-sensitive).
    pub fn from_name(name: &str) -> Option<Facility> {
        let code = match name {
            "kern" => 0,
            "user" => 1,
            "mail" => 2,
            "daemon" => 3,
            "auth" => 4,
            "syslog" => 5,
            "lpr" => 6,
            "news" => 7,
            "uucp" => 8,
            "cron" => 9,
            "authpriv" => 10,
            "ftp" => 11,
            "local0" => 16,
            "local1" => 17,
            "local2" => 18,
            "local3" => 19,
            "local4" => 20,
            "local5" => 21,
            "local6" => 22,
            "local7" => 23,
            _ => return None,
        };
        Some(Facility(code))
    }

    /// The facility number (`LOG_MAIL` is 2).
    pub fn code(self) -> u8 {
        self.0
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
    /// `scache_metrics_file`; `None` (empty): no metrics file.
    pub scache_metrics_file: Option<PathBuf>,
    /// `scache_quit_before_close` (default no).
    pub scache_quit_before_close: bool,
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
        let scache_quit_before_close = config.get_bool("scache_quit_before_close")?;
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
        let scache_metrics_file = Some(config.get_str("scache_metrics_file")?)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from);

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
            scache_metrics_file,
            scache_quit_before_close,
        })
    }

    /// Looks up `mail_owner` as Postfix's `mail_params_init()` does in
    /// every daemon (unknown user, or user or group ID 0, is fatal). Call it
    /// in master mode, before the chroot.
    pub fn resolve_mail_owner(&self) -> Result<Owner, ConfigError> {
        let config_dir = self.config_directory.display().to_string();
        let Some(owner) = os::user_by_name(&self.mail_owner) else {
            return Err(ConfigError::UnknownUser {
                config_dir,
                name: "mail_owner".to_string(),
                value: self.mail_owner.clone(),
            });
        };
        if owner.uid == 0 {
            return Err(ConfigError::PrivilegedUser {
                config_dir,
                value: self.mail_owner.clone(),
            });
        }
        if owner.gid == 0 {
            return Err(ConfigError::PrivilegedGroup {
                config_dir,
                value: self.mail_owner.clone(),
            });
        }
        Ok(owner)
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
            os::user_by_name(&item).map(|u| u.uid)
        } else {
            os::group_id_by_name(&item)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::test_config;

    #[test]
    fn params_defaults() {
        let mut c = test_config("");
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
        // Two bad values: the first one Postfix reads is reported.
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("syslog_name", ""), ("syslog_facility", "foo")],
                "file /etc/postfix/main.cf: parameter syslog_facility: unrecognized value: foo",
            ),
            (
                &[("syslog_facility", "foo"), ("maillog_file_prefixes", "")],
                "bad string length 0 < 1: maillog_file_prefixes = ",
            ),
            (
                &[("syslog_name", ""), ("postlog_service_name", "")],
                "bad string length 0 < 1: postlog_service_name = ",
            ),
            (
                &[("syslog_name", ""), ("myhostname", "")],
                "bad string length 0 < 1: myhostname = ",
            ),
            (
                &[("queue_directory", ""), ("mail_owner", "")],
                "bad string length 0 < 1: mail_owner = ",
            ),
            (
                &[("max_idle", "0"), ("max_use", "0")],
                "invalid max_use parameter value 0 < 1",
            ),
            (
                &[("ipc_timeout", "0"), ("max_idle", "0")],
                "invalid max_idle: 0 (min 1)",
            ),
            (
                &[("daemon_timeout", "0"), ("ipc_timeout", "0")],
                "invalid ipc_timeout: 0 (min 1)",
            ),
            (
                &[("maillog_file", "/x"), ("max_idle", "0")],
                "invalid max_idle: 0 (min 1)",
            ),
            (
                &[("connection_cache_ttl_limit", "0"), ("maillog_file", "/x")],
                "maillog_file value '/x' does not match any prefix in maillog_file_prefixes",
            ),
            (
                &[
                    ("connection_cache_status_update_time", "0"),
                    ("connection_cache_ttl_limit", "0"),
                ],
                "invalid connection_cache_ttl_limit: 0 (min 1)",
            ),
            (
                &[("scache_session_limit", "-1")],
                "invalid scache_session_limit parameter value -1 < 0",
            ),
            (
                &[("scache_allowed_uids", "no-such-user-hopefully")],
                "file /etc/postfix/main.cf: parameter scache_allowed_uids: unknown user name value: no-such-user-hopefully",
            ),
        ];
        for (overrides, want) in cases {
            let mut c = test_config("");
            for (n, v) in *overrides {
                c.set(n, v);
            }
            assert_eq!(
                Params::from_config(&c).map_err(|e| e.to_string()),
                Err(want.to_string()),
                "{overrides:?}"
            );
        }
    }

    #[test]
    fn maillog_file_prefixes() {
        let prefixes = split_list("/var, /dev/stdout");
        let cases: &[(&str, Result<(), &str>)] = &[
            ("", Ok(())),
            ("/var/log/postfix.log", Ok(())),
            ("/dev/stdout", Ok(())),
            ("/variable", Ok(())),
            (
                "/tmp/x",
                Err("maillog_file value '/tmp/x' does not match any prefix in maillog_file_prefixes"),
            ),
        ];
        for (file, want) in cases {
            assert_eq!(
                check_maillog_file(file, &prefixes).map_err(|e| e.to_string()),
                want.map_err(str::to_string),
                "check_maillog_file({file:?})"
            );
        }
    }

    #[test]
    fn allowed_ids_numbers_and_names() {
        let mut c = test_config("");
        c.set("scache_allowed_uids", "0, 1000 root");
        c.set("scache_allowed_gids", "5,root");
        let p = Params::from_config(&c).unwrap();
        assert_eq!(p.scache_allowed_uids, vec![0, 1000, 0]);
        assert_eq!(p.scache_allowed_gids, vec![5, 0]);
    }

    #[test]
    fn mail_owner_checks() {
        let cases: &[(&str, &str)] = &[
            (
                "root",
                "file /etc/postfix/main.cf: parameter mail_owner: user root has privileged user ID",
            ),
            (
                "no-such-user-hopefully",
                "file /etc/postfix/main.cf: parameter mail_owner: unknown user name value: no-such-user-hopefully",
            ),
        ];
        let mut c = test_config("");
        for (owner, want) in cases {
            c.set("mail_owner", owner);
            let p = Params::from_config(&c).unwrap();
            assert_eq!(
                p.resolve_mail_owner().map_err(|e| e.to_string()),
                Err(want.to_string()),
                "mail_owner = {owner}"
            );
        }
    }

    #[test]
    fn facility_names() {
        let cases: &[(&str, Option<Facility>)] = &[
            ("mail", Some(Facility::MAIL)),
            ("local7", Some(Facility(23))),
            ("Mail", None),
            ("security", None),
        ];
        for (name, want) in cases {
            assert_eq!(Facility::from_name(name), *want, "from_name({name:?})");
        }
        assert_eq!(Facility::from_name("local7").map(Facility::code), Some(23));
    }
}
