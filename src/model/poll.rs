//! What one poll of an element brought back, whatever the protocol: the input of the poll rules.

use super::{Interface, UnixMillis};

/// The data of one successful poll.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PollData {
    pub sys_uptime: Option<u32>,
    /// When the element booted, by its own clock (NETCONF ietf-system); when known, reboots
    /// are detected from it instead of from sysUpTime.
    pub boot_time: Option<UnixMillis>,
    /// NETCONF capabilities in short form (see `netconf::xml::short_capability`).
    pub capabilities: Vec<String>,
    pub sys_name: Option<String>,
    /// Interned: one copy per distinct text across all elements.
    pub sys_descr: Option<std::sync::Arc<str>>,
    pub interfaces: Vec<Interface>,
}

/// How a poll ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Answered(PollData),
    /// The agent did not answer or answered nonsense: the element is down.
    Unreachable(String),
    /// Our side failed (credentials rejected, resolver): the element's state is unknown.
    Failed(String),
}
