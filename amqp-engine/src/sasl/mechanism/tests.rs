use super::*;

const SALT: &[u8] = b"0123456789abcdef";

fn users() -> Arc<StaticUsers> {
    Arc::new(
        StaticUsers::new()
            .with_user("alice", "s3cret-pw", SALT, 64)
            .with_user("bob", "hunter2!", SALT, 64),
    )
}

/// Drive a client and server mechanism against each other until the
/// server decides. Returns the server's identity or the first error.
fn run(
    client: &mut dyn ClientMechanism,
    server: &mut dyn ServerMechanism,
) -> Result<String, SaslError> {
    assert_eq!(client.name(), server.name());
    let init = client.initial_response()?;
    let mut step = server.start(init.as_deref(), Some("example.com"));
    for _ in 0..10 {
        match step {
            ServerStep::Challenge(c) => {
                let r = client.challenge(&c)?;
                step = server.response(&r);
            }
            ServerStep::Success {
                identity,
                additional_data,
            } => {
                client.outcome_ok(additional_data.as_deref())?;
                return Ok(identity);
            }
            ServerStep::Failure(e) => return Err(e),
        }
    }
    panic!("exchange did not terminate");
}

#[test]
fn error_codes_and_display() {
    assert_eq!(SaslError::Auth("x".into()).outcome_code(), 1);
    assert_eq!(SaslError::Sys("x".into()).outcome_code(), 2);
    assert_eq!(SaslError::SysPerm("x".into()).outcome_code(), 3);
    assert_eq!(SaslError::SysTemp("x".into()).outcome_code(), 4);
    assert_eq!(SaslError::Protocol("x".into()).outcome_code(), 1);
    assert_eq!(SaslError::NoMechanism("x".into()).outcome_code(), 1);
    assert_eq!(
        SaslError::Auth("bad".into()).to_string(),
        "SASL authentication failed: bad"
    );
    assert_eq!(
        SaslError::Sys(String::new()).to_string(),
        "SASL system error"
    );
    let e: Box<dyn std::error::Error> = Box::new(SaslError::Protocol("p".into()));
    assert!(e.to_string().contains("protocol"));
}

#[test]
fn peer_text_is_bounded() {
    let long = "é".repeat(1000);
    let t = peer_text(&long);
    assert_eq!(t.chars().count(), MAX_PEER_TEXT_IN_ERROR + 1);
    assert_eq!(peer_text("short"), "short");
}

#[test]
fn anonymous_round_trip() {
    let auth = Arc::new(StaticUsers::new().with_anonymous(true));
    let mut client = AnonymousClient::new();
    let mut server = AnonymousServer::new(auth.clone());
    assert_eq!(run(&mut client, &mut server), Ok("anonymous".to_owned()));

    let mut client = AnonymousClient::with_trace("trace@example.com");
    assert_eq!(
        client.initial_response(),
        Ok(Some(b"trace@example.com".to_vec()))
    );
    let mut server = AnonymousServer::new(auth);
    assert_eq!(run(&mut client, &mut server), Ok("anonymous".to_owned()));
    // No initial response is tolerated too.
    let mut server = AnonymousServer::new(Arc::new(StaticUsers::new().with_anonymous(true)));
    assert!(matches!(
        server.start(None, None),
        ServerStep::Success { .. }
    ));
}

#[test]
fn anonymous_refused() {
    let mut client = AnonymousClient::new();
    let mut server = AnonymousServer::new(users());
    assert!(matches!(
        run(&mut client, &mut server),
        Err(SaslError::Auth(_))
    ));
    // Default Authenticator refuses anonymous as well.
    struct Nobody;
    impl Authenticator for Nobody {}
    let mut server = AnonymousServer::new(Arc::new(Nobody));
    assert!(matches!(
        server.start(Some(b""), None),
        ServerStep::Failure(SaslError::Auth(_))
    ));
    assert!(matches!(
        server.start(Some(b""), None),
        ServerStep::Failure(SaslError::Protocol(_))
    ));
    assert!(matches!(
        server.response(b""),
        ServerStep::Failure(SaslError::Protocol(_))
    ));
}

#[test]
fn anonymous_client_rejects_challenge() {
    let mut client = AnonymousClient::new();
    assert!(matches!(
        client.challenge(b"x"),
        Err(SaslError::Protocol(_))
    ));
    assert_eq!(client.outcome_ok(None), Ok(()));
}

#[test]
fn plain_round_trip() {
    let mut client = PlainClient::new("alice", "s3cret-pw");
    let mut server = PlainServer::new(users());
    assert_eq!(run(&mut client, &mut server), Ok("alice".to_owned()));

    let mut client = PlainClient::new("bob", "hunter2!").with_authzid("bob");
    assert_eq!(
        client.initial_response(),
        Ok(Some(b"bob\0bob\0hunter2!".to_vec()))
    );
    let mut server = PlainServer::new(users());
    assert_eq!(run(&mut client, &mut server), Ok("bob".to_owned()));
}

#[test]
fn plain_without_initial_response_uses_empty_challenge() {
    let mut server = PlainServer::new(users());
    assert_eq!(server.start(None, None), ServerStep::Challenge(Vec::new()));
    assert_eq!(
        server.response(b"\0alice\0s3cret-pw"),
        ServerStep::Success {
            identity: "alice".into(),
            additional_data: None
        }
    );
    assert!(matches!(
        server.response(b"\0alice\0s3cret-pw"),
        ServerStep::Failure(SaslError::Protocol(_))
    ));
}

#[test]
fn plain_wrong_password_unknown_user_and_authzid() {
    for (client, what) in [
        (PlainClient::new("alice", "wrong"), "wrong password"),
        (PlainClient::new("mallory", "s3cret-pw"), "unknown user"),
        (
            PlainClient::new("alice", "s3cret-pw").with_authzid("bob"),
            "foreign authzid",
        ),
    ] {
        let mut client = client;
        let mut server = PlainServer::new(users());
        assert!(
            matches!(run(&mut client, &mut server), Err(SaslError::Auth(_))),
            "{what}"
        );
    }
}

#[test]
fn plain_malformed() {
    let cases: &[&[u8]] = &[
        b"",
        b"alice",
        b"\0alice",
        b"\0alice\0pw\0",
        b"\0alice\0pw\0extra",
        b"\0\0pw",
        b"\0alice\0",
        b"\0\xffalice\0pw",
        b"\xff\0alice\0pw",
        b"\0alice\0\xfe\xff",
    ];
    for case in cases {
        let mut server = PlainServer::new(users());
        assert!(
            matches!(
                server.start(Some(case), None),
                ServerStep::Failure(SaslError::Protocol(_))
            ),
            "{case:?}"
        );
    }
}

#[test]
fn plain_client_rejects_nul_and_challenges() {
    let mut client = PlainClient::new("a\0b", "pw");
    assert!(matches!(client.initial_response(), Err(SaslError::Sys(_))));
    let mut client = PlainClient::new("a", "pw");
    assert!(matches!(client.challenge(b""), Err(SaslError::Protocol(_))));
}

#[test]
fn plain_default_authenticator_refuses() {
    struct Nobody;
    impl Authenticator for Nobody {}
    let mut client = PlainClient::new("alice", "s3cret-pw");
    let mut server = PlainServer::new(Arc::new(Nobody));
    assert!(matches!(
        run(&mut client, &mut server),
        Err(SaslError::Auth(_))
    ));
}

#[test]
fn external_round_trip_and_refusals() {
    let mut client = ExternalClient::new();
    let mut server = ExternalServer::new(users(), Some("CN=client".into()));
    assert_eq!(run(&mut client, &mut server), Ok("CN=client".to_owned()));

    let mut client = ExternalClient::with_authzid("CN=client");
    let mut server = ExternalServer::new(users(), Some("CN=client".into()));
    assert_eq!(run(&mut client, &mut server), Ok("CN=client".to_owned()));

    let mut client = ExternalClient::with_authzid("CN=admin");
    let mut server = ExternalServer::new(users(), Some("CN=client".into()));
    assert!(matches!(
        run(&mut client, &mut server),
        Err(SaslError::Auth(_))
    ));

    let mut client = ExternalClient::new();
    let mut server = ExternalServer::new(users(), None);
    assert!(matches!(
        run(&mut client, &mut server),
        Err(SaslError::Auth(_))
    ));

    let mut server = ExternalServer::new(users(), Some("CN=client".into()));
    assert_eq!(server.start(None, None), ServerStep::Challenge(Vec::new()));
    assert!(matches!(
        server.response(b"\xff"),
        ServerStep::Failure(SaslError::Protocol(_))
    ));

    let mut server = ExternalServer::new(users(), Some("CN=client".into()));
    assert!(matches!(
        server.response(b""),
        ServerStep::Failure(SaslError::Protocol(_))
    ));
}

#[test]
fn external_custom_authenticator() {
    struct MapCerts;
    impl Authenticator for MapCerts {
        fn verify_external(
            &self,
            transport_identity: Option<&str>,
            _authzid: &str,
        ) -> Result<String, SaslError> {
            match transport_identity {
                Some("CN=svc,O=Example") => Ok("svc".into()),
                _ => Err(SaslError::SysPerm("unknown certificate".into())),
            }
        }
    }
    let mut server = ExternalServer::new(Arc::new(MapCerts), Some("CN=svc,O=Example".into()));
    assert_eq!(
        server.start(Some(b""), None),
        ServerStep::Success {
            identity: "svc".into(),
            additional_data: None
        }
    );
    let mut server = ExternalServer::new(Arc::new(MapCerts), Some("CN=other".into()));
    let ServerStep::Failure(e) = server.start(Some(b""), None) else {
        panic!("expected failure")
    };
    assert_eq!(e.outcome_code(), 3);
}

#[test]
fn choose_mechanism_preference() {
    let all = [ANONYMOUS, PLAIN, EXTERNAL, SCRAM_SHA_1, SCRAM_SHA_256];
    assert_eq!(
        choose_mechanism(&all, None, true, true, false, true),
        Some(SCRAM_SHA_256)
    );
    assert_eq!(
        choose_mechanism(
            &[ANONYMOUS, PLAIN, SCRAM_SHA_1],
            None,
            true,
            false,
            false,
            false
        ),
        Some(SCRAM_SHA_1)
    );
    // PLAIN needs TLS or explicit opt-in.
    assert_eq!(
        choose_mechanism(&[ANONYMOUS, PLAIN], None, true, false, false, false),
        Some(ANONYMOUS)
    );
    assert_eq!(
        choose_mechanism(&[ANONYMOUS, PLAIN], None, true, true, false, false),
        Some(PLAIN)
    );
    assert_eq!(
        choose_mechanism(&[ANONYMOUS, PLAIN], None, true, false, true, false),
        Some(PLAIN)
    );
    // No credentials: no SCRAM or PLAIN.
    assert_eq!(
        choose_mechanism(&all, None, false, true, true, false),
        Some(ANONYMOUS)
    );
    assert_eq!(
        choose_mechanism(&[PLAIN, SCRAM_SHA_256], None, false, true, true, false),
        None
    );
    // EXTERNAL needs an identity or an explicit allow.
    assert_eq!(
        choose_mechanism(&[EXTERNAL, ANONYMOUS], None, false, true, false, true),
        Some(EXTERNAL)
    );
    assert_eq!(
        choose_mechanism(&[EXTERNAL, ANONYMOUS], None, false, true, false, false),
        Some(ANONYMOUS)
    );
    assert_eq!(
        choose_mechanism(
            &[EXTERNAL, ANONYMOUS],
            Some(&[EXTERNAL]),
            false,
            true,
            false,
            false
        ),
        Some(EXTERNAL)
    );
    // The allowed list restricts.
    assert_eq!(
        choose_mechanism(&all, Some(&[PLAIN]), true, true, false, false),
        Some(PLAIN)
    );
    assert_eq!(
        choose_mechanism(&all, Some(&["GSSAPI"]), true, true, false, false),
        None
    );
    // Unknown offered mechanisms are ignored; case-insensitive matching.
    assert_eq!(
        choose_mechanism(
            &["GSSAPI", "scram-sha-256"],
            None,
            true,
            false,
            false,
            false
        ),
        Some(SCRAM_SHA_256)
    );
    assert_eq!(choose_mechanism(&[], None, true, true, true, true), None);
}

#[test]
fn static_users_debug_and_lookup() {
    let users = StaticUsers::new().with_user("alice", "s3cret-pw", SALT, 64);
    let dbg = format!("{users:?}");
    assert!(!dbg.contains("s3cret-pw"), "{dbg}");
    assert!(dbg.contains("alice"));
    assert!(users.contains_user("alice"));
    assert!(!users.contains_user("bob"));
    assert!(users.scram_credentials("alice", ScramHash::Sha1).is_some());
    assert!(users.scram_credentials("bob", ScramHash::Sha256).is_none());
    assert!(!users.allow_anonymous());
}

#[test]
fn debug_redacts_plain_password() {
    let client = PlainClient::new("alice", "s3cret-pw");
    let dbg = format!("{client:?}");
    assert!(!dbg.contains("s3cret-pw"), "{dbg}");
    assert!(dbg.contains("alice"));
    let server = PlainServer::new(users());
    assert!(!format!("{server:?}").contains("s3cret-pw"));
}

#[test]
fn mechanisms_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<AnonymousClient>();
    assert_send::<AnonymousServer>();
    assert_send::<PlainClient>();
    assert_send::<PlainServer>();
    assert_send::<ExternalClient>();
    assert_send::<ExternalServer>();
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<StaticUsers>();
}
