//! Test support for the scache workspace, kept out of the crates a mail
//! server links (`publish = false`):
//!
//! | module | what |
//! |---|---|
//! | [`harness`] | starts a connection-cache daemon exactly the way Postfix's `master(8)` does (tests, benchmarks) |
//! | [`fuzzing`] | the bodies of the fuzz targets, also replayed over the corpus by `tests/fuzz_corpus.rs` |
//! | [`wire`] | a blocking attr0 reader for tests that talk the raw protocol |
//!
//! The fuzz targets drive the daemon's own cache adapter
//! (`scache_bin::backend::CacheBackend`), not a stand-in.

pub mod fuzzing;
pub mod harness;
pub mod wire;
