#![forbid(unsafe_code)]
//! Sans-IO AMQP 1.0 engine: connection, session, link, delivery and SASL state machines.

pub mod sasl;
