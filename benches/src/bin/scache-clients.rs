//! `scache-clients`: the library clients against our daemon. The blocking
//! `Client` (one per thread, as each of Postfix's delivery agents has its
//! own) against one `AsyncClient` shared by tokio tasks (on a
//! current-thread runtime, and on a multi-thread runtime with 2 workers),
//! at 1, 8 and 64 concurrent callers, each doing save_endp + find_endp
//! cycles with a real descriptor on its own endpoint.
//!
//! ```text
//! cargo build --release -p scache-bin -p scache-benches
//! target/release/scache-clients [--ours target/release/scache] [--duration 2] [--runs 3] [--markdown]
//! ```
//!
//! Prints cycles per second (median of the runs, with the range) and the
//! median and 99th percentile latency of one cycle.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scache_core::ConnectionCache;
use scache_proto::{AsyncClient, Client};
use scache_testkit::harness::HarnessBuilder;

const TTL: Duration = Duration::from_secs(3600);
const CALLERS: [usize; 3] = [1, 8, 64];

struct Options {
    ours: PathBuf,
    duration: Duration,
    runs: usize,
    markdown: bool,
}

fn parse() -> Result<Options, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut o = Options {
        ours: exe.with_file_name("scache"),
        duration: Duration::from_secs(2),
        runs: 3,
        markdown: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--ours" => o.ours = PathBuf::from(value()?),
            "--duration" => {
                o.duration = Duration::from_secs_f64(value()?.parse().map_err(|e| format!("{e}"))?)
            }
            "--runs" => o.runs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--markdown" => o.markdown = true,
            "-h" | "--help" => {
                return Err(
                    "usage: scache-clients [--ours PATH] [--duration S] [--runs R] [--markdown]"
                        .into(),
                )
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Latencies of the cycles of one run, and how long it ran.
struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
}

fn session() -> (OwnedFd, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    (OwnedFd::from(a), b)
}

fn blocking_run(socket: &Path, callers: usize, duration: Duration) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let all = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|t| {
            let (stop, all, socket) = (stop.clone(), all.clone(), socket.to_path_buf());
            std::thread::spawn(move || {
                let mut client = Client::new(socket);
                let endp = format!("smtp\n10.1.0.{t}\n25\n");
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let (fd, far) = session();
                    client.save_endp(TTL, endp.as_bytes(), b"", fd).unwrap();
                    let found = client.find_endp(endp.as_bytes()).unwrap();
                    assert!(found.is_some());
                    drop(far);
                    mine.push(t0.elapsed());
                }
                all.lock().unwrap().extend(mine);
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = start.elapsed();
    let latencies = std::mem::take(&mut *all.lock().unwrap());
    Run { latencies, elapsed }
}

fn async_run(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    callers: usize,
    duration: Duration,
) -> Run {
    let client = AsyncClient::new(socket);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let latencies = rt.block_on(async {
        let tasks: Vec<_> = (0..callers)
            .map(|t| {
                let (client, stop) = (client.clone(), stop.clone());
                tokio::spawn(async move {
                    let endp = format!("smtp\n10.2.0.{t}\n25\n");
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t0 = Instant::now();
                        let (fd, far) = session();
                        client
                            .save_endp(TTL, endp.as_bytes(), b"", fd)
                            .await
                            .unwrap();
                        let found = client.find_endp(endp.as_bytes()).await.unwrap();
                        assert!(found.is_some());
                        drop(far);
                        mine.push(t0.elapsed());
                    }
                    mine
                })
            })
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });
    Run {
        latencies,
        elapsed: start.elapsed(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Row {
    client: &'static str,
    callers: usize,
    rates: Vec<f64>,
    p50: Duration,
    p99: Duration,
}

fn summarize(client: &'static str, callers: usize, runs: Vec<Run>) -> Row {
    let mut rates: Vec<f64> = runs.iter().map(Run::rate).collect();
    rates.sort_by(f64::total_cmp);
    let mut lat: Vec<Duration> = runs.into_iter().flat_map(|r| r.latencies).collect();
    lat.sort();
    Row {
        client,
        callers,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
        rates,
    }
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let _ = scache_benches::sys::raise_nofile_limit();
    let daemon = match HarnessBuilder::new(&o.ours)
        .arg("-o")
        .arg("connection_cache_ttl_limit=3600s")
        .arg("-o")
        .arg("max_idle=3600s")
        .spawn()
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("cannot start {}: {e}", o.ours.display());
            return ExitCode::FAILURE;
        }
    };
    let socket = daemon.socket_path().to_path_buf();
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows = Vec::new();
    for callers in CALLERS {
        let (mut blocking, mut on_single, mut on_multi) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..o.runs {
            blocking.push(blocking_run(&socket, callers, o.duration));
            on_single.push(async_run(&single, &socket, callers, o.duration));
            on_multi.push(async_run(&multi, &socket, callers, o.duration));
        }
        rows.push(summarize(
            "blocking Client, a thread each",
            callers,
            blocking,
        ));
        rows.push(summarize(
            "AsyncClient, current_thread runtime",
            callers,
            on_single,
        ));
        rows.push(summarize(
            "AsyncClient, multi_thread runtime (2 workers)",
            callers,
            on_multi,
        ));
    }
    if o.markdown {
        println!("| client | callers | cycles/s (median) | range | p50 | p99 |");
        println!("|---|---:|---:|---|---:|---:|");
    }
    for r in &rows {
        let median = r.rates[r.rates.len() / 2];
        let (lo, hi) = (r.rates[0], r.rates[r.rates.len() - 1]);
        if o.markdown {
            println!(
                "| {} | {} | {:.0} | {:.0}-{:.0} | {} µs | {} µs |",
                r.client,
                r.callers,
                median,
                lo,
                hi,
                r.p50.as_micros(),
                r.p99.as_micros()
            );
        } else {
            println!(
                "{:<46} callers {:>3}: {:>8.0} cycles/s (runs {:.0}-{:.0}), p50 {} µs, p99 {} µs",
                r.client,
                r.callers,
                median,
                lo,
                hi,
                r.p50.as_micros(),
                r.p99.as_micros()
            );
        }
    }
    ExitCode::SUCCESS
}
