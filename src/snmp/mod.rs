//! The SNMP protocol stack: the polling client (snmp2 sessions, GETBULK walks), trap and inform
//! decoding, and the USM engine of record for SNMPv3 informs.

pub mod client;
pub mod trap;
pub mod usm;
