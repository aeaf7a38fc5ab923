//! The python-qpid-proton built against Cyrus SASL (`scripts/proton-cyrus.sh`) that the Cyrus
//! interop tests drive.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The python-qpid-proton version the script builds (and the other interop tests use).
pub const PROTON_VERSION: &str = "0.40.0";

/// `$PROTON_CYRUS_PYTHON`, else the venv `scripts/proton-cyrus.sh` builds by default, if its
/// proton has Cyrus (`SASL.extended()`); otherwise why not.
pub fn cyrus_python() -> Result<String, String> {
    let py = match std::env::var("PROTON_CYRUS_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            let cache = std::env::var("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .map_err(|_| "neither PROTON_CYRUS_PYTHON nor HOME is set".to_string())?;
            cache
                .join(format!("amqp-rs/proton-cyrus-{PROTON_VERSION}/bin/python"))
                .display()
                .to_string()
        }
    };
    let out = Command::new(&py)
        .args(["-c", "import proton; print(proton.SASL.extended())"])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("{py}: {e}"))?;
    if String::from_utf8_lossy(&out.stdout).trim() != "True" {
        return Err(format!(
            "{py}: proton is missing or built without Cyrus SASL (SASL.extended() is not True)"
        ));
    }
    Ok(py)
}
