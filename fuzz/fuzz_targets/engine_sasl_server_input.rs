#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| amqp_engine::fuzzing::fuzz_sasl_server_input(data, std::time::Instant::now()));
