//! The tokio adapter end to end over loopback TCP.
use amqp_tokio::amqp_proto::message::Message;
use amqp_tokio::Container;
use amqp_tokio::{Event, MessagingHandler};

#[derive(Default)]
struct Hello {
    port: u16,
    got: Vec<String>,
    sent: bool,
}

impl MessagingHandler for Hello {
    fn on_start(&mut self, e: &mut Event<'_>) {
        e.container_mut().listen("127.0.0.1:0").unwrap();
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().unwrap();
        self.port = e.container().acceptor_port(a).unwrap();
        let c = e
            .container_mut()
            .connect(&format!("amqp://127.0.0.1:{}", self.port))
            .unwrap();
        e.container_mut().create_sender(c, "examples").unwrap();
    }
    fn on_link_opening(&mut self, _e: &mut Event<'_>) {}
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        if !self.sent {
            self.sent = true;
            e.send(&Message::new("Hello World!")).unwrap();
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.got
            .push(e.message().unwrap().body_str().unwrap().to_string());
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        e.container_mut().stop();
    }
}

#[test]
fn hello_world_over_loopback() {
    let h = Container::new(Hello::default()).run();
    assert_eq!(h.got, vec!["Hello World!".to_string()]);
    assert!(h.port > 0);
}
