#!/usr/bin/env bash
# Bounded cargo-fuzz run of the trap decoder (src/poll/trap_decode.rs, `fuzz_one`):
#   fuzz/run.sh [SECONDS]        default 60
# Uses the nightly toolchain when installed, else the stable one with RUSTC_BOOTSTRAP=1 (cargo
# fuzz needs -Z flags). Seeds are real Net-SNMP datagrams (v1, v2c, v3 authPriv) from seeds/.
# The same body runs without cargo-fuzz as a bounded proptest in `cargo test` (trap_decode::tests::prop).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
mkdir -p corpus/trap_decode
cp seeds/trap_decode/* corpus/trap_decode/
exec cargo "${toolchain[@]}" fuzz run trap_decode corpus/trap_decode -- \
    -max_total_time="$secs" -max_len=4096 -print_final_stats=1
