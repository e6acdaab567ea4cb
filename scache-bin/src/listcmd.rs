//! `scache list`: ask a running daemon what it caches (our `list` request)
//! and print it for a person (table) or a program (JSON).
//!
//! Labels are opaque bytes (for SMTP, lines such as
//! `smtp\n192.0.2.1\n25\n`): the table shows them escaped with
//! [`Printable`] (`\n`, `\xff`, ...), JSON as strings (UTF-8 labels as they
//! are, JSON-escaped; others in their [`Printable`] form).
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use scache_proto::attr::Printable;
use scache_proto::message::Listing;

use crate::options::{ListFormat, ListOptions};

/// `scache list`: fetch the listing over the protocol and print it. Exit
/// status 1 when the daemon cannot be asked (or does not support `list`:
/// Postfix's own daemon).
pub fn run(o: &ListOptions) -> ExitCode {
    let mut client = scache_proto::Client::with_config(scache_proto::ClientConfig {
        retry_pause: Duration::ZERO,
        ..scache_proto::ClientConfig::new(&o.socket)
    });
    match client.list(Some(o.limit)) {
        Ok(listing) => {
            print!("{}", render(&listing, o.format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("scache list: {}: {e}", o.socket.display());
            ExitCode::FAILURE
        }
    }
}

/// Renders a listing in `format`.
pub fn render(listing: &Listing, format: ListFormat) -> String {
    match format {
        ListFormat::Table => table(listing),
        ListFormat::Json => json(listing),
    }
}

/// A duration for a person: `850ms`, `1.5s`, `2m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

fn table(l: &Listing) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "endpoints: {} cached, {} shown",
        l.endpoints_total,
        l.endpoints.len()
    );
    if !l.endpoints.is_empty() {
        let _ = writeln!(
            out,
            "{:>8}  {:>8}  {:>8}  endpoint",
            "sessions", "oldest", "ttl_left"
        );
        for e in &l.endpoints {
            let age = e.oldest_age.map(human).unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "{:>8}  {:>8}  {:>8}  {}",
                e.sessions,
                age,
                human(e.ttl_left),
                Printable(&e.label)
            );
        }
    }
    let _ = writeln!(
        out,
        "\ndestinations: {} cached, {} shown",
        l.destinations_total,
        l.destinations.len()
    );
    if !l.destinations.is_empty() {
        let _ = writeln!(
            out,
            "{:>8}  {:>8}  destination, then its bindings in order: ttl_left  endpoint",
            "sessions", "bindings"
        );
        for d in &l.destinations {
            let _ = writeln!(
                out,
                "{:>8}  {:>8}  {}",
                d.sessions,
                d.bindings_total,
                Printable(&d.label)
            );
            for b in &d.bindings {
                let _ = writeln!(
                    out,
                    "{:>18}  {:>8}  {}",
                    "",
                    human(b.ttl_left),
                    Printable(&b.endpoint)
                );
            }
            let more = d.bindings_total.saturating_sub(d.bindings.len() as u64);
            if more > 0 {
                let _ = writeln!(out, "{:>18}  ({more} more)", "");
            }
        }
    }
    out
}

fn json_str(out: &mut String, bytes: &[u8]) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t.to_string(),
        Err(_) => Printable(bytes).to_string(),
    };
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json(l: &Listing) -> String {
    let ms = |d: Duration| d.as_millis();
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"endpoints_total\":{},\"destinations_total\":{},\"endpoints\":[",
        l.endpoints_total, l.destinations_total
    );
    for (i, e) in l.endpoints.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        json_str(&mut out, &e.label);
        let _ = write!(out, ",\"sessions\":{},\"oldest_age_ms\":", e.sessions);
        match e.oldest_age {
            Some(a) => {
                let _ = write!(out, "{}", ms(a));
            }
            None => out.push_str("null"),
        }
        let _ = write!(out, ",\"ttl_left_ms\":{}}}", ms(e.ttl_left));
    }
    out.push_str("],\"destinations\":[");
    for (i, d) in l.destinations.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"label\":");
        json_str(&mut out, &d.label);
        let _ = write!(
            out,
            ",\"sessions\":{},\"bindings_total\":{},\"bindings\":[",
            d.sessions, d.bindings_total
        );
        for (j, b) in d.bindings.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"endpoint\":");
            json_str(&mut out, &b.endpoint);
            let _ = write!(out, ",\"ttl_left_ms\":{}}}", ms(b.ttl_left));
        }
        out.push_str("]}");
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scache_proto::message::{ListedBinding, ListedDestination, ListedEndpoint};

    fn sample() -> Listing {
        Listing {
            endpoints_total: 3,
            destinations_total: 1,
            endpoints: vec![
                ListedEndpoint {
                    label: b"smtp\n192.0.2.1\n25\n".to_vec(),
                    sessions: 2,
                    oldest_age: Some(Duration::from_millis(1500)),
                    ttl_left: Duration::from_millis(900),
                },
                ListedEndpoint {
                    label: b"odd\xff\"".to_vec(),
                    sessions: 1,
                    oldest_age: None,
                    ttl_left: Duration::from_secs(125),
                },
            ],
            destinations: vec![ListedDestination {
                label: b"smtp\nexample.com\n25\n".to_vec(),
                sessions: 2,
                bindings_total: 3,
                bindings: vec![ListedBinding {
                    endpoint: b"smtp\n192.0.2.1\n25\n".to_vec(),
                    ttl_left: Duration::from_millis(1900),
                }],
            }],
        }
    }

    #[test]
    fn table_escapes_labels_and_aligns() {
        assert_eq!(
            table(&sample()),
            "endpoints: 3 cached, 2 shown\n\
             sessions    oldest  ttl_left  endpoint\n\
             \x20      2      1.5s     900ms  smtp\\n192.0.2.1\\n25\\n\n\
             \x20      1         -     2m05s  odd\\xff\"\n\
             \n\
             destinations: 1 cached, 1 shown\n\
             sessions  bindings  destination, then its bindings in order: ttl_left  endpoint\n\
             \x20      2         3  smtp\\nexample.com\\n25\\n\n\
             \x20                       1.9s  smtp\\n192.0.2.1\\n25\\n\n\
             \x20                   (2 more)\n"
        );
    }

    #[test]
    fn json_keeps_labels_as_strings() {
        let text = json(&sample());
        assert!(
            text.starts_with(
                "{\"endpoints_total\":3,\"destinations_total\":1,\"endpoints\":[\
             {\"label\":\"smtp\\n192.0.2.1\\n25\\n\",\"sessions\":2,\"oldest_age_ms\":1500,\
             \"ttl_left_ms\":900},{\"label\":\"odd\\\\xff\\\"\",\"sessions\":1,\
             \"oldest_age_ms\":null,\"ttl_left_ms\":125000}]"
            ),
            "{text}"
        );
        assert!(text.ends_with(
            "\"bindings\":[{\"endpoint\":\"smtp\\n192.0.2.1\\n25\\n\",\"ttl_left_ms\":1900}]}]}\n"
        ), "{text}");
    }

    #[test]
    fn human_durations() {
        for (ms, want) in [
            (0, "0ms"),
            (999, "999ms"),
            (1500, "1.5s"),
            (59_949, "59.9s"),
            (60_000, "1m00s"),
            (3_599_000, "59m59s"),
            (3_660_000, "1h01m"),
        ] {
            assert_eq!(human(Duration::from_millis(ms)), want);
        }
    }
}
