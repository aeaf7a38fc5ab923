//! A small in-memory queue broker written as a MessagingHandler, for simulations.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};

use amqp_engine::messaging::*;
use amqp_proto::message::ReceivedMessage;

#[derive(Default)]
pub struct Broker {
    pub queues: HashMap<String, VecDeque<ReceivedMessage>>,
    /// consumer link -> queue
    consumers: HashMap<LinkHandle, String>,
    /// unsettled sent messages: tracker -> (queue, message)
    unacked: HashMap<Tracker, (String, ReceivedMessage)>,
    pub received: usize,
    pub dynamic_seq: usize,
    pub port: u16,
    /// SASL the listener requires (default: anyone, anonymously).
    pub sasl: Option<amqp_engine::sasl::SaslServerConfig>,
    /// Credit window granted to producers (default: the handler default, 10).
    pub prefetch: Option<u32>,
    /// Once this many messages have arrived, every session of every client that attached a
    /// link is ended with `amqp:internal-error` while the connections stay up (as RabbitMQ
    /// 3.10 does when a session's channel crashes).
    pub end_sessions_after: Option<usize>,
    /// End the sessions of a client each time it attaches a link (a peer that ends every
    /// session it is given).
    pub end_sessions_on_attach: bool,
    /// Connections that attached a link.
    conns: Vec<ConnectionHandle>,
}

impl Broker {
    pub fn new(port: u16) -> Broker {
        Broker {
            port,
            ..Default::default()
        }
    }

    fn dispatch(&mut self, r: &mut ContainerContext, queue: &str) {
        let consumers: Vec<LinkHandle> = self
            .consumers
            .iter()
            .filter(|(_, q)| q.as_str() == queue)
            .map(|(l, _)| *l)
            .collect();
        for l in consumers {
            while r.credit(l) > 0 {
                let Some(m) = self.queues.get_mut(queue).and_then(|q| q.pop_front()) else {
                    return;
                };
                match r.send(l, &m) {
                    Ok(t) => {
                        self.unacked.insert(t, (queue.to_string(), m));
                    }
                    Err(_) => {
                        self.queues
                            .entry(queue.to_string())
                            .or_default()
                            .push_front(m);
                        break;
                    }
                }
            }
        }
    }

    pub fn debug_state(&self) -> String {
        format!(
            "consumers {:?} unacked {:?}",
            self.consumers,
            self.unacked.keys().collect::<Vec<_>>()
        )
    }

    fn end_sessions(&mut self, r: &mut ContainerContext) {
        for &c in &self.conns {
            let Some(engine) = r.engine(c) else { continue };
            for s in engine.sessions() {
                let crash = amqp_proto::definitions::Error::new(
                    amqp_proto::definitions::condition::INTERNAL_ERROR,
                    "session crashed",
                );
                let _ = engine.end_session(s, Some(crash));
            }
        }
    }

    fn requeue(&mut self, t: Tracker) -> Option<String> {
        let (q, m) = self.unacked.remove(&t)?;
        self.queues.entry(q.clone()).or_default().push_front(m);
        Some(q)
    }
}

impl MessagingHandler for Broker {
    fn options(&self) -> HandlerOptions {
        HandlerOptions {
            prefetch: self.prefetch.unwrap_or(HandlerOptions::default().prefetch),
            ..HandlerOptions::default()
        }
    }

    fn on_start(&mut self, e: &mut Event<'_>) {
        let port = self.port;
        let opts = ListenOptions {
            sasl: self.sasl.clone(),
            ..ListenOptions::default()
        };
        e.container_mut()
            .listen_with(&format!("0.0.0.0:{port}"), opts)
            .unwrap();
    }

    fn on_link_opening(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        if !self.conns.contains(&link.connection()) {
            self.conns.push(link.connection());
        }
        if self.end_sessions_on_attach {
            self.end_sessions(e.container_mut());
            return;
        }
        let r = e.container_mut();
        if r.is_sender(link) {
            // A consumer: source address, or a dynamic queue.
            let a = r.remote_attach(link).cloned();
            let src = a
                .as_ref()
                .and_then(|a| a.source.clone())
                .unwrap_or_default();
            let addr = if src.dynamic == Some(true) {
                self.dynamic_seq += 1;
                let name = format!("dynamic-{}", self.dynamic_seq);
                let cfg = r.link_config_mut(link).unwrap();
                let mut s = src.clone();
                s.address = Some(name.as_str().into());
                cfg.source = Some(s);
                name
            } else {
                src.address.as_deref().unwrap_or("").to_string()
            };
            self.consumers.insert(link, addr);
        }
    }

    fn on_link_opened(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        if let Some(q) = self.consumers.get(&link).cloned() {
            self.dispatch(e.container_mut(), &q);
        }
    }

    fn on_sendable(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        if let Some(q) = self.consumers.get(&link).cloned() {
            self.dispatch(e.container_mut(), &q);
        }
    }

    fn on_message(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        let r = e.container();
        let addr = match r.remote_attach(link).and_then(|a| a.target.clone()) {
            Some(amqp_proto::messaging::TargetKind::Target(t)) => {
                t.address.as_deref().map(str::to_string)
            }
            _ => None,
        };
        let m = e.take_message().unwrap();
        let q = addr
            .or_else(|| m.address().map(str::to_string))
            .unwrap_or_default();
        self.received += 1;
        self.queues.entry(q.clone()).or_default().push_back(m);
        if self.end_sessions_after == Some(self.received) {
            self.end_sessions(e.container_mut());
        }
        self.dispatch(e.container_mut(), &q);
    }

    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.unacked.remove(&e.tracker().unwrap());
    }

    fn on_rejected(&mut self, e: &mut Event<'_>) {
        self.unacked.remove(&e.tracker().unwrap());
    }

    fn on_released(&mut self, e: &mut Event<'_>) {
        if let Some(q) = self.requeue(e.tracker().unwrap()) {
            self.dispatch(e.container_mut(), &q);
        }
    }

    fn on_in_doubt(&mut self, e: &mut Event<'_>) {
        self.requeue(e.tracker().unwrap());
    }

    fn on_link_closed(&mut self, e: &mut Event<'_>) {
        let link = e.link().unwrap();
        self.consumers.remove(&link);
    }

    fn on_disconnected(&mut self, e: &mut Event<'_>) {
        let conn = e.connection().unwrap();
        self.consumers.retain(|l, _| l.connection() != conn);
    }

    fn on_connection_closed(&mut self, e: &mut Event<'_>) {
        let conn = e.connection().unwrap();
        self.consumers.retain(|l, _| l.connection() != conn);
        let lost: Vec<Tracker> = self
            .unacked
            .keys()
            .filter(|t| t.link().connection() == conn)
            .copied()
            .collect();
        for t in lost {
            self.requeue(t);
        }
    }
}
