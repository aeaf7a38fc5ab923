//! The tokio adapter's TLS and SASL tests (`adapters/tokio/tests/tls.rs`: good CA, unknown CA,
//! wrong host name, plaintext/TLS mismatch, mutual TLS with SASL EXTERNAL, PLAIN, SCRAM,
//! handshake timeouts on both sides) run unchanged on the mio loop: inside this test binary
//! the name `amqp_tokio` is amqp-mio, which exports the same types at its root.

extern crate amqp_mio as amqp_tokio;

#[path = "../../tokio/tests/tls.rs"]
mod tls;
