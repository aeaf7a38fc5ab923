//! A throwaway Kerberos realm per test (`scripts/krb5-realm.sh`), shared by the GSSAPI tests
//! of amqp-gssapi and the runtime crates (included with `#[path]`).
//!
//! The realm's settings reach MIT krb5 through the process environment (`KRB5_CONFIG`,
//! `KRB5CCNAME`, `KRB5_KTNAME`), so tests that use one hold [`Realm::start`]'s lock: they run
//! one at a time within a test binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

static LOCK: Mutex<()> = Mutex::new(());
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// `scripts/krb5-realm.sh` of the workspace the including crate belongs to.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("scripts/krb5-realm.sh"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("scripts/krb5-realm.sh"))
}

/// A running realm; stopped (KDC killed by its PID, files deleted) on drop.
pub(crate) struct Realm {
    /// The realm's directory (keytabs, ccaches, logs).
    pub(crate) dir: PathBuf,
    _guard: MutexGuard<'static, ()>,
}

impl Realm {
    /// Starts a realm and points this process at it (client ccache: alice's ticket; server
    /// keytab: amqp/localhost). `None`, with a loud message, when it cannot be set up outside
    /// CI; under `CI=true` that is a failure.
    pub(crate) fn start() -> Option<Realm> {
        let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!(
            "amqp-krb5-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(&dir)
            .output();
        let out = match out {
            Ok(o) if o.status.success() => o,
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                let _ = Command::new("bash")
                    .arg(script())
                    .arg("down")
                    .arg(&dir)
                    .status();
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("cannot set up the Kerberos test realm under CI: {why}");
                }
                eprintln!(
                    "\n!!!!! SKIPPING a GSSAPI test: no Kerberos realm ({}). \
                     Run scripts/krb5-realm.sh install. !!!!!\n",
                    why.trim()
                );
                return None;
            }
        };
        let env: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for key in [
            "KRB5_CONFIG",
            "KRB5_KDC_PROFILE",
            "KRB5CCNAME",
            "KRB5_KTNAME",
        ] {
            std::env::set_var(key, &env[key]);
        }
        Some(Realm { dir, _guard: guard })
    }

    /// Makes the client use this ccache file of the realm (`ccache`, `expired.ccache`, or a
    /// missing one).
    pub(crate) fn use_ccache(&self, file: &str) {
        std::env::set_var(
            "KRB5CCNAME",
            format!("FILE:{}", self.dir.join(file).display()),
        );
    }

    /// Makes the server use this keytab file of the realm (`amqp.keytab`, `wrong.keytab`).
    pub(crate) fn use_keytab(&self, file: &str) {
        std::env::set_var(
            "KRB5_KTNAME",
            format!("FILE:{}", self.dir.join(file).display()),
        );
    }
}

impl Drop for Realm {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}
