//! Helpers shared by the TLS test binaries.
#![allow(dead_code, unreachable_pub)]

pub mod pair;
pub mod pki;
pub mod proton;
