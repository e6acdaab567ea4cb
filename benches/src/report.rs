//! Output formats of the load generator: a text table, JSON lines, CSV
//! rows, and a markdown report rendered from the CSV.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::load::{Config, Driver, Length, RunResult, Workload};

/// `value` with `digits` decimals, or `-`.
pub fn opt(value: Option<f64>, digits: usize) -> String {
    match value {
        Some(v) => format!("{v:.digits$}"),
        None => "-".into(),
    }
}

fn describe(cfg: &Config, runs: usize) -> String {
    let len = match cfg.length {
        Length::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
        Length::Cycles(n) => format!("{n} cycles"),
    };
    let fill = if cfg.workload == Workload::Fill {
        format!(" fill={} endpoints={}", cfg.fill, cfg.endpoints)
    } else {
        String::new()
    };
    let io = match cfg.driver {
        Driver::Blocking => "--io blocking, a thread per client".to_string(),
        Driver::Epoll(t) => format!("--io epoll, {} driver thread(s)", t.min(cfg.clients)),
    };
    format!(
        "workload {} K={}{fill} ({io}): {len} x {runs} run(s), medians",
        cfg.workload.name(),
        cfg.clients
    )
}

fn spread(runs: &[RunResult]) -> (f64, f64) {
    let v: Vec<f64> = runs.iter().map(|r| r.cycles_per_s).collect();
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    (if min.is_finite() { min } else { 0.0 }, max)
}

/// A human-readable table of the medians, with the ratios ours/floor,
/// ours/postfix and postfix/floor when those daemons are present.
pub fn text_table(
    cfg: &Config,
    runs: usize,
    medians: &[RunResult],
    all: &[Vec<RunResult>],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}", describe(cfg, runs));
    let _ = writeln!(
        s,
        "{:<10} {:>10} {:>14} {:>8} {:>8} {:>10} {:>10} {:>9} {:>10}",
        "daemon",
        "cycles/s",
        "(min-max)",
        "p50 us",
        "p99 us",
        "daemon us",
        "loadgen us",
        "RSS KiB",
        "B/session"
    );
    for (m, rs) in medians.iter().zip(all) {
        let (lo, hi) = spread(rs);
        let _ = writeln!(
            s,
            "{:<10} {:>10.0} {:>14} {:>8.1} {:>8.1} {:>10} {:>10.2} {:>9} {:>10}",
            m.daemon,
            m.cycles_per_s,
            format!("{lo:.0}-{hi:.0}"),
            m.p50_us,
            m.p99_us,
            opt(m.daemon_cpu_us, 2),
            m.loadgen_cpu_us,
            m.rss_kib_end
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            opt(m.rss_bytes_per_session, 0),
        );
    }
    let get = |name: &str| {
        medians
            .iter()
            .find(|m| m.daemon == name)
            .map(|m| m.cycles_per_s)
    };
    let (floor, postfix, ours) = (get("floor"), get("postfix"), get("ours"));
    let mut ratios = Vec::new();
    if let (Some(o), Some(f)) = (ours, floor) {
        ratios.push(format!("ours/floor = {:.2}", o / f));
    }
    if let (Some(o), Some(p)) = (ours, postfix) {
        ratios.push(format!("ours/postfix = {:.2}", o / p));
    }
    if let (Some(p), Some(f)) = (postfix, floor) {
        ratios.push(format!("postfix/floor = {:.2}", p / f));
    }
    if !ratios.is_empty() {
        let _ = writeln!(s, "ratios (cycles/s): {}", ratios.join(", "));
    }
    for m in medians.iter().filter(|m| !m.syscalls.is_empty()) {
        let total: f64 = m.syscalls.iter().map(|r| r.1).sum();
        let list: Vec<String> = m
            .syscalls
            .iter()
            .filter(|r| r.1 >= 0.005)
            .map(|(n, c, e)| {
                if *e >= 0.005 {
                    format!("{n} {c:.2} ({e:.2} failed)")
                } else {
                    format!("{n} {c:.2}")
                }
            })
            .collect();
        let _ = writeln!(
            s,
            "{}: {total:.2} syscalls per cycle (strace -c): {}",
            m.daemon,
            list.join(", ")
        );
    }
    if medians.iter().any(|m| m.fill_seconds.is_some()) {
        for m in medians {
            let _ = writeln!(
                s,
                "{}: fill took {} s, daemon fds after fill {}, RSS {} -> {} KiB",
                m.daemon,
                opt(m.fill_seconds, 2),
                m.daemon_fds_filled
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.rss_kib_start
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                m.rss_kib_filled
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
            );
        }
    }
    s
}

fn json_opt(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "null".into(),
    }
}

fn json_run(r: &RunResult) -> String {
    format!(
        "{{\"cycles\":{},\"seconds\":{:.3},\"cycles_per_s\":{:.1},\"p50_us\":{:.2},\"p99_us\":{:.2},\
         \"daemon_cpu_us\":{},\"loadgen_cpu_us\":{:.3},\"rss_kib_start\":{},\"rss_kib_filled\":{},\
         \"rss_kib_end\":{},\"rss_bytes_per_session\":{},\"fill_seconds\":{},\"daemon_fds_filled\":{}}}",
        r.cycles,
        r.seconds,
        r.cycles_per_s,
        r.p50_us,
        r.p99_us,
        json_opt(r.daemon_cpu_us),
        r.loadgen_cpu_us,
        json_opt(r.rss_kib_start.map(|v| v as f64)),
        json_opt(r.rss_kib_filled.map(|v| v as f64)),
        json_opt(r.rss_kib_end.map(|v| v as f64)),
        json_opt(r.rss_bytes_per_session),
        json_opt(r.fill_seconds),
        json_opt(r.daemon_fds_filled.map(|v| v as f64)),
    )
}

/// One JSON object (one line) for one daemon: the configuration (with the
/// client model: `"io":"blocking"`, one thread per client, or `"epoll"`,
/// `driver_threads` threads driving them all), the medians and every run.
pub fn json(cfg: &Config, median: &RunResult, runs: &[RunResult]) -> String {
    let fill = if cfg.workload == Workload::Fill {
        cfg.fill
    } else {
        0
    };
    let endpoints = if cfg.workload == Workload::Fill {
        cfg.endpoints
    } else {
        0
    };
    let runs: Vec<String> = runs.iter().map(json_run).collect();
    let (io, driver_threads) = match cfg.driver {
        Driver::Blocking => ("blocking", cfg.clients),
        Driver::Epoll(t) => ("epoll", t.min(cfg.clients)),
    };
    format!(
        "{{\"workload\":\"{}\",\"clients\":{},\"fill\":{fill},\"endpoints\":{endpoints},\
         \"io\":\"{io}\",\"driver_threads\":{driver_threads},\
         \"pinned\":{},\"daemon\":\"{}\",\"median\":{},\"runs\":[{}]}}",
        cfg.workload.name(),
        cfg.clients,
        cfg.pin,
        median.daemon.replace(['"', '\\'], "_"),
        json_run(median),
        runs.join(",")
    )
}

/// The CSV columns of [`csv_row`].
pub const CSV_HEADER: &str = "workload,clients,fill,endpoints,pinned,daemon,runs,cycles_per_s,\
cycles_per_s_min,cycles_per_s_max,p50_us,p99_us,daemon_cpu_us,loadgen_cpu_us,rss_kib_start,\
rss_kib_end,rss_bytes_per_session,fill_s";

/// One CSV row (see [`CSV_HEADER`]) for one daemon's medians.
pub fn csv_row(cfg: &Config, m: &RunResult, runs: &[RunResult]) -> String {
    let fill = if cfg.workload == Workload::Fill {
        cfg.fill
    } else {
        0
    };
    let endpoints = if cfg.workload == Workload::Fill {
        cfg.endpoints
    } else {
        0
    };
    let (lo, hi) = spread(runs);
    let o = |v: Option<f64>, d: usize| match v {
        Some(v) => format!("{v:.d$}"),
        None => String::new(),
    };
    format!(
        "{},{},{fill},{endpoints},{},{},{},{:.1},{lo:.1},{hi:.1},{:.2},{:.2},{},{:.3},{},{},{},{}",
        cfg.workload.name(),
        cfg.clients,
        u8::from(cfg.pin),
        m.daemon.replace(',', "_"),
        runs.len(),
        m.cycles_per_s,
        m.p50_us,
        m.p99_us,
        o(m.daemon_cpu_us, 3),
        m.loadgen_cpu_us,
        o(m.rss_kib_start.map(|v| v as f64), 0),
        o(m.rss_kib_end.map(|v| v as f64), 0),
        o(m.rss_bytes_per_session, 1),
        o(m.fill_seconds, 2),
    )
}

/// Renders the markdown report of a CSV file made of [`csv_row`] lines
/// (header lines anywhere are skipped): one row per configuration with
/// the floor, Postfix and ours side by side and the ratios, then the
/// daemons' CPU time per cycle and latencies, then memory per cached
/// session for the `fill` rows.
pub fn markdown_from_csv(text: &str) -> Result<String, String> {
    let header: Vec<&str> = CSV_HEADER.split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .expect("known column")
    };
    // (order of first appearance, config key) -> daemon -> row
    type Key = (String, usize, usize, bool);
    let mut order: Vec<Key> = Vec::new();
    let mut rows: BTreeMap<Key, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("workload,") {
            continue;
        }
        let f: Vec<String> = line.split(',').map(String::from).collect();
        if f.len() != header.len() {
            return Err(format!(
                "line {}: {} fields, expected {}",
                n + 1,
                f.len(),
                header.len()
            ));
        }
        let k: usize = f[col("clients")]
            .parse()
            .map_err(|_| format!("line {}: bad clients", n + 1))?;
        let fill: usize = f[col("fill")]
            .parse()
            .map_err(|_| format!("line {}: bad fill", n + 1))?;
        let key = (f[col("workload")].clone(), k, fill, f[col("pinned")] == "1");
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        rows.entry(key)
            .or_default()
            .insert(f[col("daemon")].clone(), f);
    }
    let num = |r: Option<&Vec<String>>, c: &str| -> Option<f64> {
        r.and_then(|r| r[col(c)].parse::<f64>().ok())
    };
    let cell = |v: Option<f64>, d: usize| match v {
        Some(v) => format!("{v:.d$}"),
        None => "n/a".into(),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    };
    let cached = |w: &str, fill: usize| {
        if w == "fill" {
            fill.to_string()
        } else {
            "-".into()
        }
    };
    // The workload cell, marked "(pinned)" when the file mixes rows
    // measured with and without --pin.
    let mixed = order.iter().any(|k| k.3) && order.iter().any(|k| !k.3);
    let wl = |k: &Key| {
        if mixed && k.3 {
            format!("{} (pinned)", k.0)
        } else {
            k.0.clone()
        }
    };
    let mut s = String::new();
    let _ = writeln!(s, "Cycles per second (median; higher is better):\n");
    let _ = writeln!(
        s,
        "| workload | K | cached | floor | Postfix | ours | ours/floor | ours/Postfix | Postfix/floor |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for key in &order {
        let d = &rows[key];
        let (f, p, o) = (
            num(d.get("floor"), "cycles_per_s"),
            num(d.get("postfix"), "cycles_per_s"),
            num(d.get("ours"), "cycles_per_s"),
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            wl(key),
            key.1,
            cached(&key.0, key.2),
            cell(f, 0),
            cell(p, 0),
            cell(o, 0),
            ratio(o, f),
            ratio(o, p),
            ratio(p, f)
        );
    }
    let _ = writeln!(
        s,
        "\nDaemon CPU time per cycle in microseconds, and p50 / p99 cycle latency in \
         microseconds (lower is better):\n"
    );
    let _ = writeln!(
        s,
        "| workload | K | cached | floor CPU | Postfix CPU | ours CPU | floor p50/p99 | Postfix p50/p99 | ours p50/p99 |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for key in &order {
        let d = &rows[key];
        let lat = |name: &str| match (num(d.get(name), "p50_us"), num(d.get(name), "p99_us")) {
            (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            wl(key),
            key.1,
            cached(&key.0, key.2),
            cell(num(d.get("floor"), "daemon_cpu_us"), 2),
            cell(num(d.get("postfix"), "daemon_cpu_us"), 2),
            cell(num(d.get("ours"), "daemon_cpu_us"), 2),
            lat("floor"),
            lat("postfix"),
            lat("ours")
        );
    }
    if order.iter().any(|k| k.0 == "fill") {
        let _ = writeln!(
            s,
            "\nDaemon memory per cached session (RSS growth during the fill / sessions, bytes):\n"
        );
        let _ = writeln!(s, "| workload | K | cached | floor | Postfix | ours |");
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|");
        for key in order.iter().filter(|k| k.0 == "fill") {
            let d = &rows[key];
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                wl(key),
                key.1,
                key.2,
                cell(num(d.get("floor"), "rss_bytes_per_session"), 0),
                cell(num(d.get("postfix"), "rss_bytes_per_session"), 0),
                cell(num(d.get("ours"), "rss_bytes_per_session"), 0)
            );
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_to_markdown() {
        let cfg = Config {
            workload: Workload::Fill,
            fill: 1000,
            endpoints: 250,
            ..Config::default()
        };
        let r = |d: &str, c: f64| RunResult {
            daemon: d.into(),
            cycles_per_s: c,
            daemon_cpu_us: Some(10.0),
            rss_bytes_per_session: Some(275.0),
            ..RunResult::default()
        };
        let mut csv = format!("{CSV_HEADER}\n");
        for (d, c) in [("floor", 100.0), ("postfix", 40.0), ("ours", 90.0)] {
            let m = r(d, c);
            csv.push_str(&csv_row(&cfg, &m, std::slice::from_ref(&m)));
            csv.push('\n');
        }
        let md = markdown_from_csv(&csv).unwrap();
        assert!(
            md.contains("| fill | 8 | 1000 | 100 | 40 | 90 | 0.90 | 2.25 | 0.40 |"),
            "{md}"
        );
        assert!(md.contains("| fill | 8 | 1000 | 275 | 275 | 275 |"), "{md}");
        assert!(markdown_from_csv("a,b\n").is_err());
        let j = json(&cfg, &r("ours", 1.0), &[r("ours", 1.0)]);
        assert!(
            j.starts_with("{\"workload\":\"fill\",\"clients\":8,\"fill\":1000,"),
            "{j}"
        );
        assert!(j.contains("\"io\":\"epoll\",\"driver_threads\":1,"), "{j}");
        let blocking = Config {
            driver: Driver::Blocking,
            ..cfg
        };
        let j = json(&blocking, &r("ours", 1.0), &[r("ours", 1.0)]);
        assert!(
            j.contains("\"io\":\"blocking\",\"driver_threads\":8,"),
            "{j}"
        );
    }
}
