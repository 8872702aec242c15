#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tinsel::fuzzing::amf0_values(data));
