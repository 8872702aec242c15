#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tinsel::fuzzing::hls_query(data));
