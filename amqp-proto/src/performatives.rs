//! The nine AMQP performatives (`transport.xml` §2.7) and the [`Performative`] union.

use bytes::Bytes;
use bytestring::ByteString;

use crate::codec::{Decode, Decoder, Encode};
use crate::composite;
use crate::definitions::*;
use crate::error::{DecodeError, DecodeErrorKind};
use crate::messaging::{DeliveryState, Source, TargetKind};
use crate::value::{Descriptor, OrderedMap, Symbol, Value};

composite! {
    /// `open`: negotiate connection parameters.
    pub struct Open("open", "amqp:open:list", 0x10) {
        /// The id of the source container.
        pub container_id: ByteString => "container-id",
        /// The name of the target host (virtual host).
        pub hostname: Option<ByteString> => "hostname",
        /// Proposed maximum frame size (default 4294967295).
        pub max_frame_size: Option<u32> => "max-frame-size",
        /// The maximum channel number that can be used (default 65535).
        pub channel_max: Option<u16> => "channel-max",
        /// Idle time-out in milliseconds.
        pub idle_time_out: Option<Milliseconds> => "idle-time-out",
        /// Locales available for outgoing text.
        pub outgoing_locales: Option<Vec<Symbol>> => "outgoing-locales",
        /// Desired locales for incoming text in decreasing level of preference.
        pub incoming_locales: Option<Vec<Symbol>> => "incoming-locales",
        /// Extension capabilities the sender supports.
        pub offered_capabilities: Option<Vec<Symbol>> => "offered-capabilities",
        /// Extension capabilities the sender can use if the receiver supports them.
        pub desired_capabilities: Option<Vec<Symbol>> => "desired-capabilities",
        /// Connection properties.
        pub properties: Option<Fields> => "properties",
    }
}

impl Open {
    /// The max-frame-size, with the spec default applied.
    pub fn max_frame_size(&self) -> u32 {
        self.max_frame_size.unwrap_or(u32::MAX)
    }
    /// The channel-max, with the spec default applied.
    pub fn channel_max(&self) -> u16 {
        self.channel_max.unwrap_or(u16::MAX)
    }
}

composite! {
    /// `begin`: begin a session on a channel.
    pub struct Begin("begin", "amqp:begin:list", 0x11) {
        /// The remote channel for this session (set when answering a begin).
        pub remote_channel: Option<u16> => "remote-channel",
        /// The transfer-id of the first transfer id the sender will send.
        pub next_outgoing_id: TransferNumber => "next-outgoing-id",
        /// The initial incoming-window of the sender.
        pub incoming_window: u32 => "incoming-window",
        /// The initial outgoing-window of the sender.
        pub outgoing_window: u32 => "outgoing-window",
        /// The maximum handle value that can be used on the session (default 4294967295).
        pub handle_max: Option<Handle> => "handle-max",
        /// Extension capabilities the sender supports.
        pub offered_capabilities: Option<Vec<Symbol>> => "offered-capabilities",
        /// Extension capabilities the sender can use if the receiver supports them.
        pub desired_capabilities: Option<Vec<Symbol>> => "desired-capabilities",
        /// Session properties.
        pub properties: Option<Fields> => "properties",
    }
}

impl Begin {
    /// The handle-max, with the spec default applied.
    pub fn handle_max(&self) -> Handle {
        self.handle_max.unwrap_or(u32::MAX)
    }
}

composite! {
    /// `attach`: attach a link to a session.
    pub struct Attach("attach", "amqp:attach:list", 0x12) {
        /// The name of the link.
        pub name: ByteString => "name",
        /// The handle for the link while attached.
        pub handle: Handle => "handle",
        /// Role of the link endpoint.
        pub role: Role => "role",
        /// Settlement policy for the sender (default mixed).
        pub snd_settle_mode: Option<SenderSettleMode> => "snd-settle-mode",
        /// The settlement policy of the receiver (default first).
        pub rcv_settle_mode: Option<ReceiverSettleMode> => "rcv-settle-mode",
        /// The source for messages.
        pub source: Option<Source> => "source",
        /// The target for messages.
        pub target: Option<TargetKind> => "target",
        /// Unsettled delivery state (delivery-tag to delivery-state).
        pub unsettled: Option<OrderedMap<Value, Value>> => "unsettled",
        /// The sender has partial unsettled state.
        pub incomplete_unsettled: Option<bool> => "incomplete-unsettled",
        /// The sender's initial value for delivery-count.
        pub initial_delivery_count: Option<SequenceNo> => "initial-delivery-count",
        /// The maximum message size supported by the link endpoint.
        pub max_message_size: Option<u64> => "max-message-size",
        /// Extension capabilities the sender supports.
        pub offered_capabilities: Option<Vec<Symbol>> => "offered-capabilities",
        /// Extension capabilities the sender can use if the receiver supports them.
        pub desired_capabilities: Option<Vec<Symbol>> => "desired-capabilities",
        /// Link properties.
        pub properties: Option<Fields> => "properties",
    }
}

composite! {
    /// `flow`: update link and session flow state.
    pub struct Flow("flow", "amqp:flow:list", 0x13) {
        /// The next expected incoming transfer-id.
        pub next_incoming_id: Option<TransferNumber> => "next-incoming-id",
        /// The incoming window.
        pub incoming_window: u32 => "incoming-window",
        /// The next outgoing transfer-id.
        pub next_outgoing_id: TransferNumber => "next-outgoing-id",
        /// The outgoing window.
        pub outgoing_window: u32 => "outgoing-window",
        /// The link this flow is about, if any.
        pub handle: Option<Handle> => "handle",
        /// The endpoint's delivery-count.
        pub delivery_count: Option<SequenceNo> => "delivery-count",
        /// The current maximum number of messages that can be received.
        pub link_credit: Option<u32> => "link-credit",
        /// The number of available messages.
        pub available: Option<u32> => "available",
        /// Indicates drain mode.
        pub drain: Option<bool> => "drain",
        /// Request state from partner.
        pub echo: Option<bool> => "echo",
        /// Link state properties.
        pub properties: Option<Fields> => "properties",
    }
}

composite! {
    /// `transfer`: transfer a message (or a part of one).
    pub struct Transfer("transfer", "amqp:transfer:list", 0x14) {
        /// The link handle.
        pub handle: Handle => "handle",
        /// Alias for the delivery-tag.
        pub delivery_id: Option<DeliveryNumber> => "delivery-id",
        /// The delivery tag.
        pub delivery_tag: Option<DeliveryTag> => "delivery-tag",
        /// The message format.
        pub message_format: Option<MessageFormat> => "message-format",
        /// The sender considers the delivery settled.
        pub settled: Option<bool> => "settled",
        /// More transfer frames follow for this delivery.
        pub more: Option<bool> => "more",
        /// Receiver settle mode for this delivery.
        pub rcv_settle_mode: Option<ReceiverSettleMode> => "rcv-settle-mode",
        /// The state of the delivery at the sender.
        pub state: Option<DeliveryState> => "state",
        /// Indicates a resumed delivery.
        pub resume: Option<bool> => "resume",
        /// Indicates that the message is aborted.
        pub aborted: Option<bool> => "aborted",
        /// Batchable hint.
        pub batchable: Option<bool> => "batchable",
    }
}

composite! {
    /// `disposition`: inform the peer of delivery state changes for a range of deliveries.
    pub struct Disposition("disposition", "amqp:disposition:list", 0x15) {
        /// Directionality of disposition.
        pub role: Role => "role",
        /// Lower bound of the deliveries.
        pub first: DeliveryNumber => "first",
        /// Upper bound of the deliveries (default: first).
        pub last: Option<DeliveryNumber> => "last",
        /// Indicates the deliveries are settled.
        pub settled: Option<bool> => "settled",
        /// The new delivery state.
        pub state: Option<DeliveryState> => "state",
        /// Batchable hint.
        pub batchable: Option<bool> => "batchable",
    }
}

composite! {
    /// `detach`: detach the link endpoint from the session.
    pub struct Detach("detach", "amqp:detach:list", 0x16) {
        /// The link handle.
        pub handle: Handle => "handle",
        /// If true, the link is closed rather than merely detached.
        pub closed: Option<bool> => "closed",
        /// Error causing the detach.
        pub error: Option<Error> => "error",
    }
}

composite! {
    /// `end`: end the session.
    pub struct End("end", "amqp:end:list", 0x17) {
        /// Error causing the end.
        pub error: Option<Error> => "error",
    }
}

composite! {
    /// `close`: signal a connection close.
    pub struct Close("close", "amqp:close:list", 0x18) {
        /// Error causing the close.
        pub error: Option<Error> => "error",
    }
}

// Defaults for mandatory-field types are only used by `Default` derives on the composites.
// `restricted!` derives a fixed set of traits, so `Default` is written out.
#[allow(clippy::derivable_impls)]
impl Default for Role {
    fn default() -> Self {
        Role::Sender
    }
}

/// Any AMQP performative. The large ones that come once per connection, session or link
/// (`open`, `begin`, `attach`) are boxed, so the enum is as small as the per-message ones it
/// carries most often; build any variant with `Performative::from`.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq)]
pub enum Performative {
    Open(Box<Open>),
    Begin(Box<Begin>),
    Attach(Box<Attach>),
    Flow(Flow),
    Transfer(Transfer),
    Disposition(Disposition),
    Detach(Detach),
    End(End),
    Close(Close),
}

impl Performative {
    /// The spec's name of the performative (`"open"`, `"transfer"`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Performative::Open(_) => Open::NAME,
            Performative::Begin(_) => Begin::NAME,
            Performative::Attach(_) => Attach::NAME,
            Performative::Flow(_) => Flow::NAME,
            Performative::Transfer(_) => Transfer::NAME,
            Performative::Disposition(_) => Disposition::NAME,
            Performative::Detach(_) => Detach::NAME,
            Performative::End(_) => End::NAME,
            Performative::Close(_) => Close::NAME,
        }
    }
}

macro_rules! union_codec {
    ($name:ident, $what:literal, $($variant:ident),*) => {
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
                let code = match &desc {
                    Descriptor::Code(c) => Some(*c),
                    Descriptor::Name(n) => {
                        [$( ($variant::SYMBOL, $variant::CODE) ),*]
                            .iter()
                            .find(|(s, _)| *s == n.as_str())
                            .map(|(_, c)| *c)
                    }
                };
                $(
                    if code == Some($variant::CODE) {
                        return $variant::decode_body(d).map($name::from);
                    }
                )*
                Err(DecodeErrorKind::UnexpectedDescriptor(desc.to_string()).into())
            }
        }

        $( impl From<$variant> for $name {
            #[allow(clippy::useless_conversion)]
            fn from(v: $variant) -> Self { $name::$variant(v.into()) }
        } )*
    };
}
pub(crate) use union_codec;

union_codec!(
    Performative,
    "performative",
    Open,
    Begin,
    Attach,
    Flow,
    Transfer,
    Disposition,
    Detach,
    End,
    Close
);

/// Convenience: a transfer's payload as carried alongside the performative.
pub type Payload = Bytes;

#[cfg(test)]
mod size_tests {
    use super::*;

    /// The once-per-endpoint performatives are boxed: a `Performative` is no larger than the
    /// per-message `Transfer` it carries most often (plus its tag), however large `Open`,
    /// `Begin` and `Attach` grow.
    #[test]
    fn performative_is_as_small_as_a_transfer() {
        let size = std::mem::size_of::<Performative>();
        assert!(
            size <= std::mem::size_of::<Transfer>() + 8,
            "Performative is {size} bytes"
        );
        assert!(
            std::mem::size_of::<Attach>() > size,
            "boxing Attach must matter"
        );
    }
}
