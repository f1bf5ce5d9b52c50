#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::ignore_patterns(data));
