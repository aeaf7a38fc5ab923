//! SASL (RFC 4422) support for AMQP 1.0 security layers.
//!
//! It holds the *mechanisms* (`mechanism.rs`, `scram.rs`: the bytes a client
//! puts into `sasl-init` / `sasl-response` frames and the bytes a server puts
//! into `sasl-challenge` frames and the additional-data of `sasl-outcome`) and
//! the client and server *machines* (`machine.rs`: which frame comes next, which
//! mechanism is chosen) that a connection's handshake drives. Nothing here
//! performs I/O, reads a clock, or draws randomness: nonces and salts are
//! supplied by the caller.
//!
//! Supported mechanisms, client and server side:
//!
//! * `ANONYMOUS` (RFC 4505): [`AnonymousClient`], [`AnonymousServer`]
//! * `PLAIN` (RFC 4616): [`PlainClient`], [`PlainServer`]
//! * `EXTERNAL` (RFC 4422 appendix A): [`ExternalClient`], [`ExternalServer`]
//! * `SCRAM-SHA-1` and `SCRAM-SHA-256` (RFC 5802, RFC 7677):
//!   [`ScramClient`], [`ScramServer`]
//! * `GSSAPI` (RFC 4752, Kerberos), with the `gssapi` feature: [`GssapiClient`],
//!   [`GssapiServer`] over the GSS-API calls of [`GssInitiator`] and [`GssAcceptor`],
//!   which `amqp-gssapi` implements
//!
//! [`choose_mechanism`] picks the strongest mechanism a client can use from the
//! list a server offers; extra mechanisms (GSSAPI) come before it, see [`gssapi`].

#[cfg(feature = "gssapi")]
pub mod gssapi;
pub mod mechanism;
pub mod scram;

pub use mechanism::{
    choose_mechanism, AnonymousClient, AnonymousServer, Authenticator, ClientMechanism,
    ExternalClient, ExternalServer, PlainClient, PlainServer, SaslError, ServerMechanism,
    ServerStep, StaticUsers, ANONYMOUS, EXTERNAL, MECHANISM_PREFERENCE, PLAIN, SCRAM_SHA_1,
    SCRAM_SHA_256,
};
pub use scram::{
    nonce_from_bytes, ScramClient, ScramCredentials, ScramHash, ScramServer, DEFAULT_MAX_ITERATIONS,
};
pub mod machine;
#[cfg(feature = "gssapi")]
pub use gssapi::{
    GssAcceptor, GssClientProvider, GssError, GssErrorKind, GssInitiator, GssServerProvider,
    GssStep, GssapiClient, GssapiClientFactory, GssapiServer, GssapiServerFactory, DEFAULT_SERVICE,
    GSSAPI, MAX_TOKEN_ROUNDS,
};
pub use machine::{
    ClientMechanismFactory, SaslClientConfig, SaslServerConfig, ServerMechanismFactory,
    EXTENDED_SASL_FRAME_SIZE,
};
