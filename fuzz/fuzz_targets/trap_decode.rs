//! Any datagram into the trap decoder (v1/v2c/v3 with one authPriv user): no panic, and what
//! decodes survives the JSON round trip used to forward traps between pool members.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    emspool::testing::snmp::fuzz_one(data);
});
