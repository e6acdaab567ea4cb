//! `scache stats`: ask a running daemon for its live counters and print
//! them for a person (table), a program (JSON) or a scraper (Prometheus,
//! see [`crate::metrics`]).
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
            let numbers: Vec<(String, u64)> = attrs
                .iter()
                .filter_map(|(n, v)| Some((n.clone(), v.parse().ok()?)))
                .collect();
            out.push_str(&crate::metrics::prometheus(&numbers));
        }
    }
    out
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
            text.contains("# TYPE scache_sessions gauge\nscache_sessions 3\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# TYPE scache_lookups_total counter\n\
                           scache_lookups_total{request=\"find_endp\",result=\"hit\"} 7\n"
            ),
            "{text}"
        );
        assert!(!text.contains("status"));
    }
}
