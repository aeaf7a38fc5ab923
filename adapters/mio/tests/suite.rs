//! The shared adapter test suite (adapters/common/tests/suite) on the mio poll loop.

#[macro_use]
#[path = "../../common/tests/suite/mod.rs"]
mod suite;

/// Runs the suite's containers on `amqp_mio::Container`.
struct Mio;

impl suite::RunContainer for Mio {
    fn run<H: suite::MessagingHandler + Send + 'static>(handler: H, id: &str) -> H {
        amqp_mio::Container::with_id(handler, id).run()
    }
}

adapter_suite!(runner Mio);

#[path = "../../gssapi/tests/realm/mod.rs"]
mod realm;

gssapi_suite!(Mio);
