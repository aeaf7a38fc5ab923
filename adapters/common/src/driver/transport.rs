//! One transport's two tasks: the reader (reads into a buffer sized to the traffic and hands
//! each read to the driver by ownership) and the writer (writes whole coalesced buffers), and
//! the count of bytes queued between the driver and the writer that pauses the reader.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use amqp_engine::messaging::{TransportError, TransportErrorKind, TransportId};
use bytes::{Bytes, BytesMut};
use event_listener::Event as Notify;
use futures::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::queue::{Receiver, Sender};
use super::{IoEvent, IoEventBox};
use crate::runtime::BoxStream;

/// Stop reading from a transport while this many bytes wait to be written to it.
pub const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;
/// A writer reports what it wrote to the core each time this many bytes went out.
pub(super) const WRITTEN_REPORT: usize = 64 * 1024;
/// The largest read: a busy transport reads up to this much at a time.
pub const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a quiet transport (and of a new one): what an idle connection holds
/// while it waits for its peer.
pub(super) const READ_SMALL: usize = 2 * 1024;

/// The bytes queued for a transport's writer, and a notification when some were written.
pub(super) struct Pending {
    pub(super) queued: AtomicUsize,
    pub(super) drained: Notify,
}

/// Counts the writer tasks still running, including those of transports already closed,
/// which are flushing their last bytes.
#[derive(Default)]
pub(super) struct Writers {
    pub(super) live: AtomicUsize,
    pub(super) exited: Notify,
}

/// Counts a writer task as live until dropped (whichever way the task ends).
struct WriterGuard(Arc<Writers>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.exited.notify(usize::MAX);
    }
}

/// How big the next read buffer is: it grows while reads fill it and falls back to
/// [`READ_SMALL`] after a read that used a small part of it, so a transport holds a large
/// buffer only while its peer keeps it busy. A busy transport alternates between two buffers
/// of [`READ_CHUNK`]: when one runs low, the core has usually let go of everything read into
/// the other (the frame cut at its end included), so that memory is read into again instead
/// of a fresh buffer being allocated.
#[derive(Debug)]
pub(super) struct ReadSizer {
    want: usize,
    /// The other buffer of a busy transport: what was left of it (a view that keeps its
    /// memory) when the reader moved to the current one.
    spare: BytesMut,
}

impl ReadSizer {
    pub(super) fn new() -> Self {
        ReadSizer {
            want: READ_SMALL,
            spare: BytesMut::new(),
        }
    }

    /// The buffer to read into next: `buf` when it has room enough; else the other buffer's
    /// memory when the core has let go of it, or a fresh one.
    pub(super) fn prepare(&mut self, buf: &mut BytesMut) {
        if buf.len() >= (self.want / 4).max(READ_SMALL / 2) {
            return;
        }
        if self.want == READ_CHUNK {
            std::mem::swap(buf, &mut self.spare);
            buf.clear();
            if buf.try_reclaim(READ_CHUNK) {
                buf.resize(READ_CHUNK, 0);
                return;
            }
        }
        *buf = BytesMut::zeroed(self.want);
    }

    /// A read of `n` bytes into a buffer that had `room`; the rest of `buf` (after the read
    /// was split off) is let go when traffic is light, so a quiet transport keeps only a
    /// small buffer.
    pub(super) fn after_read(&mut self, n: usize, room: usize, buf: &mut BytesMut) {
        if n == room {
            self.want = (self.want * 2).min(READ_CHUNK);
        } else if n < READ_SMALL / 2 {
            self.want = READ_SMALL;
            self.spare = BytesMut::new();
            if buf.len() > READ_SMALL {
                *buf = BytesMut::new();
            }
        }
    }
}

/// Runs the writer: writes each buffer the driver queues, in order, then flushes and shuts
/// the stream down once the driver drops the sender.
pub(super) async fn write_loop(
    t: TransportId,
    mut writer: WriteHalf<BoxStream>,
    mut queue: Receiver<Bytes>,
    pending: Arc<Pending>,
    writers: Arc<Writers>,
    events: Sender<IoEventBox>,
) {
    let _guard = WriterGuard(writers);
    let mut unreported = 0;
    while let Some(data) = queue.recv().await {
        if let Err(e) = writer.write_all(&data).await {
            let reason = io_error(&e, "write");
            let _ = events.unbounded_send(IoEventBox(IoEvent::Closed(t, Some(reason))));
            return;
        }
        pending.queued.fetch_sub(data.len(), Ordering::AcqRel);
        pending.drained.notify(usize::MAX);
        unreported += data.len();
        if unreported >= WRITTEN_REPORT {
            let _ = events.unbounded_send(IoEventBox(IoEvent::Written(t, unreported)));
            unreported = 0;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.close().await;
}

/// Registers a writer about to start with the driver's count.
pub(super) fn writer_started(writers: &Arc<Writers>) -> Arc<Writers> {
    writers.live.fetch_add(1, Ordering::AcqRel);
    writers.clone()
}

/// Runs the reader: reads into the unused tail of one zeroed buffer and hands what each read
/// filled to the driver by ownership (split off, not copied). Consecutive reads come from one
/// buffer, so the core can join a partial frame with its rest in place.
pub(super) async fn read_loop(
    t: TransportId,
    mut reader: ReadHalf<BoxStream>,
    pending: Arc<Pending>,
    events: Sender<IoEventBox>,
) {
    let mut buf = BytesMut::new();
    let mut sizer = ReadSizer::new();
    loop {
        while pending.queued.load(Ordering::Acquire) > WRITE_HIGH_WATER {
            let l = pending.drained.listen();
            if pending.queued.load(Ordering::Acquire) > WRITE_HIGH_WATER {
                l.await;
            }
        }
        sizer.prepare(&mut buf);
        let room = buf.len();
        match reader.read(&mut buf[..]).await {
            Ok(0) => {
                let _ = events.unbounded_send(IoEventBox(IoEvent::Closed(t, None)));
                return;
            }
            Ok(n) => {
                let chunk = buf.split_to(n);
                sizer.after_read(n, room, &mut buf);
                if events
                    .unbounded_send(IoEventBox(IoEvent::Read(t, chunk)))
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                let _ = events
                    .unbounded_send(IoEventBox(IoEvent::Closed(t, Some(io_error(&e, "read")))));
                return;
            }
        }
    }
}

/// Classifies a transport I/O error: TLS failures (an alert from the peer, a bad record),
/// refused connections, timeouts, addresses in use; anything else is [`TransportErrorKind::Io`].
pub(super) fn io_error(e: &io::Error, doing: impl std::fmt::Display) -> TransportError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return TransportError::new(TransportErrorKind::Tls, format!("{doing}: {tls}"));
    }
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => TransportErrorKind::Refused,
        io::ErrorKind::TimedOut => TransportErrorKind::Timeout,
        io::ErrorKind::AddrInUse => TransportErrorKind::AddressInUse,
        _ => TransportErrorKind::Io,
    };
    TransportError::new(kind, format!("{doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates reads of the given sizes; per read, the room the buffer had and the bytes
    /// the reader holds afterwards.
    fn simulate(reads: &[usize]) -> Vec<(usize, usize)> {
        let mut buf = BytesMut::new();
        let mut s = ReadSizer::new();
        reads
            .iter()
            .map(|&want| {
                s.prepare(&mut buf);
                let room = buf.len();
                let n = want.min(room);
                drop(buf.split_to(n));
                s.after_read(n, room, &mut buf);
                (room, buf.len())
            })
            .collect()
    }

    #[test]
    fn a_busy_transport_grows_its_buffer_and_a_quiet_one_gives_it_back() {
        let mut reads = vec![usize::MAX; 8];
        reads.push(20); // a heartbeat: traffic went quiet
        let seen = simulate(&reads);
        // Each full read doubles the next buffer, up to READ_CHUNK.
        assert_eq!(seen[0].0, READ_SMALL, "{seen:?}");
        assert_eq!(seen[7].0, READ_CHUNK, "{seen:?}");
        assert!(seen[8].1 <= READ_SMALL, "a quiet transport holds {seen:?}");
    }

    /// Busy reads of 20,000 bytes; the core holds each read until the next one arrives (a
    /// frame cut at its end). The buffers each refill starts.
    fn refills(reads: usize) -> Vec<*const u8> {
        let mut buf = BytesMut::new();
        let mut s = ReadSizer::new();
        let mut starts = Vec::new();
        let mut held = None;
        for _ in 0..reads {
            s.prepare(&mut buf);
            if buf.len() == READ_CHUNK {
                starts.push(buf.as_ptr());
            }
            let room = buf.len();
            let n = room.min(20_000);
            held = Some(buf.split_to(n));
            s.after_read(n, room, &mut buf);
        }
        drop(held);
        starts
    }

    #[test]
    fn a_busy_transport_reads_into_its_two_buffers_again_and_again() {
        let starts = refills(60);
        assert!(starts.len() > 6, "{starts:?}");
        let distinct: std::collections::HashSet<_> = starts.iter().collect();
        assert!(
            distinct.len() <= 3,
            "{} buffers: {starts:?}",
            distinct.len()
        );
        assert!(starts[2..].windows(3).all(|w| w[0] == w[2]), "{starts:?}");
    }

    #[test]
    fn an_idle_transport_holds_a_small_buffer_from_the_start() {
        let seen = simulate(&[300, 40, 8]);
        assert!(
            seen.iter()
                .all(|&(room, held)| room <= READ_SMALL && held <= READ_SMALL),
            "{seen:?}"
        );
    }
}
