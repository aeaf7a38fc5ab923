//! The GSSAPI mechanism of amqp-engine over real MIT Kerberos contexts, client against
//! server in one process, on a throwaway realm: the login and each error cause.

mod realm;

use std::sync::Arc;
use std::time::Duration;

use amqp_engine::sasl::{
    ClientMechanism, GssClientProvider, GssServerProvider, GssapiClient, GssapiServer, SaslError,
    ServerMechanism, ServerStep,
};
use amqp_gssapi::{KerberosClient, KerberosServer};
use realm::Realm;

/// Runs client and server mechanisms against each other; the server's final step.
fn login(target: &str) -> Result<String, SaslError> {
    let client_ctx = KerberosClient.initiator(target);
    let mut client = GssapiClient::new(client_ctx, String::new());
    let mut server = GssapiServer::new(KerberosServer::new().acceptor());
    let first = client.initial_response()?;
    let mut step = server.start(first.as_deref(), Some("localhost"));
    for _ in 0..10 {
        match step {
            ServerStep::Challenge(c) => step = server.response(&client.challenge(&c)?),
            ServerStep::Success { identity, .. } => {
                client.outcome_ok(None)?;
                return Ok(identity);
            }
            ServerStep::Failure(e) => return Err(e),
        }
    }
    panic!("GSSAPI exchange did not finish");
}

#[test]
fn login_with_a_ticket_authenticates_the_principal() {
    let Some(_realm) = Realm::start() else { return };
    assert!(KerberosClient.has_credentials());
    assert_eq!(login("amqp@localhost").unwrap(), "alice@AMQP.TEST");
    // Mechanisms are independent per exchange.
    assert_eq!(login("amqp@localhost").unwrap(), "alice@AMQP.TEST");
}

#[test]
fn no_ticket_is_an_auth_error_naming_kinit() {
    let Some(realm) = Realm::start() else { return };
    realm.use_ccache("missing.ccache");
    assert!(!KerberosClient.has_credentials());
    let e = login("amqp@localhost").unwrap_err();
    assert!(
        matches!(&e, SaslError::Auth(m) if m.starts_with("GSSAPI: no Kerberos ticket")),
        "{e}"
    );
}

#[test]
fn expired_ticket_is_an_auth_error_naming_the_expiry() {
    let Some(realm) = Realm::start() else { return };
    std::thread::sleep(Duration::from_millis(2100));
    realm.use_ccache("expired.ccache");
    assert!(!KerberosClient.has_credentials());
    let e = login("amqp@localhost").unwrap_err();
    assert!(
        matches!(&e, SaslError::Auth(m) if m.starts_with("GSSAPI: the Kerberos ticket has expired")),
        "{e}"
    );
}

#[test]
fn unknown_service_principal_is_an_auth_error() {
    let Some(_realm) = Realm::start() else { return };
    // An IP address is not canonicalised to a name: amqp/127.0.0.1 does not exist.
    for target in ["amqp@127.0.0.1", "nosuch@localhost"] {
        let e = login(target).unwrap_err();
        assert!(
            matches!(&e, SaslError::Auth(m)
                if m.starts_with("GSSAPI: the KDC does not know the service principal")),
            "{target}: {e}"
        );
    }
}

#[test]
fn wrong_keytab_is_an_auth_error_naming_the_keytab() {
    let Some(realm) = Realm::start() else { return };
    realm.use_keytab("wrong.keytab");
    let e = login("amqp@localhost").unwrap_err();
    assert!(
        matches!(&e, SaslError::Auth(m)
            if m.starts_with("GSSAPI: no key for the service principal in the keytab")),
        "{e}"
    );
    realm.use_keytab("missing.keytab");
    let e = login("amqp@localhost").unwrap_err();
    assert!(
        matches!(&e, SaslError::Auth(m) if m.contains("keytab")),
        "{e}"
    );
}

#[test]
fn factories_plug_into_the_sasl_configs() {
    let client = amqp_gssapi::client_mechanism();
    assert_eq!(client.name(), "GSSAPI");
    let server = amqp_gssapi::server_mechanism(KerberosServer::new());
    assert_eq!(server.name(), "GSSAPI");
    let _: Arc<dyn amqp_engine::sasl::ServerMechanismFactory> = server;
}
