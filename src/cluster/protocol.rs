//! What pool members say to each other over `/peer/v1` (HTTP/JSON, pool secret required).

use super::election::Message;
use crate::model::{Alarm, Element, ElementStatus, ServerId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Orders assignments: a newer term always wins, then the master's own version counter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub(crate) struct AssignmentId {
    pub(crate) term: u64,
    pub(crate) version: u64,
}

/// The master's decision: the whole inventory (in name order) and the owner of each element.
/// It travels as deltas or chunks (`cluster::delta`), never as one body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct Assignment {
    pub(crate) id: AssignmentId,
    pub(crate) elements: Vec<Element>,
    pub(crate) owners: BTreeMap<Arc<str>, ServerId>,
    /// The pool's credential profiles (`cluster::credentials`). `None` in an assignment made
    /// before the pool held them: the members' config files still decide then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) credentials: Option<Credentials>,
}

/// Credential profiles by name, as the pool holds them (secrets included: never an API answer).
pub(crate) type Credentials = BTreeMap<String, crate::config::Credential>;

impl Assignment {
    pub(crate) fn owned_by(&self, who: ServerId) -> Vec<Element> {
        self.elements
            .iter()
            .filter(|e| self.owners.get(&e.name) == Some(&who))
            .cloned()
            .collect()
    }
}

/// An election message with its sender.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ElectionEnvelope {
    pub(crate) from: ServerId,
    pub(crate) msg: Message,
}

/// Sent by every member to every other, every heartbeat period; the reply is the receiver's own.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) from: ServerId,
    /// Highest election term the sender has seen.
    pub(crate) term: u64,
    pub(crate) master: Option<ServerId>,
    /// The assignment the sender polls by; zero when fenced or before the first one.
    pub(crate) applied: AssignmentId,
    /// The newest assignment the sender knows of (a new master adopts the pool's newest).
    pub(crate) known: AssignmentId,
}

/// What moves with elements between live servers: their alarms and last poll status, so the
/// new owner neither re-raises the alarms nor reports the element unknown for a moment.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Handover {
    #[serde(default)]
    pub(crate) alarms: Vec<Alarm>,
    #[serde(default)]
    pub(crate) statuses: Vec<(String, ElementStatus)>,
}

/// Master -> member: stop polling these elements now and give me their alarms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Release {
    pub(crate) term: u64,
    pub(crate) elements: Vec<String>,
}

pub(crate) type Released = Handover;

/// Test-only fault injection: the peers this server can neither reach nor hear.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Fault {
    pub(crate) blocked: Vec<ServerId>,
}
