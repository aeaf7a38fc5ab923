//! Link options as in Proton's `proton.reactor` (`AtMostOnce()`, `Selector("…")`, …) and the
//! engine link configuration they make.

use amqp_proto::definitions::{Fields, ReceiverSettleMode, Role, SenderSettleMode};
use amqp_proto::messaging::{
    distribution_mode, FilterSet, Source, Target, TargetKind, TerminusDurability,
    TerminusExpiryPolicy,
};
use amqp_proto::{Described, Descriptor, Symbol, Value};

use crate::connection::LinkConfig;

/// A link option, as in Proton's `proton.reactor` (`AtMostOnce()`, `Selector("…")`, …).
#[derive(Clone, Debug, PartialEq)]
pub enum LinkOption {
    /// Pre-settled sends (sender settle mode `settled`).
    AtMostOnce,
    /// Unsettled sends, receiver settles first.
    AtLeastOnce,
    /// A durable subscription: terminus durability `unsettled-state`, expiry `never`.
    DurableSubscription,
    /// Browse: distribution mode `copy`.
    Copy,
    /// Consume: distribution mode `move`.
    Move,
    /// Add filters to the source.
    Filter(FilterSet),
    /// A JMS selector filter (`apache.org:selector-filter:string`).
    Selector(String),
    /// Properties for a dynamic node.
    DynamicNodeProperties(Fields),
}

/// Options for a new sender or receiver.
#[derive(Clone, Debug, Default)]
pub struct LinkOptions {
    /// The link name (default: unique, generated).
    pub name: Option<String>,
    /// The node address: the target of a sender, the source of a receiver.
    pub address: Option<String>,
    /// Ask the peer to create a node (`dynamic = true`, e.g. a temporary reply queue).
    pub dynamic: bool,
    /// Link options.
    pub options: Vec<LinkOption>,
    /// Receiver prefetch (default: the handler's).
    pub prefetch: Option<u32>,
}

impl LinkOptions {
    /// Options with this address.
    pub fn address(address: impl Into<String>) -> LinkOptions {
        LinkOptions {
            address: Some(address.into()),
            ..LinkOptions::default()
        }
    }

    /// Adds a link option.
    pub fn with(mut self, o: LinkOption) -> LinkOptions {
        self.options.push(o);
        self
    }

    /// Sets the link name.
    pub fn name(mut self, n: impl Into<String>) -> LinkOptions {
        self.name = Some(n.into());
        self
    }

    /// A dynamic node.
    pub fn dynamic() -> LinkOptions {
        LinkOptions {
            dynamic: true,
            ..LinkOptions::default()
        }
    }
}

impl From<&str> for LinkOptions {
    fn from(s: &str) -> Self {
        LinkOptions::address(s)
    }
}

impl From<String> for LinkOptions {
    fn from(s: String) -> Self {
        LinkOptions::address(s)
    }
}

/// The selector filter descriptor, `apache.org:selector-filter:string`.
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

impl LinkOptions {
    /// The engine configuration of a `role` link named `name` with these options.
    pub(super) fn link_config(&self, role: Role, name: String) -> LinkConfig {
        let opts = self;
        let mut source = Source::default();
        let mut target = Target::default();
        match role {
            Role::Sender => {
                target.address = opts.address.as_deref().map(Into::into);
                if opts.dynamic {
                    target.dynamic = Some(true);
                    target.address = None;
                }
            }
            Role::Receiver => {
                source.address = opts.address.as_deref().map(Into::into);
                if opts.dynamic {
                    source.dynamic = Some(true);
                    source.address = None;
                }
            }
        }
        let mut cfg = LinkConfig {
            name,
            ..LinkConfig::default()
        };
        for o in &opts.options {
            match o {
                LinkOption::AtMostOnce => {
                    cfg.snd_settle_mode = Some(SenderSettleMode::Settled);
                }
                LinkOption::AtLeastOnce => {
                    cfg.snd_settle_mode = Some(SenderSettleMode::Unsettled);
                    cfg.rcv_settle_mode = Some(ReceiverSettleMode::First);
                }
                LinkOption::DurableSubscription => {
                    source.durable = Some(TerminusDurability::UnsettledState);
                    source.expiry_policy = Some(TerminusExpiryPolicy::Never);
                }
                LinkOption::Copy => source.distribution_mode = Some(distribution_mode::COPY),
                LinkOption::Move => source.distribution_mode = Some(distribution_mode::MOVE),
                LinkOption::Filter(f) => {
                    let set = source.filter.get_or_insert_with(FilterSet::new);
                    for (k, v) in f.iter() {
                        set.insert(k.clone(), v.clone());
                    }
                }
                LinkOption::Selector(sel) => {
                    let v = Value::Described(Box::new(Described {
                        descriptor: Descriptor::Code(SELECTOR_FILTER_CODE),
                        value: Value::string(sel.as_str()),
                    }));
                    source
                        .filter
                        .get_or_insert_with(FilterSet::new)
                        .insert(Symbol::from("selector"), v);
                }
                LinkOption::DynamicNodeProperties(p) => {
                    if role == Role::Receiver {
                        source.dynamic_node_properties = Some(p.clone());
                    } else {
                        target.dynamic_node_properties = Some(p.clone());
                    }
                }
            }
        }
        cfg.source = Some(source);
        cfg.target = Some(TargetKind::Target(target));
        cfg
    }
}
