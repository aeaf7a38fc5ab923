//! A throw-away PKI generated at test time with rcgen: a CA, a server certificate for
//! `localhost` + `127.0.0.1`, one for `localhost` only, a client certificate (CN=alice), and an
//! unrelated CA nobody signed anything with.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM text of everything the tests need.
pub struct Pki {
    /// The CA that signed the server and client certificates.
    pub ca: String,
    /// A CA that signed nothing we use ("unknown CA").
    pub other_ca: String,
    /// Server certificate, SAN `localhost` and `127.0.0.1`.
    pub server_cert: String,
    /// Its key.
    pub server_key: String,
    /// Server certificate, SAN `localhost` only.
    pub localhost_cert: String,
    /// Its key.
    pub localhost_key: String,
    /// Client certificate, subject CN=alice.
    pub client_cert: String,
    /// Its key.
    pub client_key: String,
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name
        .push(DnType::OrganizationName, "amqp-rs tests");
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let key = KeyPair::generate().expect("CA key");
    (p.self_signed(&key).expect("self-sign CA"), key)
}

fn leaf(
    sans: &[&str],
    cn: &str,
    eku: ExtendedKeyUsagePurpose,
    issuer: &Certificate,
    issuer_key: &KeyPair,
) -> (String, String) {
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("leaf params");
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.use_authority_key_identifier_extension = true;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![eku];
    let key = KeyPair::generate().expect("leaf key");
    let cert = p.signed_by(&key, issuer, issuer_key).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

/// The PKI, generated once per test binary.
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (ca_cert, ca_key) = ca("amqp-rs test CA");
        let (other, _) = ca("some other CA");
        let (server_cert, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca_cert,
            &ca_key,
        );
        let (localhost_cert, localhost_key) = leaf(
            &["localhost"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca_cert,
            &ca_key,
        );
        let (client_cert, client_key) = leaf(
            &[],
            "alice",
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca_cert,
            &ca_key,
        );
        Pki {
            ca: ca_cert.pem(),
            other_ca: other.pem(),
            server_cert,
            server_key,
            localhost_cert,
            localhost_key,
            client_cert,
            client_key,
        }
    })
}

/// A fresh directory under the system temp dir holding the PEMs as files (for proton):
/// `ca.pem`, `server.pem`, `server.key`, `localhost.pem`, `localhost.key`, `client.pem`,
/// `client.key`, `other-ca.pem`. Removed on drop.
pub struct PemDir {
    dir: PathBuf,
}

impl PemDir {
    /// Writes the files.
    pub fn new(tag: &str) -> PemDir {
        let p = pki();
        let dir = std::env::temp_dir().join(format!(
            "amqp-tokio-tls-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        for (name, text) in [
            ("ca.pem", &p.ca),
            ("other-ca.pem", &p.other_ca),
            ("server.pem", &p.server_cert),
            ("server.key", &p.server_key),
            ("localhost.pem", &p.localhost_cert),
            ("localhost.key", &p.localhost_key),
            ("client.pem", &p.client_cert),
            ("client.key", &p.client_key),
        ] {
            std::fs::write(dir.join(name), text).expect("write PEM");
        }
        PemDir { dir }
    }

    /// The path of one of the files, as a string.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PemDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
