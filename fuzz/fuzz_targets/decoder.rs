//! Fuzz target `decoder`: see `scache_proto::fuzzing::decoder`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    scache_proto::fuzzing::decoder(data);
});
