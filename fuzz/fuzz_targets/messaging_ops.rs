#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { let _ = amqp_engine::fuzzing::fuzz_messaging(data, std::time::Instant::now()); });
