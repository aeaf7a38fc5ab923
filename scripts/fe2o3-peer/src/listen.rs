//! The listener mode: fe2o3's acceptor on 127.0.0.1:PORT (SASL ANONYMOUS, or PLAIN with
//! `--user` and `--password`), serving every connection, session and link a client opens.
//!
//! * `sink`: each receiving link accepts every message and prints `id N` (its ulong
//!   message-id) as it comes.
//! * `source`: each sending link sends `--count` messages (message-id `i`, body
//!   `message i`), prints `outcome i <accepted|rejected|released|modified>` as each is
//!   settled, then `sent N`.
//!
//! Prints `listening` once it listens; runs until killed (or --timeout seconds).

use std::time::Duration;

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, SaslAnonymousMechanism, SaslPlainMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::{Body, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::Value;
use tokio::net::TcpListener;

use crate::Error;

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Role {
    Sink,
    Source,
}

#[derive(clap::Args)]
pub(crate) struct ListenArgs {
    #[arg(value_enum)]
    role: Role,
    #[arg(long)]
    port: u16,
    /// Messages each sending link sends (source).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// SASL PLAIN with this user (and --password) instead of ANONYMOUS.
    #[arg(long, requires = "password")]
    user: Option<String>,
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    timeout: f64,
}

pub(crate) async fn listen(a: ListenArgs) -> i32 {
    let listener = match TcpListener::bind(("127.0.0.1", a.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fe2o3-peer listen: bind 127.0.0.1:{}: {e}", a.port);
            return 1;
        }
    };
    println!("listening");
    let serve = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let (role, count) = (a.role, a.count);
            let plain = a.user.clone().zip(a.password.clone());
            tokio::spawn(async move {
                if let Err(e) = connection(stream, role, count, plain).await {
                    eprintln!("connection: {e}");
                }
            });
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs_f64(a.timeout), serve).await;
    0
}

/// Serves one connection: every session, every link.
async fn connection(
    stream: tokio::net::TcpStream,
    role: Role,
    count: u64,
    plain: Option<(String, String)>,
) -> Result<(), Error> {
    let b = ConnectionAcceptor::builder().container_id("fe2o3-peer-listener");
    let mut c = match plain {
        Some((user, password)) => {
            let sasl = SaslPlainMechanism::new(user, password);
            b.sasl_acceptor(sasl).build().accept(stream).await?
        }
        None => {
            let sasl = SaslAnonymousMechanism::new();
            b.sasl_acceptor(sasl).build().accept(stream).await?
        }
    };
    let mut s = SessionAcceptor::new().accept(&mut c).await?;
    let links = LinkAcceptor::new();
    loop {
        match links.accept(&mut s).await? {
            LinkEndpoint::Receiver(r) if matches!(role, Role::Sink) => {
                tokio::spawn(async move {
                    if let Err(e) = sink(r).await {
                        eprintln!("sink: {e}");
                    }
                });
            }
            LinkEndpoint::Sender(l) if matches!(role, Role::Source) => {
                tokio::spawn(async move {
                    if let Err(e) = source(l, count).await {
                        eprintln!("source: {e}");
                    }
                });
            }
            _ => eprintln!("a link this role does not serve: ignored"),
        }
    }
}

async fn sink(mut r: Receiver) -> Result<(), Error> {
    loop {
        let d = r.recv::<Body<Value>>().await?;
        if let Some(MessageId::Ulong(n)) = d
            .message()
            .properties
            .as_ref()
            .and_then(|p| p.message_id.as_ref())
        {
            println!("id {n}");
        } else {
            println!("id ?");
        }
        r.accept(&d).await?;
    }
}

async fn source(mut l: Sender, count: u64) -> Result<(), Error> {
    for i in 1..=count {
        let m = Message::builder()
            .properties(Properties::builder().message_id(i).build())
            .value(Value::String(format!("message {i}")))
            .build();
        let o = l.send(m).await?;
        println!("outcome {i} {}", crate::client::outcome_name(&o));
    }
    println!("sent {count}");
    // Stay attached until the client detaches.
    let _ = l.on_detach().await;
    Ok(())
}
