//! The SASL frame exchange (`security.xml` §5.3) as two small sans-IO machines: the client
//! chooses a mechanism from `sasl-mechanisms` and answers challenges; the server offers
//! mechanisms, runs the chosen one and sends the outcome.

use std::fmt;
use std::sync::Arc;

use amqp_proto::definitions::SaslCode;
use amqp_proto::sasl::*;
use amqp_proto::Symbol;
use bytes::Bytes;

use super::mechanism::*;
use super::scram::{nonce_from_bytes, ScramClient, ScramHash, ScramServer};

/// The largest SASL frame read before `open` negotiates a frame size when a pluggable
/// mechanism (GSSAPI) is configured: Kerberos tickets do not fit in MIN-MAX-FRAME-SIZE (512
/// bytes, the limit otherwise), and Active Directory's can reach 48 KiB.
pub const EXTENDED_SASL_FRAME_SIZE: u32 = 64 * 1024;

/// Client-side SASL settings (Proton's `user`, `password`, `allowed_mechs`,
/// `allow_insecure_mechs`).
#[derive(Clone, Default)]
pub struct SaslClientConfig {
    /// User name (authentication identity).
    pub user: Option<String>,
    /// Password. Never shown by `Debug`.
    pub password: Option<String>,
    /// Authorization identity to request (usually unset).
    pub authzid: Option<String>,
    /// Mechanisms the client may use; `None` allows every mechanism this crate implements.
    pub allowed_mechs: Option<Vec<String>>,
    /// Allow PLAIN over an unencrypted transport.
    pub allow_insecure_mechs: bool,
    /// Random bytes for the SCRAM client nonce (at least 18 recommended). Injected so runs replay.
    pub nonce: Vec<u8>,
    /// The service name of host-based mechanisms (GSSAPI's `SERVICE@HOST`, Proton's and
    /// Cyrus's `sasl_service`); `amqp` when unset.
    pub service: Option<String>,
    /// Extra client mechanisms (e.g. GSSAPI), tried in the order given before the built-ins.
    pub extra_mechanisms: Vec<Arc<dyn ClientMechanismFactory>>,
}

impl SaslClientConfig {
    /// Parses Proton's space-separated `allowed_mechs` string.
    pub fn set_allowed_mechs(&mut self, mechs: &str) {
        self.allowed_mechs = Some(mechs.split_whitespace().map(str::to_owned).collect());
    }
}

impl fmt::Debug for SaslClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslClientConfig")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("authzid", &self.authzid)
            .field("allowed_mechs", &self.allowed_mechs)
            .field("allow_insecure_mechs", &self.allow_insecure_mechs)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// Creates a client mechanism the built-in set does not cover (the seam for GSSAPI).
pub trait ClientMechanismFactory: Send + Sync {
    /// The mechanism name.
    fn name(&self) -> &str;
    /// Whether it can be used with this configuration.
    fn usable(&self, config: &SaslClientConfig) -> bool;
    /// A new mechanism instance for one exchange with the server named `hostname` (the
    /// connection's `virtual_host` or URL host, as sent in `sasl-init`).
    fn create(&self, config: &SaslClientConfig, hostname: Option<&str>)
        -> Box<dyn ClientMechanism>;
}

/// Creates a server mechanism the built-in set does not cover.
pub trait ServerMechanismFactory: Send + Sync {
    /// The mechanism name.
    fn name(&self) -> &str;
    /// A new mechanism instance for one exchange.
    fn create(&self) -> Box<dyn ServerMechanism>;
}

/// Server-side SASL settings.
#[derive(Clone)]
pub struct SaslServerConfig {
    /// Mechanisms to offer, in the order offered.
    pub mechanisms: Vec<String>,
    /// Credential checks.
    pub authenticator: Arc<dyn Authenticator>,
    /// Random bytes for the SCRAM server nonce. Injected so runs replay.
    pub nonce: Vec<u8>,
    /// Send SCRAM's server-final message in a challenge (Cyrus style) rather than in the outcome.
    /// Clients built on Cyrus (Proton with Cyrus SASL) verify the server signature only in
    /// this form; in the outcome they ignore it.
    pub scram_final_in_challenge: bool,
    /// Accept clients that skip SASL and send the plain AMQP header (as anonymous).
    pub allow_skip_sasl: bool,
    /// Extra server mechanisms.
    pub extra_mechanisms: Vec<Arc<dyn ServerMechanismFactory>>,
}

impl fmt::Debug for SaslServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslServerConfig")
            .field("mechanisms", &self.mechanisms)
            .field("allow_skip_sasl", &self.allow_skip_sasl)
            .finish_non_exhaustive()
    }
}

impl SaslServerConfig {
    /// A server offering the given mechanisms, checking credentials with `authenticator`.
    pub fn new(mechanisms: &[&str], authenticator: Arc<dyn Authenticator>) -> Self {
        SaslServerConfig {
            mechanisms: mechanisms.iter().map(|s| s.to_string()).collect(),
            authenticator,
            nonce: Vec::new(),
            scram_final_in_challenge: false,
            allow_skip_sasl: false,
            extra_mechanisms: Vec::new(),
        }
    }

    /// A server that offers only ANONYMOUS and lets anyone in.
    pub fn anonymous() -> Self {
        let mut users = StaticUsers::new();
        users.set_allow_anonymous(true);
        let mut c = Self::new(&[ANONYMOUS], Arc::new(users));
        c.allow_skip_sasl = true;
        c
    }
}

/// What the client machine wants done next.
#[derive(Debug)]
pub(crate) enum ClientStep {
    /// Send this frame and keep waiting.
    Send(SaslFrame),
    /// Authenticated: proceed to the AMQP header.
    Done,
}

enum ClientState {
    AwaitMechanisms,
    AwaitOutcome,
    Done,
}

pub(crate) struct SaslClient {
    config: SaslClientConfig,
    encrypted: bool,
    external_identity: bool,
    hostname: Option<String>,
    mech: Option<Box<dyn ClientMechanism>>,
    state: ClientState,
}

impl SaslClient {
    pub(crate) fn new(
        config: SaslClientConfig,
        encrypted: bool,
        external_identity: bool,
        hostname: Option<String>,
    ) -> Self {
        SaslClient {
            config,
            encrypted,
            external_identity,
            hostname,
            mech: None,
            state: ClientState::AwaitMechanisms,
        }
    }

    pub(crate) fn mechanism(&self) -> Option<&'static str> {
        self.mech.as_ref().map(|m| m.name())
    }

    /// The largest SASL frame accepted from the server: 512 bytes, or
    /// [`EXTENDED_SASL_FRAME_SIZE`] with pluggable mechanisms configured.
    pub(crate) fn sasl_frame_limit(&self) -> u32 {
        if self.config.extra_mechanisms.is_empty() {
            amqp_proto::frame::MIN_MAX_FRAME_SIZE
        } else {
            EXTENDED_SASL_FRAME_SIZE
        }
    }

    fn create(&self, name: &str) -> Option<Box<dyn ClientMechanism>> {
        let c = &self.config;
        let user = c.user.clone().unwrap_or_default();
        let password = c.password.clone().unwrap_or_default();
        let mut m: Box<dyn ClientMechanism> = match name {
            ANONYMOUS => Box::new(AnonymousClient::new()),
            PLAIN => {
                let mut p = PlainClient::new(user, password);
                if let Some(z) = &c.authzid {
                    p = p.with_authzid(z.clone());
                }
                Box::new(p)
            }
            EXTERNAL => Box::new(match &c.authzid {
                Some(z) => ExternalClient::with_authzid(z.clone()),
                None => ExternalClient::new(),
            }),
            SCRAM_SHA_1 | SCRAM_SHA_256 => {
                let hash = ScramHash::from_mechanism_name(name)?;
                let mut s = ScramClient::new(hash, user, password, nonce_from_bytes(&c.nonce));
                if let Some(z) = &c.authzid {
                    s = s.with_authzid(z.clone());
                }
                Box::new(s)
            }
            _ => return None,
        };
        let _ = &mut m;
        Some(m)
    }

    pub(crate) fn handle(&mut self, frame: SaslFrame) -> Result<ClientStep, SaslError> {
        match (&self.state, frame) {
            (ClientState::AwaitMechanisms, SaslFrame::SaslMechanisms(m)) => {
                let offered: Vec<&str> = m
                    .sasl_server_mechanisms
                    .iter()
                    .map(|s| s.as_str())
                    .collect();
                let allowed: Option<Vec<&str>> = self
                    .config
                    .allowed_mechs
                    .as_ref()
                    .map(|v| v.iter().map(String::as_str).collect());
                // Extra (pluggable) mechanisms first, if offered, allowed and usable. One that
                // is offered and allowed but unusable (GSSAPI without a ticket) is the last
                // resort, so that its own error names the cause.
                let have_credentials = self.config.user.is_some() && self.config.password.is_some();
                let builtin = choose_mechanism(
                    &offered,
                    allowed.as_deref(),
                    have_credentials,
                    self.encrypted,
                    self.config.allow_insecure_mechs,
                    self.external_identity,
                );
                let mut mech: Option<Box<dyn ClientMechanism>> = None;
                let mut unusable = None;
                for f in &self.config.extra_mechanisms {
                    let name = f.name();
                    let ok_offer = offered.iter().any(|o| o.eq_ignore_ascii_case(name));
                    let ok_allow = allowed
                        .as_ref()
                        .is_none_or(|a| a.iter().any(|o| o.eq_ignore_ascii_case(name)));
                    if !(ok_offer && ok_allow) {
                        continue;
                    }
                    if f.usable(&self.config) {
                        mech = Some(f.create(&self.config, self.hostname.as_deref()));
                        break;
                    }
                    unusable = unusable.or(Some(f));
                }
                if let (None, None, Some(f)) = (&mech, builtin, unusable) {
                    mech = Some(f.create(&self.config, self.hostname.as_deref()));
                }
                if mech.is_none() {
                    let name = builtin.ok_or_else(|| {
                        let plain_refused = offered.contains(&PLAIN)
                            && have_credentials
                            && !self.encrypted
                            && !self.config.allow_insecure_mechs;
                        SaslError::NoMechanism(format!(
                            "no acceptable mechanism: server offers [{}], allowed {}{}",
                            offered.join(" "),
                            allowed
                                .as_ref()
                                .map_or("all".to_string(), |a| format!("[{}]", a.join(" "))),
                            if plain_refused {
                                "; PLAIN needs TLS or allow_insecure_mechs"
                            } else {
                                ""
                            }
                        ))
                    })?;
                    mech = self.create(name);
                }
                let mut mech =
                    mech.ok_or_else(|| SaslError::NoMechanism("mechanism unavailable".into()))?;
                let initial = mech.initial_response()?;
                let init = SaslInit {
                    mechanism: Symbol::from(mech.name()),
                    initial_response: initial.map(Bytes::from),
                    hostname: self.hostname.clone().map(Into::into),
                };
                self.mech = Some(mech);
                self.state = ClientState::AwaitOutcome;
                Ok(ClientStep::Send(SaslFrame::SaslInit(init)))
            }
            (ClientState::AwaitOutcome, SaslFrame::SaslChallenge(c)) => {
                let mech = self
                    .mech
                    .as_mut()
                    .ok_or_else(|| SaslError::Protocol("challenge before init".into()))?;
                let r = mech.challenge(&c.challenge)?;
                Ok(ClientStep::Send(SaslFrame::SaslResponse(SaslResponse {
                    response: Bytes::from(r),
                })))
            }
            (ClientState::AwaitOutcome, SaslFrame::SaslOutcome(o)) => {
                if o.code != SaslCode::Ok {
                    let msg = format!("server refused authentication (sasl-outcome {:?})", o.code);
                    return Err(match o.code {
                        SaslCode::Auth => SaslError::Auth(msg),
                        SaslCode::SysPerm => SaslError::SysPerm(msg),
                        SaslCode::SysTemp => SaslError::SysTemp(msg),
                        _ => SaslError::Sys(msg),
                    });
                }
                let mech = self
                    .mech
                    .as_mut()
                    .ok_or_else(|| SaslError::Protocol("outcome before init".into()))?;
                mech.outcome_ok(o.additional_data.as_deref())?;
                self.state = ClientState::Done;
                Ok(ClientStep::Done)
            }
            (_, f) => Err(SaslError::Protocol(format!(
                "unexpected {} frame",
                f.name()
            ))),
        }
    }
}

/// What the server machine wants done next.
#[derive(Debug)]
pub(crate) enum ServerAction {
    /// Send this frame and wait for the next.
    Send(SaslFrame),
    /// Send this outcome; authentication succeeded as `identity`.
    Success(SaslFrame, String),
    /// Send this outcome; authentication failed.
    Failure(SaslFrame, SaslError),
}

pub(crate) struct SaslServer {
    config: SaslServerConfig,
    transport_identity: Option<String>,
    mech: Option<Box<dyn ServerMechanism>>,
}

impl SaslServer {
    pub(crate) fn new(config: SaslServerConfig, transport_identity: Option<String>) -> Self {
        SaslServer {
            config,
            transport_identity,
            mech: None,
        }
    }

    /// The mechanism the client chose, once its `sasl-init` has arrived.
    pub(crate) fn mechanism(&self) -> Option<&'static str> {
        self.mech.as_ref().map(|m| m.name())
    }

    /// The largest SASL frame accepted from the client: 512 bytes, or
    /// [`EXTENDED_SASL_FRAME_SIZE`] when a pluggable mechanism (GSSAPI) is offered.
    pub(crate) fn sasl_frame_limit(&self) -> u32 {
        let offered = |f: &Arc<dyn ServerMechanismFactory>| {
            let name = f.name();
            self.config
                .mechanisms
                .iter()
                .any(|m| m.eq_ignore_ascii_case(name))
        };
        if self.config.extra_mechanisms.iter().any(offered) {
            EXTENDED_SASL_FRAME_SIZE
        } else {
            amqp_proto::frame::MIN_MAX_FRAME_SIZE
        }
    }

    pub(crate) fn mechanisms_frame(&self) -> SaslFrame {
        SaslFrame::SaslMechanisms(SaslMechanisms {
            sasl_server_mechanisms: self
                .config
                .mechanisms
                .iter()
                .map(|m| Symbol::from(m.as_str()))
                .collect(),
        })
    }

    fn create(&self, name: &str) -> Option<Box<dyn ServerMechanism>> {
        if !self
            .config
            .mechanisms
            .iter()
            .any(|m| m.eq_ignore_ascii_case(name))
        {
            return None;
        }
        for f in &self.config.extra_mechanisms {
            if f.name().eq_ignore_ascii_case(name) {
                return Some(f.create());
            }
        }
        let auth = self.config.authenticator.clone();
        Some(match name {
            ANONYMOUS => Box::new(AnonymousServer::new(auth)),
            PLAIN => Box::new(PlainServer::new(auth)),
            EXTERNAL => Box::new(ExternalServer::new(auth, self.transport_identity.clone())),
            SCRAM_SHA_1 | SCRAM_SHA_256 => {
                let hash = ScramHash::from_mechanism_name(name)?;
                Box::new(
                    ScramServer::new(hash, auth, nonce_from_bytes(&self.config.nonce))
                        .with_final_in_challenge(self.config.scram_final_in_challenge),
                )
            }
            _ => return None,
        })
    }

    fn step(step: ServerStep) -> ServerAction {
        match step {
            ServerStep::Challenge(c) => {
                ServerAction::Send(SaslFrame::SaslChallenge(SaslChallenge {
                    challenge: Bytes::from(c),
                }))
            }
            ServerStep::Success {
                identity,
                additional_data,
            } => ServerAction::Success(
                SaslFrame::SaslOutcome(SaslOutcome {
                    code: SaslCode::Ok,
                    additional_data: additional_data.map(Bytes::from),
                }),
                identity,
            ),
            ServerStep::Failure(e) => ServerAction::Failure(Self::failure(&e), e),
        }
    }

    fn failure(e: &SaslError) -> SaslFrame {
        SaslFrame::SaslOutcome(SaslOutcome {
            code: SaslCode::from_value(e.outcome_code()).unwrap_or(SaslCode::Auth),
            additional_data: None,
        })
    }

    pub(crate) fn handle(&mut self, frame: SaslFrame) -> ServerAction {
        match (self.mech.as_mut(), frame) {
            (None, SaslFrame::SaslInit(init)) => match self.create(&init.mechanism) {
                Some(mut m) => {
                    let step = m.start(init.initial_response.as_deref(), init.hostname.as_deref());
                    self.mech = Some(m);
                    Self::step(step)
                }
                None => {
                    let e = SaslError::NoMechanism(format!(
                        "mechanism {} is not offered",
                        init.mechanism.as_str()
                    ));
                    ServerAction::Failure(Self::failure(&e), e)
                }
            },
            (Some(m), SaslFrame::SaslResponse(r)) => Self::step(m.response(&r.response)),
            (_, f) => {
                let e = SaslError::Protocol(format!("unexpected {} frame", f.name()));
                ServerAction::Failure(Self::failure(&e), e)
            }
        }
    }
}
