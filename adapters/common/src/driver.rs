//! The driver: one task that owns a sans-IO core ([`IoCore`], e.g. the Proton container),
//! carries out its [`IoRequest`]s on a [`Runtime`], and feeds it what the sockets and timers
//! produce. Each transport has a reader task (reads into a reused buffer) and a writer task
//! (writes whole coalesced buffers); they talk to the driver over channels.
//!
//! Back-pressure: each transport counts the bytes queued for writing; while more than
//! [`WRITE_HIGH_WATER`] are queued, its reader stops reading, so a slow peer slows the traffic
//! that makes us write to it instead of growing memory.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqp_engine::messaging::{
    AcceptorHandle, IoCore, IoRequest, TlsConnect, TransportError, TransportErrorKind, TransportId,
    TransportInfo,
};
use bytes::{Bytes, BytesMut};
use event_listener::Event as Notify;
use futures::channel::mpsc;
use futures::future::{select, Either};
use futures::io::{AsyncReadExt, AsyncWriteExt};
use futures::StreamExt;

use crate::runtime::{BoxStream, Listener, Runtime};
use crate::tls;
use crate::trace::Tracer;

/// Stop reading from a transport while this many bytes wait to be written to it.
pub const WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Size of each read buffer: a read takes at most this much.
pub const READ_CHUNK: usize = 64 * 1024;
/// A read buffer with less room than this left is replaced by a fresh one.
const READ_MIN: usize = READ_CHUNK / 4;
/// When the container is done, how long the driver waits for the last writes (a close frame,
/// TLS close_notify) to reach the sockets before returning.
pub const FLUSH_GRACE: Duration = Duration::from_secs(2);
/// How long a TLS handshake may take, on either side. A peer that accepts the TCP connection
/// and then says nothing would otherwise hold a client's connect (no error, no reconnect) or a
/// listener's handshake task and socket forever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

enum IoEvent {
    Connected(TransportId, BoxStream, TransportInfo),
    ConnectFailed(TransportId, TransportError),
    Read(TransportId, Bytes),
    Closed(TransportId, Option<TransportError>),
    Listening(
        AcceptorHandle,
        Result<(Box<dyn Listener>, u16), TransportError>,
    ),
    Accepted(AcceptorHandle, BoxStream, TransportInfo),
    AcceptFailed(AcceptorHandle, String),
    Wake,
}

struct Pending {
    queued: AtomicUsize,
    drained: Notify,
}

/// Tells an accept loop to stop. A flag as well as a notification: a notification sent while
/// the loop is not waiting (not yet started, or between two accepts) would be lost, and the
/// listener would keep its port.
#[derive(Default)]
struct StopSignal {
    stopped: AtomicBool,
    notify: Notify,
}

impl StopSignal {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.notify.notify(usize::MAX);
    }
}

struct Listening {
    stop: Arc<StopSignal>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

struct Transport {
    writer: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Pending>,
    tracer: Option<Tracer>,
}

/// The live transports, and a count of writer tasks still running (including those of
/// transports already closed, which are flushing their last bytes).
#[derive(Default)]
struct Transports {
    map: HashMap<TransportId, Transport>,
    writers: Arc<Writers>,
}

#[derive(Default)]
struct Writers {
    live: AtomicUsize,
    exited: Notify,
}

/// Counts a writer task as live until dropped (whichever way the task ends).
struct WriterGuard(Arc<Writers>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
        self.0.exited.notify(usize::MAX);
    }
}

impl std::ops::Deref for Transports {
    type Target = HashMap<TransportId, Transport>;
    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Transports {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

/// A handle that wakes the driver from another task or thread (after operations on the
/// container made outside a callback).
#[derive(Clone)]
pub(crate) struct Waker {
    tx: mpsc::UnboundedSender<IoEventBox>,
}

pub(crate) struct IoEventBox(IoEvent);

impl Waker {
    /// Makes the driver poll the container again (its hook runs before the next wait).
    pub(crate) fn wake(&self) {
        let _ = self.tx.unbounded_send(IoEventBox(IoEvent::Wake));
    }
}

/// The event channel of [`drive_with`] and a [`Waker`] feeding it: a task that shares state
/// with the driver's hook calls [`Waker::wake`] after changing it.
pub(crate) fn wake_channel() -> (
    Waker,
    mpsc::UnboundedSender<IoEventBox>,
    mpsc::UnboundedReceiver<IoEventBox>,
) {
    let (tx, rx) = mpsc::unbounded::<IoEventBox>();
    (Waker { tx: tx.clone() }, tx, rx)
}

/// Runs a container to completion on a runtime: returns it when it is done (stopped, or
/// nothing left to do).
pub(crate) async fn drive<C: IoCore, R: Runtime>(mut core: C, rt: R) -> C {
    let (tx, mut rx) = mpsc::unbounded::<IoEventBox>();
    drive_with(&mut core, rt, tx, &mut rx, None::<fn(&mut C)>).await;
    core
}

/// The driver loop with a hook called after each batch of events (used by the async API to
/// move work between its shared state and the container).
pub(crate) async fn drive_with<C: IoCore, R: Runtime, F: FnMut(&mut C)>(
    core: &mut C,
    rt: R,
    tx: mpsc::UnboundedSender<IoEventBox>,
    rx: &mut mpsc::UnboundedReceiver<IoEventBox>,
    mut hook: Option<F>,
) {
    let mut transports = Transports::default();
    let mut listeners: HashMap<AcceptorHandle, Listening> = HashMap::new();
    let trace = crate::trace::enabled();
    let wake = tx.clone();
    core.set_waker(Arc::new(move || {
        let _ = wake.unbounded_send(IoEventBox(IoEvent::Wake));
    }));
    core.start(Instant::now());
    loop {
        if let Some(h) = hook.as_mut() {
            h(core);
        }
        while let Some(req) = core.poll_io() {
            carry_out(req, core, &rt, &tx, &mut transports, &mut listeners, trace);
        }
        if core.is_done() {
            break;
        }
        let ev = match core.poll_timeout() {
            Some(deadline) => {
                let sleep = rt.sleep_until(deadline);
                match select(rx.next(), sleep).await {
                    Either::Left((ev, _)) => ev,
                    Either::Right(((), _)) => {
                        core.handle_timeout(Instant::now());
                        continue;
                    }
                }
            }
            None => rx.next().await,
        };
        let Some(IoEventBox(ev)) = ev else { break };
        handle(ev, core, &rt, &tx, &mut transports, &mut listeners, trace);
        // Take everything else that is ready, then poll the container once for all of it.
        while let Ok(Some(IoEventBox(ev))) = rx.try_recv().map(Some) {
            handle(ev, core, &rt, &tx, &mut transports, &mut listeners, trace);
        }
        let now = Instant::now();
        if core.poll_timeout().is_some_and(|t| t <= now) {
            core.handle_timeout(now);
        }
    }
    for (_, l) in listeners.drain() {
        l.stop.stop();
    }
    // Let the writers flush what the container wrote last (the close frame that answers a
    // peer's close, TLS close_notify): `Container::run` drops its runtime when this returns,
    // which would cancel them and leave the peer with an aborted connection.
    transports.map.clear();
    let writers = transports.writers.clone();
    let deadline = Instant::now() + FLUSH_GRACE;
    while writers.live.load(Ordering::Acquire) > 0 {
        let exited = writers.exited.listen();
        if writers.live.load(Ordering::Acquire) == 0 {
            break;
        }
        if let Either::Right(_) = select(exited, rt.sleep_until(deadline)).await {
            break;
        }
    }
}

fn handle<C: IoCore, R: Runtime>(
    ev: IoEvent,
    core: &mut C,
    rt: &R,
    tx: &mpsc::UnboundedSender<IoEventBox>,
    transports: &mut Transports,
    listeners: &mut HashMap<AcceptorHandle, Listening>,
    trace: bool,
) {
    let now = Instant::now();
    match ev {
        IoEvent::Connected(t, stream, info) => {
            if !core.is_transport_live(t) {
                // Closed while connecting: let the socket go rather than keep it open unowned.
                drop(stream);
                return;
            }
            start_transport(t, stream, rt, tx, transports, trace);
            core.handle_connected(t, info, now);
        }
        IoEvent::ConnectFailed(t, reason) => core.handle_connect_failed(t, reason, now),
        IoEvent::Read(t, data) => {
            if let Some(tr) = transports.get_mut(&t) {
                if let Some(tracer) = tr.tracer.as_mut() {
                    tracer.incoming(&data);
                }
            }
            core.handle_read(t, &data, now)
        }
        IoEvent::Closed(t, reason) => {
            transports.remove(&t);
            core.handle_disconnected(t, reason, now)
        }
        IoEvent::Listening(a, Ok((listener, port))) => {
            let Some(l) = listeners.get(&a) else {
                // Stopped before it was bound.
                return;
            };
            let (stop, tls) = (l.stop.clone(), l.tls.clone());
            core.handle_listening(a, Ok(port), now);
            spawn_accept_loop(a, listener, stop, rt, tx, tls);
        }
        IoEvent::Listening(a, Err(e)) => core.handle_listening(a, Err(e), now),
        IoEvent::Accepted(a, stream, info) => {
            if let Some(t) = core.handle_accepted(a, info, now) {
                start_transport(t, stream, rt, tx, transports, trace);
            }
        }
        IoEvent::AcceptFailed(a, e) => {
            tracing::warn!(target: "amqp", "accept on {a:?} failed: {e}")
        }
        IoEvent::Wake => {}
    }
}

fn carry_out<C: IoCore, R: Runtime>(
    req: IoRequest,
    core: &mut C,
    rt: &R,
    tx: &mpsc::UnboundedSender<IoEventBox>,
    transports: &mut Transports,
    listeners: &mut HashMap<AcceptorHandle, Listening>,
    _trace: bool,
) {
    match req {
        IoRequest::Connect {
            transport,
            host,
            port,
            tls,
        } => {
            let rt2 = rt.clone();
            let tx = tx.clone();
            rt.spawn(Box::pin(async move {
                let ev = match connect(&rt2, &host, port, tls).await {
                    Ok((s, info)) => IoEvent::Connected(transport, s, info),
                    Err(e) => IoEvent::ConnectFailed(transport, e),
                };
                let _ = tx.unbounded_send(IoEventBox(ev));
            }));
        }
        IoRequest::Write { transport, data } => {
            if let Some(t) = transports.get_mut(&transport) {
                if let Some(tracer) = t.tracer.as_mut() {
                    tracer.outgoing(&data);
                }
                t.pending.queued.fetch_add(data.len(), Ordering::AcqRel);
                let _ = t.writer.unbounded_send(data);
            }
        }
        IoRequest::Close { transport } => {
            // Dropping the writer's channel makes it flush and shut the stream down.
            transports.remove(&transport);
        }
        IoRequest::Listen {
            acceptor,
            host,
            port,
            tls,
        } => {
            let server_tls = match tls.as_ref().map(tls::server_config) {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    core.handle_listening(
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
            listeners.insert(
                acceptor,
                Listening {
                    stop: Arc::new(StopSignal::default()),
                    tls: server_tls,
                },
            );
            let rt2 = rt.clone();
            let tx = tx.clone();
            rt.spawn(Box::pin(async move {
                let r = async {
                    let addr = resolve(&rt2, &host, port).await?;
                    let bound = async {
                        let l = rt2.bind(addr).await?;
                        let port = l.local_addr()?.port();
                        Ok::<_, io::Error>((l, port))
                    };
                    bound
                        .await
                        .map_err(|e| io_error(&e, format_args!("listen on {addr}")))
                }
                .await;
                let _ = tx.unbounded_send(IoEventBox(IoEvent::Listening(acceptor, r)));
            }));
        }
        IoRequest::StopListening { acceptor } => {
            if let Some(l) = listeners.remove(&acceptor) {
                l.stop.stop();
            }
        }
        _ => {}
    }
}

fn dns_error(host: &str, e: impl std::fmt::Display) -> TransportError {
    TransportError::new(TransportErrorKind::Dns, format!("resolve {host}: {e}"))
}

/// The first address `host` resolves to; failing, a [`TransportErrorKind::Dns`] error.
async fn resolve<R: Runtime>(rt: &R, host: &str, port: u16) -> Result<SocketAddr, TransportError> {
    let addrs = rt
        .resolve(host.to_string(), port)
        .await
        .map_err(|e| dns_error(host, e))?;
    addrs
        .into_iter()
        .next()
        .ok_or_else(|| dns_error(host, "no address"))
}

async fn connect<R: Runtime>(
    rt: &R,
    host: &str,
    port: u16,
    tls: Option<TlsConnect>,
) -> Result<(BoxStream, TransportInfo), TransportError> {
    let addrs = rt
        .resolve(host.to_string(), port)
        .await
        .map_err(|e| dns_error(host, e))?;
    let mut last = dns_error(host, "no address");
    let mut stream = None;
    // Every address the host resolves to, in order.
    for a in addrs {
        match rt.connect(a).await {
            Ok(s) => {
                stream = Some((s, a));
                break;
            }
            Err(e) => last = io_error(&e, format_args!("connect to {a}")),
        }
    }
    let (stream, addr) = stream.ok_or(last)?;
    let tls_error = |e: &dyn std::fmt::Display| {
        TransportError::new(TransportErrorKind::Tls, format!("{addr}: {e}"))
    };
    let mut info = TransportInfo {
        encrypted: false,
        peer_identity: None,
        peer_addr: Some(addr.to_string()),
    };
    match tls {
        None => Ok((stream, info)),
        Some(t) => {
            let config = tls::client_config(&t.options).map_err(|e| tls_error(&e))?;
            let name = tls::server_name(&t.server_name).map_err(|e| tls_error(&e))?;
            let connector = futures_rustls::TlsConnector::from(config);
            let handshake = async move {
                connector
                    .connect(name, stream)
                    .await
                    .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake failed: {e}")))
            };
            let s = handshake_within(rt, handshake)
                .await
                .map_err(|e| match e.kind() {
                    io::ErrorKind::TimedOut => {
                        TransportError::new(TransportErrorKind::Timeout, format!("{addr}: {e}"))
                    }
                    _ => tls_error(&e),
                })?;
            info.encrypted = true;
            if t.options.client_cert.is_some() {
                // We presented a certificate: SASL EXTERNAL becomes usable.
                info.peer_identity = Some("client-certificate".into());
            }
            Ok((Box::new(s), info))
        }
    }
}

/// Runs a TLS handshake, failing it after [`TLS_HANDSHAKE_TIMEOUT`].
async fn handshake_within<R: Runtime, T>(
    rt: &R,
    handshake: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let deadline = Instant::now() + TLS_HANDSHAKE_TIMEOUT;
    match select(Box::pin(handshake), rt.sleep_until(deadline)).await {
        Either::Left((r, _)) => r,
        Either::Right(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS handshake timed out after {TLS_HANDSHAKE_TIMEOUT:?}"),
        )),
    }
}

fn spawn_accept_loop<R: Runtime>(
    a: AcceptorHandle,
    listener: Box<dyn Listener>,
    stop: Arc<StopSignal>,
    rt: &R,
    tx: &mpsc::UnboundedSender<IoEventBox>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let tx = tx.clone();
    let rt2 = rt.clone();
    rt.spawn(Box::pin(async move {
        let listener: Arc<dyn Listener> = Arc::from(listener);
        loop {
            let stopped = stop.notify.listen();
            if stop.stopped.load(Ordering::Acquire) {
                return;
            }
            let accepted = {
                let l = listener.clone();
                Box::pin(async move { l.accept().await })
            };
            let r = match select(accepted, stopped).await {
                Either::Left((r, _)) => r,
                Either::Right(_) => return,
            };
            match r {
                Ok((stream, peer)) => {
                    let tx = tx.clone();
                    let tls = tls.clone();
                    let rt3 = rt2.clone();
                    // The TLS handshake runs in its own task so one slow client cannot block accepts.
                    rt2.spawn(Box::pin(async move {
                        let info = TransportInfo {
                            encrypted: tls.is_some(),
                            peer_identity: None,
                            peer_addr: Some(peer.to_string()),
                        };
                        match tls {
                            None => {
                                let _ = tx
                                    .unbounded_send(IoEventBox(IoEvent::Accepted(a, stream, info)));
                            }
                            Some(cfg) => {
                                let accept = futures_rustls::TlsAcceptor::from(cfg).accept(stream);
                                match handshake_within(&rt3, accept).await {
                                    Ok(s) => {
                                        let mut info = info;
                                        info.peer_identity = s
                                            .get_ref()
                                            .1
                                            .peer_certificates()
                                            .and_then(|c| c.first())
                                            .and_then(tls::certificate_identity);
                                        let _ = tx.unbounded_send(IoEventBox(IoEvent::Accepted(
                                            a,
                                            Box::new(s),
                                            info,
                                        )));
                                    }
                                    Err(e) => {
                                        let _ =
                                            tx.unbounded_send(IoEventBox(IoEvent::AcceptFailed(
                                                a,
                                                format!("TLS handshake with {peer}: {e}"),
                                            )));
                                    }
                                }
                            }
                        }
                    }));
                }
                Err(e) => {
                    let _ = tx.unbounded_send(IoEventBox(IoEvent::AcceptFailed(a, e.to_string())));
                }
            }
        }
    }));
}

fn start_transport<R: Runtime>(
    t: TransportId,
    stream: BoxStream,
    rt: &R,
    tx: &mpsc::UnboundedSender<IoEventBox>,
    transports: &mut Transports,
    trace: bool,
) {
    let (mut reader, mut writer) = stream.split();
    let (wtx, mut wrx) = mpsc::unbounded::<Bytes>();
    let pending = Arc::new(Pending {
        queued: AtomicUsize::new(0),
        drained: Notify::new(),
    });
    transports.insert(
        t,
        Transport {
            writer: wtx,
            pending: pending.clone(),
            tracer: trace.then(|| Tracer::new(t)),
        },
    );
    let p2 = pending.clone();
    let txw = tx.clone();
    transports.writers.live.fetch_add(1, Ordering::AcqRel);
    let guard = WriterGuard(transports.writers.clone());
    rt.spawn(Box::pin(async move {
        let _guard = guard;
        while let Some(data) = wrx.next().await {
            if let Err(e) = writer.write_all(&data).await {
                let reason = io_error(&e, "write");
                let _ = txw.unbounded_send(IoEventBox(IoEvent::Closed(t, Some(reason))));
                return;
            }
            p2.queued.fetch_sub(data.len(), Ordering::AcqRel);
            p2.drained.notify(usize::MAX);
        }
        let _ = writer.flush().await;
        let _ = writer.close().await;
    }));
    let tx = tx.clone();
    rt.spawn(Box::pin(async move {
        // Reads go into the unused tail of one zeroed buffer, and what each read filled is split
        // off and handed over without a copy. A fresh buffer is zeroed only when little room is
        // left: zeroing costs about one byte per byte read, not a whole READ_CHUNK (and an
        // allocation) per read, however small the reads are.
        let mut buf = BytesMut::new();
        loop {
            while pending.queued.load(Ordering::Acquire) > WRITE_HIGH_WATER {
                let l = pending.drained.listen();
                if pending.queued.load(Ordering::Acquire) > WRITE_HIGH_WATER {
                    l.await;
                }
            }
            if buf.len() < READ_MIN {
                buf = BytesMut::zeroed(READ_CHUNK);
            }
            match reader.read(&mut buf[..]).await {
                Ok(0) => {
                    let _ = tx.unbounded_send(IoEventBox(IoEvent::Closed(t, None)));
                    return;
                }
                Ok(n) => {
                    let chunk = buf.split_to(n).freeze();
                    if tx
                        .unbounded_send(IoEventBox(IoEvent::Read(t, chunk)))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx
                        .unbounded_send(IoEventBox(IoEvent::Closed(t, Some(io_error(&e, "read")))));
                    return;
                }
            }
        }
    }));
}

/// Classifies a transport I/O error: TLS failures (an alert from the peer, a bad record),
/// refused connections, timeouts, addresses in use; anything else is [`TransportErrorKind::Io`].
fn io_error(e: &io::Error, doing: impl std::fmt::Display) -> TransportError {
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
