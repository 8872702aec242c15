#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tinsel::fuzzing::sdp_offer(data));
