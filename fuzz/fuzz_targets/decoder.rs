//! Fuzz target `decoder`: see `scache_testkit::fuzzing::decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scache_testkit::fuzzing::decoder(data);
});
