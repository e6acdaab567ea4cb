//! `scache stats`: ask a running daemon for its live counters and print
//! them for a person (table), a program (JSON) or a scraper (Prometheus).
#![forbid(unsafe_code)]

use std::fmt::Write as _;

use std::process::ExitCode;

use crate::options::{StatsFormat, StatsOptions};

/// `scache stats`: fetch the counters over the protocol (`request=stats`)
/// and print them. Exit status 1 when the daemon cannot be asked.
pub fn run(o: &StatsOptions) -> ExitCode {
    let mut client = scache_proto::Client::with_config(scache_proto::ClientConfig {
        retry_pause: std::time::Duration::ZERO,
        ..scache_proto::ClientConfig::new(&o.socket)
    });
    match client.stats() {
        Ok(attrs) => {
            print!("{}", render(&attrs, o.format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scache stats: {}: {e}", o.socket.display());
            ExitCode::FAILURE
        }
    }
}

/// Help text of each counter the daemon reports, for the table and for
/// Prometheus `# HELP` lines. Counters not listed are printed without help.
fn help(name: &str) -> Option<(&'static str, &'static str)> {
    // (help, prometheus type)
    Some(match name {
        "uptime" => ("Seconds since the daemon started", "gauge"),
        "clients" => ("Client connections open now", "gauge"),
        "clients_accepted" => ("Client connections accepted", "counter"),
        "clients_refused" => ("Client connections refused by access control", "counter"),
        "dest_count" => ("Destination labels with at least one binding", "gauge"),
        "endp_count" => ("Endpoint labels with at least one session", "gauge"),
        "sess_count" => ("Cached sessions (open descriptors held)", "gauge"),
        "binding_count" => ("Destination-to-endpoint bindings cached", "gauge"),
        "dest_refreshes" => (
            "save_dest requests that refreshed an existing binding",
            "counter",
        ),
        "refused_saves" => ("Saves refused (label or property too long)", "counter"),
        "put_backs" => (
            "Sessions returned to the cache after a failed hand-over",
            "counter",
        ),
        "unwatched_saves" => (
            "Sessions cached without dead-peer watching (not pollable)",
            "counter",
        ),
        n if n.starts_with("peak_") => ("Largest value seen since start", "gauge"),
        n if n.ends_with("_hits") => ("Lookups that returned a session", "counter"),
        n if n.ends_with("_misses") => ("Lookups that found nothing", "counter"),
        n if n.starts_with("evicted_") => ("Entries evicted, by cause", "counter"),
        n if n.starts_with("expired_") => ("Entries that reached their time to live", "counter"),
        n if n.starts_with("saves_") || n.starts_with("save_") => {
            ("Save requests stored", "counter")
        }
        _ => return None,
    })
}

/// Renders the reply attributes (without `status`) in `format`.
pub fn render(attrs: &[(String, String)], format: StatsFormat) -> String {
    let attrs: Vec<&(String, String)> = attrs.iter().filter(|(n, _)| n != "status").collect();
    let mut out = String::new();
    match format {
        StatsFormat::Table => {
            let width = attrs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
            for (name, value) in attrs {
                let _ = writeln!(out, "{name:<width$}  {value}");
            }
        }
        StatsFormat::Json => {
            out.push('{');
            for (i, (name, value)) in attrs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{}\":", json_escape(name));
                if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                    out.push_str(value);
                } else {
                    let _ = write!(out, "\"{}\"", json_escape(value));
                }
            }
            out.push_str("}\n");
        }
        StatsFormat::Prometheus => {
            for (name, value) in attrs {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                let metric = format!("scache_{}", prom_name(name));
                if let Some((text, kind)) = help(name) {
                    let _ = writeln!(out, "# HELP {metric} {text}");
                    let _ = writeln!(out, "# TYPE {metric} {kind}");
                }
                let _ = writeln!(out, "{metric} {value}");
            }
        }
    }
    out
}

fn prom_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(String, String)> {
        vec![
            ("status".into(), "0".into()),
            ("uptime".into(), "12".into()),
            ("sess_count".into(), "3".into()),
            ("endp_hits".into(), "7".into()),
        ]
    }

    #[test]
    fn table_aligns_names_and_drops_status() {
        assert_eq!(
            render(&sample(), StatsFormat::Table),
            "uptime      12\nsess_count  3\nendp_hits   7\n"
        );
    }

    #[test]
    fn json_numbers_stay_numbers() {
        assert_eq!(
            render(&sample(), StatsFormat::Json),
            "{\"uptime\":12,\"sess_count\":3,\"endp_hits\":7}\n"
        );
    }

    #[test]
    fn prometheus_has_help_type_and_value() {
        let text = render(&sample(), StatsFormat::Prometheus);
        assert!(
            text.contains("# TYPE scache_sess_count gauge\nscache_sess_count 3\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE scache_endp_hits counter\nscache_endp_hits 7\n"),
            "{text}"
        );
        assert!(!text.contains("status"));
    }
}
