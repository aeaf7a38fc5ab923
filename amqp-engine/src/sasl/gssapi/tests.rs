//! The GSSAPI exchange against a fake GSS-API: a toy Kerberos whose tokens are readable text.

use std::sync::Arc;

use amqp_proto::sasl::{SaslFrame, SaslMechanisms};
use amqp_proto::Symbol;

use super::*;
use crate::sasl::machine::{ClientStep, SaslClient};

/// The fake's "wrap": a marker, so unwrap can tell a wrapped token from anything else.
const WRAP: &[u8] = b"wrapped:";

fn wrap(message: &[u8]) -> Vec<u8> {
    [WRAP, message].concat()
}

fn unwrap(token: &[u8]) -> Result<Vec<u8>, GssError> {
    token
        .strip_prefix(WRAP)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| GssError::new(GssErrorKind::BadToken, "not a wrap token"))
}

/// Client context: sends `AP-REQ user target`, expects `AP-REP target` back (mutual auth).
struct FakeInitiator {
    user: String,
    target: String,
}

impl GssInitiator for FakeInitiator {
    fn step(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssError> {
        match input {
            None => Ok(GssStep {
                token: format!("AP-REQ {} {}", self.user, self.target).into_bytes(),
                complete: false,
            }),
            Some(t) if t == format!("AP-REP {}", self.target).as_bytes() => Ok(GssStep {
                token: Vec::new(),
                complete: true,
            }),
            Some(_) => Err(GssError::new(GssErrorKind::BadToken, "bad AP-REP")),
        }
    }
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(wrap(message))
    }
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        unwrap(token)
    }
}

/// Server context for `service`: accepts `AP-REQ user service`, answers `AP-REP service`.
struct FakeAcceptor {
    service: String,
    /// Whether the context answers with an AP-REP (mutual) or completes silently.
    mutual: bool,
    client: Option<String>,
    /// What the fake's "wrap" offers instead of the real offer, to play a hostile server.
    layers: Option<Vec<u8>>,
}

impl FakeAcceptor {
    fn new(service: &str) -> Self {
        FakeAcceptor {
            service: service.into(),
            mutual: true,
            client: None,
            layers: None,
        }
    }
}

impl GssAcceptor for FakeAcceptor {
    fn step(&mut self, input: &[u8]) -> Result<GssStep, GssError> {
        let text = std::str::from_utf8(input)
            .map_err(|_| GssError::new(GssErrorKind::BadToken, "binary"))?;
        let mut words = text.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("AP-REQ"), Some(user), Some(target)) if target == self.service => {
                self.client = Some(user.to_owned());
                let token = if self.mutual {
                    format!("AP-REP {target}").into_bytes()
                } else {
                    Vec::new()
                };
                Ok(GssStep {
                    token,
                    complete: true,
                })
            }
            (Some("AP-REQ"), Some(_), Some(_)) => Err(GssError::new(
                GssErrorKind::AcceptorCredentials,
                "wrong principal",
            )),
            _ => Err(GssError::new(GssErrorKind::BadToken, "not an AP-REQ")),
        }
    }
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(wrap(self.layers.as_deref().unwrap_or(message)))
    }
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        unwrap(token)
    }
    fn source_name(&self) -> Result<String, GssError> {
        self.client
            .clone()
            .ok_or_else(|| GssError::new(GssErrorKind::Other, "incomplete"))
    }
}

/// The client "GSS-API library": a ticket for `user`, or none.
struct FakeClientLib {
    user: Option<&'static str>,
}

impl GssClientProvider for FakeClientLib {
    fn has_credentials(&self) -> bool {
        self.user.is_some()
    }
    fn initiator(&self, target: &str) -> Result<Box<dyn GssInitiator>, GssError> {
        let user = self.user.ok_or_else(|| {
            GssError::new(GssErrorKind::NoCredentials, "No credentials cache found")
        })?;
        Ok(Box::new(FakeInitiator {
            user: user.into(),
            target: target.into(),
        }))
    }
}

fn client(user: &str) -> GssapiClient {
    let target = "amqp@localhost".to_owned();
    GssapiClient::new(
        Ok(Box::new(FakeInitiator {
            user: user.into(),
            target,
        })),
        String::new(),
    )
}

fn server(acceptor: FakeAcceptor) -> GssapiServer {
    GssapiServer::new(Ok(Box::new(acceptor)))
}

/// Runs the exchange to the end; returns the server's last step and what the client sent last.
fn exchange(c: &mut GssapiClient, s: &mut GssapiServer) -> (ServerStep, Vec<u8>) {
    let mut sent = c.initial_response().unwrap().unwrap();
    let mut step = s.start(Some(&sent), Some("localhost"));
    for _ in 0..10 {
        match step {
            ServerStep::Challenge(ch) => match c.challenge(&ch) {
                Ok(r) => {
                    sent = r;
                    step = s.response(&sent);
                }
                Err(e) => return (ServerStep::Failure(e), sent),
            },
            done => return (done, sent),
        }
    }
    panic!("exchange did not finish");
}

#[test]
fn mutual_exchange_authenticates_the_principal_with_no_security_layer() {
    let (mut c, mut s) = (
        client("alice@EXAMPLE.COM"),
        server(FakeAcceptor::new("amqp@localhost")),
    );
    let (step, last) = exchange(&mut c, &mut s);
    assert_eq!(
        step,
        ServerStep::Success {
            identity: "alice@EXAMPLE.COM".into(),
            additional_data: None
        }
    );
    // The client chose "no security layer" with a zero buffer size and no authzid.
    assert_eq!(last, wrap(&[1, 0, 0, 0]));
    assert!(c.outcome_ok(None).is_ok());
}

#[test]
fn exchange_without_mutual_token_goes_straight_to_the_layer_offer() {
    let mut acceptor = FakeAcceptor::new("amqp@localhost");
    acceptor.mutual = false;
    let mut s = server(acceptor);
    let step = s.start(Some(b"AP-REQ bob@R amqp@localhost"), None);
    assert_eq!(step, ServerStep::Challenge(wrap(&[1, 0, 0, 0])));
    let step = s.response(&wrap(&[1, 0, 0, 0]));
    assert!(matches!(step, ServerStep::Success { identity, .. } if identity == "bob@R"));
}

#[test]
fn client_sends_the_authorization_identity() {
    let mut c = client("alice@EXAMPLE.COM");
    c.authzid = "alice".into();
    let mut s = server(FakeAcceptor::new("amqp@localhost"));
    let (step, last) = exchange(&mut c, &mut s);
    assert_eq!(last, wrap(b"\x01\0\0\0alice"));
    assert!(
        matches!(step, ServerStep::Success { identity, .. } if identity == "alice@EXAMPLE.COM")
    );
}

#[test]
fn server_refuses_another_authorization_identity() {
    let mut c = client("alice@EXAMPLE.COM");
    c.authzid = "admin".into();
    let mut s = server(FakeAcceptor::new("amqp@localhost"));
    let (step, _) = exchange(&mut c, &mut s);
    let ServerStep::Failure(e) = step else {
        panic!("{step:?}")
    };
    assert_eq!(
        e,
        SaslError::Auth("GSSAPI: principal alice@EXAMPLE.COM may not act as admin".into())
    );
}

#[test]
fn client_refuses_a_server_offering_only_protection_layers() {
    for offer in [0x02u8, 0x04, 0x06] {
        let mut acceptor = FakeAcceptor::new("amqp@localhost");
        acceptor.layers = Some(vec![offer, 0, 0x10, 0]);
        let (mut c, mut s) = (client("alice@R"), server(acceptor));
        let (step, _) = exchange(&mut c, &mut s);
        let ServerStep::Failure(SaslError::Auth(msg)) = step else {
            panic!("{step:?}")
        };
        assert!(
            msg.contains("the server requires a security layer"),
            "{msg}"
        );
        assert!(msg.contains(&format!("{offer:#04x}")), "{msg}");
    }
}

#[test]
fn client_accepts_an_offer_that_includes_no_layer() {
    let mut acceptor = FakeAcceptor::new("amqp@localhost");
    acceptor.layers = Some(vec![0x07, 0x01, 0, 0]);
    let (mut c, mut s) = (client("alice@R"), server(acceptor));
    let (_, last) = exchange(&mut c, &mut s);
    assert_eq!(last, wrap(&[1, 0, 0, 0]));
}

#[test]
fn client_rejects_malformed_layer_offers() {
    for offer in [&b""[..], b"\x01", b"\x01\0\0\0extra"] {
        let mut acceptor = FakeAcceptor::new("amqp@localhost");
        acceptor.layers = Some(offer.to_vec());
        let (mut c, mut s) = (client("alice@R"), server(acceptor));
        let (step, _) = exchange(&mut c, &mut s);
        assert!(
            matches!(step, ServerStep::Failure(SaslError::Protocol(ref m)) if m.contains("must be 4 bytes")),
            "{step:?}"
        );
    }
    // A layer offer that is not a wrap token at all.
    let mut c = client("alice@R");
    c.initial_response().unwrap();
    c.challenge(b"AP-REP amqp@localhost").unwrap();
    let e = c.challenge(b"\x01\0\0\0").unwrap_err();
    assert_eq!(
        e,
        SaslError::Auth("GSSAPI: invalid GSSAPI token: not a wrap token".into())
    );
}

#[test]
fn client_refuses_success_before_the_server_proved_itself() {
    let mut c = client("alice@R");
    c.initial_response().unwrap();
    let e = c.outcome_ok(None).unwrap_err();
    assert!(
        matches!(e, SaslError::Auth(ref m) if m.contains("not authenticated")),
        "{e}"
    );
}

#[test]
fn server_rejects_bad_layer_replies() {
    let cases: [(&[u8], &str); 4] = [
        (&wrap(&[2, 0, 0, 0]), "chose security layer 0x02"),
        (&wrap(&[1, 0]), "at least 4 bytes, got 2"),
        (&wrap(b"\x01\0\0\0\xff"), "not valid UTF-8"),
        (b"\x01\0\0\0", "invalid GSSAPI token"),
    ];
    for (reply, want) in cases {
        let mut s = server(FakeAcceptor::new("amqp@localhost"));
        assert!(matches!(
            s.start(Some(b"AP-REQ a@R amqp@localhost"), None),
            ServerStep::Challenge(_)
        ));
        assert!(matches!(s.response(b""), ServerStep::Challenge(_)));
        let step = s.response(reply);
        let ServerStep::Failure(e) = step else {
            panic!("{step:?}")
        };
        assert!(e.message().contains(want), "{e} lacks {want}");
        // Nothing more is accepted after a failure.
        assert!(matches!(
            s.response(b""),
            ServerStep::Failure(SaslError::Protocol(_))
        ));
    }
}

#[test]
fn server_asks_for_the_token_when_init_has_none() {
    let mut s = server(FakeAcceptor::new("amqp@localhost"));
    assert_eq!(s.start(None, None), ServerStep::Challenge(Vec::new()));
    assert!(matches!(
        s.response(b"AP-REQ a@R amqp@localhost"),
        ServerStep::Challenge(t) if t == b"AP-REP amqp@localhost"
    ));
}

#[test]
fn server_errors_are_typed_and_name_the_cause() {
    let mut s = server(FakeAcceptor::new("amqp@localhost"));
    let step = s.start(Some(b"AP-REQ a@R amqp@otherhost"), None);
    assert_eq!(
        step,
        ServerStep::Failure(SaslError::Auth(
            "GSSAPI: no key for the service principal in the keytab (KRB5_KTNAME): wrong principal"
                .into()
        ))
    );
    let mut s = GssapiServer::new(Err(GssError::new(GssErrorKind::AcceptorCredentials, "kt")));
    let ServerStep::Failure(e) = s.start(Some(b"x"), None) else {
        panic!()
    };
    assert_eq!(e.outcome_code(), 1);
    assert!(e.message().contains("keytab"), "{e}");
    let mut s = server(FakeAcceptor::new("amqp@localhost"));
    let ServerStep::Failure(e) = s.start(Some(b"\xff"), None) else {
        panic!()
    };
    assert_eq!(
        e,
        SaslError::Auth("GSSAPI: invalid GSSAPI token: binary".into())
    );
}

#[test]
fn gss_errors_map_to_auth_except_other_failures() {
    let kinds = [
        (GssErrorKind::NoCredentials, "no Kerberos ticket"),
        (GssErrorKind::CredentialsExpired, "ticket has expired"),
        (
            GssErrorKind::UnknownServer,
            "does not know the service principal",
        ),
        (GssErrorKind::AcceptorCredentials, "keytab"),
        (GssErrorKind::BadToken, "invalid GSSAPI token"),
    ];
    for (kind, text) in kinds {
        let e = SaslError::from(GssError::new(kind, "detail"));
        assert!(
            matches!(&e, SaslError::Auth(m) if m.contains(text) && m.ends_with(": detail")),
            "{e}"
        );
    }
    let e = SaslError::from(GssError::new(GssErrorKind::Other, ""));
    assert_eq!(e, SaslError::Sys("GSSAPI: GSS-API failure".into()));
}

fn config(lib: FakeClientLib) -> SaslClientConfig {
    SaslClientConfig {
        user: Some("u".into()),
        password: Some("p".into()),
        nonce: vec![7; 18],
        extra_mechanisms: vec![Arc::new(GssapiClientFactory::new(Arc::new(lib)))],
        ..SaslClientConfig::default()
    }
}

fn mechanisms(names: &[&str]) -> SaslFrame {
    SaslFrame::SaslMechanisms(SaslMechanisms {
        sasl_server_mechanisms: names.iter().map(|n| Symbol::from(*n)).collect(),
    })
}

fn chosen(
    cfg: SaslClientConfig,
    host: Option<&str>,
    offered: &[&str],
) -> Result<(String, Vec<u8>), SaslError> {
    let mut m = SaslClient::new(cfg, true, false, host.map(str::to_owned));
    match m.handle(mechanisms(offered))? {
        ClientStep::Send(SaslFrame::SaslInit(i)) => Ok((
            i.mechanism.as_str().to_owned(),
            i.initial_response.map(|b| b.to_vec()).unwrap_or_default(),
        )),
        other => panic!("{other:?}"),
    }
}

#[test]
fn gssapi_is_preferred_when_offered_allowed_and_a_ticket_exists() {
    let offered = ["PLAIN", "SCRAM-SHA-256", "GSSAPI"];
    let (mech, token) = chosen(
        config(FakeClientLib {
            user: Some("alice@R"),
        }),
        Some("broker"),
        &offered,
    )
    .unwrap();
    assert_eq!(mech, "GSSAPI");
    assert_eq!(token, b"AP-REQ alice@R amqp@broker");
    // No ticket: the built-in order applies.
    let (mech, _) = chosen(
        config(FakeClientLib { user: None }),
        Some("broker"),
        &offered,
    )
    .unwrap();
    assert_eq!(mech, "SCRAM-SHA-256");
    // Not allowed, or not offered: not used.
    let mut cfg = config(FakeClientLib {
        user: Some("alice@R"),
    });
    cfg.set_allowed_mechs("PLAIN");
    assert_eq!(chosen(cfg, Some("broker"), &offered).unwrap().0, "PLAIN");
    let cfg = config(FakeClientLib {
        user: Some("alice@R"),
    });
    assert_eq!(chosen(cfg, Some("broker"), &["PLAIN"]).unwrap().0, "PLAIN");
}

#[test]
fn target_is_service_at_host() {
    let mut cfg = config(FakeClientLib {
        user: Some("alice@R"),
    });
    cfg.service = Some("qpidd".into());
    let (_, token) = chosen(cfg, Some("mq.example.com"), &["GSSAPI"]).unwrap();
    assert_eq!(token, b"AP-REQ alice@R qpidd@mq.example.com");
    let e = chosen(
        config(FakeClientLib {
            user: Some("alice@R"),
        }),
        None,
        &["GSSAPI"],
    )
    .unwrap_err();
    assert!(
        matches!(e, SaslError::Auth(ref m) if m.contains("no host name")),
        "{e}"
    );
}

#[test]
fn gssapi_without_a_ticket_and_no_alternative_names_the_cause() {
    // Only GSSAPI allowed: its own error (an auth failure, which stops reconnect) is reported,
    // not "no acceptable mechanism".
    let mut cfg = config(FakeClientLib { user: None });
    cfg.set_allowed_mechs("GSSAPI");
    let e = chosen(cfg, Some("broker"), &["GSSAPI", "PLAIN"]).unwrap_err();
    assert_eq!(
        e,
        SaslError::Auth(
            "GSSAPI: no Kerberos ticket (run kinit, or set KRB5CCNAME): No credentials cache found"
                .into()
        )
    );
    // Only GSSAPI offered, no password either.
    let mut cfg = config(FakeClientLib { user: None });
    cfg.user = None;
    cfg.password = None;
    let e = chosen(cfg, Some("broker"), &["GSSAPI"]).unwrap_err();
    assert!(
        matches!(e, SaslError::Auth(ref m) if m.contains("no Kerberos ticket")),
        "{e}"
    );
}

/// A context that never completes (as a hostile peer would keep it).
struct Endless;

impl GssInitiator for Endless {
    fn step(&mut self, _input: Option<&[u8]>) -> Result<GssStep, GssError> {
        Ok(GssStep {
            token: b"more".to_vec(),
            complete: false,
        })
    }
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(wrap(message))
    }
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        unwrap(token)
    }
}

impl GssAcceptor for Endless {
    fn step(&mut self, _input: &[u8]) -> Result<GssStep, GssError> {
        Ok(GssStep {
            token: b"more".to_vec(),
            complete: false,
        })
    }
    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        Ok(wrap(message))
    }
    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        unwrap(token)
    }
    fn source_name(&self) -> Result<String, GssError> {
        Ok(String::new())
    }
}

#[test]
fn token_rounds_are_bounded_on_both_sides() {
    let want = SaslError::Protocol(format!(
        "GSSAPI context not established after {MAX_TOKEN_ROUNDS} tokens"
    ));
    let mut s = GssapiServer::new(Ok(Box::new(Endless)));
    let mut step = s.start(Some(b"t"), None);
    let mut challenges = 0;
    while let ServerStep::Challenge(_) = step {
        challenges += 1;
        assert!(challenges <= MAX_TOKEN_ROUNDS, "unbounded");
        step = s.response(b"t");
    }
    assert_eq!(challenges, MAX_TOKEN_ROUNDS);
    assert_eq!(step, ServerStep::Failure(want.clone()));

    let mut c = GssapiClient::new(Ok(Box::new(Endless)), String::new());
    c.initial_response().unwrap();
    for _ in 1..MAX_TOKEN_ROUNDS {
        c.challenge(b"t").unwrap();
    }
    assert_eq!(c.challenge(b"t").unwrap_err(), want);
    assert!(matches!(c.challenge(b"t"), Err(SaslError::Protocol(_))));
}

#[test]
fn offering_gssapi_raises_the_sasl_frame_limit() {
    use crate::sasl::machine::SaslServer;
    use crate::sasl::{SaslServerConfig, StaticUsers, EXTENDED_SASL_FRAME_SIZE};

    struct NoKeytab;
    impl GssServerProvider for NoKeytab {
        fn acceptor(&self) -> Result<Box<dyn GssAcceptor>, GssError> {
            Err(GssError::new(GssErrorKind::AcceptorCredentials, ""))
        }
    }
    let factory = Arc::new(GssapiServerFactory::new(Arc::new(NoKeytab)));
    let mut cfg = SaslServerConfig::new(&["PLAIN"], Arc::new(StaticUsers::new()));
    cfg.extra_mechanisms.push(factory);
    // Configured but not offered: the 512-byte limit stays.
    assert_eq!(SaslServer::new(cfg.clone(), None).sasl_frame_limit(), 512);
    cfg.mechanisms.push(GSSAPI.into());
    assert_eq!(
        SaslServer::new(cfg, None).sasl_frame_limit(),
        EXTENDED_SASL_FRAME_SIZE
    );
    let plain = SaslClientConfig::default();
    assert_eq!(
        SaslClient::new(plain, false, false, None).sasl_frame_limit(),
        512
    );
    let kerberos = config(FakeClientLib { user: None });
    assert_eq!(
        SaslClient::new(kerberos, false, false, None).sasl_frame_limit(),
        EXTENDED_SASL_FRAME_SIZE
    );
}
