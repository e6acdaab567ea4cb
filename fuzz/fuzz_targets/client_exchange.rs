//! Fuzz target `client_exchange`: see `scache_testkit::fuzzing::client_exchange`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scache_testkit::fuzzing::client_exchange(data);
});
