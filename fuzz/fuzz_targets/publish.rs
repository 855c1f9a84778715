#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| nproxy_core::fuzzing::publish(data));
