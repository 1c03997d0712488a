#!/usr/bin/env bash
# The one test command (README): install the real peers, build once, lint, run every test.
#   tests/run.sh            from anywhere in the clone
# Exits non-zero when any step fails; every step after the build still runs so one report
# shows all failures. Uses cargo-nextest when installed, else `cargo test`.
# Env: CARGO_TARGET_DIR (default: the clone's target/), EMSPOOL_TEST_TIMEOUT (seconds for
# the test step, default 1500), EMSPOOL_SKIP_INSTALL=1 to skip tests/install-peers.sh,
# EMSPOOL_FUZZ_SECS=N to also fuzz the trap decoder for N seconds (fuzz/run.sh).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
TEST_TIMEOUT="${EMSPOOL_TEST_TIMEOUT:-1500}"

failed=()
t_all=$SECONDS
step() { # step NAME COMMAND...
    local name="$1"; shift
    local t0=$SECONDS
    echo "=== run.sh: $name: $*"
    if "$@"; then
        echo "=== run.sh: $name ok ($((SECONDS - t0)) s)"
        return 0
    else
        local rc=$?
        echo "=== run.sh: $name FAILED (exit $rc, $((SECONDS - t0)) s)"
        failed+=("$name")
        return $rc
    fi
}

if [ "${EMSPOOL_SKIP_INSTALL:-0}" != 1 ]; then
    step install bash tests/install-peers.sh || { echo "=== run.sh: cannot test without peers"; exit 1; }
fi

step fmt cargo fmt --all -- --check
step build cargo build --all-targets || { echo "=== run.sh: FAILED: ${failed[*]}"; exit 1; }
step clippy cargo clippy --all-targets -- -D warnings
# The shipped binary is built without the `testing` feature: test-only code must be gated.
step clippy-product cargo clippy --bins -- -D warnings

if cargo nextest --version >/dev/null 2>&1; then
    step test timeout --kill-after=30 "$TEST_TIMEOUT" cargo nextest run --no-fail-fast
    # nextest does not run doctests.
    step doctest cargo test --doc
else
    step test timeout --kill-after=30 "$TEST_TIMEOUT" cargo test --no-fail-fast
fi

# Bounded cargo-fuzz run of the trap decoder (opt-in: its sanitizer build takes ~9 min cold).
if [ "${EMSPOOL_FUZZ_SECS:-0}" != 0 ]; then
    step fuzz bash fuzz/run.sh "$EMSPOOL_FUZZ_SECS"
fi

echo "=== run.sh: total $((SECONDS - t_all)) s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "=== run.sh: FAILED: ${failed[*]}"
    exit 1
fi
echo "=== run.sh: all ok"
