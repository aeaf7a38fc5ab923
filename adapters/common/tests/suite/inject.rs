//! Cross-thread injection on each runtime: another thread hands the running container 10,000
//! application events through an `Injector`, in bursts with pauses between them (so the
//! container is idle, waiting on its sockets, when each burst starts: only the injector's
//! wake-up gets it going again); the handler sends one message per event and every one is
//! accepted. Once the container has finished, `inject` hands the payload back.

use std::collections::VecDeque;
use std::thread;
use std::time::Duration;

use amqp_adapter::amqp_engine::messaging::{Event, Injector, LinkHandle, Payload};
use amqp_adapter::amqp_proto::message::Message;

use super::{join_within, MessagingHandler, RunContainer, SAFETY};

/// Events per burst, and the pause after each.
const BURST: usize = 1_000;
const PAUSE: Duration = Duration::from_millis(30);

#[derive(Default)]
struct Injected {
    n: usize,
    sender: Option<LinkHandle>,
    backlog: VecDeque<usize>,
    injector: Option<Injector>,
    producer: Option<thread::JoinHandle<usize>>,
    received: usize,
    accepted: usize,
    timed_out: bool,
}

impl Injected {
    fn send_backlog(&mut self, e: &mut Event<'_>) {
        let Some(s) = self.sender.filter(|_| !self.timed_out) else {
            return;
        };
        while e.container().credit(s) > 0 {
            let Some(i) = self.backlog.pop_front() else {
                return;
            };
            e.container_mut()
                .send(s, &Message::new(i.to_string()))
                .expect("send");
        }
    }
}

impl MessagingHandler for Injected {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().expect("acceptor");
        let port = e.container().acceptor_port(a).expect("port");
        let c = e
            .container_mut()
            .connect(&format!("amqp://127.0.0.1:{port}"))
            .expect("connect");
        self.sender = Some(
            e.container_mut()
                .create_sender(c, "injected")
                .expect("sender"),
        );
        let injector = e.container().injector();
        self.injector = Some(injector.clone());
        let n = self.n;
        self.producer = Some(thread::spawn(move || {
            let mut delivered = 0;
            for i in 0..n {
                if injector.inject(i).is_ok() {
                    delivered += 1;
                }
                if (i + 1) % BURST == 0 {
                    thread::sleep(PAUSE);
                }
            }
            delivered
        }));
    }
    fn on_application_event(&mut self, e: &mut Event<'_>, payload: Payload) {
        let i = payload.downcast::<usize>().expect("a usize payload");
        self.backlog.push_back(*i);
        self.send_backlog(e);
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        self.send_backlog(e);
    }
    fn on_message(&mut self, _: &mut Event<'_>) {
        self.received += 1;
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.accepted += 1;
        if self.accepted == self.n {
            e.container_mut().stop();
        }
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = true;
        e.container_mut().stop();
    }
}

/// `n` events injected from another thread, one message sent per event, all accepted.
pub(crate) fn injected_messages<R: RunContainer>(n: usize) {
    let h = R::run(
        Injected {
            n,
            ..Injected::default()
        },
        "injected",
    );
    assert!(
        !h.timed_out,
        "timed out after {} of {n} accepted",
        h.accepted
    );
    assert_eq!((h.received, h.accepted), (n, n));
    let producer = h.producer.expect("the producer thread started");
    assert_eq!(join_within(producer, Duration::from_secs(5), "producer"), n);
    let injector = h.injector.expect("an injector");
    let back = injector
        .inject(7usize)
        .expect_err("the container has finished");
    assert_eq!(back.payload.downcast::<usize>().ok().as_deref(), Some(&7));
}
