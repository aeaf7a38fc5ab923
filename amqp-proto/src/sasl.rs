//! SASL frames (`security.xml` §5.3): mechanisms, init, challenge, response, outcome.

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::{Decode, Decoder, Encode};
use crate::composite;
use crate::definitions::SaslCode;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::performatives::union_codec;
use crate::value::{Descriptor, Symbol};

composite! {
    /// `sasl-mechanisms`: the server's offered mechanisms.
    pub struct SaslMechanisms("sasl-mechanisms", "amqp:sasl-mechanisms:list", 0x40) {
        /// Supported SASL mechanisms.
        pub sasl_server_mechanisms: Vec<Symbol> => "sasl-server-mechanisms",
    }
}

composite! {
    /// `sasl-init`: the client's chosen mechanism and initial response.
    pub struct SaslInit("sasl-init", "amqp:sasl-init:list", 0x41) {
        /// Selected security mechanism.
        pub mechanism: Symbol => "mechanism",
        /// Security initial response.
        pub initial_response: Option<Bytes> => "initial-response",
        /// The name of the target host.
        pub hostname: Option<ByteString> => "hostname",
    }
}

composite! {
    /// `sasl-challenge`.
    pub struct SaslChallenge("sasl-challenge", "amqp:sasl-challenge:list", 0x42) {
        /// Security challenge data.
        pub challenge: Bytes => "challenge",
    }
}

composite! {
    /// `sasl-response`.
    pub struct SaslResponse("sasl-response", "amqp:sasl-response:list", 0x43) {
        /// Security response data.
        pub response: Bytes => "response",
    }
}

composite! {
    /// `sasl-outcome`.
    pub struct SaslOutcome("sasl-outcome", "amqp:sasl-outcome:list", 0x44) {
        /// Indicates the outcome of the sasl dialog.
        pub code: SaslCode => "code",
        /// Additional data as specified in RFC-4422.
        pub additional_data: Option<Bytes> => "additional-data",
    }
}

// `restricted!` derives a fixed set of traits, so `Default` is written out.
#[allow(clippy::derivable_impls)]
impl Default for SaslCode {
    fn default() -> Self {
        SaslCode::Ok
    }
}

/// Any SASL frame body.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq)]
pub enum SaslFrame {
    SaslMechanisms(SaslMechanisms),
    SaslInit(SaslInit),
    SaslChallenge(SaslChallenge),
    SaslResponse(SaslResponse),
    SaslOutcome(SaslOutcome),
}

impl SaslFrame {
    /// The spec's name of the frame.
    pub fn name(&self) -> &'static str {
        match self {
            SaslFrame::SaslMechanisms(_) => SaslMechanisms::NAME,
            SaslFrame::SaslInit(_) => SaslInit::NAME,
            SaslFrame::SaslChallenge(_) => SaslChallenge::NAME,
            SaslFrame::SaslResponse(_) => SaslResponse::NAME,
            SaslFrame::SaslOutcome(_) => SaslOutcome::NAME,
        }
    }
}

union_codec!(
    SaslFrame,
    "sasl frame",
    SaslMechanisms,
    SaslInit,
    SaslChallenge,
    SaslResponse,
    SaslOutcome
);
