//! fe2o3-peer: fe2o3-amqp's client with its default settings, as a test peer.
//!
//! ```text
//! fe2o3-peer send    URL ADDRESS COUNT BODY_SIZE
//! fe2o3-peer receive URL ADDRESS COUNT BODY_SIZE
//! ```
//!
//! The sender sends COUNT messages whose `amqp-value` body is a string of BODY_SIZE bytes that
//! starts with the message's index, awaiting each outcome (fe2o3's `Sender::send`). The receiver
//! takes COUNT messages with fe2o3's default credit (200, topped up as it accepts), checks that
//! each body is the one the sender made for the next index (order and content), and accepts it.
//! Both print `<mode> <count> msgs in <secs> s: <rate> msg/s` (first message to last outcome /
//! accept) and exit non-zero on any error or mismatch.

use std::time::Instant;

use fe2o3_amqp::types::messaging::Outcome;
use fe2o3_amqp::{Connection, Receiver, Sender, Session};

fn body(index: u64, size: usize) -> String {
    let mut s = format!("{index:010}:");
    while s.len() < size {
        s.push((b'a' + (s.len() % 26) as u8) as char);
    }
    s
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn send(url: &str, address: &str, count: u64, size: usize) -> Result<f64, Error> {
    let mut connection = Connection::open("fe2o3-peer-send", url).await?;
    let mut session = Session::begin(&mut connection).await?;
    let mut sender = Sender::attach(&mut session, "fe2o3-peer-sender", address).await?;
    let start = Instant::now();
    for i in 0..count {
        match sender.send(body(i, size)).await? {
            Outcome::Accepted(_) => {}
            other => return Err(format!("message {i}: outcome {other:?}").into()),
        }
    }
    let secs = start.elapsed().as_secs_f64();
    sender.close().await?;
    session.end().await?;
    connection.close().await?;
    Ok(secs)
}

async fn receive(url: &str, address: &str, count: u64, size: usize) -> Result<f64, Error> {
    let mut connection = Connection::open("fe2o3-peer-receive", url).await?;
    let mut session = Session::begin(&mut connection).await?;
    let mut receiver = Receiver::attach(&mut session, "fe2o3-peer-receiver", address).await?;
    let mut start = None;
    for i in 0..count {
        let delivery = receiver.recv::<String>().await?;
        start.get_or_insert_with(Instant::now);
        let got = delivery.body();
        if *got != body(i, size) {
            return Err(format!("message {i}: unexpected body {got:?}").into());
        }
        receiver.accept(&delivery).await?;
    }
    let secs = start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    receiver.close().await?;
    session.end().await?;
    connection.close().await?;
    Ok(secs)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: fe2o3-peer send|receive URL ADDRESS COUNT BODY_SIZE");
        std::process::exit(2);
    }
    let (mode, url, address) = (&args[1], &args[2], &args[3]);
    let (Ok(count), Ok(size)) = (args[4].parse::<u64>(), args[5].parse::<usize>()) else {
        eprintln!("fe2o3-peer: COUNT and BODY_SIZE must be numbers");
        std::process::exit(2);
    };
    let result = match mode.as_str() {
        "send" => send(url, address, count, size).await,
        "receive" => receive(url, address, count, size).await,
        _ => Err(format!("unknown mode {mode}").into()),
    };
    match result {
        Ok(secs) => {
            let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
            println!("{mode} {count} msgs in {secs:.3} s: {rate:.0} msg/s");
        }
        Err(e) => {
            eprintln!("fe2o3-peer {mode}: {e}");
            std::process::exit(1);
        }
    }
}
