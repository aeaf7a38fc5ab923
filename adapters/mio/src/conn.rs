//! One TCP connection on the poll loop: plain or TLS (rustls driven directly with
//! `read_tls`/`process_new_packets`/`write_tls`), its write queue, readiness flags and phase.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Instant;

use amqp_adapter::amqp_engine::messaging::{
    AcceptorHandle, TlsConnect, TransportError, TransportErrorKind, TransportId, TransportInfo,
};
use amqp_adapter::trace::Tracer;
use amqp_adapter::ConnectionPermit;
use bytes::{Buf, Bytes};
use mio::net::TcpStream;

/// Most buffers handed to one `write_vectored` call.
const MAX_IOVECS: usize = 64;

/// Where a connection is in its life.
pub(crate) enum Phase {
    /// A non-blocking connect to `addr` is under way; `rest` are the addresses to try next.
    Connecting {
        addr: SocketAddr,
        rest: VecDeque<SocketAddr>,
        tls: Option<TlsConnect>,
    },
    /// TCP is up, the TLS handshake is not finished.
    Handshaking,
    /// Carrying AMQP bytes.
    Open,
    /// The core closed it: writes are flushed and our side shut down; reading (and
    /// discarding) until the peer closes too, or the deadline.
    Draining,
}

/// Which side opened it.
#[derive(Clone, Copy)]
pub(crate) enum Side {
    /// Ours (`IoRequest::Connect`).
    Client(TransportId),
    /// A listener's; the transport id comes from the core once it accepts the connection.
    Server(AcceptorHandle, Option<TransportId>),
}

/// What one socket read produced.
pub(crate) enum ReadStep {
    /// `n` plain bytes at the start of the buffer.
    Plain(usize),
    /// TLS records were read and processed: take the plaintext with [`Conn::plaintext`].
    Tls,
    /// The peer closed its side.
    Eof,
    /// Nothing more to read now.
    Blocked,
}

pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) side: Side,
    pub(crate) phase: Phase,
    pub(crate) tls: Option<rustls::Connection>,
    out: VecDeque<Bytes>,
    /// Bytes queued in `out`.
    pub(crate) queued: usize,
    /// The core asked to close it: after the queue is flushed it drains.
    pub(crate) closing: bool,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    pub(crate) info: TransportInfo,
    pub(crate) tracer: Option<Tracer>,
    /// Handshake or drain deadline.
    pub(crate) deadline: Option<Instant>,
    /// An accepted connection's place in its listener's `max_connections`, given back when
    /// the socket is dropped with this record.
    pub(crate) permit: Option<ConnectionPermit>,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream, side: Side, phase: Phase, peer: SocketAddr) -> Conn {
        Conn {
            stream,
            side,
            phase,
            tls: None,
            out: VecDeque::new(),
            queued: 0,
            closing: false,
            readable: false,
            writable: false,
            info: TransportInfo {
                encrypted: false,
                peer_identity: None,
                peer_addr: Some(peer.to_string()),
            },
            tracer: None,
            deadline: None,
            permit: None,
        }
    }

    /// The transport id the core knows it by, once it has one.
    pub(crate) fn transport(&self) -> Option<TransportId> {
        match self.side {
            Side::Client(t) => Some(t),
            Side::Server(_, t) => t,
        }
    }

    /// Queues bytes for writing (sent by [`flush`](Self::flush)).
    pub(crate) fn queue(&mut self, data: Bytes) {
        if let Some(t) = self.tracer.as_mut() {
            t.outgoing(&data);
        }
        self.queued += data.len();
        self.out.push_back(data);
    }

    /// True when nothing waits to be written (queue and TLS records).
    pub(crate) fn flushed(&self) -> bool {
        self.out.is_empty() && !self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Writes as much as the socket takes: queued chunks coalesced into vectored writes
    /// (plain), or moved into rustls and its records written (TLS).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        while self.writable {
            if let Some(tls) = self.tls.as_mut() {
                if tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.writable = false;
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                if tls.is_handshaking() {
                    return Ok(());
                }
                let Some(front) = self.out.front_mut() else {
                    return Ok(());
                };
                let n = tls.writer().write(front)?;
                if n == 0 {
                    // rustls' buffer is full and it has nothing to write: cannot happen, but
                    // never spin.
                    return Ok(());
                }
                self.consume(n);
            } else {
                if self.out.is_empty() {
                    return Ok(());
                }
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut n = 0;
                for (slot, chunk) in slices.iter_mut().zip(&self.out) {
                    *slot = IoSlice::new(chunk);
                    n += 1;
                }
                match self.stream.write_vectored(&slices[..n]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.consume(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Drops `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.out.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.out.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// One read from the socket: plain bytes into `buf`, or TLS records into rustls (then
    /// processed; a TLS error is returned after its alert is queued for the peer).
    pub(crate) fn read_socket(&mut self, buf: &mut [u8]) -> Result<ReadStep, TransportError> {
        let r = match self.tls.as_mut() {
            None => self.stream.read(buf),
            Some(tls) => tls.read_tls(&mut self.stream),
        };
        match r {
            Ok(0) => Ok(ReadStep::Eof),
            Ok(n) => match self.tls.as_mut() {
                None => Ok(ReadStep::Plain(n)),
                Some(tls) => match tls.process_new_packets() {
                    Ok(_) => Ok(ReadStep::Tls),
                    Err(e) => {
                        // Tell the peer why (the alert rustls queued), best effort.
                        let _ = tls.write_tls(&mut self.stream);
                        Err(TransportError::new(
                            TransportErrorKind::Tls,
                            format!("TLS: {e}"),
                        ))
                    }
                },
            },
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Ok(ReadStep::Blocked)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(ReadStep::Blocked),
            Err(e) => Err(io_error(&e, "read")),
        }
    }

    /// Decrypted bytes rustls holds, into `buf`: `Ok(0)` when there are none (yet).
    pub(crate) fn plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(0);
        };
        match tls.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            r => r,
        }
    }

    /// True when the TLS handshake has finished (or there is no TLS).
    pub(crate) fn handshake_done(&self) -> bool {
        !self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Starts the orderly end of a closed transport: TLS close_notify, then our side of TCP
    /// shut down. Call once [`flushed`](Self::flushed).
    pub(crate) fn shut_down_write(&mut self) {
        if let Some(tls) = self.tls.as_mut() {
            tls.send_close_notify();
            while tls.wants_write() {
                if tls.write_tls(&mut self.stream).is_err() {
                    break;
                }
            }
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        self.phase = Phase::Draining;
    }
}

/// Classifies a transport I/O error: refused connections, timeouts, addresses in use; anything
/// else is [`TransportErrorKind::Io`].
pub(crate) fn io_error(e: &io::Error, doing: impl std::fmt::Display) -> TransportError {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => TransportErrorKind::Refused,
        io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
        io::ErrorKind::AddrInUse => TransportErrorKind::AddressInUse,
        _ => TransportErrorKind::Io,
    };
    TransportError::new(kind, format!("{doing}: {e}"))
}
