use super::*;
use crate::messaging::connect_config::*;

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

fn config(json: &str) -> ConnectConfig {
    match parse_connect_config(json) {
        Ok(c) => c,
        Err(e) => panic!("{json} should parse: {e}"),
    }
}

fn config_err(json: &str) -> OptionsError {
    match parse_connect_config(json) {
        Ok(c) => panic!("{json} should fail, got {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn defaults_match_proton() {
    let o = ConnectOptions::default();
    assert!(o.url.is_none() && o.urls.is_empty());
    assert!(matches!(o.reconnect, Reconnect::Default));
    assert_eq!(o.reconnect_limits, ReconnectLimits::default());
    assert!(o.sasl_enabled);
    assert!(o.allow_insecure_mechs);
    assert!(o.user.is_none() && o.password.is_none() && o.allowed_mechs.is_none());
    assert!(o.virtual_host.is_none() && o.sni.is_none() && o.container_id.is_none());
    assert!(o.heartbeat.is_none() && o.max_frame_size.is_none() && o.tls.is_none());
    assert!(o.offered_capabilities.is_empty() && o.desired_capabilities.is_empty());
    assert!(o.properties.is_empty());
    assert_eq!(TlsOptions::default().verify, VerifyMode::VerifyPeerName);
}

#[test]
fn builders_set_fields() {
    let o = ConnectOptions::new()
        .urls([url("amqp://a"), url("amqp://b")])
        .reconnect(false)
        .reconnect_limits(ReconnectLimits::none().with_max_attempts(4))
        .user("u")
        .password("p")
        .allowed_mechs("PLAIN")
        .allow_insecure_mechs(false)
        .sasl_enabled(false)
        .virtual_host("vh")
        .sni("sni.example")
        .heartbeat(Duration::from_secs(5))
        .max_frame_size(4096)
        .container_id("job-processor-3")
        .offered_capabilities(["ANONYMOUS-RELAY"])
        .desired_capabilities(vec![String::from("DELAYED_DELIVERY")])
        .property("product", "amqp-rs")
        .property("version", "0")
        .tls(TlsOptions::new().verify(VerifyMode::VerifyPeer));
    assert_eq!(o.urls.len(), 2);
    assert!(!o.reconnect.is_enabled());
    assert_eq!(o.reconnect_limits.max_attempts, Some(4));
    assert_eq!(o.user.as_deref(), Some("u"));
    assert_eq!(o.password.as_deref(), Some("p"));
    assert_eq!(o.allowed_mechs.as_deref(), Some("PLAIN"));
    assert!(!o.allow_insecure_mechs && !o.sasl_enabled);
    assert_eq!(o.virtual_host.as_deref(), Some("vh"));
    assert_eq!(o.sni.as_deref(), Some("sni.example"));
    assert_eq!(o.heartbeat, Some(Duration::from_secs(5)));
    assert_eq!(o.max_frame_size, Some(4096));
    assert_eq!(o.container_id.as_deref(), Some("job-processor-3"));
    assert_eq!(o.offered_capabilities, ["ANONYMOUS-RELAY"]);
    assert_eq!(o.desired_capabilities, ["DELAYED_DELIVERY"]);
    assert_eq!(o.properties.len(), 2);
    assert_eq!(
        o.tls.as_ref().map(|t| t.verify),
        Some(VerifyMode::VerifyPeer)
    );
    assert!(matches!(
        ConnectOptions::new()
            .reconnect(crate::messaging::Backoff::new())
            .reconnect,
        Reconnect::Custom(_)
    ));
}

#[test]
fn validate_targets() {
    let a = url("amqp://a");
    let b = url("amqp://b");
    assert_eq!(
        ConnectOptions::new().validate(),
        Ok(ResolvedTargets::UseConfig)
    );
    assert_eq!(
        ConnectOptions::new().url(a.clone()).validate(),
        Ok(ResolvedTargets::Urls(vec![a.clone()]))
    );
    assert_eq!(
        ConnectOptions::new()
            .urls([a.clone(), b.clone()])
            .validate(),
        Ok(ResolvedTargets::Urls(vec![a.clone(), b.clone()]))
    );
    assert_eq!(
        ConnectOptions::new()
            .url(a.clone())
            .urls([b.clone()])
            .validate(),
        Err(OptionsError::UrlAndUrls)
    );
    // An empty urls list is the same as none.
    assert_eq!(
        ConnectOptions::new()
            .url(a.clone())
            .urls(Vec::<Url>::new())
            .validate(),
        Ok(ResolvedTargets::Urls(vec![a.clone()]))
    );
    // Strings are accepted as for `url`; an unparsable one is an error, not dropped.
    assert_eq!(
        ConnectOptions::new()
            .urls(["amqp://a", "amqp://b"])
            .validate(),
        Ok(ResolvedTargets::Urls(vec![a.clone(), b.clone()]))
    );
    assert!(matches!(
        ConnectOptions::new()
            .urls(["amqp://a", "nope://b"])
            .validate(),
        Err(OptionsError::Url(_))
    ));
    assert_eq!(
        ConnectOptions::new()
            .url(a.clone())
            .max_frame_size(511)
            .validate(),
        Err(OptionsError::MaxFrameSizeTooSmall(511))
    );
    assert!(ConnectOptions::new()
        .url(a)
        .max_frame_size(512)
        .validate()
        .is_ok());
}

#[test]
fn effective_values_follow_proton_connect() {
    let plain = url("amqp://broker.example");
    let with_creds = url("amqp://urluser:urlpw@broker.example");
    let o = ConnectOptions::new().user("optuser").password("optpw");
    assert_eq!(o.effective_user(&plain), Some("optuser"));
    assert_eq!(o.effective_password(&plain), Some("optpw"));
    assert_eq!(o.effective_user(&with_creds), Some("urluser"));
    assert_eq!(o.effective_password(&with_creds), Some("urlpw"));
    assert_eq!(ConnectOptions::new().effective_user(&plain), None);

    assert_eq!(o.effective_virtual_host(&plain), "broker.example");
    assert_eq!(o.effective_sni(&plain), "broker.example");
    let o = o.virtual_host("vhost");
    assert_eq!(o.effective_virtual_host(&plain), "vhost");
    assert_eq!(o.effective_sni(&plain), "vhost");
    let o = o.sni("sni");
    assert_eq!(o.effective_sni(&plain), "sni");
    assert_eq!(o.effective_virtual_host(&plain), "vhost");
    // Empty strings count as unset, as Proton's truthiness does.
    let o = ConnectOptions::new().virtual_host("").sni("");
    assert_eq!(o.effective_virtual_host(&plain), "broker.example");
    assert_eq!(o.effective_sni(&plain), "broker.example");

    assert_eq!(ConnectOptions::new().effective_heartbeat(), None);
    let zero = ConnectOptions::new().heartbeat(Duration::ZERO);
    assert_eq!(zero.effective_heartbeat(), None);
    let hb = ConnectOptions::new().heartbeat(Duration::from_secs(1));
    assert_eq!(hb.effective_heartbeat(), Some(Duration::from_secs(1)));
}

#[test]
fn allowed_mechs_parsing() {
    let o = ConnectOptions::new().allowed_mechs("  SCRAM-SHA-256\tPLAIN  ANONYMOUS ");
    assert_eq!(
        o.allowed_mechs_list(),
        Some(vec!["SCRAM-SHA-256", "PLAIN", "ANONYMOUS"])
    );
    assert_eq!(
        ConnectOptions::new()
            .allowed_mechs("   ")
            .allowed_mechs_list(),
        None
    );
    assert_eq!(ConnectOptions::new().allowed_mechs_list(), None);
}

#[test]
fn debug_redacts_secrets() {
    let o = ConnectOptions::new()
        .url(url("amqp://u:urlsecret1@h"))
        .password("optsecret2")
        .tls(TlsOptions::new().client_key_pem("-----BEGIN PRIVATE KEY-----keysecret3"));
    let s = format!("{o:?} {o:#?}");
    for secret in ["urlsecret1", "optsecret2", "keysecret3", "PRIVATE KEY"] {
        assert!(!s.contains(secret), "{secret} in {s}");
    }
    assert!(s.contains("***"));
    let c = config(r#"{"user": "u", "password": "cfgsecret4"}"#);
    let s = format!("{c:?}");
    assert!(!s.contains("cfgsecret4") && s.contains("***"), "{s}");
    assert_eq!(
        format!("{:?}", PemSource::File("a.pem".into())),
        "File(\"a.pem\")"
    );
    assert_eq!(
        format!("{:?}", PemSource::Pem("abc".into())),
        "Pem(<3 bytes>)"
    );
}

#[test]
fn tls_builders() {
    let t = TlsOptions::new()
        .ca_pem("CA")
        .client_cert_pem("CERT")
        .client_key_file("key.pem");
    assert_eq!(t.ca, Some(PemSource::Pem("CA".into())));
    assert_eq!(t.client_cert, Some(PemSource::Pem("CERT".into())));
    assert_eq!(t.client_key, Some(PemSource::File("key.pem".into())));
    let t = t
        .ca_file("ca.pem")
        .client_cert_file("c.pem")
        .client_key_pem("K");
    assert_eq!(t.ca, Some(PemSource::File("ca.pem".into())));
    assert_eq!(t.client_cert, Some(PemSource::File("c.pem".into())));
    assert_eq!(t.client_key, Some(PemSource::Pem("K".into())));
}

#[test]
fn config_empty_object_is_proton_default() {
    let c = config("{}");
    assert_eq!(c, ConnectConfig::default());
    assert_eq!(c.to_url().to_string(), "amqps://localhost:5671");
    assert_eq!(c.sasl, SaslConfig::default());
    assert!(c.sasl.enabled);
    assert_eq!(c.tls, Some(TlsOptions::default()));
    assert!(c.user.is_none() && c.password.is_none());
    // Whitespace and comments only around the object.
    assert_eq!(
        config(" // nothing\n { /* at all */ } \n"),
        ConnectConfig::default()
    );
}

#[test]
fn config_full_document() {
    let text = r#"
    // Proton's documented schema, every key given.
    {
      "scheme": "amqps",   // [string] "amqp" (no TLS) or "amqps"
      "host": "broker.example", /* DNS or IP address */
      "port": "amqps",
      "user": "alice",
      "password": "secret",
      "sasl": {
        "enable": true,
        "mechanisms": ["SCRAM-SHA-256", "PLAIN"],
        "allow_insecure": false
      },
      "tls": {
        "cert": "/etc/pki/client.pem",
        "key": "/etc/pki/client.key",
        "ca": "/etc/pki/ca.pem",
        "verify": true
      },
      "unknown": {"ignored": [1, 2, 3]}
    }"#;
    let c = config(text);
    assert_eq!(c.url.to_string(), "amqps://broker.example:5671");
    assert_eq!(c.user.as_deref(), Some("alice"));
    assert_eq!(c.password.as_deref(), Some("secret"));
    assert_eq!(
        c.sasl,
        SaslConfig {
            enabled: true,
            mechanisms: Some("SCRAM-SHA-256 PLAIN".into()),
            allow_insecure: Some(false),
        }
    );
    assert_eq!(
        c.tls,
        Some(TlsOptions {
            ca: Some(PemSource::File("/etc/pki/ca.pem".into())),
            client_cert: Some(PemSource::File("/etc/pki/client.pem".into())),
            client_key: Some(PemSource::File("/etc/pki/client.key".into())),
            verify: VerifyMode::VerifyPeerName,
        })
    );
    assert_eq!(c.clone().into_url(), c.to_url());
}

#[test]
fn config_scheme_host_port() {
    let c = config(r#"{"scheme": "amqp"}"#);
    assert_eq!(c.url.host_port(), "localhost:5672");
    assert!(c.tls.is_none());
    assert_eq!(config(r#"{"port": 1234}"#).url.port(), 1234);
    assert_eq!(config(r#"{"port": "1234"}"#).url.port(), 1234);
    assert_eq!(config(r#"{"port": "amqp"}"#).url.port(), 5672);
    assert_eq!(
        config(r#"{"scheme": "amqp", "port": "amqps"}"#).url.port(),
        5671
    );
    assert_eq!(config(r#"{"port": 0}"#).url.port(), 0);
    assert_eq!(config(r#"{"host": "[::1]"}"#).url.host_port(), "[::1]:5671");
    assert_eq!(config(r#"{"host": "::1"}"#).url.host(), "::1");
    assert_eq!(config(r#"{"host": ""}"#).url.host(), "localhost");
    assert_eq!(config(r#"{"host": "Broker"}"#).url.host(), "broker");
    // Nulls are absent values.
    let c = config(
        r#"{"scheme": null, "host": null, "port": null, "user": null,
                       "password": null, "sasl": null, "tls": null}"#,
    );
    assert_eq!(c, ConnectConfig::default());
}

#[test]
fn config_bad_values() {
    let value_err = |json: &str, key: &str| match config_err(json) {
        OptionsError::InvalidConfigValue { key: k, reason } => {
            assert_eq!(k, key, "{json}");
            assert!(!reason.is_empty());
        }
        other => panic!("{json}: unexpected {other:?}"),
    };
    value_err(r#"{"scheme": "http"}"#, "scheme");
    value_err(r#"{"scheme": "AMQP"}"#, "scheme");
    value_err(r#"{"port": 65536}"#, "port");
    value_err(r#"{"port": -1}"#, "port");
    value_err(r#"{"port": 56.5}"#, "port");
    value_err(r#"{"port": "http"}"#, "port");
    value_err(r#"{"port": "99999"}"#, "port");
    value_err(r#"{"host": "a b"}"#, "host");
    value_err(r#"{"host": "[::1"}"#, "host");
    value_err(r#"{"host": "::g"}"#, "host");
    value_err(
        r#"{"sasl": {"enable": true, "enabled": false}}"#,
        "sasl.enable",
    );

    let type_err = |json: &str, key: &str, expected: &str, found: &str| match config_err(json) {
        OptionsError::ConfigType {
            key: k,
            expected: e,
            found: f,
        } => assert_eq!((k, e, f), (key, expected, found), "{json}"),
        other => panic!("{json}: unexpected {other:?}"),
    };
    type_err(r#"{"scheme": 1}"#, "scheme", "string", "number");
    type_err(r#"{"host": []}"#, "host", "string", "array");
    type_err(r#"{"port": true}"#, "port", "string or number", "boolean");
    type_err(r#"{"user": 7}"#, "user", "string", "number");
    type_err(r#"{"password": {}}"#, "password", "string", "object");
    type_err(r#"{"sasl": true}"#, "sasl", "object", "boolean");
    type_err(
        r#"{"sasl": {"enable": "yes"}}"#,
        "sasl.enable",
        "boolean",
        "string",
    );
    type_err(
        r#"{"sasl": {"enabled": 1}}"#,
        "sasl.enabled",
        "boolean",
        "number",
    );
    type_err(
        r#"{"sasl": {"mechanisms": 1}}"#,
        "sasl.mechanisms",
        "string or array",
        "number",
    );
    type_err(
        r#"{"sasl": {"mechanisms": ["PLAIN", 1]}}"#,
        "sasl.mechanisms",
        "array of strings",
        "number",
    );
    type_err(
        r#"{"sasl": {"allow_insecure": "no"}}"#,
        "sasl.allow_insecure",
        "boolean",
        "string",
    );
    type_err(r#"{"tls": "yes"}"#, "tls", "object", "string");
    type_err(r#"{"tls": {"ca": 1}}"#, "tls.ca", "string", "number");
    type_err(
        r#"{"tls": {"cert": false}}"#,
        "tls.cert",
        "string",
        "boolean",
    );
    type_err(r#"{"tls": {"key": []}}"#, "tls.key", "string", "array");
    type_err(
        r#"{"tls": {"verify": "false"}}"#,
        "tls.verify",
        "boolean",
        "string",
    );
}

#[test]
fn config_malformed_json() {
    for bad in [
        "",
        "{",
        "{\"a\":}",
        "{'scheme': 'amqp'}",
        "{} {}",
        "/* open",
        "nul",
        "{\"a\" 1}",
    ] {
        match config_err(bad) {
            OptionsError::InvalidJson { message, .. } => assert!(!message.is_empty(), "{bad}"),
            other => panic!("{bad:?}: unexpected {other:?}"),
        }
    }
    match config_err("{\n  \"host\": \"h\",\n  oops\n}") {
        OptionsError::InvalidJson { line, column, .. } => assert_eq!((line, column), (3, 3)),
        other => panic!("unexpected {other:?}"),
    }
    for (bad, found) in [
        ("[]", "array"),
        ("42", "number"),
        ("\"x\"", "string"),
        ("null", "null"),
        ("true", "boolean"),
    ] {
        assert_eq!(
            config_err(bad),
            OptionsError::ConfigNotObject { found },
            "{bad}"
        );
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(matches!(
        config_err(&deep),
        OptionsError::InvalidJson { .. }
    ));
}

#[test]
fn config_sasl_variants() {
    assert!(!config(r#"{"sasl": {"enable": false}}"#).sasl.enabled);
    assert!(!config(r#"{"sasl": {"enabled": false}}"#).sasl.enabled);
    assert!(
        !config(r#"{"sasl": {"enable": false, "enabled": false}}"#)
            .sasl
            .enabled
    );
    assert!(config(r#"{"sasl": {}}"#).sasl.enabled);
    assert_eq!(
        config(r#"{"sasl": {"mechanisms": " PLAIN  ANONYMOUS "}}"#)
            .sasl
            .mechanisms
            .as_deref(),
        Some("PLAIN  ANONYMOUS")
    );
    assert_eq!(
        config(r#"{"sasl": {"mechanisms": ""}}"#).sasl.mechanisms,
        None
    );
    assert_eq!(
        config(r#"{"sasl": {"mechanisms": []}}"#).sasl.mechanisms,
        None
    );
    assert_eq!(
        config(r#"{"sasl": {"allow_insecure": true}}"#)
            .sasl
            .allow_insecure,
        Some(true)
    );
}

#[test]
fn config_tls_variants() {
    assert_eq!(
        config_err(r#"{"scheme": "amqp", "tls": {}}"#),
        OptionsError::TlsWithoutAmqps
    );
    assert_eq!(
        config_err(r#"{"scheme": "amqp", "tls": {"verify": false}}"#),
        OptionsError::TlsWithoutAmqps
    );
    assert!(config(r#"{"scheme": "amqp", "tls": null}"#).tls.is_none());
    let t = config(r#"{"tls": {"verify": false}}"#).tls.unwrap();
    assert_eq!(t.verify, VerifyMode::AnonymousPeer);
    let t = config(r#"{"tls": {"verify": true, "ca": ""}}"#)
        .tls
        .unwrap();
    assert_eq!(t, TlsOptions::default());
    let t = config(r#"{"tls": {"cert": "c.pem"}}"#).tls.unwrap();
    assert_eq!(t.client_cert, Some(PemSource::File("c.pem".into())));
    assert_eq!(t.client_key, None);
}

#[test]
fn config_comments() {
    assert_eq!(strip_json_comments("a // b\nc"), "a  \nc");
    assert_eq!(strip_json_comments("a /* b\n b */c"), "a  c");
    assert_eq!(
        strip_json_comments("\"//not\" '/*not*/'"),
        "\"//not\" '/*not*/'"
    );
    assert_eq!(
        strip_json_comments(r#""esc\"//still string" // c"#),
        r#""esc\"//still string"  "#
    );
    assert_eq!(strip_json_comments("a /* open"), "a /* open");
    assert_eq!(strip_json_comments("\"open // x"), "\"open // x");
    assert_eq!(strip_json_comments("é//ü\né"), "é \né");
    assert_eq!(strip_json_comments("/**/"), " ");
    assert_eq!(strip_json_comments("//"), " ");
    let c = config(
        r#"{ "user": "a//b /* c */", // trailing
             /* block */ "password": "p" }"#,
    );
    assert_eq!(c.user.as_deref(), Some("a//b /* c */"));
    assert_eq!(c.password.as_deref(), Some("p"));
}

#[test]
fn config_apply_overrides_like_proton() {
    let mut o = ConnectOptions::new()
        .user("opt-user")
        .password("opt-pw")
        .sasl_enabled(false)
        .allowed_mechs("PLAIN")
        .heartbeat(Duration::from_secs(3))
        .tls(TlsOptions::new().ca_file("mine.pem"));
    assert_eq!(o.validate(), Ok(ResolvedTargets::UseConfig));
    config(
        r#"{"host": "broker", "user": "cfg-user", "password": "cfg-pw",
            "sasl": {"mechanisms": "SCRAM-SHA-256", "allow_insecure": false},
            "tls": {"ca": "ca.pem"}}"#,
    )
    .apply(&mut o);
    assert_eq!(
        o.validate(),
        Ok(ResolvedTargets::Urls(vec![url("amqps://broker:5671")]))
    );
    assert_eq!(o.user.as_deref(), Some("cfg-user"));
    assert_eq!(o.password.as_deref(), Some("cfg-pw"));
    assert!(
        o.sasl_enabled,
        "absent sasl.enable means true, as in Proton"
    );
    assert_eq!(o.allowed_mechs.as_deref(), Some("SCRAM-SHA-256"));
    assert!(!o.allow_insecure_mechs);
    assert_eq!(o.heartbeat, Some(Duration::from_secs(3)), "untouched");
    assert_eq!(
        o.tls.as_ref().and_then(|t| t.ca.clone()),
        Some(PemSource::File("ca.pem".into()))
    );

    // Nothing in the file: options keep their user, password, mechanisms, insecure flag.
    let mut o = ConnectOptions::new()
        .user("u")
        .password("p")
        .allowed_mechs("PLAIN")
        .allow_insecure_mechs(false)
        .tls(TlsOptions::new().ca_file("mine.pem"));
    config(r#"{"scheme": "amqp", "password": "ignored-without-user"}"#).apply(&mut o);
    assert_eq!(
        o.url.as_ref().map(Url::to_string).as_deref(),
        Some("amqp://localhost:5672")
    );
    assert_eq!(
        (o.user.as_deref(), o.password.as_deref()),
        (Some("u"), Some("p"))
    );
    assert_eq!(o.allowed_mechs.as_deref(), Some("PLAIN"));
    assert!(!o.allow_insecure_mechs);
    assert_eq!(
        o.tls.and_then(|t| t.ca),
        Some(PemSource::File("mine.pem".into()))
    );

    // A user without password keeps the options' password.
    let mut o = ConnectOptions::new().password("p").urls([url("amqp://x")]);
    config(r#"{"user": "cfg"}"#).apply(&mut o);
    assert_eq!(
        (o.user.as_deref(), o.password.as_deref()),
        (Some("cfg"), Some("p"))
    );
    assert!(o.urls.is_empty());
    assert!(matches!(o.validate(), Ok(ResolvedTargets::Urls(_))));
}

#[test]
fn search_paths() {
    assert_eq!(
        connect_config_search_paths(None, Some("/home/alice")),
        [
            "./connect.json",
            "/home/alice/.config/messaging/connect.json",
            "/etc/messaging/connect.json"
        ]
    );
    assert_eq!(
        connect_config_search_paths(None, Some("/home/bob/")),
        [
            "./connect.json",
            "/home/bob/.config/messaging/connect.json",
            "/etc/messaging/connect.json"
        ]
    );
    assert_eq!(
        connect_config_search_paths(None, Some("/")),
        [
            "./connect.json",
            "/.config/messaging/connect.json",
            "/etc/messaging/connect.json"
        ]
    );
    assert_eq!(
        connect_config_search_paths(None, None),
        ["./connect.json", "/etc/messaging/connect.json"]
    );
    assert_eq!(
        connect_config_search_paths(Some(""), Some("")),
        ["./connect.json", "/etc/messaging/connect.json"]
    );
    assert_eq!(
        connect_config_search_paths(Some("/x/c.json"), None),
        ["/x/c.json"]
    );
}

#[test]
fn errors_display() {
    let all = [
        OptionsError::UrlAndUrls,
        OptionsError::MaxFrameSizeTooSmall(1),
        OptionsError::InvalidJson {
            line: 1,
            column: 2,
            message: "m".into(),
        },
        OptionsError::ConfigNotObject { found: "array" },
        OptionsError::ConfigType {
            key: "k",
            expected: "string",
            found: "number",
        },
        OptionsError::InvalidConfigValue {
            key: "k",
            reason: "r".into(),
        },
        OptionsError::TlsWithoutAmqps,
    ];
    for e in all {
        assert!(!e.to_string().is_empty());
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn config_parser_never_panics(s in ".{0,80}") {
            let _ = parse_connect_config(&s);
            let _ = strip_json_comments(&s);
        }

        #[test]
        fn jsonish_never_panics(s in "[{}\\[\\]\":,/* \\n\\\\a-z0-9'.-]{0,80}") {
            let _ = parse_connect_config(&s);
        }

        #[test]
        fn structured_configs_never_panic(
            scheme in prop_oneof![Just("\"amqp\"".to_owned()), Just("\"amqps\"".to_owned()), Just("1".to_owned()), Just("null".to_owned()), ".{0,6}"],
            host in prop_oneof![Just("\"h\"".to_owned()), Just("\"::1\"".to_owned()), Just("[]".to_owned()), ".{0,8}"],
            port in prop_oneof![Just("5672".to_owned()), Just("\"amqps\"".to_owned()), Just("-3".to_owned()), Just("1e9".to_owned()), ".{0,6}"],
            tls in prop_oneof![Just("{}".to_owned()), Just("{\"verify\": false}".to_owned()), Just("null".to_owned()), Just("3".to_owned())],
        ) {
            let json = format!("{{\"scheme\": {scheme}, \"host\": {host}, \"port\": {port}, \"tls\": {tls}}}");
            let _ = parse_connect_config(&json);
        }

        #[test]
        fn stripping_without_comments_is_identity(s in "[^/]{0,60}") {
            prop_assert_eq!(strip_json_comments(&s), s);
        }
    }
}
