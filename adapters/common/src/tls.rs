//! TLS with rustls, configured from the engine's plain-data options.
//!
//! Trust: a given CA (file or PEM) if set, otherwise the operating system's roots through
//! `rustls-native-certs` — chosen over `webpki-roots` because brokers inside companies are
//! usually signed by a private CA that administrators install in the system store, and a
//! compiled-in Mozilla list would not trust them.

use std::io;
use std::sync::Arc;

use amqp_engine::messaging::{PemSource, TlsListen, TlsOptions, VerifyMode};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(src: &PemSource) -> io::Result<Vec<u8>> {
    match src {
        PemSource::File(path) => std::fs::read(path),
        PemSource::Pem(text) => Ok(text.as_bytes().to_vec()),
    }
}

fn certs(src: &PemSource) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read_pem(src)?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    let certs = certs.map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad certificate PEM: {e}"),
        )
    })?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no certificate in PEM",
        ));
    }
    Ok(certs)
}

fn key(src: &PemSource) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read_pem(src)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad private key PEM: {e}"),
        )
    })
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Builds a client configuration: trust, verification mode, optional client certificate.
pub fn client_config(opts: &TlsOptions) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match &opts.ca {
        Some(ca) => {
            for c in certs(ca)? {
                roots.add(c).map_err(tls_err)?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = match opts.verify {
        VerifyMode::VerifyPeerName => builder.with_root_certificates(roots),
        VerifyMode::VerifyPeer => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoNameCheck::new(roots)?)),
        VerifyMode::AnonymousPeer => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification)),
    };
    let config = match (&opts.client_cert, &opts.client_key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(certs(c)?, key(k)?)
            .map_err(tls_err)?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "client certificate and key must be given together",
            ))
        }
    };
    Ok(Arc::new(config))
}

/// Builds a server configuration: certificate and key, optional client-certificate checks.
pub fn server_config(opts: &TlsListen) -> io::Result<Arc<ServerConfig>> {
    let (Some(cert), Some(k)) = (&opts.cert, &opts.key) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "amqps listener needs a certificate and a key",
        ));
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let builder = match &opts.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(tls_err)?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            );
            let v = if opts.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            )
        }
        // Without a CA nothing can be verified: accepting every client instead would fail open.
        None if opts.require_client_cert => return Err(no_client_ca()),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs(cert)?, key(k)?)
        .map_err(tls_err)?;
    Ok(Arc::new(config))
}

fn no_client_ca() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "require_client_cert needs client_ca, the CA to verify client certificates with",
    )
}

/// The identity in a client certificate: its subject's common name, or the whole subject.
pub fn certificate_identity(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    if let Some(cn) = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
    {
        return Some(cn.to_string());
    }
    Some(subject.to_string())
}

/// Parses a server name for verification and SNI.
pub fn server_name(name: &str) -> io::Result<ServerName<'static>> {
    let trimmed = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(trimmed.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Verifies the chain but not the name (`VerifyMode::VerifyPeer`).
#[derive(Debug)]
struct NoNameCheck {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
}

impl NoNameCheck {
    fn new(roots: RootCertStore) -> io::Result<Self> {
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(NoNameCheck { inner })
    }
}

impl ServerCertVerifier for NoNameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (`VerifyMode::AnonymousPeer`): encryption without authentication.
#[derive(Debug)]
struct NoVerification;

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            m,
            c,
            d,
            &provider().signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
