//! SNMP agent simulator used by `emspool demo`, benchmarks and tests at scale.
