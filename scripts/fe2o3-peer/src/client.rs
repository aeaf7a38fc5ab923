//! The client modes: send (with its own reconnect loop: fe2o3 has none), receive (settling
//! each message as told, draining, with a selector), request (through a dynamic reply queue)
//! and idle (heartbeats and the idle timeout).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use fe2o3_amqp::link::delivery::Delivery;
use fe2o3_amqp::link::receiver::CreditMode;
use fe2o3_amqp::types::definitions::{self, AmqpError};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Modified, Outcome, Properties,
    Source,
};
use fe2o3_amqp::types::primitives::{OrderedMap, Symbol, Value};
use fe2o3_amqp::{Receiver, Sender, Session};
use serde_amqp::described::Described;
use serde_amqp::descriptor::Descriptor;
use serde_json::json;

use crate::{body, ConnArgs, Error};

/// The longest any one step (connect, a send's outcome, a receive) may take.
const STEP: Duration = Duration::from_secs(20);

/// Runs `f` within `limit`, or fails.
async fn within<T, E: Into<Error>>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = Result<T, E>>,
) -> Result<T, Error> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(format!("{what}: no answer within {limit:?}").into()),
    }
}

/// Prints the rate line and, with `json`, the summary; returns the exit code.
fn report(
    mode: &str,
    count: u64,
    secs: f64,
    json: bool,
    summary: serde_json::Value,
    ok: bool,
) -> i32 {
    if ok {
        let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
        println!("{mode} {count} msgs in {secs:.3} s: {rate:.0} msg/s");
    }
    if json {
        println!("{summary}");
    } else if !ok {
        eprintln!("fe2o3-peer {mode}: {summary}");
    }
    if ok {
        0
    } else {
        1
    }
}

#[derive(clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    conn: ConnArgs,
    address: String,
    #[arg(default_value_t = 1)]
    count: u64,
    #[arg(default_value_t = 16)]
    size: usize,
    /// Application property `colour`: green for odd ids, red for even.
    #[arg(long)]
    colour: bool,
    /// The body `{"sequence": id}` instead of a string.
    #[arg(long)]
    sequence_body: bool,
    /// After a failure, reconnect (for up to SECS) and send again what was in doubt.
    #[arg(long, value_name = "SECS")]
    reconnect: Option<f64>,
    #[arg(long)]
    json: bool,
}

/// Message `id` as `send` makes it.
fn message(a: &SendArgs, id: u64) -> Message<AmqpValue<Value>> {
    let value = if a.sequence_body {
        let mut m = OrderedMap::new();
        m.insert(Value::String("sequence".into()), Value::Long(id as i64));
        Value::Map(m)
    } else {
        Value::String(body(id, a.size))
    };
    let props = Properties::builder().message_id(id).build();
    let b = Message::builder().properties(props);
    if a.colour {
        let colour = if id % 2 == 1 { "green" } else { "red" };
        let ap = ApplicationProperties::builder()
            .insert("colour", colour)
            .build();
        b.application_properties(ap).value(value).build()
    } else {
        b.value(value).build()
    }
}

pub(crate) fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Accepted(_) => "accepted",
        Outcome::Rejected(_) => "rejected",
        Outcome::Released(_) => "released",
        Outcome::Modified(_) => "modified",
    }
}

pub(crate) async fn send(a: SendArgs) -> i32 {
    let mut next = 1u64;
    let mut outcomes: Vec<&'static str> = Vec::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut connections = 0u32;
    let mut started: Option<Instant> = None;
    let mut failing_since: Option<Instant> = None;
    let mut secs = 0.0;
    let ok = loop {
        let attempt = async {
            let mut c = a.conn.open("fe2o3-peer-send").await?;
            let mut s = within(STEP, "begin", Session::begin(&mut c)).await?;
            let l = within(
                STEP,
                "attach",
                Sender::attach(&mut s, "fe2o3-peer-sender", a.address.as_str()),
            )
            .await?;
            Ok::<_, Error>((c, s, l))
        };
        let failure = match attempt.await {
            Ok((mut c, mut s, mut l)) => {
                connections += 1;
                let mut failure = None;
                while next <= a.count {
                    started.get_or_insert_with(Instant::now);
                    // fe2o3's send does not end when the connection does: watch both.
                    let sent = tokio::select! {
                        r = within(STEP, "send", l.send(message(&a, next))) => r,
                        r = c.on_close() => Err(format!("the connection ended: {r:?}").into()),
                    };
                    match sent {
                        Ok(o) => {
                            failing_since = None;
                            let name = outcome_name(&o);
                            *counts.entry(name).or_default() += 1;
                            if a.count <= 1000 {
                                outcomes.push(name);
                            }
                            next += 1;
                        }
                        Err(e) => {
                            failure = Some(format!("message {next}: {e}"));
                            break;
                        }
                    }
                }
                if failure.is_none() {
                    secs = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
                    let closed = async {
                        l.close().await?;
                        s.end().await?;
                        c.close().await?;
                        Ok::<_, Error>(())
                    };
                    if let Err(e) = within(STEP, "close", closed).await {
                        errors.push(format!("closing: {e}"));
                    }
                    break true;
                }
                failure
            }
            Err(e) => Some(format!("connect: {e}")),
        };
        let Some(f) = failure else { break true };
        errors.push(f);
        let since = *failing_since.get_or_insert_with(Instant::now);
        match a.reconnect {
            Some(limit) if since.elapsed().as_secs_f64() < limit && errors.len() < 1000 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => break false,
        }
    };
    let accepted = counts.get("accepted").copied().unwrap_or(0);
    let summary = json!({
        "mode": "send",
        "sent": next - 1,
        "accepted": accepted,
        "counts": counts,
        "outcomes": outcomes,
        "connections": connections,
        "secs": secs,
        "errors": errors,
    });
    report("send", a.count, secs, a.json, summary, ok)
}

#[derive(clap::Args)]
pub(crate) struct ReceiveArgs {
    #[command(flatten)]
    conn: ConnArgs,
    address: String,
    /// Messages to take (0: until none comes for --grace seconds).
    #[arg(default_value_t = 0)]
    count: u64,
    /// The size of each string body (0: only its id prefix is checked).
    #[arg(default_value_t = 0)]
    size: usize,
    /// Link credit (topped up as messages are settled, except with --drain).
    #[arg(long, default_value_t = 200)]
    credit: u32,
    /// How to settle message i (accept, reject, release, modify); missing: accept.
    #[arg(long, value_delimiter = ',')]
    dispositions: Vec<String>,
    /// Grant --credit once, then ask the sender to drain; afterwards check that a message
    /// sent later comes only with new credit.
    #[arg(long)]
    drain: bool,
    /// A JMS selector (`apache.org:selector-filter:string`).
    #[arg(long)]
    selector: Option<String>,
    #[arg(long, default_value_t = 1.0)]
    grace: f64,
    #[arg(long)]
    json: bool,
}

/// The id of a received message: its ulong message-id.
fn id_of(d: &Delivery<Body<Value>>) -> Option<u64> {
    match d.message().properties.as_ref()?.message_id.as_ref()? {
        MessageId::Ulong(n) => Some(*n),
        _ => None,
    }
}

/// Whether `v` is the body message `id` was sent with (by `send`, or `simple_send`).
fn body_ok(v: &Value, id: u64, size: usize) -> bool {
    match v {
        Value::String(s) if size == 0 => s.starts_with(&format!("{id:010}:")),
        Value::String(s) => *s == body(id, size),
        Value::Map(m) => {
            m.len() == 1
                && matches!(m.get(&Value::String("sequence".into())), Some(Value::Long(n)) if *n as u64 == id)
        }
        _ => false,
    }
}

fn the_body(d: &Delivery<Body<Value>>) -> Option<&Value> {
    match &d.message().body {
        Body::Value(v) => Some(&v.0),
        _ => None,
    }
}

pub(crate) async fn receive(a: ReceiveArgs) -> i32 {
    let mut ids = Vec::new();
    let mut counts = Vec::new();
    let mut settled = Vec::new();
    let mut bodies_ok = true;
    let mut errors: Vec<String> = Vec::new();
    let mut timed_out = false;
    let mut late = (None, None);
    let mut started: Option<Instant> = None;
    let mut secs = 0.0;
    let run = async {
        let mut c = a.conn.open("fe2o3-peer-receive").await?;
        let mut s = within(STEP, "begin", Session::begin(&mut c)).await?;
        let mut source = Source::builder().address(a.address.as_str());
        if let Some(sel) = &a.selector {
            let filter = Described {
                descriptor: Descriptor::Name(Symbol::from("apache.org:selector-filter:string")),
                value: Value::String(sel.clone()),
            };
            source = source.add_to_filter(Symbol::from("jms-selector"), filter);
        }
        // Credit granted once: draining, or settling by plan (so nothing more is prefetched
        // and redelivered to this receiver).
        let once = a.drain || !a.dispositions.is_empty();
        let mode = if once {
            CreditMode::Manual
        } else {
            CreditMode::Auto(a.credit)
        };
        let mut r = within(
            STEP,
            "attach",
            Receiver::builder()
                .name("fe2o3-peer-receiver")
                .source(source.build())
                .credit_mode(mode)
                .auto_accept(false)
                .attach(&mut s),
        )
        .await?;
        if once {
            within(STEP, "credit", r.set_credit(a.credit)).await?;
        }
        if a.drain {
            within(STEP, "drain", r.drain()).await?;
        }
        let grace = Duration::from_secs_f64(a.grace);
        loop {
            if a.count > 0 && ids.len() as u64 >= a.count {
                break;
            }
            let wait = if a.count == 0 { grace } else { STEP };
            let d = match tokio::time::timeout(wait, r.recv::<Body<Value>>()).await {
                Err(_) => {
                    timed_out = a.count > 0;
                    break;
                }
                Ok(d) => d?,
            };
            started.get_or_insert_with(Instant::now);
            let id = id_of(&d);
            ids.push(id.unwrap_or(0));
            counts.push(d.message().header.as_ref().map_or(0, |h| h.delivery_count));
            bodies_ok &= match (id, the_body(&d)) {
                (Some(id), Some(v)) => body_ok(v, id, a.size),
                _ => false,
            };
            let how = a
                .dispositions
                .get(settled.len())
                .map_or("accept", String::as_str);
            match how {
                "reject" => {
                    let e = definitions::Error::new(
                        AmqpError::NotAllowed,
                        "rejected by the test".to_string(),
                        None,
                    );
                    r.reject(&d, e).await?
                }
                "release" => r.release(&d).await?,
                "modify" => {
                    let m = Modified {
                        delivery_failed: Some(true),
                        undeliverable_here: None,
                        message_annotations: None,
                    };
                    r.modify(&d, m).await?
                }
                _ => r.accept(&d).await?,
            }
            settled.push(how.to_string());
        }
        secs = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        if a.drain {
            late = late_message(&a, &mut s, &mut r).await?;
        }
        within(STEP, "detach", r.close()).await?;
        within(STEP, "end", s.end()).await?;
        within(STEP, "close", c.close()).await?;
        Ok::<_, Error>(())
    };
    if let Err(e) = run.await {
        errors.push(e.to_string());
    }
    let ok = errors.is_empty() && !timed_out && bodies_ok;
    let mut summary = json!({
        "mode": "receive",
        "ids": ids,
        "delivery_counts": counts,
        "settled": settled,
        "bodies_ok": bodies_ok,
        "timed_out": timed_out,
        "secs": secs,
        "errors": errors,
    });
    if a.drain {
        summary["late_before_credit"] = json!(late.0);
        summary["late_after_credit"] = json!(late.1);
    }
    report("receive", ids.len() as u64, secs, a.json, summary, ok)
}

/// After a drain: sends one more message (id 1000000) on a new link of the same session,
/// waits 1 s for it on the drained receiver (it must not come: the sender used up the
/// credit), then grants 1 credit and waits for it. Returns whether it came before and after.
async fn late_message(
    a: &ReceiveArgs,
    s: &mut fe2o3_amqp::session::SessionHandle<()>,
    r: &mut Receiver,
) -> Result<(Option<bool>, Option<bool>), Error> {
    let mut l = within(
        STEP,
        "attach",
        Sender::attach(s, "fe2o3-peer-late", a.address.as_str()),
    )
    .await?;
    let late = 1_000_000u64;
    let m = Message::builder()
        .properties(Properties::builder().message_id(late).build())
        .value(Value::String(body(late, 0)))
        .build();
    within(STEP, "late send", l.send(m)).await?;
    within(STEP, "detach", l.close()).await?;
    let before = match tokio::time::timeout(Duration::from_secs(1), r.recv::<Body<Value>>()).await {
        Err(_) => false,
        Ok(d) => {
            let d = d?;
            r.accept(&d).await?;
            true
        }
    };
    if before {
        return Ok((Some(true), None));
    }
    within(STEP, "credit", r.set_credit(1)).await?;
    let d = within(STEP, "late receive", r.recv::<Body<Value>>()).await?;
    r.accept(&d).await?;
    Ok((Some(false), Some(id_of(&d) == Some(late))))
}

#[derive(clap::Args)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Where the requests go.
    address: String,
    requests: Vec<String>,
}

pub(crate) async fn request(a: RequestArgs) -> i32 {
    let mut replies: Vec<String> = Vec::new();
    let mut reply_to = None;
    let mut outcomes = Vec::new();
    let run = async {
        let mut c = a.conn.open("fe2o3-peer-request").await?;
        let mut s = within(STEP, "begin", Session::begin(&mut c)).await?;
        let mut r = within(
            STEP,
            "attach",
            Receiver::builder()
                .name("fe2o3-peer-replies")
                .source(Source::builder().dynamic(true).build())
                .attach(&mut s),
        )
        .await?;
        let to = r
            .source()
            .as_ref()
            .and_then(|s| s.address.clone())
            .ok_or("the dynamic source came back without an address")?;
        reply_to = Some(to.clone());
        let mut l = within(
            STEP,
            "attach",
            Sender::attach(&mut s, "fe2o3-peer-requests", a.address.as_str()),
        )
        .await?;
        for (i, q) in a.requests.iter().enumerate() {
            let props = Properties::builder()
                .message_id(i as u64 + 1)
                .reply_to(to.clone())
                .build();
            let m = Message::builder()
                .properties(props)
                .value(Value::String(q.clone()))
                .build();
            let o = within(STEP, "request", l.send(m)).await?;
            outcomes.push(outcome_name(&o));
        }
        for _ in &a.requests {
            let d = within(STEP, "reply", r.recv::<Body<Value>>()).await?;
            replies.push(match the_body(&d) {
                Some(Value::String(s)) => s.clone(),
                other => format!("{other:?}"),
            });
            r.accept(&d).await?;
        }
        within(STEP, "detach", l.close()).await?;
        within(STEP, "detach", r.close()).await?;
        within(STEP, "end", s.end()).await?;
        within(STEP, "close", c.close()).await?;
        Ok::<_, Error>(())
    };
    let err = run.await.err().map(|e| e.to_string());
    let ok = err.is_none();
    println!(
        "{}",
        json!({ "mode": "request", "reply_to": reply_to, "outcomes": outcomes, "replies": replies, "errors": err.into_iter().collect::<Vec<_>>() })
    );
    if ok {
        0
    } else {
        1
    }
}

#[derive(clap::Args)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// How long to stay connected at most (seconds).
    #[arg(long, default_value_t = 30.0)]
    hold: f64,
}

/// Opens a connection and a session, prints `opened`, then waits for the connection to end
/// (printing `closed after <secs> s: <why>`) or for --hold to run out (`held`).
pub(crate) async fn idle(a: IdleArgs) -> i32 {
    let run = async {
        let mut c = a.conn.open("fe2o3-peer-idle").await?;
        let _s = within(STEP, "begin", Session::begin(&mut c)).await?;
        println!("opened");
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs_f64(a.hold), c.on_close()).await {
            Ok(r) => println!("closed after {:.2} s: {r:?}", t.elapsed().as_secs_f64()),
            Err(_) => println!("held"),
        }
        Ok::<_, Error>(())
    };
    match run.await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fe2o3-peer idle: {e}");
            1
        }
    }
}
