//! A tiny test-only driver: one `Connection` over a blocking loopback `TcpStream`.
//!
//! The loop follows the crate's drain rule: feed what was read, hand every event to the
//! caller's closure (which may act on the connection), write everything queued, and call
//! `handle_timeout` when `poll_timeout` passes. Every wait is short and the whole run is
//! bounded by a deadline, so a hang fails the test instead of blocking CI.

#![allow(dead_code, unreachable_pub)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use amqp_engine::{Connection, Event};
use bytes::BytesMut;

/// How long one blocking read (or write) waits at most before the loop looks at timers again.
const POLL: Duration = Duration::from_millis(5);

/// A generous bound on loop turns; the deadline is what normally ends a stuck run.
const MAX_TURNS: u64 = 20_000_000;

/// What the event closure wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep driving.
    Continue,
    /// Stop driving now (after flushing what is queued); the transport stays open.
    Stop,
}

/// Counts the frames in one direction of the byte stream by performative (a passive tap on
/// what the driver reads or writes; it never changes the bytes).
#[derive(Debug)]
pub struct FrameTap {
    head: Vec<u8>,
    skip: usize,
    counts: Vec<u64>,
    /// Frames seen (protocol headers excluded).
    pub frames: u64,
    /// Empty frames (heartbeats).
    pub empty_frames: u64,
    /// The largest frame seen, in bytes.
    pub max_frame: usize,
}

impl Default for FrameTap {
    fn default() -> Self {
        FrameTap {
            head: Vec::with_capacity(16),
            skip: 0,
            counts: vec![0; 256],
            frames: 0,
            empty_frames: 0,
            max_frame: 0,
        }
    }
}

impl FrameTap {
    /// How many frames carried the performative with this descriptor code (e.g. 0x14 transfer,
    /// 0x15 disposition, 0x13 flow, 0x41 sasl-init).
    pub fn count(&self, code: u8) -> u64 {
        self.counts[code as usize]
    }

    fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(data.len());
                self.skip -= k;
                data = &data[k..];
                continue;
            }
            self.head.push(data[0]);
            data = &data[1..];
            let h = &self.head;
            if h.len() < 8 {
                continue;
            }
            if &h[..4] == b"AMQP" {
                self.head.clear(); // a protocol header
                continue;
            }
            let size = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
            let doff = h[4] as usize * 4;
            self.max_frame = self.max_frame.max(size);
            if size <= doff {
                self.frames += 1;
                self.empty_frames += 1;
                self.skip = size.saturating_sub(h.len());
                self.head.clear();
                continue;
            }
            let need = (doff + 3).min(size);
            if h.len() < need {
                continue;
            }
            // The performative: a described list, descriptor 0x00 0x53 <code>.
            let code = if h.len() >= doff + 3 && h[doff] == 0 && h[doff + 1] == 0x53 {
                h[doff + 2]
            } else {
                0xff
            };
            self.counts[code as usize] += 1;
            self.frames += 1;
            self.skip = size - h.len();
            self.head.clear();
        }
    }
}

/// A connection bound to a TCP stream.
pub struct Driver {
    /// The engine.
    pub conn: Connection,
    stream: TcpStream,
    deadline: Instant,
    rbuf: Vec<u8>,
    out: BytesMut,
    eof: bool,
    /// Bytes read from and written to the socket.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The frames read and written.
    pub tap_in: FrameTap,
    pub tap_out: FrameTap,
    /// The longest silence between two reads that returned data.
    pub max_read_gap: Duration,
    last_read: Option<Instant>,
    /// How many times `handle_timeout` was called, and how many reads returned data.
    pub timeouts: u64,
    pub reads: u64,
}

impl Driver {
    /// Drives `conn` over `stream`; every `run` must end within `limit` from now.
    pub fn new(stream: TcpStream, conn: Connection, limit: Duration) -> std::io::Result<Driver> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(POLL))?;
        stream.set_write_timeout(Some(POLL))?;
        Ok(Driver {
            conn,
            stream,
            deadline: Instant::now() + limit,
            rbuf: vec![0; 64 * 1024],
            out: BytesMut::with_capacity(64 * 1024),
            eof: false,
            bytes_in: 0,
            bytes_out: 0,
            tap_in: FrameTap::default(),
            tap_out: FrameTap::default(),
            max_read_gap: Duration::ZERO,
            last_read: None,
            timeouts: 0,
            reads: 0,
        })
    }

    /// Connects to `addr` (a client-side connection).
    pub fn connect(addr: SocketAddr, conn: Connection, limit: Duration) -> std::io::Result<Driver> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        Driver::new(s, conn, limit)
    }

    /// Accepts one connection on `listener`, waiting at most `limit`; `Ok(None)` on timeout.
    pub fn accept(listener: &TcpListener, limit: Duration) -> std::io::Result<Option<TcpStream>> {
        let deadline = Instant::now() + limit;
        listener.set_nonblocking(true)?;
        loop {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    return Ok(Some(s));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The deadline every run must meet.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// One short read into the engine (waiting at most POLL, less if a timer is due sooner).
    fn read_once(&mut self) -> Result<(), String> {
        if self.eof {
            return Ok(());
        }
        // Wake in time for the engine's next timer.
        let wait = match self.conn.poll_timeout() {
            Some(t) => t
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), POLL),
            None => POLL,
        };
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        match self.stream.read(&mut self.rbuf) {
            Ok(0) => {
                self.eof = true;
                self.conn.handle_transport_closed(Instant::now());
            }
            Ok(n) => {
                self.reads += 1;
                self.bytes_in += n as u64;
                self.tap_in.feed(&self.rbuf[..n]);
                let now = Instant::now();
                if let Some(t) = self.last_read.replace(now) {
                    self.max_read_gap = self.max_read_gap.max(now - t);
                }
                // An engine error is also reported as Event::Error; the caller sees it there.
                let _ = self.conn.handle_input(&self.rbuf[..n], Instant::now());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                self.eof = true;
                self.conn.handle_transport_closed(Instant::now());
                return Err(format!("read: {e}"));
            }
        }
        Ok(())
    }

    /// Writes everything the engine has queued. While the socket is full it keeps reading
    /// (into the engine), so two peers that both write a lot never deadlock.
    fn flush(&mut self) -> Result<(), String> {
        loop {
            if self.out.is_empty() {
                self.conn.poll_transmit(&mut self.out);
                if self.out.is_empty() {
                    return Ok(());
                }
            }
            while !self.out.is_empty() {
                if Instant::now() >= self.deadline {
                    return Err(format!(
                        "deadline passed with {} bytes unwritten",
                        self.out.len()
                    ));
                }
                match self.stream.write(&self.out) {
                    Ok(0) => return Err("write: socket closed".into()),
                    Ok(n) => {
                        self.bytes_out += n as u64;
                        self.tap_out.feed(&self.out[..n]);
                        let _ = self.out.split_to(n);
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        self.read_once()?;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
        }
    }

    /// Fires the engine's timer if it is due.
    fn timers(&mut self) {
        if let Some(t) = self.conn.poll_timeout() {
            let now = Instant::now();
            if now >= t {
                self.timeouts += 1;
                self.conn.handle_timeout(now);
            }
        }
    }

    /// Drives the connection, passing every event to `on_event`, until the engine reports
    /// `Event::Finished` (then the transport is shut down), or `on_event` returns `Flow::Stop`.
    /// Fails if the deadline passes first.
    pub fn run<F>(&mut self, mut on_event: F) -> Result<(), String>
    where
        F: FnMut(&mut Connection, Event) -> Flow,
    {
        // Bounded in count as well as in time (each turn waits at most POLL).
        for _ in 0..MAX_TURNS {
            let mut stop = false;
            let mut finished = false;
            while let Some(ev) = self.conn.poll_event() {
                if matches!(ev, Event::Finished) {
                    finished = true;
                }
                if on_event(&mut self.conn, ev) == Flow::Stop {
                    stop = true;
                }
            }
            // Writes may read, and reading may raise events: those wait for the next turn.
            let flushed = self.flush();
            if finished || self.conn.is_finished() && !self.conn.has_transmit() {
                // Drain the last events (e.g. Finished queued by a final read) for the closure.
                while let Some(ev) = self.conn.poll_event() {
                    on_event(&mut self.conn, ev);
                }
                let _ = self.flush();
                let _ = self.stream.shutdown(Shutdown::Write);
                return flushed;
            }
            flushed?;
            if stop {
                return Ok(());
            }
            if Instant::now() >= self.deadline {
                return Err(format!(
                    "deadline passed: connection state {:?}, error {:?}",
                    self.conn.state(),
                    self.conn.error()
                ));
            }
            self.timers();
            self.read_once()?;
        }
        Err("turn limit reached".into())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
