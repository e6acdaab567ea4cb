//! Criterion benchmarks of the cache core (`scache-core`).
//!
//! Labels and properties have the shape Postfix's SMTP client gives them
//! (newline-terminated fields, `*` for "not applicable"; properties as
//! `name=value` lines, about 70 bytes for an endpoint). Each label is
//! written into a reused buffer just before use, as the daemon has it in
//! its receive buffer. Descriptors are dummy `u32`s. The clock stands still
//! while measuring, so nothing expires in the steady-state benchmarks and
//! the cache holds exactly N sessions throughout.
//!
//! - `save_endp+find_endp/N`: one save and one lookup (through the
//!   `ConnectionCache` trait) on an endpoint picked at random among N/4
//!   endpoints holding 4 sessions each: every operation touches memory
//!   no other recent operation touched (the worst case for caches and TLB).
//! - `save_endp+take_endp/N`: the same with the inherent `take_endp`, which
//!   also returns what `put_back` needs (a copy of the endpoint label).
//! - `save_endp+find_endp, 1k-session working set/N`: N sessions cached,
//!   but the operations go to 256 endpoints (1k sessions) spread over the
//!   cache: what is left is the cost of the structure's size itself.
//! - `save_dest+save_endp+find_dest/N`: what an SMTP client does per reused
//!   connection: refresh a binding, save a session, find it by destination;
//!   N destinations bound to N endpoints with one session each; random.
//! - `expire/1M`: expiring 1M sessions (TTLs 1-3 s, saved over 1 s) in one
//!   call; reported per session.
//!
//! Before the benchmarks, the resident memory per cached session is
//! printed (1M sessions with 71-byte properties; measured in a fresh child
//! process per layout).
//!
//! Run: `cargo bench -p scache-benches --bench core`; `scripts/criterion-report.sh
//! core` runs it and prints its figures as one table.

use std::hint::black_box;
use std::io::Write as _;
use std::time::{Duration, Instant as WallInstant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use scache_core::{ConnectionCache, Instant, ManualClock, MultiCache, SaveDestOutcome};

const TTL: Duration = Duration::from_secs(2);
const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const SESSIONS_PER_ENDPOINT: usize = 4;
const MEMORY_ENV: &str = "SCACHE_BENCH_MEMORY_CHILD";

/// 71 bytes, as an SMTP client's passivated endpoint properties.
const ENDP_PROP: &[u8] =
    b"tls_level=may\nreuse_count=1\nendpoint_features=0\nexpire_time=1700000300\n";

fn push_num(buf: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

fn push_ipv4(buf: &mut Vec<u8>, i: usize) {
    buf.extend_from_slice(b"10.");
    push_num(buf, (i >> 16) & 255);
    buf.push(b'.');
    push_num(buf, (i >> 8) & 255);
    buf.push(b'.');
    push_num(buf, i & 255);
}

/// An endpoint label: service, sender, SASL next-hop, SASL host, TLS
/// next-hop (all not applicable), IP address, port, TLS level, SMTPUTF8,
/// REQUIRETLS.
fn endp_label(buf: &mut Vec<u8>, i: usize) -> &[u8] {
    buf.clear();
    buf.extend_from_slice(b"smtp\n*\n*\n*\n*\n");
    push_ipv4(buf, i);
    buf.extend_from_slice(b"\n25\nmay\n*\n*\n");
    buf
}

/// A destination label: service, sender, next-hop, TLS level, SMTPUTF8,
/// REQUIRETLS.
fn dest_label(buf: &mut Vec<u8>, i: usize) -> &[u8] {
    buf.clear();
    buf.extend_from_slice(b"smtp\n*\nexample-");
    push_num(buf, i);
    buf.extend_from_slice(b".com:25\nmay\n*\n*\n");
    buf
}

/// Binding properties, about 110 bytes.
fn dest_prop(buf: &mut Vec<u8>, i: usize) -> &[u8] {
    buf.clear();
    buf.extend_from_slice(b"destination=example-");
    push_num(buf, i);
    buf.extend_from_slice(b".com\nhost_name=mx1.example-");
    push_num(buf, i);
    buf.extend_from_slice(b".com\nhost_addr=");
    push_ipv4(buf, i);
    buf.extend_from_slice(b"\nhost_port=25\ndestination_features=0\n");
    buf
}

/// A pseudo-random walk over `0..n`.
struct Walk {
    i: u64,
    n: u64,
}

impl Walk {
    fn new(n: usize) -> Walk {
        Walk { i: 0, n: n as u64 }
    }

    #[inline]
    fn next(&mut self) -> usize {
        self.i = self.i.wrapping_add(1);
        ((self.i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) % self.n) as usize
    }
}

type Cache<'a> = MultiCache<u32, &'a ManualClock>;

/// N sessions under `endpoints` endpoints (round robin).
fn filled_endpoints(clock: &ManualClock, n: usize, endpoints: usize) -> Cache<'_> {
    let mut cache = MultiCache::new(clock);
    let mut buf = Vec::new();
    for i in 0..n {
        cache
            .save_endp(
                TTL,
                endp_label(&mut buf, i % endpoints),
                ENDP_PROP,
                i as u32,
            )
            .unwrap();
    }
    assert_eq!(cache.size().sess_count, n);
    cache
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(1));
    g
}

fn save_find(c: &mut Criterion) {
    let mut g = group(c, "save_endp+find_endp");
    for n in SIZES {
        let endpoints = n / SESSIONS_PER_ENDPOINT;
        let clock = ManualClock::new();
        let mut cache = filled_endpoints(&clock, n, endpoints);
        let mut buf = Vec::new();
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut walk = Walk::new(endpoints);
            b.iter(|| {
                let label = endp_label(&mut buf, walk.next());
                cache.save_endp(TTL, label, ENDP_PROP, 7).unwrap();
                black_box(ConnectionCache::find_endp(&mut cache, label).unwrap())
            })
        });
        assert_eq!(cache.size().sess_count, n);
    }
    g.finish();

    let mut g = group(c, "save_endp+take_endp");
    for n in SIZES {
        let endpoints = n / SESSIONS_PER_ENDPOINT;
        let clock = ManualClock::new();
        let mut cache = filled_endpoints(&clock, n, endpoints);
        let mut buf = Vec::new();
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut walk = Walk::new(endpoints);
            b.iter(|| {
                let label = endp_label(&mut buf, walk.next());
                cache.save_endp(TTL, label, ENDP_PROP, 7).unwrap();
                black_box(cache.take_endp(label))
            })
        });
        assert_eq!(cache.size().sess_count, n);
    }
    g.finish();

    let mut g = group(c, "save_endp+find_endp, 1k-session working set");
    const ACTIVE: usize = 1000 / SESSIONS_PER_ENDPOINT;
    for n in SIZES {
        let endpoints = n / SESSIONS_PER_ENDPOINT;
        let spread = endpoints / ACTIVE;
        let clock = ManualClock::new();
        let mut cache = filled_endpoints(&clock, n, endpoints);
        let mut buf = Vec::new();
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut walk = Walk::new(ACTIVE);
            b.iter(|| {
                let label = endp_label(&mut buf, walk.next() * spread);
                cache.save_endp(TTL, label, ENDP_PROP, 7).unwrap();
                black_box(ConnectionCache::find_endp(&mut cache, label).unwrap())
            })
        });
        assert_eq!(cache.size().sess_count, n);
    }
    g.finish();
}

fn dest_cycle(c: &mut Criterion) {
    let mut g = group(c, "save_dest+save_endp+find_dest");
    for n in SIZES {
        let clock = ManualClock::new();
        let mut cache: Cache<'_> = MultiCache::new(&clock);
        let (mut d, mut p, mut e) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            cache
                .save_dest(
                    TTL,
                    dest_label(&mut d, i),
                    dest_prop(&mut p, i),
                    endp_label(&mut e, i),
                )
                .unwrap();
            cache.save_endp(TTL, &e, ENDP_PROP, i as u32).unwrap();
        }
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut walk = Walk::new(n);
            b.iter(|| {
                let k = walk.next();
                let (dest, prop, endp) = (
                    dest_label(&mut d, k),
                    dest_prop(&mut p, k),
                    endp_label(&mut e, k),
                );
                let outcome = cache.save_dest(TTL, dest, prop, endp).unwrap();
                debug_assert_eq!(outcome, SaveDestOutcome::Refreshed);
                cache.save_endp(TTL, endp, ENDP_PROP, 7).unwrap();
                black_box(ConnectionCache::find_dest(&mut cache, dest).unwrap())
            })
        });
        assert_eq!(cache.size().sess_count, n);
        assert_eq!(cache.binding_count(), n);
    }
    g.finish();
}

fn expire(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut g = c.benchmark_group("expire");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(BenchmarkId::from_parameter("1M"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut buf = Vec::new();
            for _ in 0..iters {
                // Untimed: 1M sessions under 250k endpoints, TTLs of 1, 2
                // and 3 s, saved over 1 s of virtual time.
                let clock = ManualClock::new();
                let mut cache: Cache<'_> = MultiCache::new(&clock);
                for i in 0..N {
                    if i % 1000 == 0 {
                        clock.advance(Duration::from_millis(1));
                    }
                    let ttl = Duration::from_secs(1 + (i % 3) as u64);
                    let label = endp_label(&mut buf, i % (N / SESSIONS_PER_ENDPOINT));
                    cache.save_endp(ttl, label, ENDP_PROP, i as u32).unwrap();
                }
                let start = WallInstant::now();
                let expired = cache.expire(Instant::from_millis(10_000));
                total += start.elapsed();
                assert_eq!(expired, N);
                drop(cache);
            }
            total
        })
    });
    g.finish();
}

fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// In a child process: fills 1M sessions under `endpoints` endpoint labels
/// and prints the resident memory per session.
fn measure_memory(endpoints: usize) {
    const N: usize = 1_000_000;
    let clock = ManualClock::new();
    let before = rss_bytes().unwrap_or(0);
    let start = WallInstant::now();
    let cache = filled_endpoints(&clock, N, endpoints);
    let fill = start.elapsed();
    let after = rss_bytes().unwrap_or(0);
    println!(
        "memory: 1M sessions under {endpoints} endpoint labels ({}-byte props): {} bytes RSS per session (filled at {:.0} ns per save)",
        ENDP_PROP.len(),
        after.saturating_sub(before) / N,
        fill.as_nanos() as f64 / N as f64
    );
    black_box(cache);
}

/// Prints record sizes and the resident memory per cached session.
fn report_memory() {
    println!(
        "records: session {} bytes (u32 or OwnedFd descriptor), label {} bytes (labels up to 54 bytes inline)",
        scache_core::testkit::session_record_size::<u32>(),
        scache_core::testkit::label_record_size(),
    );
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    for endpoints in [1_000_000, 1_000_000 / SESSIONS_PER_ENDPOINT] {
        if let Ok(out) = std::process::Command::new(&exe)
            .env(MEMORY_ENV, endpoints.to_string())
            .output()
        {
            std::io::stdout().write_all(&out.stdout).ok();
        }
    }
}

fn main() {
    if let Some(endpoints) = std::env::var(MEMORY_ENV).ok().and_then(|v| v.parse().ok()) {
        measure_memory(endpoints);
        return;
    }
    report_memory();
    let mut c = Criterion::default().configure_from_args();
    save_find(&mut c);
    dest_cycle(&mut c);
    expire(&mut c);
    c.final_summary();
}
