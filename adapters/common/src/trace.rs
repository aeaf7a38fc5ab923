//! Frame tracing for debugging, like Proton's `PN_TRACE_FRM=1`.
//!
//! Set `AMQP_TRACE_FRM=1` (or Proton's own `PN_TRACE_FRM=1`) and every frame in and out of
//! every transport is logged in readable form: as `tracing` events at INFO level with target
//! `amqp::frame`, or on standard error when no `tracing` subscriber is installed.

use amqp_engine::messaging::TransportId;
use amqp_proto::frame::{Decoded, FrameBody, FrameDecoder, ProtocolHeader};
use bytes::BytesMut;

/// True if frame tracing is switched on by the environment.
pub fn enabled() -> bool {
    ["AMQP_TRACE_FRM", "PN_TRACE_FRM"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0"))
}

struct Direction {
    buf: BytesMut,
    decoder: FrameDecoder,
    broken: bool,
}

impl Direction {
    fn new() -> Self {
        Direction {
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(u32::MAX),
            broken: false,
        }
    }

    fn feed(&mut self, data: &[u8], t: TransportId, arrow: &str) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.buf.starts_with(b"AMQP") {
                if self.buf.len() < 8 {
                    return;
                }
                match ProtocolHeader::parse(&self.buf[..8]) {
                    Ok(Some(h)) => emit(t, arrow, &h.to_string()),
                    _ => emit(t, arrow, &format!("{:02x?}", &self.buf[..8])),
                }
                let _ = self.buf.split_to(8);
                continue;
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Decoded::Frame(f)) => {
                    let text = match f.body {
                        FrameBody::Empty => "(empty frame)".to_string(),
                        FrameBody::Sasl(s) => format!("{s:?}"),
                        FrameBody::Amqp {
                            performative,
                            payload,
                        } => {
                            if payload.is_empty() {
                                format!("[{}] {performative:?}", f.channel)
                            } else {
                                format!(
                                    "[{}] {performative:?} (payload {} bytes)",
                                    f.channel,
                                    payload.len()
                                )
                            }
                        }
                    };
                    emit(t, arrow, &text);
                }
                Ok(Decoded::NeedMore(_)) => return,
                Err(e) => {
                    emit(t, arrow, &format!("(undecodable: {e})"));
                    self.broken = true;
                    return;
                }
            }
        }
    }
}

fn emit(t: TransportId, arrow: &str, text: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::info!(target: "amqp::frame", "{t:?} {arrow} {text}");
    } else {
        eprintln!("[{:?}]:{arrow} {text}", t.connection());
    }
}

/// Decodes copies of the bytes a transport reads and writes, and logs each frame.
pub(crate) struct Tracer {
    t: TransportId,
    incoming: Direction,
    outgoing: Direction,
}

impl Tracer {
    pub(crate) fn new(t: TransportId) -> Self {
        Tracer {
            t,
            incoming: Direction::new(),
            outgoing: Direction::new(),
        }
    }

    pub(crate) fn incoming(&mut self, data: &[u8]) {
        self.incoming.feed(data, self.t, "<-");
    }

    pub(crate) fn outgoing(&mut self, data: &[u8]) {
        self.outgoing.feed(data, self.t, "->");
    }
}
