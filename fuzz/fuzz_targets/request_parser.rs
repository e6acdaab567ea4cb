//! Fuzz target `request_parser`: see `scache_testkit::fuzzing::request_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scache_testkit::fuzzing::request_parser(data);
});
