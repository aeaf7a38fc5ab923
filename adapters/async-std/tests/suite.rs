//! The shared adapter test suite (adapters/common/tests/suite) on async-std.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

adapter_suite!(amqp_async_std::AsyncStd);
