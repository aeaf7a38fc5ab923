//! Messaging definitions (`messaging.xml` §3.4–3.5): delivery states and outcomes, source and
//! target termini with their policies, and lifetime policies.

use bytestring::ByteString;

use crate::codec::{Decode, Decoder, Encode};
use crate::composite::Field;
use crate::definitions::{Error, Fields, Seconds};
use crate::error::{DecodeError, DecodeErrorKind};
use crate::transaction::{Coordinator, Declared, TransactionalState};
use crate::value::{Descriptor, OrderedMap, Symbol, Value};
use crate::{composite, mandatory_field, restricted};

composite! {
    /// `received`: partial-delivery progress, used when resuming.
    pub struct Received("received", "amqp:received:list", 0x23) {
        /// The section number of the next section to deliver.
        pub section_number: u32 => "section-number",
        /// The offset within that section.
        pub section_offset: u64 => "section-offset",
    }
}

composite! {
    /// `accepted`: the message was processed successfully.
    pub struct Accepted("accepted", "amqp:accepted:list", 0x24) {}
}

composite! {
    /// `rejected`: the message is invalid and could not be processed.
    pub struct Rejected("rejected", "amqp:rejected:list", 0x25) {
        /// Why it was rejected.
        pub error: Option<Error> => "error",
    }
}

composite! {
    /// `released`: the message was not (and will not be) processed; it may be redelivered.
    pub struct Released("released", "amqp:released:list", 0x26) {}
}

composite! {
    /// `modified`: the message was not processed, with modifications for redelivery.
    pub struct Modified("modified", "amqp:modified:list", 0x27) {
        /// Count the transfer as an unsuccessful delivery attempt.
        pub delivery_failed: Option<bool> => "delivery-failed",
        /// Do not redeliver to this link.
        pub undeliverable_here: Option<bool> => "undeliverable-here",
        /// Annotations to merge into the message's message-annotations.
        pub message_annotations: Option<Fields> => "message-annotations",
    }
}

composite! {
    /// `delete-on-close` lifetime policy.
    pub struct DeleteOnClose("delete-on-close", "amqp:delete-on-close:list", 0x2b) {}
}
composite! {
    /// `delete-on-no-links` lifetime policy.
    pub struct DeleteOnNoLinks("delete-on-no-links", "amqp:delete-on-no-links:list", 0x2c) {}
}
composite! {
    /// `delete-on-no-messages` lifetime policy.
    pub struct DeleteOnNoMessages("delete-on-no-messages", "amqp:delete-on-no-messages:list", 0x2d) {}
}
composite! {
    /// `delete-on-no-links-or-messages` lifetime policy.
    pub struct DeleteOnNoLinksOrMessages("delete-on-no-links-or-messages", "amqp:delete-on-no-links-or-messages:list", 0x2e) {}
}

/// Generates an enum over described composites, dispatching decoding on the descriptor.
macro_rules! described_union {
    (
        $(#[$meta:meta])*
        pub enum $name:ident, $what:literal { $( $(#[$vmeta:meta])* $variant:ident($ty:ty) ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant($ty), )*
        }

        impl Encode for $name {
            #[inline]
            fn encoded_len(&self) -> usize {
                match self { $( $name::$variant(v) => v.encoded_len(), )* }
            }
            #[inline]
            fn encode(&self, buf: &mut bytes::BytesMut) {
                match self { $( $name::$variant(v) => v.encode(buf), )* }
            }
        }

        impl Decode for $name {
            fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
                let first = d.peek_u8()?;
                let desc = d.descriptor()?.ok_or_else(|| DecodeError::unexpected($what, first))?;
                $(
                    if desc == Descriptor::Code(<$ty>::CODE)
                        || matches!(&desc, Descriptor::Name(n) if n.as_str() == <$ty>::SYMBOL)
                    {
                        return <$ty>::decode_body(d).map($name::$variant);
                    }
                )*
                Err(DecodeErrorKind::UnexpectedDescriptor(desc.to_string()).into())
            }
        }

        $( impl From<$ty> for $name {
            fn from(v: $ty) -> Self { $name::$variant(v) }
        } )*

        mandatory_field!($name);
    };
}

described_union! {
    /// A `delivery-state`: the state of a delivery at the sender or receiver.
    pub enum DeliveryState, "delivery-state" {
        /// Partially received.
        Received(Received),
        /// Terminal: accepted.
        Accepted(Accepted),
        /// Terminal: rejected.
        Rejected(Rejected),
        /// Terminal: released.
        Released(Released),
        /// Terminal: modified.
        Modified(Modified),
        /// Terminal: a transaction was declared.
        Declared(Declared),
        /// The delivery's state within a transaction.
        TransactionalState(TransactionalState),
    }
}

described_union! {
    /// An `outcome`: a terminal delivery state.
    pub enum Outcome, "outcome" {
        /// Accepted.
        Accepted(Accepted),
        /// Rejected.
        Rejected(Rejected),
        /// Released.
        Released(Released),
        /// Modified.
        Modified(Modified),
        /// A transaction was declared.
        Declared(Declared),
    }
}

impl DeliveryState {
    /// True for the terminal states (outcomes).
    pub fn is_terminal(&self) -> bool {
        !matches!(
            self,
            DeliveryState::Received(_) | DeliveryState::TransactionalState(_)
        )
    }

    /// The accepted outcome.
    pub fn accepted() -> Self {
        DeliveryState::Accepted(Accepted {})
    }

    /// The released outcome.
    pub fn released() -> Self {
        DeliveryState::Released(Released {})
    }
}

impl From<Outcome> for DeliveryState {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Accepted(v) => DeliveryState::Accepted(v),
            Outcome::Rejected(v) => DeliveryState::Rejected(v),
            Outcome::Released(v) => DeliveryState::Released(v),
            Outcome::Modified(v) => DeliveryState::Modified(v),
            Outcome::Declared(v) => DeliveryState::Declared(v),
        }
    }
}

described_union! {
    /// A `lifetime-policy` for dynamic nodes.
    pub enum LifetimePolicy, "lifetime-policy" {
        /// Deleted when the link that created it closes.
        DeleteOnClose(DeleteOnClose),
        /// Deleted when it has no links.
        DeleteOnNoLinks(DeleteOnNoLinks),
        /// Deleted when it has no messages.
        DeleteOnNoMessages(DeleteOnNoMessages),
        /// Deleted when it has neither links nor messages.
        DeleteOnNoLinksOrMessages(DeleteOnNoLinksOrMessages),
    }
}

restricted! {
    /// `terminus-durability`.
    pub enum TerminusDurability: u32, "terminus-durability" {
        /// No terminus state is retained durably (the default).
        None = 0,
        /// Only the existence and configuration of the terminus is retained durably.
        Configuration = 1,
        /// The unsettled state is also retained durably.
        UnsettledState = 2,
    }
}

restricted! {
    /// `terminus-expiry-policy`.
    pub enum TerminusExpiryPolicy: Symbol, "terminus-expiry-policy" {
        /// Expiry begins when the link is detached.
        LinkDetach = Symbol::from_static("link-detach"),
        /// Expiry begins when the session ends (the default).
        SessionEnd = Symbol::from_static("session-end"),
        /// Expiry begins when the connection closes.
        ConnectionClose = Symbol::from_static("connection-close"),
        /// The terminus never expires.
        Never = Symbol::from_static("never"),
    }
}

/// Standard distribution modes (`std-dist-mode`).
pub mod distribution_mode {
    use crate::value::Symbol;
    /// Messages are moved to a single consumer (competing consumers).
    pub const MOVE: Symbol = Symbol::from_static("move");
    /// Messages are copied (browsing).
    pub const COPY: Symbol = Symbol::from_static("copy");
}

/// `filter-set`: filters keyed by name, each typically a described value (or null).
pub type FilterSet = OrderedMap<Symbol, Value>;
/// `node-properties`.
pub type NodeProperties = Fields;

composite! {
    /// `source`: the source terminus of a link.
    pub struct Source("source", "amqp:source:list", 0x28) {
        /// The address of the source node.
        pub address: Option<ByteString> => "address",
        /// Durability (default none).
        pub durable: Option<TerminusDurability> => "durable",
        /// Expiry policy (default session-end).
        pub expiry_policy: Option<TerminusExpiryPolicy> => "expiry-policy",
        /// Seconds until expiry (default 0).
        pub timeout: Option<Seconds> => "timeout",
        /// Ask the peer to create a node dynamically.
        pub dynamic: Option<bool> => "dynamic",
        /// Properties of the dynamically created node.
        pub dynamic_node_properties: Option<NodeProperties> => "dynamic-node-properties",
        /// Distribution mode (move or copy).
        pub distribution_mode: Option<Symbol> => "distribution-mode",
        /// Filters.
        pub filter: Option<FilterSet> => "filter",
        /// Outcome for unsettled transfers with no outcome.
        pub default_outcome: Option<Outcome> => "default-outcome",
        /// Outcomes supported by the source.
        pub outcomes: Option<Vec<Symbol>> => "outcomes",
        /// Extension capabilities.
        pub capabilities: Option<Vec<Symbol>> => "capabilities",
    }
}

composite! {
    /// `target`: the target terminus of a link.
    pub struct Target("target", "amqp:target:list", 0x29) {
        /// The address of the target node.
        pub address: Option<ByteString> => "address",
        /// Durability (default none).
        pub durable: Option<TerminusDurability> => "durable",
        /// Expiry policy (default session-end).
        pub expiry_policy: Option<TerminusExpiryPolicy> => "expiry-policy",
        /// Seconds until expiry (default 0).
        pub timeout: Option<Seconds> => "timeout",
        /// Ask the peer to create a node dynamically.
        pub dynamic: Option<bool> => "dynamic",
        /// Properties of the dynamically created node.
        pub dynamic_node_properties: Option<NodeProperties> => "dynamic-node-properties",
        /// Extension capabilities.
        pub capabilities: Option<Vec<Symbol>> => "capabilities",
    }
}

impl Source {
    /// A source with an address.
    pub fn new(address: impl Into<ByteString>) -> Source {
        Source {
            address: Some(address.into()),
            ..Source::default()
        }
    }
}

impl Target {
    /// A target with an address.
    pub fn new(address: impl Into<ByteString>) -> Target {
        Target {
            address: Some(address.into()),
            ..Target::default()
        }
    }
}

described_union! {
    /// What an attach's `target` field may hold: a plain target or a transaction coordinator.
    pub enum TargetKind, "target" {
        /// An ordinary target.
        Target(Target),
        /// A transaction coordinator.
        Coordinator(Coordinator),
    }
}

// `Option<T>` fields need `Field` for `Option<…>`, which is blanket; bare unions are mandatory.
const _: () = {
    fn is_field<T: Field>() {}
    let _ = is_field::<Option<DeliveryState>>;
    let _ = is_field::<Option<Outcome>>;
};
