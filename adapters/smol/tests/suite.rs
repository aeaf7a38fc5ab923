//! The shared adapter test suite (adapters/common/tests/suite) on smol.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

adapter_suite!(amqp_smol::Smol);
