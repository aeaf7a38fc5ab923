//! Transactions (`transactions.xml` §4.5): the coordinator target, declare and discharge
//! messages, and the declared and transactional-state delivery states.

use bytes::Bytes;

use crate::composite;
use crate::messaging::Outcome;
use crate::value::{Symbol, Value};

composite! {
    /// `coordinator`: the target of a transaction controller's link.
    pub struct Coordinator("coordinator", "amqp:coordinator:list", 0x30) {
        /// The transaction capabilities the coordinator supports.
        pub capabilities: Option<Vec<Symbol>> => "capabilities",
    }
}

composite! {
    /// `declare`: a message body asking the coordinator for a new transaction.
    pub struct Declare("declare", "amqp:declare:list", 0x31) {
        /// A global transaction id (distributed transactions).
        pub global_id: Option<Value> => "global-id",
    }
}

composite! {
    /// `discharge`: a message body ending a transaction.
    pub struct Discharge("discharge", "amqp:discharge:list", 0x32) {
        /// The transaction to discharge.
        pub txn_id: Bytes => "txn-id",
        /// Roll back instead of committing.
        pub fail: Option<bool> => "fail",
    }
}

composite! {
    /// `declared`: the outcome of a successful declare, carrying the new transaction id.
    pub struct Declared("declared", "amqp:declared:list", 0x33) {
        /// The transaction id.
        pub txn_id: Bytes => "txn-id",
    }
}

composite! {
    /// `transactional-state`: a delivery's provisional state inside a transaction.
    pub struct TransactionalState("transactional-state", "amqp:transactional-state:list", 0x34) {
        /// The transaction.
        pub txn_id: Bytes => "txn-id",
        /// The provisional outcome.
        pub outcome: Option<Outcome> => "outcome",
    }
}

/// Transaction capability symbols (`txn-capability`).
pub mod txn_capability {
    use crate::value::Symbol;
    /// Local transactions.
    pub const LOCAL_TRANSACTIONS: Symbol = Symbol::from_static("amqp:local-transactions");
    /// Distributed transactions.
    pub const DISTRIBUTED_TRANSACTIONS: Symbol =
        Symbol::from_static("amqp:distributed-transactions");
    /// Promotable transactions.
    pub const PROMOTABLE_TRANSACTIONS: Symbol = Symbol::from_static("amqp:promotable-transactions");
    /// Multiple active transactions per session.
    pub const MULTI_TXNS_PER_SSN: Symbol = Symbol::from_static("amqp:multi-txns-per-ssn");
    /// Transactions spanning sessions.
    pub const MULTI_SSNS_PER_TXN: Symbol = Symbol::from_static("amqp:multi-ssns-per-txn");
}
