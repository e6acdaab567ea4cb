//! Fuzz target `request_parser`: see `scache_proto::fuzzing::request_parser`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scache_proto::fuzzing::request_parser(data);
});
