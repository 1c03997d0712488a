#!/usr/bin/env python3
"""Generate tests/data/router24.snmprec: a router with 24 interfaces (system, ifTable, ifXTable).

snmpsim and emspool's own simulator both read it. Interfaces 23 and 24 are admin up / oper down
so that a poll raises LinkDown on every device; 21 and 22 are admin down.
Counters (octets, unicast packets, errors, discards) hold start values; emspool's simulator
advances them with time when asked to (`emspool simulate --traffic`, `SimConfig::traffic`).
"""
import sys

def oid_key(line):
    return tuple(int(p) for p in line.split("|", 1)[0].split("."))

rows = []
sysd = "1.3.6.1.2.1.1"
rows += [
    f"{sysd}.1.0|4|Emspool test router, 24 ports, firmware 1.0",
    f"{sysd}.2.0|6|1.3.6.1.4.1.8072.3.2.10",
    f"{sysd}.3.0|67|123456",
    f"{sysd}.4.0|4|noc@example.net",
    f"{sysd}.5.0|4|router24",
    f"{sysd}.6.0|4|Lab rack 1",
    f"{sysd}.7.0|2|72",
]
rows.append("1.3.6.1.2.1.2.1.0|2|24")
ift = "1.3.6.1.2.1.2.2.1"
ifx = "1.3.6.1.2.1.31.1.1.1"
for i in range(1, 25):
    admin = 2 if i in (21, 22) else 1
    oper = 2 if i in (21, 22, 23, 24) else 1
    rows += [
        f"{ift}.1.{i}|2|{i}",
        f"{ift}.2.{i}|4|GigabitEthernet0/{i}",
        f"{ift}.3.{i}|2|6",
        f"{ift}.4.{i}|2|1500",
        f"{ift}.5.{i}|66|1000000000",
        f"{ift}.6.{i}|4x|00005e0053{i:02x}",
        f"{ift}.7.{i}|2|{admin}",
        f"{ift}.8.{i}|2|{oper}",
        f"{ift}.9.{i}|67|{1000 * i}",
        f"{ift}.10.{i}|65|{100000 * i}",
        f"{ift}.13.{i}|65|{i}",
        f"{ift}.14.{i}|65|{2 * i}",
        f"{ift}.16.{i}|65|{200000 * i}",
        f"{ift}.19.{i}|65|{3 * i}",
        f"{ift}.20.{i}|65|{4 * i}",
        f"{ifx}.1.{i}|4|Gi0/{i}",
        f"{ifx}.6.{i}|70|{10_000_000_000 + 1000 * i}",
        f"{ifx}.7.{i}|70|{10_000_000 + 10 * i}",
        f"{ifx}.10.{i}|70|{20_000_000_000 + 1000 * i}",
        f"{ifx}.11.{i}|70|{20_000_000 + 10 * i}",
        f"{ifx}.15.{i}|66|1000",
        f"{ifx}.18.{i}|4|port {i}",
    ]
rows.sort(key=oid_key)
out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/router24.snmprec"
with open(out, "w") as f:
    f.write("\n".join(rows) + "\n")
