//! Proton's `server_direct.py`: the request/response service with no broker. Listens; a
//! client's receiver with a *dynamic* source gets a fresh reply address (a UUID) and becomes
//! the link replies to that address go out on. Each request's body is answered in upper case
//! to its `reply_to`, with its `correlation_id`. Runs until interrupted.
//!
//! ```text
//! server_direct [-a 0.0.0.0:8888]
//! client -a localhost:8888/examples
//! ```

use std::collections::{HashMap, VecDeque};

use amqp_engine::messaging::{
    uuid_from_bytes, AcceptorHandle, Event, LinkHandle, MessagingHandler,
};
use amqp_examples::args::{Parser, HELP_TEMPLATE};
use amqp_examples::pyfmt;
use amqp_proto::message::{Body, Message};
use amqp_proto::messaging::TargetKind;
use amqp_proto::Value;
use amqp_tokio::Container;

struct Server {
    url: String,
    acceptor: Option<AcceptorHandle>,
    /// Reply address -> the link to send replies to it on, and replies waiting for credit.
    senders: HashMap<String, (LinkHandle, VecDeque<Message>)>,
    seq: u64,
}

fn upper(body: &Body) -> Body {
    match body {
        Body::Value(Value::String(s)) => Body::Value(Value::string(s.to_uppercase())),
        other => other.clone(),
    }
}

impl Server {
    fn new_address(&mut self) -> String {
        use std::hash::{BuildHasher, Hasher};
        self.seq += 1;
        let mut b = [0u8; 16];
        for (i, chunk) in b.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(self.seq ^ ((i as u64) << 32));
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
        uuid_from_bytes(b)
    }

    fn flush(&mut self, e: &mut Event<'_>, address: &str) {
        let Some((link, backlog)) = self.senders.get_mut(address) else {
            return;
        };
        let r = e.container_mut();
        while r.credit(*link) > 0 {
            let Some(m) = backlog.pop_front() else { break };
            if r.send(*link, &m).is_err() {
                backlog.push_front(m);
                break;
            }
        }
    }
}

impl MessagingHandler for Server {
    fn on_start(&mut self, e: &mut Event<'_>) {
        match e.container_mut().listen(&self.url) {
            Ok(a) => self.acceptor = Some(a),
            Err(err) => {
                eprintln!("server_direct: {err}");
                e.container_mut().stop();
            }
        }
    }

    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let r = e.container();
        if let Some(url) = self.acceptor.and_then(|a| r.acceptor_url(a)) {
            println!("Listening on {url}");
        }
    }

    fn on_acceptor_error(&mut self, e: &mut Event<'_>) {
        eprintln!(
            "server_direct: {}",
            e.transport_error()
                .map_or_else(|| "cannot listen".to_string(), ToString::to_string)
        );
        e.container_mut().stop();
    }

    fn on_link_opening(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        let r = e.container();
        if !r.is_sender(link) {
            return; // a client's sender: accept as it is
        }
        let Some(attach) = r.remote_attach(link).cloned() else {
            return;
        };
        let source = attach.source.clone().unwrap_or_default();
        if source.dynamic == Some(true) {
            let address = self.new_address();
            let mut s = source;
            s.address = Some(address.as_str().into());
            if let Some(cfg) = e.container_mut().link_config_mut(link) {
                cfg.source = Some(s);
            }
            self.senders.insert(address, (link, VecDeque::new()));
        } else if let Some(TargetKind::Target(t)) = &attach.target {
            if let Some(a) = t.address.as_deref() {
                self.senders.insert(a.to_string(), (link, VecDeque::new()));
            }
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let Some(link) = e.link() else { return };
        let addresses: Vec<String> = self
            .senders
            .iter()
            .filter(|(_, (l, _))| *l == link)
            .map(|(a, _)| a.clone())
            .collect();
        for a in addresses {
            self.flush(e, &a);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let Some(req) = e.message() else { return };
        println!("Received {}", pyfmt::message_repr(req));
        let Some(reply_to) = req.reply_to().map(str::to_string) else {
            println!("No link for reply");
            return;
        };
        let Some((_, backlog)) = self.senders.get_mut(&reply_to) else {
            println!("No link for reply");
            return;
        };
        let mut reply = Message::new(upper(req.body()));
        reply.set_address(reply_to.as_str());
        if let Some(id) = req.correlation_id() {
            reply.set_correlation_id(id.clone());
        }
        backlog.push_back(reply);
        self.flush(e, &reply_to);
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        if let Some(link) = e.link() {
            self.senders.retain(|_, (l, _)| *l != link);
        }
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.senders.retain(|_, (l, _)| l.connection() != c);
        }
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        if let Some(c) = e.connection() {
            self.senders.retain(|_, (l, _)| l.connection() != c);
        }
    }
}

#[derive(Parser)]
#[command(name = "server_direct", help_template = HELP_TEMPLATE)]
struct Args {
    /// address to listen on
    #[arg(short, long, value_name = "ADDRESS", default_value = "0.0.0.0:8888")]
    address: String,
}

fn main() {
    let m = Args::parse();
    Container::new(Server {
        url: m.address,
        acceptor: None,
        senders: HashMap::new(),
        seq: 0,
    })
    .run();
}
