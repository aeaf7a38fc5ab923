//! Frame tracing for debugging, in the notation of Proton's `PN_TRACE_FRM=1`, so a trace can
//! be diffed against Proton's:
//!
//! ```text
//! [0x1]:  -> AMQP
//! [0x1]:0 -> @open(16) [container-id="c1", hostname="localhost", channel-max=32767]
//! [0x1]:0 -> @transfer(20) [handle=0, delivery-id=0, delivery-tag=b"\x00", message-format=0] (18) "\x00Sw\xa1\x0cHello World!"
//! [0x1]:0 <- (EMPTY FRAME)
//! ```
//!
//! Set `AMQP_TRACE_FRM=1` (or Proton's own `PN_TRACE_FRM=1`) and every frame in and out of
//! every transport is logged, the transport shown by a short id: as `tracing` events at INFO
//! level with target `amqp::frame`, or on standard error when no `tracing` subscriber is
//! installed. SASL responses (PLAIN's carries the password) print as `<redacted>`.

mod inspect;

use std::sync::atomic::{AtomicU64, Ordering};

use amqp_proto::codec::{Decode, Decoder};
use amqp_proto::frame::ProtocolHeader;
use amqp_proto::value::Value;
use bytes::{Bytes, BytesMut};

/// True if frame tracing is switched on by the environment.
pub fn enabled() -> bool {
    ["AMQP_TRACE_FRM", "PN_TRACE_FRM"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0"))
}

/// A frame larger than this is not traced (the tracer would have to hold all of it): the
/// trace stops for that direction.
const MAX_TRACED_FRAME: usize = 64 * 1024 * 1024;
/// How much of a transfer's payload a line shows.
const MAX_PAYLOAD_SHOWN: usize = 1024;

/// One direction of a transport: the bytes of a frame not complete yet.
struct Direction {
    buf: BytesMut,
    broken: bool,
}

impl Direction {
    fn new() -> Self {
        Direction {
            buf: BytesMut::new(),
            broken: false,
        }
    }

    /// Decodes what `data` completes; returns one line per header or frame, without the
    /// transport's id: `  -> AMQP`, `0 -> @open(16) [...]` (`arrow` is `->` or `<-`).
    fn feed(&mut self, data: &[u8], arrow: &str) -> Vec<String> {
        let mut lines = Vec::new();
        if self.broken {
            return lines;
        }
        self.buf.extend_from_slice(data);
        loop {
            if self.buf.starts_with(b"AMQP") {
                if self.buf.len() < ProtocolHeader::SIZE {
                    return lines;
                }
                let header = self.buf.split_to(ProtocolHeader::SIZE);
                lines.push(match ProtocolHeader::parse(&header) {
                    Ok(Some(_)) if header[4] == 3 => format!("  {arrow} SASL"),
                    Ok(Some(_)) => format!("  {arrow} AMQP"),
                    _ => format!("  {arrow} {header:02x?}"),
                });
                continue;
            }
            let Some(size) = self
                .buf
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            else {
                return lines;
            };
            if !(8..=MAX_TRACED_FRAME).contains(&size) {
                lines.push(format!("  {arrow} (untraceable: frame size {size})"));
                self.broken = true;
                return lines;
            }
            if self.buf.len() < size {
                return lines;
            }
            let frame = self.buf.split_to(size).freeze();
            match frame_line(&frame, arrow) {
                Some(line) => lines.push(line),
                None => {
                    lines.push(format!("  {arrow} (undecodable frame of {size} bytes)"));
                    self.broken = true;
                    return lines;
                }
            }
        }
    }
}

/// One whole frame as a trace line: `CHANNEL ARROW @performative(code) [fields]`, and for a
/// frame with a payload ` (LENGTH) "bytes"`.
fn frame_line(frame: &Bytes, arrow: &str) -> Option<String> {
    let doff = usize::from(frame[4]) * 4;
    let channel = u16::from_be_bytes([frame[6], frame[7]]);
    if doff < 8 || doff > frame.len() {
        return None;
    }
    let body = frame.slice(doff..);
    if body.is_empty() {
        return Some(format!("{channel} {arrow} (EMPTY FRAME)"));
    }
    let mut d = Decoder::new(&body);
    let performative = Value::decode(&mut d).ok()?;
    let payload = d.rest_bytes();
    let mut line = format!("{channel} {arrow} {}", inspect::inspect(&performative));
    if !payload.is_empty() {
        let shown = &payload[..payload.len().min(MAX_PAYLOAD_SHOWN)];
        line.push_str(&format!(" ({}) ", payload.len()));
        inspect::write_quoted(&mut line, shown);
        if shown.len() < payload.len() {
            line.push_str("...");
        }
    }
    Some(line)
}

fn emit(id: u64, line: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::info!(target: "amqp::frame", "[{id:#x}]:{line}");
    } else {
        eprintln!("[{id:#x}]:{line}");
    }
}

/// Decodes copies of the bytes a transport reads and writes, and logs each frame.
pub struct Tracer {
    /// The transport's short id in the trace.
    id: u64,
    incoming: Direction,
    outgoing: Direction,
}

impl Default for Tracer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tracer {
    /// A tracer for a new transport, with the next short id.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Tracer {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            incoming: Direction::new(),
            outgoing: Direction::new(),
        }
    }

    /// Bytes read from the transport: logs each frame they complete.
    pub fn incoming(&mut self, data: &[u8]) {
        for line in self.incoming.feed(data, "<-") {
            emit(self.id, &line);
        }
    }

    /// Bytes written to the transport: logs each frame they complete.
    pub fn outgoing(&mut self, data: &[u8]) {
        for line in self.outgoing.feed(data, "->") {
            emit(self.id, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Direction;
    use amqp_engine::{Connection, ConnectionConfig, Side};
    use amqp_proto::frame::encode_sasl_frame;
    use amqp_proto::sasl::{SaslFrame, SaslInit};
    use amqp_proto::value::Symbol;
    use bytes::Bytes;
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
    fn lines_are_in_protons_notation_in_any_split() {
        let bytes = client_open_bytes();
        let whole = Direction::new().feed(&bytes, "->");
        assert_eq!(whole.len(), 2, "{whole:?}");
        assert_eq!(whole[0], "  -> AMQP");
        assert!(
            whole[1].starts_with("0 -> @open(16) [container-id=\"trace-test\", "),
            "{whole:?}"
        );
        assert!(whole[1].contains("max-frame-size="), "{whole:?}");
        assert!(whole[1].ends_with(']'), "{whole:?}");
        // Byte by byte: the same lines, each once its last byte arrives.
        let mut d = Direction::new();
        let lines: Vec<String> = bytes.iter().flat_map(|b| d.feed(&[*b], "->")).collect();
        assert_eq!(lines, whole);
    }

    #[test]
    fn an_empty_frame_is_a_heartbeat() {
        let lines = Direction::new().feed(&[0, 0, 0, 8, 2, 0, 0, 0], "<-");
        assert_eq!(lines, ["0 <- (EMPTY FRAME)"]);
    }

    #[test]
    fn garbage_is_reported_once_then_ignored() {
        let mut d = Direction::new();
        let lines = d.feed(&[0, 0, 0, 9, 2, 0, 0, 0, 0xff], "<-");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("undecodable"), "{lines:?}");
        assert!(d.feed(&client_open_bytes(), "<-").is_empty());
    }

    /// A SASL PLAIN client's initial response is `\0user\0password`: the trace shows the
    /// mechanism and the host, never the response.
    #[test]
    fn sasl_plain_credentials_are_redacted() {
        let mut out = bytes::BytesMut::new();
        out.extend_from_slice(b"AMQP\x03\x01\x00\x00");
        let init = SaslInit {
            mechanism: Symbol::from_static("PLAIN"),
            initial_response: Some(Bytes::from_static(b"\0alice\0s3cret-pw")),
            hostname: Some("broker".into()),
        };
        encode_sasl_frame(&mut out, &SaslFrame::SaslInit(init));
        let lines = Direction::new().feed(&out, "->");
        assert_eq!(
            lines[1],
            "0 -> @sasl-init(65) [mechanism=:PLAIN, initial-response=<redacted>, hostname=\"broker\"]"
        );
        assert!(lines[0].contains("SASL"), "{lines:?}");
    }
}
