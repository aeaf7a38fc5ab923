//! The shared adapter test suite (adapters/common/tests/suite) on async-std.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

#[path = "../../gssapi/tests/realm/mod.rs"]
mod realm;

adapter_suite!(amqp_async_std::AsyncStd);
gssapi_suite!(amqp_async_std::AsyncStd);
