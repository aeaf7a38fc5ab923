//! The cross-thread injector: payloads from other threads reach the handler in order, each
//! injection wakes the driver, and once the container is gone the payload comes back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use amqp_engine::messaging::{Event, IoCore, MessagingHandler, Payload, SansIoContainer};

#[derive(Default)]
struct Collect {
    got: Vec<String>,
}

impl MessagingHandler for Collect {
    fn on_application_event(&mut self, _: &mut Event<'_>, payload: Payload) {
        if let Ok(s) = payload.downcast::<String>() {
            self.got.push(*s);
        }
    }
}

#[test]
fn injected_payloads_reach_the_handler_in_order_and_wake_the_driver() {
    let mut c = SansIoContainer::with_id(Collect::default(), "inject", Instant::now());
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = wakes.clone();
    c.set_waker(Arc::new(move || {
        w.fetch_add(1, Ordering::Relaxed);
    }));
    let injector = c.context().injector();
    let other = injector.clone();
    std::thread::spawn(move || {
        other.inject("a".to_string()).expect("alive");
        other.inject("b".to_string()).expect("alive");
    })
    .join()
    .expect("thread");
    c.start(Instant::now());
    assert_eq!(wakes.load(Ordering::Relaxed), 2);
    assert_eq!(c.handler().got, ["a", "b"]);
    injector.inject("c".to_string()).expect("alive");
    assert!(c.poll_io().is_none());
    assert_eq!(c.handler().got, ["a", "b", "c"]);
    drop(c);
    let err = injector.inject(5u8).expect_err("container dropped");
    assert_eq!(err.payload.downcast::<u8>().ok().as_deref(), Some(&5));
}
