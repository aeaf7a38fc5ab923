//! An in-memory client/server engine pair for throughput measurements, shared by
//! `benches/pair.rs` (criterion) and `examples/pair_throughput.rs` (quick runs).
//!
//! The client owns a sender, the server a receiver; bytes are moved between the two engines
//! through one reused buffer (no sockets, no copies beyond the engines' own input buffers).
#![allow(dead_code)]

use std::time::Instant;

use amqp_engine::{
    Connection, ConnectionConfig, Event, LinkConfig, LinkId, SendOptions, SessionConfig, Side,
};
use amqp_proto::codec::Encode;
use amqp_proto::message::Message;
use amqp_proto::messaging::DeliveryState;
use bytes::{Bytes, BytesMut};

/// Size of every message body.
pub(crate) const BODY_SIZE: usize = 100;

/// What the sender hands to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PayloadKind {
    /// A [`Message`] with one 100-byte `data` section, encoded by `send`.
    Message,
    /// The same message pre-encoded once, sent with `send_bytes`.
    Bytes,
}

/// The delivery mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Unsettled: the receiver accepts and settles every delivery; the sender sees every
    /// outcome as a `Disposition` event.
    Unsettled,
    /// Pre-settled: fire and forget.
    Presettled,
}

/// How bytes move between the two engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    /// `poll_transmit` into a reused buffer, then `handle_input(&buf)` on the peer: one copy,
    /// as a socket read would make.
    Copy,
    /// `poll_transmit` straight into the peer's `input_buffer()`, then `handle_read`: the
    /// engines swap buffers, nothing is copied.
    Direct,
}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    /// Messages the receiver got.
    pub(crate) received: u64,
    /// Disposition events the sender saw.
    pub(crate) outcomes: u64,
    /// Body bytes delivered.
    pub(crate) body_bytes: u64,
    /// Bytes on the wire, client to server.
    pub(crate) c2s_bytes: u64,
    /// Bytes on the wire, server to client.
    pub(crate) s2c_bytes: u64,
}

/// A connected pair with an attached sender (client) and receiver (server).
pub(crate) struct Pair {
    client: Connection,
    server: Connection,
    sender: LinkId,
    receiver: LinkId,
    now: Instant,
    buf: BytesMut,
    window: u32,
    mode: Mode,
    message: Message,
    encoded: Bytes,
    kind: PayloadKind,
    wire: Wire,
}

impl Pair {
    /// Opens the connection, a session and the link; the receiver grants `window` credit.
    pub(crate) fn new(mode: Mode, kind: PayloadKind, window: u32) -> Pair {
        let now = Instant::now();
        let mut client = Connection::new(Side::Client, ConnectionConfig::new("client"), now);
        let server = Connection::new(Side::Server, ConnectionConfig::new("server"), now);
        client.open().unwrap();
        let session = client.begin_session(SessionConfig::default()).unwrap();
        let sender = client
            .attach_sender(
                session,
                LinkConfig {
                    name: "bench".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let message = Message::new(amqp_proto::message::Body::data(vec![0x5au8; BODY_SIZE]));
        let encoded = message.to_bytes();
        let mut pair = Pair {
            client,
            server,
            sender,
            receiver: sender, // replaced below
            now,
            buf: BytesMut::with_capacity(256 * 1024),
            window,
            mode,
            message,
            encoded,
            kind,
            wire: Wire::Copy,
        };
        let mut receiver = None;
        for _ in 0..10 {
            pair.client_to_server();
            while let Some(ev) = pair.server.poll_event() {
                match ev {
                    Event::ConnectionOpened => pair.server.open().unwrap(),
                    Event::SessionOpened {
                        session,
                        remote_initiated: true,
                    } => pair.server.accept_session(session).unwrap(),
                    Event::LinkOpened {
                        link,
                        remote_initiated: true,
                    } => {
                        pair.server
                            .accept_link(link, LinkConfig::default())
                            .unwrap();
                        pair.server.flow(link, window, false).unwrap();
                        receiver = Some(link);
                    }
                    _ => {}
                }
            }
            pair.server_to_client();
            while pair.client.poll_event().is_some() {}
            if receiver.is_some() && pair.client.link_credit(sender).unwrap_or(0) > 0 {
                break;
            }
        }
        pair.receiver = receiver.expect("link attached");
        pair
    }

    /// Sets how bytes move between the engines (default [`Wire::Copy`]).
    pub(crate) fn with_wire(mut self, wire: Wire) -> Pair {
        self.wire = wire;
        self
    }

    fn client_to_server(&mut self) -> u64 {
        Self::transfer(
            &mut self.client,
            &mut self.server,
            &mut self.buf,
            self.wire,
            self.now,
        )
    }

    fn server_to_client(&mut self) -> u64 {
        Self::transfer(
            &mut self.server,
            &mut self.client,
            &mut self.buf,
            self.wire,
            self.now,
        )
    }

    fn transfer(
        from: &mut Connection,
        to: &mut Connection,
        buf: &mut BytesMut,
        wire: Wire,
        now: Instant,
    ) -> u64 {
        match wire {
            Wire::Copy => {
                let n = from.poll_transmit(buf) as u64;
                if n > 0 {
                    to.handle_input(buf, now).unwrap();
                    buf.clear();
                }
                n
            }
            Wire::Direct => {
                let n = from.poll_transmit(to.input_buffer()) as u64;
                if n > 0 {
                    to.handle_read(now).unwrap();
                }
                n
            }
        }
    }

    /// Sends `n` messages and runs both engines until all are received and, when unsettled,
    /// all outcomes are back at the sender.
    pub(crate) fn run(&mut self, n: u64) -> Totals {
        let mut t = Totals::default();
        let mut sent = 0u64;
        let presettled = self.mode == Mode::Presettled;
        let opts = SendOptions {
            settled: presettled,
            ..SendOptions::default()
        };
        let accepted = Some(DeliveryState::accepted());
        let done = |t: &Totals| {
            if presettled {
                t.received >= n
            } else {
                t.outcomes >= n
            }
        };
        while !done(&t) {
            // Sender: use all the credit we have.
            let mut credit = self.client.link_credit(self.sender).unwrap_or(0);
            while credit > 0 && sent < n {
                match self.kind {
                    PayloadKind::Message => self.client.send(self.sender, &self.message, opts),
                    PayloadKind::Bytes => {
                        self.client
                            .send_bytes(self.sender, self.encoded.clone(), opts)
                    }
                }
                .unwrap();
                sent += 1;
                credit -= 1;
            }
            t.c2s_bytes += self.client_to_server();
            // Receiver: accept and settle everything, top credit up when half is used.
            while let Some(ev) = self.server.poll_event() {
                if let Event::Delivery(d) = ev {
                    t.received += 1;
                    t.body_bytes += BODY_SIZE as u64;
                    if !d.settled {
                        self.server
                            .disposition(d.delivery, accepted.clone(), true)
                            .unwrap();
                    }
                }
            }
            if self.server.link_credit(self.receiver).unwrap_or(0) <= self.window / 2 {
                self.server.flow(self.receiver, self.window, false).unwrap();
            }
            t.s2c_bytes += self.server_to_client();
            while let Some(ev) = self.client.poll_event() {
                if let Event::Disposition { .. } = ev {
                    t.outcomes += 1;
                }
            }
        }
        t
    }

    /// The encoded size of one message.
    pub(crate) fn message_size(&self) -> usize {
        self.message.encoded_len()
    }
}
