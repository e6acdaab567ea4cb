//! Benchmarks and load-generation tools for scache (see `src/bin`).
//!
//! | item | what |
//! |---|---|
//! | `scache-load` (binary, [`load`]) | the end-to-end load generator: K clients over the real protocol with descriptor passing, every reply checked; reports cycles/s, latency, the daemon's CPU per cycle and memory; `--compare` runs the floor, Postfix's daemon and ours side by side |
//! | `scache-floor` (binary, [`floor`]) | the floor: the same exchanges with no cache logic, to measure what the protocol itself costs |
//! | [`shapes`] | labels and properties shaped like Postfix's SMTP client's |
//! | [`report`] | text, JSON, CSV and markdown output |
//! | [`sys`] | `/proc` readings, descriptor limits, file identity |
//! | `scache-clients` (binary) | the library's blocking `Client` against `AsyncClient`, against our daemon |
//! | `benches/core.rs`, `benches/shared.rs` | criterion benchmarks of the cache core and of `SharedCache` under contention (`scripts/criterion-report.sh core` or `shared` prints their table) |
//!
//! `scripts/bench-report.sh` runs the whole comparison and the other
//! measurements into one report (`scripts/bench-tables.py` makes its
//! tables, `scripts/plot-bench.py` its plot).

pub mod floor;
pub mod load;
pub mod report;
pub mod shapes;
pub mod sys;
