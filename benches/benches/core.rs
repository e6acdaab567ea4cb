//! Criterion benchmarks of the cache core (filled in by the core work).
fn main() {}
