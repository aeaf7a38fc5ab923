//! The shared adapter test suite (adapters/common/tests/suite) on smol.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

#[path = "../../gssapi/tests/realm/mod.rs"]
mod realm;

adapter_suite!(amqp_smol::Smol);
gssapi_suite!(amqp_smol::Smol);
