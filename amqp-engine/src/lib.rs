//! Sans-IO AMQP 1.0 engine: protocol state machines and Qpid Proton's messaging model, driven by
//! bytes and time handed in by an adapter (no sockets, files, clocks or threads in here).
#![forbid(unsafe_code)]

pub mod messaging;
