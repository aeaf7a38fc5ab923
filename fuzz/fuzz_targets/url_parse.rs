#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| amqp_engine::fuzzing::fuzz_url(data));
