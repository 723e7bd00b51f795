"""Parsers of a host's network facts: `ip -j addr` (interfaces and addresses) and `ss -Htuanp` (sockets with
their processes), shaped as network_status answers. Pure functions of the commands' text."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fleetbus.executors.procfs import ProcFormatError

INTERFACE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
SS_STATES = {
    "ESTAB": "established",
    "SYN-SENT": "syn_sent",
    "SYN-RECV": "syn_recv",
    "FIN-WAIT-1": "fin_wait1",
    "FIN-WAIT-2": "fin_wait2",
    "TIME-WAIT": "time_wait",
    "UNCONN": "close",
    "CLOSE-WAIT": "close_wait",
    "LAST-ACK": "last_ack",
    "LISTEN": "listen",
    "CLOSING": "closing",
}
"""ss's state words → the names network_status has always counted connections under (psutil's, lower case)."""


@dataclass(frozen=True)
class Interface:
    name: str
    up: bool
    mtu: int | None
    addresses: list[str]
    """`address/prefix`, IPv4 and IPv6, in the kernel's order."""


def interfaces(text: str) -> list[Interface]:
    """`ip -j addr`: one object per interface; `flags` holds UP when it is administratively up (IFF_UP)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # a host's `ip` can print anything, `[[[[…` a million deep too
        raise ProcFormatError(f"ip -j addr: not JSON: {text[:80]!r}") from None
    if not isinstance(data, list):
        raise ProcFormatError("ip -j addr: not a list of interfaces")
    found = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("ifname"), str):
            continue
        addresses = [
            f"{a['local']}/{a['prefixlen']}"
            for a in item.get("addr_info") or []
            if isinstance(a, dict) and a.get("family") in ("inet", "inet6") and "local" in a and "prefixlen" in a
        ]
        mtu = item.get("mtu")
        up = "UP" in (item.get("flags") or [])
        found.append(Interface(item["ifname"], up, mtu if isinstance(mtu, int) else None, addresses))
    return found


def plain_name(name: str) -> bool:
    """An interface name that can stand in a /sys path as it is (the kernel allows more; those go unmeasured)."""
    return bool(INTERFACE_NAME.fullmatch(name)) and name not in (".", "..")


@dataclass(frozen=True)
class Socket:
    proto: str
    """tcp or udp, with 6 for IPv6 (a dual-stack socket, which ss shows as `*`, counts as IPv6)."""
    state: str
    """ss's word: LISTEN, ESTAB, UNCONN…"""
    address: str
    port: int
    pid: int | None
    process: str | None

    @property
    def listening(self) -> bool:
        """A TCP socket in LISTEN, or a UDP socket bound and not connected."""
        return self.state == "LISTEN" if self.proto.startswith("tcp") else self.state == "UNCONN"


def sockets(text: str) -> list[Socket]:
    """`ss -Htuanp`: `Netid State Recv-Q Send-Q Local:Port Peer:Port [users:(("name",pid=N,fd=M),…)]`."""
    found = []
    for line in text.splitlines():
        fields = line.split(maxsplit=6)
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            continue
        host, port = _endpoint(fields[4])
        if port is None:
            continue
        six = host == "*" or ":" in host
        pid, process = _first_user(fields[6]) if len(fields) > 6 else (None, None)
        address = "::" if host == "*" else host
        found.append(Socket(fields[0] + ("6" if six else ""), fields[1], address, port, pid, process))
    return found


def _endpoint(text: str) -> tuple[str, int | None]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        return host, None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # `127.0.0.53%lo`, `fe80::1%eth0`: the interface a socket is bound to
    return host, int(port)


def _first_user(text: str) -> tuple[int | None, str | None]:
    """The first process of `users:(("sshd",pid=644,fd=3),…)`. A name is quoted and may hold any character
    but a quote… except that ss does not escape one, so the pid is looked for after the last `",pid=`."""
    start = text.find('(("')
    mark = text.find('",pid=', start)
    if start < 0 or mark < 0:
        return None, None
    digits = ""
    for char in text[mark + 6 :]:
        if not char.isdigit():
            break
        digits += char
    return (int(digits) if digits else None), text[start + 3 : mark]


def network_figures(
    found_interfaces: list[Interface],
    found_sockets: list[Socket],
    speeds: Mapping[str, int],
    limit: int,
    *,
    sockets_complete: bool = True,
) -> dict[str, Any]:
    """The `network` snapshot: what network_status answers."""
    rows = []
    for interface in sorted(found_interfaces, key=lambda i: i.name)[:limit]:
        speed = speeds.get(interface.name)
        rows.append(
            {
                "name": interface.name,
                "up": interface.up,
                "mtu": interface.mtu,
                "speed_mbps": speed if speed and speed > 0 else None,
                "addresses": " ".join(interface.addresses),
            }
        )
    listening = []
    states: Counter[str] = Counter()
    for socket in found_sockets:
        if socket.listening:
            listening.append(
                {
                    "proto": socket.proto,
                    "address": socket.address,
                    "port": socket.port,
                    "pid": socket.pid,
                    "process": socket.process,
                }
            )
        elif socket.proto.startswith("tcp"):
            states[SS_STATES.get(socket.state, socket.state.lower())] += 1
    listening.sort(key=lambda row: (row["port"], row["proto"], row["address"]))
    result: dict[str, Any] = {
        "interfaces": rows,
        "listening": listening[:limit],
        "listening_total": len(listening),
        "connections": dict(sorted(states.items())),
    }
    if not sockets_complete:
        result["sockets_complete"] = False
    return result
