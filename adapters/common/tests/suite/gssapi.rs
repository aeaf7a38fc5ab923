//! GSSAPI (Kerberos) between our client and our server on each runtime, against a throwaway
//! MIT realm (`scripts/krb5-realm.sh`, see `adapters/gssapi/tests/realm`): a login followed by
//! messages, and a refused login that reconnect does not retry.
//!
//! Included by the runtime crates' `tests/suite.rs` with the realm module beside it:
//!
//! ```ignore
//! #[path = "../../gssapi/tests/realm/mod.rs"]
//! mod realm;
//! gssapi_suite!(amqp_smol::Smol);
//! ```

use std::thread;
use std::time::{Duration, Instant};

use amqp_adapter::amqp_engine::messaging::{
    ConnectOptions, ConnectionHandle, Event, ListenOptions, MessagingHandler, Url,
};
use amqp_adapter::amqp_engine::sasl::{SaslServerConfig, StaticUsers, GSSAPI};
use amqp_adapter::amqp_proto::message::Message;
use amqp_adapter::gssapi::{server_mechanism, KerberosServer};

use super::{body_number, join_within, RunContainer, SAFETY};

/// Generates the GSSAPI `#[test]`s for runtime `$rt`.
macro_rules! gssapi_suite {
    ($rt:ty) => {
        #[test]
        fn gssapi_login_then_a_thousand_messages() {
            $crate::suite::gssapi::login_and_messages::<$rt>(1000);
        }

        #[test]
        fn gssapi_unknown_service_principal_is_refused_once() {
            $crate::suite::gssapi::unknown_service::<$rt>();
        }

        #[test]
        fn gssapi_without_a_ticket_is_refused_once() {
            $crate::suite::gssapi::no_ticket::<$rt>();
        }

        #[test]
        fn gssapi_server_with_the_wrong_keytab_refuses() {
            $crate::suite::gssapi::wrong_keytab::<$rt>();
        }
    };
}

/// A listener offering GSSAPI (with the realm's keytab) and PLAIN, and one client of ours.
struct Login {
    /// The host name the client authenticates to (`virtual_host`): `amqp@HOST`.
    host: &'static str,
    /// The client's `allowed_mechs`, if set.
    allowed: Option<&'static str>,
    n: usize,
    sent: usize,
    received: Vec<usize>,
    accepted: usize,
    server_user: Option<String>,
    client_errors: Vec<String>,
    server_errors: Vec<String>,
    client: Option<ConnectionHandle>,
    /// Stop this long after the first client error (time for a reconnect to show up).
    linger: Duration,
    timed_out: bool,
}

impl Login {
    fn new(host: &'static str, n: usize) -> Login {
        Login {
            host,
            allowed: None,
            n,
            sent: 0,
            received: Vec::new(),
            accepted: 0,
            server_user: None,
            client_errors: Vec::new(),
            server_errors: Vec::new(),
            client: None,
            linger: Duration::from_millis(1500),
            timed_out: false,
        }
    }
}

impl MessagingHandler for Login {
    fn on_start(&mut self, e: &mut Event<'_>) {
        let mut sasl =
            SaslServerConfig::new(&[GSSAPI, "PLAIN"], std::sync::Arc::new(StaticUsers::new()));
        sasl.extra_mechanisms
            .push(server_mechanism(KerberosServer::new()));
        let listen = ListenOptions {
            sasl: Some(sasl),
            ..ListenOptions::default()
        };
        e.container_mut()
            .listen_with("127.0.0.1:0", listen)
            .expect("listen");
        e.container_mut().schedule(SAFETY);
    }
    fn on_acceptor_opened(&mut self, e: &mut Event<'_>) {
        let a = e.acceptor().expect("acceptor");
        let port = e.container().acceptor_port(a).expect("port");
        let url = Url::parse(&format!("amqp://127.0.0.1:{port}")).expect("url");
        // The server also offers PLAIN and a password is set: GSSAPI must win on its own.
        let mut opts = ConnectOptions::new()
            .url(url)
            .virtual_host(self.host)
            .user("alice")
            .password("not-used");
        if let Some(mechs) = self.allowed {
            opts = opts.allowed_mechs(mechs);
        }
        let c = e.container_mut().connect_with(opts).expect("connect");
        self.client = Some(c);
        e.container_mut()
            .create_sender(c, "kerberos")
            .expect("sender");
    }
    fn on_connection_opened(&mut self, e: &mut Event<'_>) {
        let conn = e.connection().expect("connection");
        if Some(conn) != self.client {
            self.server_user = e.container().authenticated_user(conn).map(str::to_owned);
        }
    }
    fn on_transport_error(&mut self, e: &mut Event<'_>) {
        let conn = e.connection().expect("connection");
        let mut text = e
            .transport_error()
            .map(|t| format!("{t} {{{t:?}}}"))
            .unwrap_or_default();
        if let Some(err) = e.error() {
            text.push_str(&format!(" [{err:?}]"));
        }
        if Some(conn) != self.client {
            self.server_errors.push(text);
        } else {
            self.client_errors.push(text);
            if self.client_errors.len() == 1 {
                e.container_mut().schedule(self.linger);
            }
        }
    }
    fn on_sendable(&mut self, e: &mut Event<'_>) {
        while self.sent < self.n && e.credit() > 0 {
            e.send(&Message::new(self.sent.to_string())).expect("send");
            self.sent += 1;
        }
    }
    fn on_message(&mut self, e: &mut Event<'_>) {
        self.received.push(body_number(e));
    }
    fn on_accepted(&mut self, e: &mut Event<'_>) {
        self.accepted += 1;
        if self.accepted == self.n {
            e.container_mut().stop();
        }
    }
    fn on_timer_task(&mut self, e: &mut Event<'_>) {
        self.timed_out = self.client_errors.is_empty();
        e.container_mut().stop();
    }
}

fn run<R: RunContainer>(h: Login) -> Login {
    let t = thread::spawn(move || R::run(h, "gssapi"));
    join_within(t, SAFETY + Duration::from_secs(5), "the GSSAPI container")
}

/// Logs in with alice's ticket to `amqp/localhost`, then sends `n` messages.
pub(crate) fn login_and_messages<R: RunContainer>(n: usize) {
    let Some(_realm) = crate::realm::Realm::start() else {
        return;
    };
    let start = Instant::now();
    let h = run::<R>(Login::new("localhost", n));
    assert!(!h.timed_out, "timed out: {} accepted", h.accepted);
    assert!(h.client_errors.is_empty(), "{:?}", h.client_errors);
    assert_eq!(h.server_user.as_deref(), Some("alice@AMQP.TEST"));
    assert_eq!(h.received, (0..n).collect::<Vec<_>>());
    assert_eq!(h.accepted, n);
    eprintln!("gssapi login + {n} messages: {:?}", start.elapsed());
}

/// Runs a login that must fail: one client error containing each of `want`, no reconnect.
fn refused<R: RunContainer>(h: Login, want: &[&str]) -> Login {
    let h = run::<R>(h);
    assert_eq!(h.server_user, None);
    assert_eq!(h.accepted, 0);
    assert_eq!(h.client_errors.len(), 1, "retried: {:?}", h.client_errors);
    let e = &h.client_errors[0];
    for w in want {
        assert!(e.contains(w), "{e:?} lacks {w:?}");
    }
    h
}

/// Connecting by IP address without a `virtual_host` asks for `amqp/127.0.0.1`, which the KDC
/// does not know: one authentication error naming the cause, and no reconnect.
pub(crate) fn unknown_service<R: RunContainer>() {
    let Some(_realm) = crate::realm::Realm::start() else {
        return;
    };
    let want = [
        "GSSAPI: the KDC does not know the service principal",
        "amqp/127.0.0.1@AMQP.TEST",
        "unauthorized-access",
    ];
    refused::<R>(Login::new("127.0.0.1", 1), &want);
}

/// No ticket in the ccache and only GSSAPI allowed: the client names the cause, once.
pub(crate) fn no_ticket<R: RunContainer>() {
    let Some(realm) = crate::realm::Realm::start() else {
        return;
    };
    realm.use_ccache("missing.ccache");
    let mut h = Login::new("localhost", 1);
    h.allowed = Some(GSSAPI);
    let want = [
        "GSSAPI: no Kerberos ticket (run kinit",
        "unauthorized-access",
    ];
    refused::<R>(h, &want);
}

/// A server whose keytab lacks `amqp/localhost` refuses, naming the keytab on its side; the
/// client sees an authentication refusal and does not retry.
pub(crate) fn wrong_keytab<R: RunContainer>() {
    let Some(realm) = crate::realm::Realm::start() else {
        return;
    };
    realm.use_keytab("wrong.keytab");
    let want = ["server refused authentication", "unauthorized-access"];
    let h = refused::<R>(Login::new("localhost", 1), &want);
    assert!(
        h.server_errors
            .iter()
            .any(|e| e.contains("GSSAPI: no key for the service principal in the keytab")),
        "{:?}",
        h.server_errors
    );
}
