//! NETCONF framing (both framings, a size cap) and every reply/hello/notification parser on
//! arbitrary device bytes. Run: `cargo +nightly fuzz run netconf_decode` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    emspool::testing::netconf::decode_and_parse(data);
});
