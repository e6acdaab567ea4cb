//! Fuzz target `server_exchange`: see `scache_testkit::fuzzing::server_exchange`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scache_testkit::fuzzing::server_exchange(data);
});
