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

    /// Decodes what `data` completes; returns one readable line per header or frame.
    fn feed(&mut self, data: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        if self.broken {
            return lines;
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.buf.starts_with(b"AMQP") {
                if self.buf.len() < 8 {
                    return lines;
                }
                lines.push(match ProtocolHeader::parse(&self.buf[..8]) {
                    Ok(Some(h)) => h.to_string(),
                    _ => format!("{:02x?}", &self.buf[..8]),
                });
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
                    lines.push(text);
                }
                Ok(Decoded::NeedMore(_)) => return lines,
                Err(e) => {
                    lines.push(format!("(undecodable: {e})"));
                    self.broken = true;
                    return lines;
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
pub struct Tracer {
    t: TransportId,
    incoming: Direction,
    outgoing: Direction,
}

impl Tracer {
    /// A tracer for the frames of transport `t`.
    pub fn new(t: TransportId) -> Self {
        Tracer {
            t,
            incoming: Direction::new(),
            outgoing: Direction::new(),
        }
    }

    /// Bytes read from the transport: logs each frame they complete.
    pub fn incoming(&mut self, data: &[u8]) {
        for line in self.incoming.feed(data) {
            emit(self.t, "<-", &line);
        }
    }

    /// Bytes written to the transport: logs each frame they complete.
    pub fn outgoing(&mut self, data: &[u8]) {
        for line in self.outgoing.feed(data) {
            emit(self.t, "->", &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Direction;
    use amqp_engine::{Connection, ConnectionConfig, Side};
    use std::time::Instant;

    /// What a client engine writes first: its protocol header and `open`.
    fn client_open_bytes() -> Vec<u8> {
        let mut c = Connection::new(
            Side::Client,
            ConnectionConfig::new("trace-test"),
            Instant::now(),
        );
        c.open().unwrap();
        c.poll_transmit_bytes().to_vec()
    }

    #[test]
    fn decodes_header_and_frames_in_any_split() {
        let bytes = client_open_bytes();
        let whole = Direction::new().feed(&bytes);
        assert_eq!(whole.len(), 2, "{whole:?}");
        assert!(whole[0].contains("AMQP"), "{whole:?}");
        assert!(
            whole[1].starts_with("[0] ") && whole[1].contains("Open"),
            "{whole:?}"
        );
        assert!(whole[1].contains("trace-test"), "{whole:?}");
        // Byte by byte: the same lines, each once its last byte arrives.
        let mut d = Direction::new();
        let lines: Vec<String> = bytes.iter().flat_map(|b| d.feed(&[*b])).collect();
        assert_eq!(lines, whole);
    }

    #[test]
    fn garbage_is_reported_once_then_ignored() {
        let mut d = Direction::new();
        let lines = d.feed(&[0, 0, 0, 8, 0xff, 0xff, 0, 0]);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("(undecodable"), "{lines:?}");
        assert!(d.feed(&client_open_bytes()).is_empty());
    }
}
