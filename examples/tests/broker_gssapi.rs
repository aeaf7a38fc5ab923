//! The example broker with `--gssapi --keytab`: Proton's example clients log in with Kerberos
//! (alice's ticket, nothing to configure) on a throwaway realm; without a ticket they fail
//! once (the error texts are checked in the adapters' GSSAPI suite).

mod common;
#[path = "../../adapters/gssapi/tests/realm/mod.rs"]
mod realm;

use std::time::Duration;

use common::{broker, run, sequence_lines, Proc, LIMIT};
use realm::Realm;

#[test]
fn broker_gssapi_with_keytab_serves_kerberos_clients() {
    let Some(realm) = Realm::start() else { return };
    // The broker must use --keytab, not the environment's keytab.
    realm.use_keytab("wrong.keytab");
    let keytab = realm.dir.join("amqp.keytab").display().to_string();
    let (b, port) = broker(&["--gssapi", "--keytab", &keytab, "-v"]);
    // The host name is the one in the service principal, amqp/localhost.
    let a = format!("localhost:{port}/examples");
    let o = run("simple_send", &["-a", &a, "-m", "10"]);
    assert_eq!(o.stdout, ["all messages confirmed"]);
    let o = run("simple_recv", &["-a", &a, "-m", "10"]);
    assert_eq!(o.stdout, sequence_lines(10));

    // No ticket: the login fails and, being an authentication failure, is not retried, so
    // simple_send (which prints no transport errors, like Proton's) finishes at once.
    realm.use_ccache("missing.ccache");
    let o = Proc::example("simple_send", &["-a", &a, "-m", "1"]).wait(LIMIT);
    assert!(o.stdout.is_empty(), "{:?}", o.stdout);
    assert!(o.elapsed < Duration::from_secs(10), "{:?}", o.elapsed);
    drop(b);
}
