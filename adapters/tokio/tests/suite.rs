//! The shared adapter test suite (adapters/common/tests/suite) on tokio.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

#[path = "../../gssapi/tests/realm/mod.rs"]
mod realm;

adapter_suite!(amqp_tokio::Tokio);
gssapi_suite!(amqp_tokio::Tokio);
