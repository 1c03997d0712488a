"""A scriptable NETCONF server for emspool's tests: PyPI `netconf` 2.1 (paramiko SSH).

Usage: ncserver.py DIR USER PASSWORD HOSTKEY [--base10] [--listeners N] [--idle-wakeup S]

Listens on 127.0.0.1 (a free port, printed as "listening PORT" on stdout). With --listeners N
it opens N listening ports (printed as "listening PORT1 PORT2 ...") served by this one process:
the scale bench gives every element its own port. --idle-wakeup S makes each idle paramiko
transport wake every S seconds instead of paramiko's 0.1 s (it only checks whether it was
closed): 2,000 idle sessions otherwise cost these processes ~1 core of wake-ups. Behaviour comes
from DIR/state.json, re-read on every request, so the test steers it by rewriting the file:

    {"hostname": "py-ne", "boot": "2026-01-01T00:00:00Z",
     "interfaces": [{"name": "eth0", "oper": "up", "admin": "up", "index": 1}],
     "fault": null | "rpc-error" | "stall" | "malformed" | "oversize"}

- rpc-error: every <get> answers <rpc-error> (operation-failed, with a message)
- stall:     the reply is cut after half its bytes and the session hangs until the fault ends
- malformed: the reply is framed correctly but is not well-formed XML
- oversize:  the reply carries a 3 MB leaf

Notifications: each file DIR/notify-*.xml (a whole <notification> element) is sent to every
session that did <create-subscription>, then deleted. DIR/stats.json counts sessions and gets, and per listening port the gets and the time of the
last one ("ports": {"PORT": {"gets": N, "last": UNIX_SECONDS}}).
--base10 offers only base:1.0 (end-of-message framing) instead of base:1.0 + base:1.1.
"""

import errno
import glob
import json
import os
import socket as _socket
import sys
import threading
import time

from lxml import etree

import netconf.base
import netconf.error as ncerror
import netconf.server as ncserver
import sshutil.server

NS_NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NS_IF = "urn:ietf:params:xml:ns:yang:ietf-interfaces"
NS_SYS = "urn:ietf:params:xml:ns:yang:ietf-system"

DIR, USER, PASSWORD, HOSTKEY = sys.argv[1:5]
BASE10 = "--base10" in sys.argv[5:]
LISTENERS = 1
if "--listeners" in sys.argv[5:]:
    LISTENERS = int(sys.argv[sys.argv.index("--listeners") + 1])
if "--idle-wakeup" in sys.argv[5:]:
    import paramiko
    paramiko.Transport._active_check_timeout = float(sys.argv[sys.argv.index("--idle-wakeup") + 1])

if BASE10:
    # The library offers (and looks for) this name: make it one nobody has.
    netconf.base.NC_BASE_11 = "urn:x-emspool-test:base-1.1-disabled"


class _LoopbackSocket(_socket.socket):
    def bind(self, addr):
        host, port = addr[0], addr[1]
        return super().bind(("127.0.0.1" if host in ("", "0.0.0.0") else host, port))


class _LoopbackSocketModule:
    """Stands in for `socket` inside sshutil.server: IPv6 is refused (sshutil binds '::'),
    IPv4 binds 127.0.0.1 only."""

    def __getattr__(self, name):
        return getattr(_socket, name)

    @staticmethod
    def socket(family=_socket.AF_INET, *args, **kwargs):
        if family == _socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "IPv6 disabled for tests")
        return _LoopbackSocket(family, *args, **kwargs)


sshutil.server.socket = _LoopbackSocketModule()


def state():
    try:
        with open(os.path.join(DIR, "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


STATS = {"sessions": [], "gets": 0, "ports": {}}
STATS_LOCK = threading.Lock()
SUBSCRIBED = []


def save_stats():
    tmp = os.path.join(DIR, "stats.json.tmp")
    with open(tmp, "w") as f:
        json.dump(STATS, f)
    os.replace(tmp, os.path.join(DIR, "stats.json"))


# Faults that act on the bytes sent: patch the framing layer.
_real_send_pdu = netconf.base.NetconfFramingTransport.send_pdu


def send_pdu(self, msg, new_framing):
    fault = state().get("fault")
    if "<rpc-reply" in msg and "<data" in msg:
        if fault == "malformed":
            msg = '<?xml version="1.0"?><rpc-reply xmlns="%s" message-id="x"><data><a></b></data>' % NS_NC
        elif fault == "stall":
            data = msg.encode("utf-8")
            if new_framing:
                data = ("\n#%d\n" % len(data)).encode() + data
            half = data[: len(data) // 2]
            self.stream.sendall(half)
            deadline = time.time() + 300
            while state().get("fault") == "stall" and time.time() < deadline:
                time.sleep(0.1)
            self.close()
            raise EOFError("stalled session dropped")
    return _real_send_pdu(self, msg, new_framing)


netconf.base.NetconfFramingTransport.send_pdu = send_pdu


def sub(parent, ns, tag, text=None):
    e = etree.SubElement(parent, "{%s}%s" % (ns, tag))
    if text is not None:
        e.text = str(text)
    return e


def build_data(st):
    data = etree.Element("{%s}data" % NS_NC, nsmap={None: NS_NC})
    system = sub(data, NS_SYS, "system")
    sub(system, NS_SYS, "hostname", st.get("hostname", "py-ne"))
    ss = sub(data, NS_SYS, "system-state")
    platform = sub(ss, NS_SYS, "platform")
    sub(platform, NS_SYS, "os-name", "PyNOS")
    sub(platform, NS_SYS, "os-release", "2.1")
    clock = sub(ss, NS_SYS, "clock")
    sub(clock, NS_SYS, "current-datetime", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    sub(clock, NS_SYS, "boot-datetime", st.get("boot", "2026-01-01T00:00:00Z"))
    ifs = sub(data, NS_IF, "interfaces")
    ifs_state = sub(data, NS_IF, "interfaces-state")
    for i in st.get("interfaces", []):
        c = sub(ifs, NS_IF, "interface")
        sub(c, NS_IF, "name", i["name"])
        sub(c, NS_IF, "enabled", "true" if i.get("admin", "up") == "up" else "false")
        s = sub(ifs_state, NS_IF, "interface")
        sub(s, NS_IF, "name", i["name"])
        sub(s, NS_IF, "admin-status", i.get("admin", "up"))
        sub(s, NS_IF, "oper-status", i.get("oper", "up"))
        if "index" in i:
            sub(s, NS_IF, "if-index", i["index"])
        stats = sub(s, NS_IF, "statistics")
        sub(stats, NS_IF, "in-octets", 1000)
        sub(stats, NS_IF, "out-octets", 2000)
    if st.get("fault") == "oversize":
        sub(ss, NS_SYS, "padding", "x" * (3 << 20))
    return data


def top_level_filter(data, filter_or_none):
    """Subtree filtering at the top level only: keep data nodes named in the filter."""
    if filter_or_none is None:
        return data
    wanted = {c.tag for c in filter_or_none if isinstance(c.tag, str)}
    for child in list(data):
        if child.tag not in wanted:
            data.remove(child)
    return data


class Methods(ncserver.NetconfMethods):
    port = None  # the listening port these methods serve (set once it is known)

    def nc_append_capabilities(self, caps):
        for cap in [
            "urn:ietf:params:netconf:capability:notification:1.0",
            NS_IF + "?module=ietf-interfaces&revision=2014-05-08",
            NS_SYS + "?module=ietf-system&revision=2014-08-06",
        ]:
            etree.SubElement(caps, "{%s}capability" % NS_NC).text = cap

    def rpc_get(self, session, rpc, filter_or_none):
        st = state()
        with STATS_LOCK:
            if session.session_id not in STATS["sessions"]:
                STATS["sessions"].append(session.session_id)
            STATS["gets"] += 1
            p = STATS["ports"].setdefault(str(self.port), {"gets": 0, "last": 0})
            p["gets"] += 1
            p["last"] = time.time()
            save_stats()
        if st.get("fault") == "rpc-error":
            raise ncerror.OperationFailedAppError(
                rpc, None, message="scripted failure: resource busy", app_tag="emspool-test")
        return top_level_filter(build_data(st), filter_or_none)

    def rpc_get_config(self, session, rpc, source, filter_or_none):
        data = build_data(state())
        for child in list(data):
            if etree.QName(child).localname.endswith("-state"):
                data.remove(child)
        return top_level_filter(data, filter_or_none)

    def rpc_create_subscription(self, session, rpc, *params):
        SUBSCRIBED.append(session)
        return etree.Element("ok")


def notifier():
    while True:
        time.sleep(0.1)
        for path in sorted(glob.glob(os.path.join(DIR, "notify-*.xml"))):
            try:
                with open(path) as f:
                    body = f.read()
                os.remove(path)
            except OSError:
                continue
            for s in list(SUBSCRIBED):
                try:
                    if s.session_open:
                        s.send_message(body)
                except Exception as e:  # a closed session: forget it
                    print("notify failed: %s" % e, flush=True)
                    SUBSCRIBED.remove(s)


def main():
    if os.environ.get("NCSERVER_DEBUG"):
        import logging
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(threadName)s %(name)s %(message)s")
    servers = []
    for _ in range(LISTENERS):
        methods = Methods()
        server = ncserver.NetconfSSHServer(
            server_ctl=sshutil.server.SSHUserPassController(username=USER, password=PASSWORD),
            server_methods=methods,
            port=0,
            host_key=HOSTKEY,
            debug=False,
        )
        methods.port = server.port
        servers.append(server)
    threading.Thread(target=notifier, daemon=True).start()
    print("listening %s" % " ".join(str(s.port) for s in servers), flush=True)
    servers[0].join()


if __name__ == "__main__":
    main()
