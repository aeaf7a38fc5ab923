//! Kerberos for amqp-rs: the GSS-API calls of the `GSSAPI` SASL mechanism, on MIT krb5
//! through the `libgssapi` crate.
//!
//! The engine runs the SASL exchange ([`amqp_engine::sasl::gssapi`]); this crate gives it
//! real security contexts:
//!
//! * [`KerberosClient`]: contexts towards `SERVICE@HOST` with the default credentials cache
//!   (`KRB5CCNAME`, filled by `kinit`). [`client_mechanism`] wraps it for
//!   [`SaslClientConfig::extra_mechanisms`](amqp_engine::sasl::SaslClientConfig::extra_mechanisms);
//!   the runtime crates' `gssapi` feature adds it to every container, so a client needs no
//!   configuration beyond `allowed_mechs` (and a ticket).
//! * [`KerberosServer`]: accepts with the keys of the default keytab (`KRB5_KTNAME`) or of
//!   an explicit one. [`server_mechanism`] wraps it for
//!   [`SaslServerConfig::extra_mechanisms`](amqp_engine::sasl::SaslServerConfig::extra_mechanisms);
//!   the authenticated principal (`user@REALM`) becomes the connection's user.
//!
//! Host names are used as given: with `rdns = false` and `dns_canonicalize_hostname = false`
//! in `krb5.conf` (recommended), connect to the name in the service principal
//! (`amqp/broker.example.com` → `amqp://broker.example.com`), not to its IP address.
//!
//! Building needs the krb5 headers and libclang (Debian `libkrb5-dev`, `libclang-dev`).
//!
//! ```no_run
//! use amqp_engine::sasl::{SaslServerConfig, StaticUsers, GSSAPI};
//! use std::sync::Arc;
//!
//! // Client side: offered GSSAPI and holding a ticket, a client prefers it.
//! let mut client = amqp_engine::sasl::SaslClientConfig::default();
//! client.extra_mechanisms.push(amqp_gssapi::client_mechanism());
//!
//! // Server side: offer GSSAPI with the keys of a keytab.
//! let mut server = SaslServerConfig::new(&[GSSAPI], Arc::new(StaticUsers::new()));
//! let kerberos = amqp_gssapi::KerberosServer::with_keytab("/etc/amqp.keytab");
//! server.extra_mechanisms.push(amqp_gssapi::server_mechanism(kerberos));
//! ```

use std::path::Path;
use std::sync::Arc;

use amqp_engine::sasl::{
    ClientMechanismFactory, GssAcceptor, GssClientProvider, GssError, GssErrorKind, GssInitiator,
    GssServerProvider, GssStep, GssapiClientFactory, GssapiServerFactory, ServerMechanismFactory,
};
use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext, ServerCtx};
use libgssapi::credential::{Cred, CredUsage};
use libgssapi::error::{Error, MajorFlags};
use libgssapi::name::Name;
use libgssapi::oid::{OidSet, GSS_MECH_KRB5, GSS_NT_HOSTBASED_SERVICE};

pub use amqp_engine::sasl::GSSAPI;

/// The GSSAPI client mechanism on the default credentials cache.
pub fn client_mechanism() -> Arc<dyn ClientMechanismFactory> {
    Arc::new(GssapiClientFactory::new(Arc::new(KerberosClient)))
}

/// The GSSAPI server mechanism accepting with `server`'s keytab.
pub fn server_mechanism(server: KerberosServer) -> Arc<dyn ServerMechanismFactory> {
    Arc::new(GssapiServerFactory::new(Arc::new(server)))
}

// MIT krb5 minor status codes (com_err table krb5) that name a cause the user can act on.
const KDC_ERR_S_PRINCIPAL_UNKNOWN: i64 = -1765328377;
const AP_ERR_BAD_INTEGRITY: i64 = -1765328353;
const AP_ERR_TKT_EXPIRED: i64 = -1765328352;
const AP_ERR_NOT_US: i64 = -1765328349;
const AP_ERR_BADKEYVER: i64 = -1765328340;
const AP_ERR_NOKEY: i64 = -1765328339;
const CC_NOTFOUND: i64 = -1765328243;
const CC_END: i64 = -1765328242;
const AP_WRONG_PRINC: i64 = -1765328240;
const KT_NOTFOUND: i64 = -1765328203;
const FCC_NOFILE: i64 = -1765328189;
const KT_KVNONOTFOUND: i64 = -1765328154;

const ROUTINE_ERROR_MASK: u32 = 0x00ff_0000;

/// Sorts a GSS-API error into the cause the engine reports; `accepting` tells which side.
fn classify(e: Error, accepting: bool) -> GssError {
    let minor = i64::from(e.minor as i32);
    let kind = match minor {
        KDC_ERR_S_PRINCIPAL_UNKNOWN => GssErrorKind::UnknownServer,
        AP_ERR_TKT_EXPIRED => GssErrorKind::CredentialsExpired,
        CC_NOTFOUND | CC_END | FCC_NOFILE => GssErrorKind::NoCredentials,
        KT_NOTFOUND | KT_KVNONOTFOUND | AP_ERR_BAD_INTEGRITY | AP_WRONG_PRINC | AP_ERR_NOT_US
        | AP_ERR_BADKEYVER | AP_ERR_NOKEY => GssErrorKind::AcceptorCredentials,
        // The routine error is a number in bits 16-23, not a set of flags.
        _ => match e.major.bits() & ROUTINE_ERROR_MASK {
            r if r == MajorFlags::GSS_S_CREDENTIALS_EXPIRED.bits() => {
                GssErrorKind::CredentialsExpired
            }
            r if r == MajorFlags::GSS_S_NO_CRED.bits() && accepting => {
                GssErrorKind::AcceptorCredentials
            }
            r if r == MajorFlags::GSS_S_NO_CRED.bits() => GssErrorKind::NoCredentials,
            r if r == MajorFlags::GSS_S_DEFECTIVE_TOKEN.bits()
                || r == MajorFlags::GSS_S_BAD_SIG.bits() =>
            {
                GssErrorKind::BadToken
            }
            _ => GssErrorKind::Other,
        },
    };
    GssError::new(kind, e.to_string().trim().to_owned())
}

fn krb5_only() -> Result<OidSet, Error> {
    let mut mechs = OidSet::new();
    mechs.add(GSS_MECH_KRB5)?;
    Ok(mechs)
}

fn acquire(usage: CredUsage) -> Result<Cred, Error> {
    Cred::acquire(None, None, usage, Some(&krb5_only()?))
}

/// Client contexts with the default credentials cache (`KRB5CCNAME`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KerberosClient;

impl GssClientProvider for KerberosClient {
    fn has_credentials(&self) -> bool {
        acquire(CredUsage::Initiate)
            .and_then(|c| c.lifetime())
            .is_ok_and(|left| !left.is_zero())
    }

    fn initiator(&self, target: &str) -> Result<Box<dyn GssInitiator>, GssError> {
        let name = Name::new(target.as_bytes(), Some(GSS_NT_HOSTBASED_SERVICE))
            .map_err(|e| classify(e, false))?;
        let cred = acquire(CredUsage::Initiate).map_err(|e| classify(e, false))?;
        let flags = CtxFlags::GSS_C_MUTUAL_FLAG
            | CtxFlags::GSS_C_SEQUENCE_FLAG
            | CtxFlags::GSS_C_INTEG_FLAG;
        let ctx = ClientCtx::new(Some(cred), name, flags, Some(GSS_MECH_KRB5));
        Ok(Box::new(Initiator(ctx)))
    }
}

struct Initiator(ClientCtx);

impl GssInitiator for Initiator {
    fn step(&mut self, input: Option<&[u8]>) -> Result<GssStep, GssError> {
        let token = self.0.step(input, None).map_err(|e| classify(e, false))?;
        Ok(GssStep {
            token: token.map(|t| t.to_vec()).unwrap_or_default(),
            complete: self.0.is_complete(),
        })
    }

    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        let t = self
            .0
            .wrap(false, message)
            .map_err(|e| classify(e, false))?;
        Ok(t.to_vec())
    }

    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        let m = self.0.unwrap(token).map_err(|e| classify(e, false))?;
        Ok(m.to_vec())
    }
}

/// Server contexts accepting with the keys of the default keytab.
#[derive(Debug, Clone, Copy, Default)]
pub struct KerberosServer;

impl KerberosServer {
    /// Accept with the default keytab: `KRB5_KTNAME`, else the one `krb5.conf` names
    /// (`/etc/krb5.keytab` by default).
    pub fn new() -> Self {
        KerberosServer
    }

    /// Accept with the keytab at `path`.
    ///
    /// MIT krb5 takes the acceptor's keytab from the process environment, so this sets
    /// `KRB5_KTNAME` for the whole process: call it at start-up, before other threads run.
    pub fn with_keytab(path: impl AsRef<Path>) -> Self {
        std::env::set_var("KRB5_KTNAME", path.as_ref());
        KerberosServer
    }
}

impl GssServerProvider for KerberosServer {
    fn acceptor(&self) -> Result<Box<dyn GssAcceptor>, GssError> {
        let cred = acquire(CredUsage::Accept).map_err(|e| classify(e, true))?;
        Ok(Box::new(Acceptor(ServerCtx::new(Some(cred)))))
    }
}

struct Acceptor(ServerCtx);

impl GssAcceptor for Acceptor {
    fn step(&mut self, input: &[u8]) -> Result<GssStep, GssError> {
        let token = self.0.step(input, None).map_err(|e| classify(e, true))?;
        Ok(GssStep {
            token: token.map(|t| t.to_vec()).unwrap_or_default(),
            complete: self.0.is_complete(),
        })
    }

    fn wrap(&mut self, message: &[u8]) -> Result<Vec<u8>, GssError> {
        let t = self.0.wrap(false, message).map_err(|e| classify(e, true))?;
        Ok(t.to_vec())
    }

    fn unwrap(&mut self, token: &[u8]) -> Result<Vec<u8>, GssError> {
        let m = self.0.unwrap(token).map_err(|e| classify(e, true))?;
        Ok(m.to_vec())
    }

    fn source_name(&self) -> Result<String, GssError> {
        let name = self.0.source_name().map_err(|e| classify(e, true))?;
        let shown = name.display_name().map_err(|e| classify(e, true))?;
        Ok(String::from_utf8_lossy(&shown).into_owned())
    }
}
