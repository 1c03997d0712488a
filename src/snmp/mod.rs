//! The SNMP protocol stack: the polling client (snmp2 sessions, GETBULK walks), trap and inform
//! decoding, and the USM engine of record for SNMPv3 informs.

pub(crate) mod client;
pub(crate) mod trap;
pub(crate) mod usm;
