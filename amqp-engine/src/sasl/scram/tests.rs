use super::*;
use crate::sasl::mechanism::StaticUsers;
use proptest::prelude::*;

// RFC 5802 §5 (SCRAM-SHA-1).
const RFC5802_CLIENT_NONCE: &str = "fyko+d2lbbFgONRv9qkxdawL";
const RFC5802_SERVER_SUFFIX: &str = "3rfcNHYJY1ZVvWVs7j";
const RFC5802_SALT: &str = "QSXCR+Q6sek8bf92";
const RFC5802_CLIENT_FIRST: &str = "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL";
const RFC5802_SERVER_FIRST: &str =
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
const RFC5802_CLIENT_FINAL: &str =
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
const RFC5802_SERVER_FINAL: &str = "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=";

// RFC 7677 §3 (SCRAM-SHA-256).
const RFC7677_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_SUFFIX: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const RFC7677_SERVER_FIRST: &str =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const RFC7677_CLIENT_FINAL: &str =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

const SALT: &[u8] = b"per-user-salt-16";
const ITERATIONS: u32 = 16;

struct Vector {
    hash: ScramHash,
    client_nonce: &'static str,
    server_suffix: &'static str,
    salt_b64: &'static str,
    client_first: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
}

const VECTORS: [Vector; 2] = [
    Vector {
        hash: ScramHash::Sha1,
        client_nonce: RFC5802_CLIENT_NONCE,
        server_suffix: RFC5802_SERVER_SUFFIX,
        salt_b64: RFC5802_SALT,
        client_first: RFC5802_CLIENT_FIRST,
        server_first: RFC5802_SERVER_FIRST,
        client_final: RFC5802_CLIENT_FINAL,
        server_final: RFC5802_SERVER_FINAL,
    },
    Vector {
        hash: ScramHash::Sha256,
        client_nonce: RFC7677_CLIENT_NONCE,
        server_suffix: RFC7677_SERVER_SUFFIX,
        salt_b64: RFC7677_SALT,
        client_first: RFC7677_CLIENT_FIRST,
        server_first: RFC7677_SERVER_FIRST,
        client_final: RFC7677_CLIENT_FINAL,
        server_final: RFC7677_SERVER_FINAL,
    },
];

fn rfc_users(v: &Vector) -> Arc<StaticUsers> {
    let salt = BASE64.decode(v.salt_b64).expect("test salt");
    Arc::new(StaticUsers::new().with_user("user", "pencil", &salt, 4096))
}

fn users() -> Arc<StaticUsers> {
    Arc::new(
        StaticUsers::new()
            .with_user("alice", "correct horse", SALT, ITERATIONS)
            .with_user("we=ird,name", "p=ss,word", SALT, ITERATIONS),
    )
}

fn client(hash: ScramHash, user: &str, password: &str) -> ScramClient {
    ScramClient::new(hash, user, password, "clientnonce123")
}

fn server(hash: ScramHash) -> ScramServer {
    ScramServer::new(hash, users(), "serversuffix456")
}

/// Drive client and server to completion.
fn run(
    client: &mut dyn ClientMechanism,
    server: &mut dyn ServerMechanism,
) -> Result<String, SaslError> {
    assert_eq!(client.name(), server.name());
    let init = client.initial_response()?;
    let mut step = server.start(init.as_deref(), None);
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

/// A server that has processed a valid client-first for alice and now
/// awaits client-final, plus the full nonce.
fn server_awaiting_final(hash: ScramHash, cbind: &str) -> (ScramServer, String) {
    let mut s = server(hash);
    let first = format!("{cbind},,n=alice,r=abc");
    assert!(matches!(
        s.start(Some(first.as_bytes()), None),
        ServerStep::Challenge(_)
    ));
    (s, "abcserversuffix456".to_owned())
}

/// A client that has sent client-first with nonce `clientnonce123`.
fn client_after_first(hash: ScramHash) -> ScramClient {
    let mut c = client(hash, "alice", "correct horse");
    c.initial_response().expect("client-first");
    c
}

fn is_protocol<T: fmt::Debug>(r: &Result<T, SaslError>) -> bool {
    matches!(r, Err(SaslError::Protocol(_)))
}

#[test]
fn rfc_vectors_client() {
    for v in &VECTORS {
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        assert_eq!(c.name(), v.hash.mechanism_name());
        assert_eq!(
            c.initial_response().unwrap(),
            Some(v.client_first.as_bytes().to_vec())
        );
        let client_final = c.challenge(v.server_first.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(client_final).unwrap(), v.client_final);
        assert!(!c.server_verified());
        c.outcome_ok(Some(v.server_final.as_bytes())).unwrap();
        assert!(c.server_verified());
    }
}

#[test]
fn rfc_vectors_client_final_in_challenge() {
    for v in &VECTORS {
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        assert_eq!(
            c.challenge(v.server_final.as_bytes()).unwrap(),
            Vec::<u8>::new()
        );
        assert!(c.server_verified());
        c.outcome_ok(None).unwrap();
        // A repeated, correct server-final is accepted too.
        c.outcome_ok(Some(v.server_final.as_bytes())).unwrap();
    }
}

#[test]
fn rfc_vectors_server() {
    for v in &VECTORS {
        let mut s = ScramServer::new(v.hash, rfc_users(v), v.server_suffix);
        assert_eq!(s.name(), v.hash.mechanism_name());
        assert_eq!(
            s.start(Some(v.client_first.as_bytes()), Some("host")),
            ServerStep::Challenge(v.server_first.as_bytes().to_vec())
        );
        assert_eq!(
            s.response(v.client_final.as_bytes()),
            ServerStep::Success {
                identity: "user".into(),
                additional_data: Some(v.server_final.as_bytes().to_vec())
            }
        );
        assert!(matches!(
            s.response(b""),
            ServerStep::Failure(SaslError::Protocol(_))
        ));
    }
}

#[test]
fn rfc_vectors_server_final_in_challenge() {
    for v in &VECTORS {
        let mut s =
            ScramServer::new(v.hash, rfc_users(v), v.server_suffix).with_final_in_challenge(true);
        s.start(Some(v.client_first.as_bytes()), None);
        assert_eq!(
            s.response(v.client_final.as_bytes()),
            ServerStep::Challenge(v.server_final.as_bytes().to_vec())
        );
        assert_eq!(
            s.response(b""),
            ServerStep::Success {
                identity: "user".into(),
                additional_data: None
            }
        );
    }
}

#[test]
fn rfc_vectors_client_and_server() {
    for v in &VECTORS {
        for final_in_challenge in [false, true] {
            let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
            let mut s = ScramServer::new(v.hash, rfc_users(v), v.server_suffix)
                .with_final_in_challenge(final_in_challenge);
            assert_eq!(run(&mut c, &mut s), Ok("user".to_owned()));
            assert!(c.server_verified());
        }
    }
}

#[test]
fn round_trips() {
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        for final_in_challenge in [false, true] {
            for (user, password) in [("alice", "correct horse"), ("we=ird,name", "p=ss,word")] {
                let mut c = ScramClient::new(hash, user, password, nonce_from_bytes(&[7; 18]));
                let mut s = ScramServer::new(hash, users(), nonce_from_bytes(&[9; 18]))
                    .with_final_in_challenge(final_in_challenge);
                assert_eq!(
                    run(&mut c, &mut s),
                    Ok(user.to_owned()),
                    "{hash:?} {final_in_challenge} {user}"
                );
            }
            // With an authzid equal to the user name.
            let mut c = client(hash, "alice", "correct horse").with_authzid("alice");
            let mut s = server(hash).with_final_in_challenge(final_in_challenge);
            assert_eq!(run(&mut c, &mut s), Ok("alice".to_owned()));
        }
    }
}

#[test]
fn round_trip_without_initial_response() {
    // The server asks for client-first with an empty challenge.
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let mut c = client(hash, "alice", "correct horse");
        let mut s = server(hash);
        let ServerStep::Challenge(empty) = s.start(None, None) else {
            panic!("expected challenge")
        };
        assert!(empty.is_empty());
        let first = c.challenge(&empty).unwrap();
        let ServerStep::Challenge(server_first) = s.response(&first) else {
            panic!("expected challenge")
        };
        let last = c.challenge(&server_first).unwrap();
        let ServerStep::Success {
            identity,
            additional_data,
        } = s.response(&last)
        else {
            panic!("expected success")
        };
        assert_eq!(identity, "alice");
        c.outcome_ok(additional_data.as_deref()).unwrap();
    }
}

#[test]
fn server_accepts_y_flag() {
    let (mut s, nonce) = server_awaiting_final(ScramHash::Sha256, "y");
    // c= must be base64("y,,"); a wrong proof then fails with Auth, proving c= was accepted.
    let proof = BASE64.encode([0u8; 32]);
    let msg = format!("c={},r={nonce},p={proof}", BASE64.encode("y,,"));
    assert!(matches!(
        s.response(msg.as_bytes()),
        ServerStep::Failure(SaslError::Auth(_))
    ));
}

#[test]
fn saslname_escaping() {
    assert_eq!(escape_saslname("a=b,c"), "a=3Db=2Cc");
    assert_eq!(escape_saslname("plain"), "plain");
    assert_eq!(unescape_saslname("a=3Db=2Cc").unwrap(), "a=b,c");
    assert_eq!(unescape_saslname("=3D=2C").unwrap(), "=,");
    for bad in [
        "", "a=", "a=3", "a=3d", "a=2c", "a==3D", "=", "a\0b", "a=41",
    ] {
        assert!(is_protocol(&unescape_saslname(bad)), "{bad:?}");
    }
    let mut c = ScramClient::new(ScramHash::Sha1, "we=ird,name", "pw", "n").with_authzid("x,y");
    assert_eq!(
        c.initial_response().unwrap().unwrap(),
        b"n,a=x=2Cy,n=we=3Dird=2Cname,r=n".to_vec()
    );
}

#[test]
fn wrong_password() {
    for hash in [ScramHash::Sha1, ScramHash::Sha256] {
        let mut c = client(hash, "alice", "wrong horse");
        let mut s = server(hash);
        assert!(matches!(run(&mut c, &mut s), Err(SaslError::Auth(_))));
    }
}

#[test]
fn unknown_user() {
    let mut c = client(ScramHash::Sha256, "mallory", "correct horse");
    let mut s = server(ScramHash::Sha256);
    assert!(matches!(run(&mut c, &mut s), Err(SaslError::Auth(_))));
}

#[test]
fn foreign_authzid_refused() {
    let mut c = client(ScramHash::Sha256, "alice", "correct horse").with_authzid("root");
    let mut s = server(ScramHash::Sha256);
    assert!(matches!(run(&mut c, &mut s), Err(SaslError::Auth(_))));
}

#[test]
fn malformed_client_first() {
    let cases: &[&[u8]] = &[
        b"",
        b"n",
        b"n,",
        b"n,,",
        b"garbage",
        b"\xff\xfe",
        b"p=tls-unique,,n=alice,r=abc",
        b"p=tls-server-end-point,a=alice,n=alice,r=abc",
        b"x,,n=alice,r=abc",
        b"N,,n=alice,r=abc",
        b"n,alice,n=alice,r=abc",
        b"n,a=,n=alice,r=abc",
        b"n,a=bad=escape,n=alice,r=abc",
        b"n,,r=abc",
        b"n,,n=alice",
        b"n,,n=alice,",
        b"n,,n=,r=abc",
        b"n,,n=al=ice,r=abc",
        b"n,,n=alice,r=",
        b"n,,n=alice,r=a b",
        b"n,,n=alice,r=abc\x7f",
        b"n,,n=alice,s=abc",
        b"n,,m=ext,n=alice,r=abc",
        b"n,,n=alice,r=abc,bogus",
        b"n,,n=alice,r=abc,=x",
        b"n,,alice,r=abc",
    ];
    for case in cases {
        let mut s = server(ScramHash::Sha256);
        let step = s.start(Some(case), None);
        // An empty initial response is treated as none: empty challenge.
        if case.is_empty() {
            assert_eq!(step, ServerStep::Challenge(Vec::new()));
            continue;
        }
        assert!(
            matches!(step, ServerStep::Failure(SaslError::Protocol(_))),
            "{:?} -> {step:?}",
            String::from_utf8_lossy(case)
        );
        // Once failed, nothing more is accepted.
        assert!(matches!(
            s.response(b"c=biws,r=abc,p=AAAA"),
            ServerStep::Failure(SaslError::Protocol(_))
        ));
    }
    // Extensions after r= are accepted and ignored.
    let mut s = server(ScramHash::Sha256);
    assert!(matches!(
        s.start(Some(b"n,,n=alice,r=abc,x=ext"), None),
        ServerStep::Challenge(_)
    ));
}

#[test]
fn malformed_client_final() {
    let good_proof = BASE64.encode([0u8; 32]);
    let nonce = "abcserversuffix456";
    let cases = [
        String::new(),
        "garbage".to_owned(),
        format!("c=biws,r={nonce}"),                 // missing proof
        format!("r={nonce},c=biws,p={good_proof}"),  // wrong order
        format!("r={nonce},p={good_proof}"),         // missing c=
        format!("c=biws,p={good_proof}"),            // missing r=
        format!("c=biws,r=abcWRONG,p={good_proof}"), // nonce mismatch
        format!("c=biws,r=abc,p={good_proof}"),      // truncated nonce
        format!("c=eSws,r={nonce},p={good_proof}"),  // c= is "y,,", header was "n,,"
        format!("c=cD10bHMtdW5pcXVlLCw=,r={nonce},p={good_proof}"), // p=tls-unique,,
        format!("c=!!!!,r={nonce},p={good_proof}"),  // bad base64 in c=
        format!("c=biws,r={nonce},p=!!!!"),          // bad base64 in p=
        format!("c=biws,r={nonce},p=AAAA"),          // proof too short
        format!("c=biws,r={nonce},p={}", BASE64.encode([0u8; 20])), // SHA-1 sized proof
        format!("c=biws,r={nonce},p={good_proof},x=1"), // proof not last
        format!("c=biws,r={nonce},bogus,p={good_proof}"), // malformed extension
        format!("c=biws,r={nonce},p={}", &good_proof[..good_proof.len() - 1]), // truncated base64
    ];
    for case in &cases {
        let (mut s, _) = server_awaiting_final(ScramHash::Sha256, "n");
        let step = s.response(case.as_bytes());
        assert!(
            matches!(step, ServerStep::Failure(SaslError::Protocol(_))),
            "{case:?} -> {step:?}"
        );
    }
    let (mut s, _) = server_awaiting_final(ScramHash::Sha256, "n");
    assert!(matches!(
        s.response(b"\xff"),
        ServerStep::Failure(SaslError::Protocol(_))
    ));
    // Well-formed with an extension but a wrong proof: Auth.
    let (mut s, _) = server_awaiting_final(ScramHash::Sha256, "n");
    let msg = format!("c=biws,r={nonce},x=ext,p={good_proof}");
    assert!(matches!(
        s.response(msg.as_bytes()),
        ServerStep::Failure(SaslError::Auth(_))
    ));
}

#[test]
fn malformed_server_first() {
    let n = "clientnonce123";
    let cases = [
        String::new(),
        "garbage".to_owned(),
        format!("r={n}xyz"),                       // truncated: missing s= and i=
        format!("r={n}xyz,s=c2FsdA=="),            // missing i=
        format!("r={n}xyz,i=4096"),                // missing s=
        format!("s=c2FsdA==,r={n}xyz,i=4096"),     // wrong order
        "r=otherxyz,s=c2FsdA==,i=4096".to_owned(), // nonce mismatch
        format!("r={n},s=c2FsdA==,i=4096"),        // server added nothing
        "r=clientnonce12,s=c2FsdA==,i=4096".to_owned(), // truncated client nonce
        format!("r={n}x y,s=c2FsdA==,i=4096"),     // invalid nonce character
        format!("r={n}xyz,s=!!!,i=4096"),          // bad base64
        format!("r={n}xyz,s=c2FsdA=,i=4096"),      // bad padding
        format!("r={n}xyz,s=c2FsdA==,i=0"),        // zero iterations
        format!("r={n}xyz,s=c2FsdA==,i=04096"),    // leading zero
        format!("r={n}xyz,s=c2FsdA==,i=-1"),
        format!("r={n}xyz,s=c2FsdA==,i=+4096"),
        format!("r={n}xyz,s=c2FsdA==,i=4k"),
        format!("r={n}xyz,s=c2FsdA==,i="),
        format!("r={n}xyz,s=c2FsdA==,i=1000001"), // above the DoS limit
        format!("r={n}xyz,s=c2FsdA==,i=4294967295"),
        format!("r={n}xyz,s=c2FsdA==,i=99999999999999999999"), // overflows u32
        format!("m=ext,r={n}xyz,s=c2FsdA==,i=4096"),           // mandatory extension
        format!("r={n}xyz,s=c2FsdA==,i=4096,bogus"),           // malformed extension
        format!("r={n}xyz,s=c2FsdA==,i=4096,"),
    ];
    for case in &cases {
        let mut c = client_after_first(ScramHash::Sha256);
        let r = c.challenge(case.as_bytes());
        assert!(is_protocol(&r), "{case:?} -> {r:?}");
        // Once failed, the client refuses to continue or to accept success.
        assert!(is_protocol(&c.challenge(b"v=AAAA")));
        assert!(matches!(
            c.outcome_ok(Some(b"v=AAAA")),
            Err(SaslError::Auth(_))
        ));
    }
    let mut c = client_after_first(ScramHash::Sha256);
    assert!(is_protocol(&c.challenge(b"\xff\xff")));
    // Extensions after i= are accepted.
    let mut c = client_after_first(ScramHash::Sha256);
    assert!(c
        .challenge(format!("r={n}xyz,s=c2FsdA==,i=16,x=ext").as_bytes())
        .is_ok());
}

#[test]
fn iteration_limit_is_configurable() {
    let v = &VECTORS[1];
    let mut c =
        ScramClient::new(v.hash, "user", "pencil", v.client_nonce).with_max_iterations(4095);
    c.initial_response().unwrap();
    assert!(is_protocol(&c.challenge(v.server_first.as_bytes())));
    let mut c =
        ScramClient::new(v.hash, "user", "pencil", v.client_nonce).with_max_iterations(4096);
    c.initial_response().unwrap();
    assert!(c.challenge(v.server_first.as_bytes()).is_ok());
}

#[test]
fn bad_server_signature() {
    for v in &VECTORS {
        let wrong = format!("v={}", BASE64.encode(vec![0x55; v.hash.output_len()]));
        let short = "v=AAAA".to_owned();
        for bad in [wrong, short] {
            // In the outcome.
            let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
            c.initial_response().unwrap();
            c.challenge(v.server_first.as_bytes()).unwrap();
            assert!(
                matches!(c.outcome_ok(Some(bad.as_bytes())), Err(SaslError::Auth(_))),
                "{bad}"
            );
            assert!(!c.server_verified());
            // In a challenge.
            let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
            c.initial_response().unwrap();
            c.challenge(v.server_first.as_bytes()).unwrap();
            assert!(
                matches!(c.challenge(bad.as_bytes()), Err(SaslError::Auth(_))),
                "{bad}"
            );
            assert!(matches!(c.outcome_ok(None), Err(SaslError::Auth(_))));
        }
        // The signature of the other RFC vector (right length for neither or wrong key).
        let mut c = ScramClient::new(v.hash, "user", "wrong", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        assert!(matches!(
            c.outcome_ok(Some(v.server_final.as_bytes())),
            Err(SaslError::Auth(_))
        ));
    }
}

#[test]
fn malformed_server_final() {
    let v = &VECTORS[1];
    for bad in [
        "",
        "garbage",
        "x=abc",
        "v=!!!",
        "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
        "\u{0}",
    ] {
        let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
        c.initial_response().unwrap();
        c.challenge(v.server_first.as_bytes()).unwrap();
        let r = c.challenge(bad.as_bytes());
        assert!(is_protocol(&r), "{bad:?} -> {r:?}");
    }
    // A correct signature followed by a malformed extension.
    let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
    c.initial_response().unwrap();
    c.challenge(v.server_first.as_bytes()).unwrap();
    assert!(is_protocol(&c.outcome_ok(Some(
        format!("{},junk", v.server_final).as_bytes()
    ))));
}

#[test]
fn server_error_attribute() {
    let v = &VECTORS[0];
    // e= as the server-final message, in the outcome or a challenge.
    let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
    c.initial_response().unwrap();
    c.challenge(v.server_first.as_bytes()).unwrap();
    let err = c.outcome_ok(Some(b"e=invalid-proof")).unwrap_err();
    assert_eq!(
        err,
        SaslError::Auth("server reported error: invalid-proof".into())
    );

    let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
    c.initial_response().unwrap();
    c.challenge(v.server_first.as_bytes()).unwrap();
    assert!(matches!(
        c.challenge(b"e=other-error"),
        Err(SaslError::Auth(_))
    ));

    // e= instead of server-first.
    let mut c = client_after_first(ScramHash::Sha1);
    assert!(matches!(
        c.challenge(b"e=unknown-user"),
        Err(SaslError::Auth(_))
    ));

    // Long error values are truncated in the message.
    let mut c = client_after_first(ScramHash::Sha1);
    let long = format!("e={}", "x".repeat(10_000));
    let err = c.challenge(long.as_bytes()).unwrap_err();
    assert!(err.message().len() < 400);
}

#[test]
fn client_state_errors() {
    // Success before anything happened.
    let mut c = client(ScramHash::Sha256, "alice", "correct horse");
    assert!(matches!(c.outcome_ok(None), Err(SaslError::Auth(_))));
    // Success after client-first only.
    let mut c = client_after_first(ScramHash::Sha256);
    assert!(matches!(
        c.outcome_ok(Some(b"v=AAAA")),
        Err(SaslError::Auth(_))
    ));
    // Success without the server signature.
    let v = &VECTORS[1];
    let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
    c.initial_response().unwrap();
    c.challenge(v.server_first.as_bytes()).unwrap();
    assert!(matches!(c.outcome_ok(Some(b"")), Err(SaslError::Auth(_))));
    // Non-empty challenge before client-first; second initial response;
    // challenge after verification.
    let mut c = client(ScramHash::Sha256, "alice", "correct horse");
    assert!(is_protocol(&c.challenge(b"r=x")));
    let mut c = client_after_first(ScramHash::Sha256);
    assert!(is_protocol(&c.initial_response()));
    let mut c = ScramClient::new(v.hash, "user", "pencil", v.client_nonce);
    c.initial_response().unwrap();
    c.challenge(v.server_first.as_bytes()).unwrap();
    c.challenge(v.server_final.as_bytes()).unwrap();
    assert!(is_protocol(&c.challenge(v.server_final.as_bytes())));
}

#[test]
fn client_config_errors() {
    for nonce in ["", "has,comma", "has space", "é"] {
        let mut c = ScramClient::new(ScramHash::Sha256, "alice", "pw", nonce);
        assert!(
            matches!(c.initial_response(), Err(SaslError::Sys(_))),
            "{nonce:?}"
        );
    }
    let mut c = ScramClient::new(ScramHash::Sha256, "", "pw", "n");
    assert!(matches!(c.initial_response(), Err(SaslError::Sys(_))));
    let mut c = ScramClient::new(ScramHash::Sha256, "a\0b", "pw", "n");
    assert!(matches!(c.initial_response(), Err(SaslError::Sys(_))));
}

#[test]
fn server_state_and_config_errors() {
    let mut s = server(ScramHash::Sha256);
    assert!(matches!(
        s.response(b"n,,n=alice,r=abc"),
        ServerStep::Failure(SaslError::Protocol(_))
    ));
    let mut s = server(ScramHash::Sha256);
    assert!(matches!(
        s.start(Some(b"n,,n=alice,r=abc"), None),
        ServerStep::Challenge(_)
    ));
    assert!(matches!(
        s.start(Some(b"n,,n=alice,r=abc"), None),
        ServerStep::Failure(SaslError::Protocol(_))
    ));

    // Final-in-challenge: the acknowledgement must be empty.
    let v = &VECTORS[1];
    let mut s =
        ScramServer::new(v.hash, rfc_users(v), v.server_suffix).with_final_in_challenge(true);
    s.start(Some(v.client_first.as_bytes()), None);
    assert!(matches!(
        s.response(v.client_final.as_bytes()),
        ServerStep::Challenge(_)
    ));
    assert!(matches!(
        s.response(b"x"),
        ServerStep::Failure(SaslError::Protocol(_))
    ));

    // Invalid server nonce suffix.
    for suffix in ["", "a,b", "a b"] {
        let mut s = ScramServer::new(ScramHash::Sha256, users(), suffix);
        assert!(matches!(
            s.start(Some(b"n,,n=alice,r=abc"), None),
            ServerStep::Failure(SaslError::Sys(_))
        ));
    }

    // Invalid stored credentials.
    struct Broken;
    impl Authenticator for Broken {
        fn scram_credentials(&self, user: &str, hash: ScramHash) -> Option<ScramCredentials> {
            let mut c = ScramCredentials::derive(hash, "pw", b"salt", 1);
            match user {
                "zero" => c.iterations = 0,
                "short" => c.stored_key.truncate(3),
                _ => c.server_key.clear(),
            }
            Some(c)
        }
    }
    for user in ["zero", "short", "other"] {
        let mut s = ScramServer::new(ScramHash::Sha1, Arc::new(Broken), "sfx");
        let msg = format!("n,,n={user},r=abc");
        assert!(
            matches!(
                s.start(Some(msg.as_bytes()), None),
                ServerStep::Failure(SaslError::Sys(_))
            ),
            "{user}"
        );
    }

    // The default Authenticator knows no SCRAM users.
    struct Nobody;
    impl Authenticator for Nobody {}
    let mut s = ScramServer::new(ScramHash::Sha256, Arc::new(Nobody), "sfx");
    assert!(matches!(
        s.start(Some(b"n,,n=alice,r=abc"), None),
        ServerStep::Failure(SaslError::Auth(_))
    ));
}

#[test]
fn credentials() {
    let v = &VECTORS[0];
    let salt = BASE64.decode(v.salt_b64).unwrap();
    let creds = ScramCredentials::derive(ScramHash::Sha1, "pencil", &salt, 4096);
    assert_eq!(creds.iterations, 4096);
    assert_eq!(creds.stored_key.len(), 20);
    assert_eq!(creds.server_key.len(), 20);
    assert!(creds.verify_password(ScramHash::Sha1, "pencil"));
    assert!(!creds.verify_password(ScramHash::Sha1, "pencil2"));
    assert!(!creds.verify_password(ScramHash::Sha256, "pencil"));
    assert_eq!(
        ScramCredentials::derive(ScramHash::Sha256, "x", b"s", 0).iterations,
        1
    );
}

#[test]
fn hash_names() {
    assert_eq!(
        ScramHash::from_mechanism_name("SCRAM-SHA-256"),
        Some(ScramHash::Sha256)
    );
    assert_eq!(
        ScramHash::from_mechanism_name("scram-sha-1"),
        Some(ScramHash::Sha1)
    );
    assert_eq!(ScramHash::from_mechanism_name("SCRAM-SHA-256-PLUS"), None);
    assert_eq!(ScramHash::Sha1.mechanism_name(), SCRAM_SHA_1);
    assert_eq!(ScramHash::Sha256.output_len(), 32);
    assert_eq!(nonce_from_bytes(&[0xfb; 3]), "+/v7");
}

#[test]
fn debug_redaction() {
    let password = "pencil-SECRET-42";
    let mut c = ScramClient::new(ScramHash::Sha256, "alice", password, "nonce");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(password), "{dbg}");
    assert!(dbg.contains("alice"));
    c.initial_response().unwrap();
    c.challenge(b"r=noncexyz,s=c2FsdA==,i=1").unwrap();
    assert!(!format!("{c:?}").contains(password));

    let creds = ScramCredentials::derive(ScramHash::Sha256, password, b"salt", 2);
    let dbg = format!("{creds:?}");
    assert!(!dbg.contains(password));
    for key in [&creds.stored_key, &creds.server_key] {
        assert!(!dbg.contains(&BASE64.encode(key)), "{dbg}");
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!dbg.contains(&hex));
        assert!(!dbg.contains(&format!("{key:?}")));
    }

    let users = StaticUsers::new().with_user("alice", password, b"salt", 2);
    assert!(!format!("{users:?}").contains(password));
    let s = ScramServer::new(ScramHash::Sha256, Arc::new(users), "sfx");
    assert!(!format!("{s:?}").contains(password));
}

#[test]
fn mechanisms_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<ScramClient>();
    assert_send::<ScramServer>();
}

proptest! {
    #[test]
    fn server_never_panics_on_client_first(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut s = server(ScramHash::Sha256);
        let _ = s.start(Some(&msg), None);
        let _ = s.response(&msg);
    }

    #[test]
    fn server_never_panics_on_client_final(suffix in "[ -~]{0,80}") {
        let (mut s, nonce) = server_awaiting_final(ScramHash::Sha1, "n");
        let msg = format!("c=biws,r={nonce}{suffix}");
        let _ = s.response(msg.as_bytes());
        let (mut s, _) = server_awaiting_final(ScramHash::Sha1, "n");
        let _ = s.response(suffix.as_bytes());
    }

    #[test]
    fn client_never_panics_on_server_messages(suffix in "[ -~]{0,60}", raw in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut c = client_after_first(ScramHash::Sha256);
        let _ = c.challenge(format!("r=clientnonce123{suffix}").as_bytes());
        let mut c = client_after_first(ScramHash::Sha256);
        let _ = c.challenge(&raw);
        let _ = c.outcome_ok(Some(&raw));
    }

    #[test]
    fn saslname_round_trips(name in "\\PC{1,20}") {
        prop_assume!(!name.contains('\0'));
        prop_assert_eq!(unescape_saslname(&escape_saslname(&name)).unwrap(), name);
    }
}
