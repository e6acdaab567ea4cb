//! `scache-load`: the end-to-end load generator (see `scache_benches::load`).
//!
//! Run `scache-load --help` for the options.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use scache_benches::load::{self, Config, DaemonSpec, Driver, Length, RunResult, Workload};
use scache_benches::report;
use scache_benches::sys;

const USAGE: &str = "\
usage: scache-load [options]

Drives a Postfix-compatible connection cache daemon over the real protocol
(descriptor passing included) and reports cycles/s, cycle latency, the
daemon's CPU time per cycle and its memory. Every reply byte, property and
received descriptor is checked; any error exits with status 1.

daemon:
  --daemon D        floor | postfix | ours | PATH (default floor); started
                    the way Postfix's master starts it
  --compare         run floor, postfix and ours (the ones available) one
                    after the other and print ours/floor and ours/postfix
  --require-all     with --compare: fail if one of the three is missing
  --connect SOCKET  use a daemon that is already running on SOCKET
  --pid PID         its pid (for CPU and memory readings)
  --floor PATH      floor server binary (default: scache-floor next to this
                    program)
  --ours PATH       our daemon (default: $SCACHE_OURS, else scache next to
                    this program)
  --daemon-arg ARG  extra argument for postfix/ours/PATH (repeatable), e.g.
                    --daemon-arg -o --daemon-arg name=value; always given:
                    -o connection_cache_ttl_limit=3600s -o max_idle=3600s
  --floor-io M      floor server I/O design: epoll (default) | threads

workload:
  --workload W      endp | dest | miss | fill (default endp)
  --clients K       concurrent clients, one connection each (default 8)
  --duration S      seconds measured per run (default 5)
  --cycles N        run exactly N cycles instead (no warm-up)
  --warmup S        seconds run before measuring (default 0.5)
  --fill N          sessions kept cached (workload fill; default 1000)
  --endpoints M     endpoints they are spread over (default N/4)
  --labels L        labels per client for endp/dest/miss (default 4)
  --ttl S           TTL of every save (default 3600)
  --timeout S       reply timeout (default 30)
  --runs R          runs per daemon; medians are reported (default 1)
  --io MODE         epoll (default): --driver-threads threads drive all the
                    connections with epoll; blocking: one thread per client
  --driver-threads T  threads for --io epoll (default 1)
  --pin             pin the daemon to the last CPU and the load generator to
                    the others (stops the scheduler from sometimes putting
                    both on one CPU, which serialises them)
  --strace FILE     attach `strace -c -f` to the daemon for the measured
                    cycles (needs --cycles) and print syscalls per cycle

output:
  --json            one JSON object per daemon on stdout (text to stderr)
  --csv             one CSV row per daemon on stdout (text to stderr)
  --csv-header      print the CSV header line first (alone: print it and
                    exit)
  --markdown FILE   print the markdown report of a CSV file made with --csv
                    and exit
  --smoke           correctness smoke run: a few hundred cycles of every
                    workload against floor, postfix (when installed; required
                    when SCACHE_REQUIRE_POSTFIX=1) and ours (when found)
";

struct Opts {
    cfg: Config,
    daemons: Vec<String>,
    compare: bool,
    require_all: bool,
    connect: Option<PathBuf>,
    pid: Option<i32>,
    floor: Option<PathBuf>,
    ours: Option<PathBuf>,
    floor_io: Option<String>,
    runs: usize,
    json: bool,
    csv: bool,
    csv_header: bool,
    markdown: Option<PathBuf>,
    smoke: bool,
    endpoints_set: bool,
    fill_set: bool,
}

fn parse_num<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("{opt}: bad number {v:?}"))
}

fn parse_secs(opt: &str, v: &str) -> Result<Duration, String> {
    let s: f64 = parse_num(opt, v)?;
    if !(0.0..=1e6).contains(&s) {
        return Err(format!("{opt}: out of range: {v}"));
    }
    Ok(Duration::from_secs_f64(s))
}

fn parse_args() -> Result<Option<Opts>, String> {
    let mut o = Opts {
        cfg: Config::default(),
        daemons: Vec::new(),
        compare: false,
        require_all: false,
        connect: None,
        pid: None,
        floor: None,
        ours: None,
        floor_io: None,
        runs: 1,
        json: false,
        csv: false,
        csv_header: false,
        markdown: None,
        smoke: false,
        endpoints_set: false,
        fill_set: false,
    };
    let mut io = None;
    let mut threads = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut val = || -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => args.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(None),
            "--daemon" => o.daemons.push(val()?),
            "--compare" => o.compare = true,
            "--require-all" => o.require_all = true,
            "--connect" => o.connect = Some(PathBuf::from(val()?)),
            "--pid" => o.pid = Some(parse_num(&name, &val()?)?),
            "--floor" => o.floor = Some(PathBuf::from(val()?)),
            "--ours" => o.ours = Some(PathBuf::from(val()?)),
            "--daemon-arg" => o.cfg.daemon_args.push(val()?),
            "--floor-io" => o.floor_io = Some(val()?),
            "--workload" => {
                let v = val()?;
                o.cfg.workload =
                    Workload::parse(&v).ok_or_else(|| format!("unknown workload {v:?}"))?;
            }
            "--clients" => o.cfg.clients = parse_num(&name, &val()?)?,
            "--duration" => o.cfg.length = Length::Duration(parse_secs(&name, &val()?)?),
            "--cycles" => o.cfg.length = Length::Cycles(parse_num(&name, &val()?)?),
            "--warmup" => o.cfg.warmup = parse_secs(&name, &val()?)?,
            "--fill" => {
                o.cfg.fill = parse_num(&name, &val()?)?;
                o.fill_set = true;
            }
            "--endpoints" => {
                o.cfg.endpoints = parse_num(&name, &val()?)?;
                o.endpoints_set = true;
            }
            "--labels" => o.cfg.labels = parse_num(&name, &val()?)?,
            "--ttl" => o.cfg.ttl = parse_num(&name, &val()?)?,
            "--timeout" => o.cfg.timeout = parse_secs(&name, &val()?)?,
            "--runs" => o.runs = parse_num(&name, &val()?)?,
            "--io" => {
                io = match val()?.as_str() {
                    "epoll" => Some(true),
                    "blocking" => Some(false),
                    v => return Err(format!("--io: unknown mode {v:?}")),
                }
            }
            "--driver-threads" => threads = parse_num(&name, &val()?)?,
            "--strace" => o.cfg.strace = Some(PathBuf::from(val()?)),
            "--pin" => o.cfg.pin = true,
            "--json" => o.json = true,
            "--csv" => o.csv = true,
            "--csv-header" => o.csv_header = true,
            "--markdown" => o.markdown = Some(PathBuf::from(val()?)),
            "--smoke" => o.smoke = true,
            _ => return Err(format!("unknown option {a:?} (see --help)")),
        }
    }
    o.cfg.driver = match io {
        Some(false) => Driver::Blocking,
        _ => Driver::Epoll(threads),
    };
    if o.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    if o.cfg.workload == Workload::Fill {
        if !o.fill_set {
            o.cfg.fill = 1000;
        }
        if !o.endpoints_set {
            o.cfg.endpoints = (o.cfg.fill / 4).max(o.cfg.clients).min(o.cfg.fill);
        }
    }
    Ok(Some(o))
}

fn exe_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

fn floor_path(o: &Opts) -> PathBuf {
    o.floor
        .clone()
        .unwrap_or_else(|| exe_dir().join("scache-floor"))
}

fn ours_path(o: &Opts) -> PathBuf {
    o.ours
        .clone()
        .or_else(|| std::env::var_os("SCACHE_OURS").map(PathBuf::from))
        .unwrap_or_else(|| exe_dir().join("scache"))
}

fn spec_for(o: &Opts, name: &str) -> DaemonSpec {
    match name {
        "floor" => DaemonSpec::Floor(floor_path(o)),
        "postfix" => DaemonSpec::Postfix,
        "ours" => DaemonSpec::Ours(ours_path(o)),
        p => DaemonSpec::Path(PathBuf::from(p)),
    }
}

fn available(spec: &DaemonSpec) -> bool {
    match spec {
        DaemonSpec::Floor(p) | DaemonSpec::Ours(p) | DaemonSpec::Path(p) => p.is_file(),
        DaemonSpec::Postfix => scache_testkit::harness::postfix_scache_path().is_some(),
        DaemonSpec::Connect { .. } => true,
    }
}

fn config_for(o: &Opts, spec: &DaemonSpec) -> Config {
    let mut cfg = o.cfg.clone();
    if let (DaemonSpec::Floor(_), Some(m)) = (spec, &o.floor_io) {
        cfg.daemon_args = vec!["-o".into(), format!("floor_io={m}")];
    } else if matches!(spec, DaemonSpec::Floor(_)) {
        cfg.daemon_args.clear();
    }
    cfg
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("scache-load: {e}");
            return ExitCode::from(2);
        }
    };
    if o.csv_header && !o.csv {
        println!("{}", report::CSV_HEADER);
        return ExitCode::SUCCESS;
    }
    if let Some(csv) = &o.markdown {
        return match std::fs::read_to_string(csv) {
            Ok(text) => match report::markdown_from_csv(&text) {
                Ok(md) => {
                    print!("{md}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("scache-load: {}: {e}", csv.display());
                    ExitCode::FAILURE
                }
            },
            Err(e) => {
                eprintln!("scache-load: {}: {e}", csv.display());
                ExitCode::FAILURE
            }
        };
    }
    // Remember the CPUs we may use before --pin narrows them.
    let _ = sys::allowed_cpus();
    if let Err(e) = sys::raise_nofile_limit() {
        eprintln!("scache-load: warning: cannot raise RLIMIT_NOFILE: {e}");
    }
    let r = if o.smoke { smoke(&o) } else { measure(&o) };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scache-load: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn measure(o: &Opts) -> Result<(), String> {
    let specs: Vec<DaemonSpec> = if let Some(sock) = &o.connect {
        vec![DaemonSpec::Connect {
            socket: sock.clone(),
            pid: o.pid,
        }]
    } else if o.compare {
        let mut v = Vec::new();
        for name in ["floor", "postfix", "ours"] {
            let s = spec_for(o, name);
            if available(&s) {
                v.push(s);
            } else if o.require_all {
                return Err(format!("--compare --require-all: {name} is not available"));
            } else {
                eprintln!("scache-load: note: {name} is not available, skipped");
            }
        }
        v
    } else if o.daemons.is_empty() {
        vec![spec_for(o, "floor")]
    } else {
        o.daemons.iter().map(|d| spec_for(o, d)).collect()
    };
    load::validate(&o.cfg)?;
    // Runs interleaved (floor, postfix, ours, floor, ...) so that a slow
    // phase of the machine hits every daemon alike.
    let mut runs: Vec<Vec<RunResult>> = vec![Vec::new(); specs.len()];
    for r in 0..o.runs {
        for (i, spec) in specs.iter().enumerate() {
            let cfg = config_for(o, spec);
            let res = load::run_once(spec, &cfg)?;
            eprintln!(
                "  run {}/{} {:8} {:>10.0} cycles/s  p50 {:>7.1} us  p99 {:>7.1} us  daemon {} us/cycle",
                r + 1,
                o.runs,
                res.daemon,
                res.cycles_per_s,
                res.p50_us,
                res.p99_us,
                report::opt(res.daemon_cpu_us, 2)
            );
            runs[i].push(res);
        }
    }
    let medians: Vec<RunResult> = runs.iter().map(|r| load::median(r)).collect();
    let text = report::text_table(&o.cfg, o.runs, &medians, &runs);
    if o.json || o.csv {
        eprint!("{text}");
        if o.csv_header {
            println!("{}", report::CSV_HEADER);
        }
        for (m, rs) in medians.iter().zip(&runs) {
            if o.json {
                println!("{}", report::json(&o.cfg, m, rs));
            }
            if o.csv {
                println!("{}", report::csv_row(&o.cfg, m, rs));
            }
        }
    } else {
        print!("{text}");
    }
    Ok(())
}

fn smoke(o: &Opts) -> Result<(), String> {
    let mut specs = vec![spec_for(o, "floor")];
    if !available(&specs[0]) {
        return Err(format!(
            "smoke: floor server {} not found (build scache-benches, or pass --floor)",
            floor_path(o).display()
        ));
    }
    if available(&DaemonSpec::Postfix) {
        specs.push(DaemonSpec::Postfix);
    } else if std::env::var_os(scache_testkit::harness::REQUIRE_POSTFIX_ENV)
        .is_some_and(|v| v == "1")
    {
        return Err(format!(
            "smoke: {} is missing and {}=1 (install Debian's postfix)",
            scache_testkit::harness::POSTFIX_SCACHE,
            scache_testkit::harness::REQUIRE_POSTFIX_ENV
        ));
    } else {
        eprintln!(
            "scache-load --smoke: note: {} not found (install postfix), not checked",
            scache_testkit::harness::POSTFIX_SCACHE
        );
    }
    let ours = spec_for(o, "ours");
    if available(&ours) {
        specs.push(ours);
    } else {
        eprintln!(
            "scache-load --smoke: note: our daemon ({}) not found, not checked",
            ours_path(o).display()
        );
    }
    for d in &o.daemons {
        specs.push(spec_for(o, d));
    }
    let base = Config {
        length: Length::Cycles(200),
        timeout: Duration::from_secs(20),
        ..o.cfg.clone()
    };
    let plans: Vec<Config> = vec![
        Config {
            workload: Workload::Endp,
            clients: 1,
            driver: Driver::Blocking,
            ..base.clone()
        },
        Config {
            workload: Workload::Endp,
            clients: 4,
            length: Length::Cycles(400),
            driver: Driver::Epoll(2),
            ..base.clone()
        },
        Config {
            workload: Workload::Dest,
            clients: 3,
            length: Length::Cycles(300),
            ..base.clone()
        },
        Config {
            workload: Workload::Miss,
            clients: 2,
            driver: Driver::Blocking,
            ..base.clone()
        },
        Config {
            workload: Workload::Fill,
            clients: 3,
            fill: 300,
            endpoints: 30,
            length: Length::Cycles(300),
            driver: Driver::Epoll(2),
            ..base.clone()
        },
    ];
    for spec in &specs {
        for plan in &plans {
            let cfg = config_for(o, spec);
            let cfg = Config {
                daemon_args: cfg.daemon_args,
                ..plan.clone()
            };
            let r = load::run_once(spec, &cfg)?;
            eprintln!(
                "smoke ok: {:8} {:5} K={} fill={:<4} {:?}: {} cycles checked",
                spec.name(),
                cfg.workload.name(),
                cfg.clients,
                cfg.fill,
                cfg.driver,
                r.cycles
            );
        }
    }
    eprintln!("scache-load --smoke: all checks passed");
    Ok(())
}
