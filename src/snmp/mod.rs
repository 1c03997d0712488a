//! The SNMP protocol stack: the polling client (snmp2 sessions, GETBULK walks), trap and inform
//! decoding, the USM engine of record for SNMPv3 informs, and the trap senders' clocks
//! (`timeliness`: replay protection).

pub(crate) mod client;
pub(crate) mod timeliness;
pub(crate) mod trap;
pub(crate) mod usm;
