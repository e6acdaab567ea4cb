//! Benchmarks and load-generation tools for scache (see `src/bin`).
