#!/usr/bin/env bash
# Install the real peers that the integration tests start: Net-SNMP (snmpd + CLI tools),
# snmpsim (in a venv readable by `nobody`), netconfd + a private sshd, and the system
# libraries the crate links against (ssh2 -> libssl, zlib). Also the packaging and operations
# tools: cargo-deb (builds the .deb), dpkg-dev (its dependency computation), systemd-analyze
# (unit checks), systemd-sysusers/tmpfiles, promtool (metrics and alert rules), the
# Prometheus server (device metrics through fail-over, tests/it/prometheus.rs), NATS, and
# Chromium, Node.js and playwright-core for the web console's browser tests.
#
# Idempotent and fast when everything is present: apt-get runs (with one `update`) only when
# something is missing; pip runs only when the venv lacks snmpsim/pysmi.
# Works without stdin (CI=true). Needs root for the apt and /opt parts.
#
# Environment:
#   EMSPOOL_TEST_VENV   venv path (default /opt/emspool-test/venv). The test helpers read the
#                       same variable, so keep them in sync when overriding.
#   EMSPOOL_PROMTOOL    promtool path (default /opt/emspool-test/bin/promtool, or promtool on
#                       PATH when there is one). tests/it/operations.rs reads the same variable.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
VENV="${EMSPOOL_TEST_VENV:-/opt/emspool-test/venv}"
SNMPSIM_SPEC="${EMSPOOL_SNMPSIM_SPEC:-snmpsim>=1.2,<1.3}"
PYSMI_SPEC="${EMSPOOL_PYSMI_SPEC:-pysmi}"

log() { echo "install-peers: $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else SUDO=""; fi
fi

# package -> test that proves it is installed
missing=()
need() { # need PKG CHECK-COMMAND...
    local pkg="$1"; shift
    if ! "$@" >/dev/null 2>&1; then missing+=("$pkg"); fi
}
need snmpd          test -x /usr/sbin/snmpd
need snmp           command -v snmpget
need python3-venv   /usr/bin/python3 -c 'import venv, ensurepip'
need python3-gdbm   /usr/bin/python3 -c 'import dbm.gnu'
need libssl-dev     test -f /usr/include/openssl/ssl.h
need pkg-config     command -v pkg-config
need zlib1g-dev     test -f /usr/include/zlib.h
need netconfd       test -x /usr/sbin/netconfd -a -x /usr/sbin/netconf-subsystem
need openssh-server test -x /usr/sbin/sshd
need openssh-client command -v ssh
need dpkg-dev       command -v dpkg-shlibdeps
need systemd        command -v systemd-analyze
# The outside client of the TLS tests (tests/it/tls.rs): CA, client certificates, raw requests.
need curl           command -v curl
# Silent partitions in the fencing tests: the kernel drops one member's packets.
need nftables       test -x /usr/sbin/nft
# NATS with JetStream (tests/jetstream.rs, benches/traps.rs TRAPS_BENCH_JETSTREAM=1).
need nats-server    command -v nats-server
# The Prometheus server of tests/prometheus.rs (Debian 12: 2.42). No systemd in CI, so the
# package's unit does not start; the test runs its own on loopback.
need prometheus     test -x /usr/bin/prometheus
# Two clustered Alertmanagers in tests/it/alertmanager.rs (Debian 12: 0.25).
need prometheus-alertmanager test -x /usr/bin/prometheus-alertmanager
# The web console's browser tests (tests/it/console.rs): Debian's Chromium, driven by
# playwright-core from npm (never `npx playwright install`: it downloads another browser).
need chromium       test -x /usr/bin/chromium
need nodejs         command -v node
need npm            command -v npm

apt_updated=0
apt_update() {
    [ "$apt_updated" = 1 ] && return 0
    $SUDO apt-get update -qq </dev/null
    apt_updated=1
}

if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    t0=$SECONDS
    apt_update
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    log "apt-get done in $((SECONDS - t0)) s"
else
    log "system packages present"
fi

# snmpsim venv. Built from Debian's python (not a pyenv/root one): snmpsim drops privileges to
# `nobody`, which must be able to read the interpreter and the venv.
venv_ok() {
    [ -x "$VENV/bin/snmpsim-command-responder" ] &&
        "$VENV/bin/python" -c 'import snmpsim, pysmi, dbm.gnu' >/dev/null 2>&1
}
if venv_ok; then
    log "snmpsim venv present at $VENV ($("$VENV/bin/python" -c 'import importlib.metadata as m; print("snmpsim", m.version("snmpsim"))'))"
else
    t0=$SECONDS
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating venv $VENV from /usr/bin/python3"
        $SUDO mkdir -p "$(dirname "$VENV")"
        $SUDO /usr/bin/python3 -m venv "$VENV"
    fi
    log "pip install $SNMPSIM_SPEC $PYSMI_SPEC"
    if ! $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check "$SNMPSIM_SPEC" "$PYSMI_SPEC" </dev/null; then
        log "pinned '$SNMPSIM_SPEC' did not resolve; trying unpinned snmpsim"
        $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check snmpsim "$PYSMI_SPEC" </dev/null
    fi
    # Readable and traversable by nobody whatever the umask was.
    $SUDO chmod -R a+rX "$(dirname "$VENV")"
    venv_ok || { log "snmpsim venv still broken at $VENV"; exit 1; }
    log "snmpsim venv ready in $((SECONDS - t0)) s"
fi

# The scriptable NETCONF server of tests/it/netconf.rs (PyPI netconf 2.1 needs paramiko < 4), in
# the same venv.
NETCONF_SPECS=("netconf==2.1.*" "paramiko<4")
if "$VENV/bin/python" -c 'import netconf.server, paramiko, sys; sys.exit(int(paramiko.__version__.split(".")[0]) >= 4)' >/dev/null 2>&1; then
    log "netconf (PyPI) present in $VENV"
else
    log "pip install ${NETCONF_SPECS[*]}"
    $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check "${NETCONF_SPECS[@]}" </dev/null
    $SUDO chmod -R a+rX "$(dirname "$VENV")"
fi

# promtool: only the binary out of Debian's `prometheus` package (apt-get download + extract),
# so that installing it neither pulls the server's dependencies nor starts a Prometheus
# server on machines where services start.
PROMTOOL="${EMSPOOL_PROMTOOL:-/opt/emspool-test/bin/promtool}"
if command -v promtool >/dev/null 2>&1 && [ -z "${EMSPOOL_PROMTOOL:-}" ]; then
    log "promtool present at $(command -v promtool)"
elif [ -x "$PROMTOOL" ]; then
    log "promtool present at $PROMTOOL"
else
    t0=$SECONDS
    apt_update
    dl=$(mktemp -d)
    ( cd "$dl" && chmod 777 . && apt-get download -qq prometheus </dev/null )
    $SUDO mkdir -p "$(dirname "$PROMTOOL")"
    dpkg-deb --fsys-tarfile "$dl"/prometheus_*.deb | tar -x -O ./usr/bin/promtool >"$dl/promtool"
    $SUDO install -m 0755 "$dl/promtool" "$PROMTOOL"
    rm -rf "$dl"
    "$PROMTOOL" --version >/dev/null || { log "promtool at $PROMTOOL does not run"; exit 1; }
    log "promtool installed at $PROMTOOL in $((SECONDS - t0)) s"
fi

# cargo-deb builds the Debian package (tests/it/packaging.rs, README). From crates.io, once.
CARGO_DEB_SPEC="${EMSPOOL_CARGO_DEB_SPEC:-^3.8}"
if cargo deb --version >/dev/null 2>&1; then
    log "cargo-deb present ($(cargo deb --version 2>/dev/null | head -1))"
else
    log "cargo install cargo-deb $CARGO_DEB_SPEC (a few minutes)"
    t0=$SECONDS
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_SPEC" </dev/null
    log "cargo-deb installed in $((SECONDS - t0)) s"
fi

# playwright-core for tests/browser, pinned by its package-lock.json.
BROWSER_DIR="$(cd "$(dirname "$0")" && pwd)/browser"
if [ -d "$BROWSER_DIR/node_modules/playwright-core" ]; then
    log "playwright-core present in $BROWSER_DIR/node_modules"
else
    log "npm ci in $BROWSER_DIR"
    t0=$SECONDS
    ( cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error </dev/null )
    log "npm ci done in $((SECONDS - t0)) s"
fi

# sshd refuses to start without its privilege-separation directory.
[ -d /run/sshd ] || { $SUDO mkdir -p /run/sshd && log "created /run/sshd"; }

log "ok"
