//! Helpers shared by the TLS test binaries.
#![allow(dead_code, unreachable_pub)]

pub mod cyrus;
pub mod pair;
pub mod pki;
#[path = "../../../../amqp-engine/tests/interop/peer.rs"]
pub mod proton;
