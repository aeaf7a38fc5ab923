//! The driver: [`Driver`], one task that owns a sans-IO core ([`IoCore`], e.g. the Proton
//! container), carries out its [`IoRequest`]s on a [`Runtime`], and feeds it what the
//! sockets and its one timer produce. Each transport has a reader task and a writer task
//! (`transport`); listeners run an accept loop each (`accept`); outgoing transports are
//! opened by `connect`. They all talk to the driver over one channel.
//!
//! Reads reach the core without a copy: the reader splits each read off its buffer and the
//! driver hands that buffer over ([`IoCore::handle_read_owned`]); the engine joins it to a
//! pending partial frame in place and decodes frames that share its memory.
//!
//! Back-pressure: each transport counts the bytes queued for writing; while more than
//! [`WRITE_HIGH_WATER`] are queued, its reader stops reading, so a slow peer slows the traffic
//! that makes us write to it instead of growing memory. Writers report what they wrote
//! ([`IoCore::handle_written`], every [`WRITTEN_REPORT`](transport::WRITTEN_REPORT) bytes),
//! so the core can stop producing output for a peer that does not read.

mod accept;
mod connect;
mod queue;
mod transport;

use std::collections::HashMap;
use std::future::poll_fn;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use amqp_engine::messaging::{
    AcceptorHandle, IoCore, IoRequest, TransportError, TransportErrorKind, TransportId,
    TransportInfo,
};
use bytes::{Bytes, BytesMut};
use event_listener::Event as Notify;
use futures::future::{select, Either};
use futures::io::AsyncReadExt;

use crate::runtime::{BoxStream, BoxTimer, Listener, Runtime};
use crate::tls;
use crate::trace::Tracer;
use accept::{AcceptLoop, StopSignal};
pub use accept::{ConnectionLimit, ConnectionPermit, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
pub use connect::TLS_HANDSHAKE_TIMEOUT;
use transport::{Pending, Writers};
pub use transport::{READ_CHUNK, WRITE_HIGH_WATER};

/// When the container is done, how long the driver waits for the last writes (a close frame,
/// TLS close_notify) to reach the sockets before returning.
pub const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// What the driver's tasks report.
enum IoEvent {
    Connected(TransportId, BoxStream, TransportInfo),
    ConnectFailed(TransportId, TransportError),
    Read(TransportId, BytesMut),
    Written(TransportId, usize),
    Closed(TransportId, Option<TransportError>),
    Listening(
        AcceptorHandle,
        Result<(Box<dyn Listener>, u16), TransportError>,
    ),
    Accepted(AcceptorHandle, BoxStream, TransportInfo),
    AcceptFailed(AcceptorHandle, TransportError),
    Wake,
}

/// An [`IoEvent`] as it travels on the driver's channel.
pub(crate) struct IoEventBox(IoEvent);

/// A listener the driver started: how to stop its accept loop, and its TLS configuration.
struct Listening {
    stop: Arc<StopSignal>,
    tls: Option<Arc<rustls::ServerConfig>>,
    limit: Option<ConnectionLimit>,
}

/// A live transport, as the driver sees it: its writer's queue and the count of bytes in it.
struct Transport {
    writer: queue::Sender<Bytes>,
    pending: Arc<Pending>,
    tracer: Option<Tracer>,
}

/// A handle that wakes the driver from another task or thread (after operations on the
/// container made outside a callback).
#[derive(Clone)]
pub(crate) struct Waker {
    tx: queue::Sender<IoEventBox>,
}

impl Waker {
    /// Makes the driver poll the core again.
    pub(crate) fn wake(&self) {
        let _ = self.tx.unbounded_send(IoEventBox(IoEvent::Wake));
    }
}

/// The event channel of [`drive_with`] and a [`Waker`] feeding it: a task that shares the
/// core with the driver calls [`Waker::wake`] after changing it.
pub(crate) fn wake_channel() -> (
    Waker,
    queue::Sender<IoEventBox>,
    queue::Receiver<IoEventBox>,
) {
    let (tx, rx) = queue::queue::<IoEventBox>();
    (Waker { tx: tx.clone() }, tx, rx)
}

/// Runs a container to completion on a runtime: returns it when it is done (stopped, or
/// nothing left to do).
pub(crate) async fn drive<C: IoCore, R: Runtime>(core: C, rt: R) -> C {
    let mut d = Driver::new(core, rt);
    d.run().await;
    d.into_core()
}

/// Runs a core to completion on a runtime with the event channel given (the async API keeps
/// a [`Waker`] feeding it, to be polled again after a handle changed the core); returns the
/// core when it is done.
pub(crate) async fn drive_with<C: IoCore, R: Runtime>(
    core: C,
    rt: R,
    tx: queue::Sender<IoEventBox>,
    rx: queue::Receiver<IoEventBox>,
) -> C {
    let mut d = Driver::with_channel(core, rt, tx, rx);
    d.run().await;
    d.into_core()
}

/// The transport map's capacity is never shrunk below this (a few connections coming and
/// going never reallocate it).
const KEEP_TRANSPORTS: usize = 64;

/// Shrinks `m` to twice its length once it is less than a quarter full (and its capacity past
/// `keep`), so a burst of connections does not keep its peak's table. Amortised O(1) per
/// removal: a shrink moves the entries left, and at least as many were removed since the
/// table last grew or shrank.
fn shrink_when_sparse<K: Hash + Eq, V>(m: &mut HashMap<K, V>, keep: usize) {
    if m.capacity() > keep && m.len() < m.capacity() / 4 {
        m.shrink_to((m.len() * 2).max(keep));
    }
}

/// What woke the driver.
enum Woken {
    Event(IoEventBox),
    Timeout,
    /// Every sender is gone: nothing can happen any more.
    Ended,
}

/// Drives one [`IoCore`] on runtime `R`: its state is the core, the channel its tasks report
/// on, the live transports and listeners, and one timer re-armed when the core's next
/// deadline changes.
pub(crate) struct Driver<R: Runtime, C: IoCore> {
    core: C,
    rt: R,
    tx: queue::Sender<IoEventBox>,
    events: queue::Receiver<IoEventBox>,
    transports: HashMap<TransportId, Transport>,
    writers: Arc<Writers>,
    listeners: HashMap<AcceptorHandle, Listening>,
    trace: bool,
    /// Made at the first deadline, then re-armed in place.
    timer: Option<BoxTimer>,
    /// The deadline the timer is armed for; `None` when it is not armed (or fired).
    armed: Option<Instant>,
}

impl<R: Runtime, C: IoCore> Driver<R, C> {
    /// A driver for `core` with its own event channel.
    pub(crate) fn new(core: C, rt: R) -> Self {
        let (tx, rx) = queue::queue();
        Self::with_channel(core, rt, tx, rx)
    }

    /// A driver for `core` reading the channel of [`wake_channel`].
    pub(crate) fn with_channel(
        core: C,
        rt: R,
        tx: queue::Sender<IoEventBox>,
        events: queue::Receiver<IoEventBox>,
    ) -> Self {
        Driver {
            core,
            rt,
            tx,
            events,
            transports: HashMap::new(),
            writers: Arc::default(),
            listeners: HashMap::new(),
            trace: crate::trace::enabled(),
            timer: None,
            armed: None,
        }
    }

    /// The core, once [`run`](Self::run) returned.
    pub(crate) fn into_core(self) -> C {
        self.core
    }

    /// Runs until the core is done. Then stops the listeners and gives the writers [`FLUSH_GRACE`] to send what the core
    /// wrote last.
    pub(crate) async fn run(&mut self) {
        // Injectors wake the driver through its own channel.
        let wake = self.tx.clone();
        self.core.set_waker(Arc::new(move || {
            let _ = wake.unbounded_send(IoEventBox(IoEvent::Wake));
        }));
        self.core.start(Instant::now());
        loop {
            while let Some(req) = self.core.poll_io() {
                self.carry_out(req);
            }
            if self.core.is_done() {
                break;
            }
            match self.wait().await {
                Woken::Event(IoEventBox(ev)) => {
                    self.on_event(ev);
                    // Take everything else that is ready, then poll the core once for all of it.
                    while let Some(IoEventBox(ev)) = self.events.try_recv() {
                        self.on_event(ev);
                    }
                    let now = Instant::now();
                    if self.core.poll_timeout().is_some_and(|t| t <= now) {
                        self.core.handle_timeout(now);
                    }
                }
                Woken::Timeout => self.core.handle_timeout(Instant::now()),
                Woken::Ended => break,
            }
        }
        self.shut_down().await;
    }

    /// Waits for the next event or the core's deadline, re-arming the timer only when the
    /// deadline changed.
    async fn wait(&mut self) -> Woken {
        match self.core.poll_timeout() {
            Some(deadline) if self.armed != Some(deadline) => {
                match self.timer.as_mut() {
                    Some(t) => t.as_mut().reset(deadline),
                    None => self.timer = Some(self.rt.timer(deadline)),
                }
                self.armed = Some(deadline);
            }
            Some(_) => {}
            None => self.armed = None,
        }
        let (events, timer, armed) = (&mut self.events, &mut self.timer, &mut self.armed);
        poll_fn(|cx| {
            if let Poll::Ready(ev) = events.poll_recv(cx) {
                return Poll::Ready(ev.map_or(Woken::Ended, Woken::Event));
            }
            if armed.is_some() {
                if let Some(t) = timer.as_mut() {
                    if t.as_mut().poll_expired(cx).is_ready() {
                        *armed = None;
                        return Poll::Ready(Woken::Timeout);
                    }
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Stops the listeners and lets the writers flush what the core wrote last (the close
    /// frame that answers a peer's close, TLS close_notify): `Container::run` drops its
    /// runtime when the driver returns, which would cancel them and leave the peer with an
    /// aborted connection.
    async fn shut_down(&mut self) {
        for (_, l) in self.listeners.drain() {
            l.stop.stop();
        }
        self.transports.clear();
        let writers = self.writers.clone();
        let deadline = Instant::now() + FLUSH_GRACE;
        while writers.live.load(Ordering::Acquire) > 0 {
            let exited = writers.exited.listen();
            if writers.live.load(Ordering::Acquire) == 0 {
                break;
            }
            if let Either::Right(_) = select(exited, self.rt.sleep_until(deadline)).await {
                break;
            }
        }
    }

    fn on_event(&mut self, ev: IoEvent) {
        let now = Instant::now();
        match ev {
            IoEvent::Connected(t, stream, info) => {
                if !self.core.is_transport_live(t) {
                    // Closed while connecting: let the socket go rather than keep it open
                    // unowned.
                    return;
                }
                self.start_transport(t, stream);
                // Writes are reported from the first byte on.
                self.core.handle_written(t, 0, now);
                self.core.handle_connected(t, info, now);
            }
            IoEvent::ConnectFailed(t, reason) => self.core.handle_connect_failed(t, reason, now),
            IoEvent::Written(t, n) => self.core.handle_written(t, n, now),
            IoEvent::Read(t, data) => {
                if let Some(tracer) = self
                    .transports
                    .get_mut(&t)
                    .and_then(|tr| tr.tracer.as_mut())
                {
                    tracer.incoming(&data);
                }
                self.core.handle_read_owned(t, data, now);
            }
            IoEvent::Closed(t, reason) => {
                self.forget_transport(t);
                self.core.handle_disconnected(t, reason, now);
            }
            IoEvent::Listening(a, Ok((listener, port))) => {
                let Some(l) = self.listeners.get(&a) else {
                    // Stopped before it was bound.
                    return;
                };
                let accept = AcceptLoop {
                    acceptor: a,
                    listener: Arc::from(listener),
                    stop: l.stop.clone(),
                    rt: self.rt.clone(),
                    events: self.tx.clone(),
                    tls: l.tls.clone(),
                    limit: l.limit.clone(),
                };
                self.core.handle_listening(a, Ok(port), now);
                self.rt.spawn(Box::pin(accept.run()));
            }
            IoEvent::Listening(a, Err(e)) => self.core.handle_listening(a, Err(e), now),
            IoEvent::Accepted(a, stream, info) => {
                if let Some(t) = self.core.handle_accepted(a, info, now) {
                    self.start_transport(t, stream);
                    self.core.handle_written(t, 0, now);
                }
            }
            IoEvent::AcceptFailed(a, e) => self.core.handle_accept_failed(a, e, now),
            IoEvent::Wake => {}
        }
    }

    fn carry_out(&mut self, req: IoRequest) {
        match req {
            IoRequest::Connect {
                transport,
                host,
                port,
                tls,
                timeout,
            } => {
                let rt = self.rt.clone();
                let tx = self.tx.clone();
                self.rt.spawn(Box::pin(async move {
                    let ev = match connect::connect_within(&rt, &host, port, tls, timeout).await {
                        Ok((s, info)) => IoEvent::Connected(transport, s, info),
                        Err(e) => IoEvent::ConnectFailed(transport, e),
                    };
                    let _ = tx.unbounded_send(IoEventBox(ev));
                }));
            }
            IoRequest::Write { transport, data } => {
                if let Some(t) = self.transports.get_mut(&transport) {
                    if let Some(tracer) = t.tracer.as_mut() {
                        tracer.outgoing(&data);
                    }
                    t.pending.queued.fetch_add(data.len(), Ordering::AcqRel);
                    let _ = t.writer.unbounded_send(data);
                }
            }
            IoRequest::Close { transport } => {
                // Dropping the writer's channel makes it flush and shut the stream down.
                self.forget_transport(transport);
            }
            IoRequest::Listen {
                acceptor,
                host,
                port,
                tls,
                max_connections,
            } => {
                let limit = max_connections.map(ConnectionLimit::new);
                self.listen(acceptor, (host, port), tls.as_ref(), limit);
            }
            IoRequest::StopListening { acceptor } => {
                if let Some(l) = self.listeners.remove(&acceptor) {
                    l.stop.stop();
                }
            }
            _ => {}
        }
    }

    fn listen(
        &mut self,
        acceptor: AcceptorHandle,
        (host, port): (String, u16),
        tls: Option<&amqp_engine::messaging::TlsListen>,
        limit: Option<ConnectionLimit>,
    ) {
        let server_tls = match tls.map(tls::server_config) {
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => {
                self.core.handle_listening(
                    acceptor,
                    Err(TransportError::new(
                        TransportErrorKind::Tls,
                        format!("TLS configuration: {e}"),
                    )),
                    Instant::now(),
                );
                return;
            }
            None => None,
        };
        self.listeners.insert(
            acceptor,
            Listening {
                stop: Arc::new(StopSignal::default()),
                tls: server_tls,
                limit,
            },
        );
        let rt = self.rt.clone();
        let tx = self.tx.clone();
        self.rt.spawn(Box::pin(async move {
            let r = async {
                let addr = connect::resolve(&rt, &host, port).await?;
                let bound = async {
                    let l = rt.bind(addr).await?;
                    let port = l.local_addr()?.port();
                    Ok::<_, std::io::Error>((l, port))
                };
                bound
                    .await
                    .map_err(|e| transport::io_error(&e, format_args!("listen on {addr}")))
            }
            .await;
            let _ = tx.unbounded_send(IoEventBox(IoEvent::Listening(acceptor, r)));
        }));
    }

    /// Drops a transport's record; the map gives its memory back once it is mostly empty.
    fn forget_transport(&mut self, t: TransportId) {
        self.transports.remove(&t);
        shrink_when_sparse(&mut self.transports, KEEP_TRANSPORTS);
    }

    /// Starts the reader and writer tasks of a transport that came up.
    fn start_transport(&mut self, t: TransportId, stream: BoxStream) {
        let (reader, writer) = stream.split();
        let (wtx, wrx) = queue::queue::<Bytes>();
        let pending = Arc::new(Pending {
            queued: AtomicUsize::new(0),
            drained: Notify::new(),
        });
        self.transports.insert(
            t,
            Transport {
                writer: wtx,
                pending: pending.clone(),
                tracer: self.trace.then(Tracer::new),
            },
        );
        let writers = transport::writer_started(&self.writers);
        self.rt.spawn(Box::pin(transport::write_loop(
            t,
            writer,
            wrx,
            pending.clone(),
            writers,
            self.tx.clone(),
        )));
        self.rt.spawn(Box::pin(transport::read_loop(
            t,
            reader,
            pending,
            self.tx.clone(),
        )));
    }
}

#[cfg(test)]
mod tests {
    use super::{shrink_when_sparse, HashMap};

    #[test]
    fn a_map_emptied_after_a_burst_gives_its_table_back() {
        let mut m: HashMap<u32, [u8; 64]> = (0..10_000).map(|i| (i, [0; 64])).collect();
        let peak = m.capacity();
        for i in 10..10_000 {
            m.remove(&i);
            shrink_when_sparse(&mut m, 64);
        }
        assert_eq!(m.len(), 10);
        assert!(
            m.capacity() <= 128,
            "capacity {} (peak {peak})",
            m.capacity()
        );
        // Below the floor, entries coming and going never reallocate.
        let cap = m.capacity();
        for i in 10..40 {
            m.insert(i, [0; 64]);
        }
        for i in 10..40 {
            m.remove(&i);
            shrink_when_sparse(&mut m, 64);
        }
        assert_eq!(m.capacity(), cap);
    }
}
