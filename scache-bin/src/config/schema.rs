//! The parameters we know: names, defaults, kinds and one-line
//! descriptions ([`PARAMETERS`]), and the `--print-defaults` listing.

use std::borrow::Cow;

use super::Config;

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
    def("scache_metrics_file", "", ParamKind::Str, "when non-empty, write the metrics (Prometheus text format) to this file every connection_cache_status_update_time and at exit; relative to the working directory ($queue_directory, or the chroot jail, in master mode)"),
    def("scache_property_length_limit", "65536", ParamKind::Int, "maximal length of a dest_prop or endp_prop, in bytes (0: unlimited)"),
    def("scache_quit_before_close", "no", ParamKind::Bool, "write QUIT to a cached session that leaves without being found (expired, evicted, at exit) before closing it; only for SMTP/LMTP sessions"),
    def("scache_session_limit", "0", ParamKind::Int, "maximal cached connections in total (0: derived from RLIMIT_NOFILE minus scache_fd_reserve)"),
    computed("service_name", ParamKind::Str, "master.cf service name: -n, else process_name (read-only)"),
    def("syslog_facility", "mail", ParamKind::Str, "syslog facility name"),
    def("syslog_name", "${multi_instance_name?{$multi_instance_name}:{postfix}}", ParamKind::Str, "first part of the log tag (tag/process_name[pid])"),
];

/// The known parameter closest to `name` by edit distance (insertions,
/// deletions, substitutions and swaps of two neighbours each count one),
/// when it is close enough to be a typo: at most 1 edit for names up to 8
/// bytes, 2 up to 16, else 3. Ties go to the first in name order.
pub fn closest_parameter(name: &str) -> Option<&'static str> {
    let limit = match name.len() {
        0..=8 => 1,
        9..=16 => 2,
        _ => 3,
    };
    PARAMETERS
        .iter()
        .map(|p| (edit_distance(name.as_bytes(), p.name.as_bytes()), p.name))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// Optimal string alignment distance between `a` and `b`.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// Looks up a parameter definition by name.
pub fn param_def(name: &str) -> Option<&'static ParamDef> {
    PARAMETERS.iter().find(|p| p.name == name)
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
    use std::path::Path;

    #[test]
    fn typos_find_their_parameter() {
        let cases: &[(&str, Option<&str>)] = &[
            ("scache_sesion_limit", Some("scache_session_limit")),
            ("scache_session_limt", Some("scache_session_limit")),
            ("scache_sessoin_limit", Some("scache_session_limit")),
            ("scache_fd_reserv", Some("scache_fd_reserve")),
            ("max_idel", Some("max_idle")),
            (
                "conection_cache_ttl_limit",
                Some("connection_cache_ttl_limit"),
            ),
            ("scache_whatever", None),
            ("smtp_tls_security_level", None),
            ("x", None),
        ];
        for (name, want) in cases {
            assert_eq!(closest_parameter(name), *want, "{name}");
        }
        assert_eq!(edit_distance(b"ab", b"ba"), 1);
        assert_eq!(edit_distance(b"", b"abc"), 3);
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
}
