//! The shared adapter test suite (adapters/common/tests/suite) on tokio.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

adapter_suite!(amqp_tokio::Tokio);
