//! Criterion benchmark of `SharedCache` under contention: T threads (1, 2,
//! 4, 8) share one cache, each doing save_endp + find_endp cycles on its
//! own endpoints among 1,000 cached sessions, so the only thing they share
//! is the cache's lock. Reported as time per cycle across all threads
//! (criterion's throughput is cycles per second for the whole process).
//!
//! On a machine with fewer cores than threads, extra threads can only
//! queue for the lock and the CPU; what matters is that throughput does
//! not collapse as threads are added.
//!
//! Run: `cargo bench -p scache-benches --bench shared`;
//! `scripts/criterion-report.sh shared` runs it and prints the table.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use scache_core::{MonotonicClock, SharedCache};

const TTL: Duration = Duration::from_secs(3600);
const CACHED: usize = 1_000;
const ENDP_PROP: &[u8] =
    b"tls_level=may\nreuse_count=1\nendpoint_features=0\nexpire_time=1700000300\n";

fn label(i: usize) -> Vec<u8> {
    format!(
        "smtp\n*\n*\n*\n*\n10.0.{}.{}\n25\nmay\n*\n*\n",
        (i >> 8) & 255,
        i & 255
    )
    .into_bytes()
}

/// `cycles` save+find cycles split over `threads` threads on one cache;
/// returns the wall time of the whole batch.
fn run(cache: &Arc<SharedCache<u32>>, threads: usize, cycles: u64) -> Duration {
    let per_thread = cycles.div_ceil(threads as u64);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let cache = Arc::clone(cache);
            let barrier = Arc::clone(&barrier);
            // Each thread cycles over its own 64 endpoints.
            let labels: Vec<Vec<u8>> = (0..64).map(|i| label(CACHED + t * 64 + i)).collect();
            std::thread::spawn(move || {
                barrier.wait();
                for n in 0..per_thread as usize {
                    let l = &labels[n % labels.len()];
                    cache.save_endp(TTL, l, ENDP_PROP, n as u32).unwrap();
                    let found = cache.find_endp(l).unwrap();
                    std::hint::black_box(found);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for w in workers {
        w.join().unwrap();
    }
    start.elapsed()
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("SharedCache save_endp+find_endp");
    group.throughput(Throughput::Elements(1));
    let cache = Arc::new(SharedCache::<u32>::new(MonotonicClock::new()));
    for i in 0..CACHED {
        cache
            .save_endp(TTL, &label(i), ENDP_PROP, i as u32)
            .unwrap();
    }
    for threads in [1, 2, 4, 8] {
        group.bench_with_input(
            BenchmarkId::new("threads", threads),
            &threads,
            |b, &threads| b.iter_custom(|cycles| run(&cache, threads, cycles)),
        );
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    contention(&mut c);
    c.final_summary();
}
