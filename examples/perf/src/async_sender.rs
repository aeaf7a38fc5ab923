//! The sender on the async API (`--api async`): an `amqp_tokio::Client` sending with
//! `send_nowait`, at most `window` outcomes outstanding, on its own tokio runtime.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use amqp_tokio::amqp_proto::message::{Body, Message};
use amqp_tokio::amqp_proto::Value;
use amqp_tokio::{Client, ClientError, ConnectOptions, Outcome, SendFuture, TrySendError};
use bytes::Bytes;

use crate::args::RuntimeKind;
use crate::handlers::{Clock, SenderReport, TS_KEY};

/// What the async sender is asked to do.
pub(crate) struct AsyncSend {
    pub(crate) url: String,
    pub(crate) address: String,
    pub(crate) count: u64,
    pub(crate) body_size: usize,
    pub(crate) window: usize,
    pub(crate) clock: Clock,
    pub(crate) duration_max: Duration,
}

/// Runs the async sender to completion (or `duration_max`) on a runtime of `kind`.
pub(crate) fn run(job: AsyncSend, kind: RuntimeKind) -> Result<SenderReport, String> {
    let rt = match kind {
        RuntimeKind::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        RuntimeKind::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        RuntimeKind::Mio => return Err("the async API runs on tokio, not --runtime mio".into()),
    }
    .enable_all()
    .build()
    .map_err(|e| format!("tokio runtime: {e}"))?;
    let mut report = SenderReport::default();
    let limit = job.duration_max;
    let r = rt.block_on(async { tokio::time::timeout(limit, send_all(&job, &mut report)).await });
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => report.error = Some(e),
        Err(_) => report.timed_out = true,
    }
    Ok(report)
}

async fn send_all(job: &AsyncSend, report: &mut SenderReport) -> Result<(), String> {
    let opts = ConnectOptions::new().url(job.url.as_str()).reconnect(false);
    let conn = Client::open(opts).await.map_err(|e| format!("open: {e}"))?;
    let sender = conn
        .open_sender(job.address.as_str())
        .await
        .map_err(|e| format!("open_sender: {e}"))?;
    let mut message = Message::new(Body::data(Bytes::from(vec![b'x'; job.body_size])));
    message.set_application_property(TS_KEY, Value::Ulong(0));
    let mut outstanding: VecDeque<SendFuture> = VecDeque::with_capacity(job.window);
    report.start = Some(Instant::now());
    while report.sent < job.count {
        if outstanding.len() >= job.window {
            settle_one(&mut outstanding, report).await?;
        }
        let mut m = message.clone();
        if let Some(ap) = m.application_properties.as_mut() {
            ap.0[0].1 = Value::Ulong(job.clock.ns(Instant::now()));
        }
        match sender.send_nowait(m) {
            Ok(outcome) => {
                outstanding.push_back(outcome);
                report.sent += 1;
            }
            Err(TrySendError::Full(_)) => {
                if outstanding.is_empty() {
                    sender.ready().await.map_err(|e| format!("ready: {e}"))?;
                } else {
                    settle_one(&mut outstanding, report).await?;
                }
            }
            Err(e) => return Err(format!("send: {e}")),
        }
    }
    while !outstanding.is_empty() {
        settle_one(&mut outstanding, report).await?;
    }
    report.end = Some(Instant::now());
    match conn.close().await {
        // The receiver closes once it has everything; the race with our close is harmless.
        Ok(()) | Err(ClientError::ConnectionClosed { remote: true, .. }) => Ok(()),
        Err(e) => Err(format!("close: {e}")),
    }
}

/// Awaits the oldest outstanding outcome.
async fn settle_one(
    outstanding: &mut VecDeque<SendFuture>,
    report: &mut SenderReport,
) -> Result<(), String> {
    let Some(f) = outstanding.pop_front() else {
        return Ok(());
    };
    match f.await.map_err(|e| format!("outcome: {e}"))? {
        Outcome::Accepted => report.accepted += 1,
        _ => report.not_accepted += 1,
    }
    Ok(())
}
