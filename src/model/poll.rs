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
    /// Our side failed (bad credential profile, resolver, or our own resources: see
    /// [`starved`]): the element's state is unknown.
    Failed(String),
    /// The element answered but refused our credentials (SNMPv3 USM reports such as
    /// usmStatsWrongDigests or unknown user, a decryption error, NETCONF authentication
    /// failure or a host-key mismatch): unknown, and the `CredentialRejected` alarm says why.
    Rejected(String),
}

/// How the reason of an `Outcome::Failed` begins when this server ran out of its own
/// resources (descriptors, buffers, memory): the poller counts those and warns.
pub const STARVED: &str = "our own resources exhausted";

/// `Some(reason)` when `e` says this process, not the element, is short of something: then
/// the element's state is unknown, never down.
pub fn starved(e: &std::io::Error) -> Option<String> {
    // Linux errno values: ENOMEM 12, ENFILE 23, EMFILE 24, ENOBUFS 105.
    match e.raw_os_error() {
        Some(12 | 23 | 24 | 105) => Some(format!("{STARVED}: {e}")),
        _ => None,
    }
}
