#!/usr/bin/env bash
# Install the real peers that the integration tests start: Net-SNMP (snmpd + CLI tools),
# snmpsim (in a venv readable by `nobody`), netconfd + a private sshd, and the system
# libraries the crate links against (ssh2 -> libssl, zlib).
#
# Idempotent and fast when everything is present: apt-get runs (with one `update`) only when
# something is missing; pip runs only when the venv lacks snmpsim/pysmi.
# Works without stdin (CI=true). Needs root for the apt and /opt parts.
#
# Environment:
#   EMSPOOL_TEST_VENV   venv path (default /opt/emspool-test/venv). The test helpers read the
#                       same variable, so keep them in sync when overriding.
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

if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    t0=$SECONDS
    $SUDO apt-get update -qq </dev/null
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

# The scriptable NETCONF server of tests/netconf.rs (PyPI netconf 2.1 needs paramiko < 4), in
# the same venv.
NETCONF_SPECS=("netconf==2.1.*" "paramiko<4")
if "$VENV/bin/python" -c 'import netconf.server, paramiko, sys; sys.exit(int(paramiko.__version__.split(".")[0]) >= 4)' >/dev/null 2>&1; then
    log "netconf (PyPI) present in $VENV"
else
    log "pip install ${NETCONF_SPECS[*]}"
    $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check "${NETCONF_SPECS[@]}" </dev/null
    $SUDO chmod -R a+rX "$(dirname "$VENV")"
fi

# sshd refuses to start without its privilege-separation directory.
[ -d /run/sshd ] || { $SUDO mkdir -p /run/sshd && log "created /run/sshd"; }

log "ok"
