"""Faults a simulated host can be put in, and `clear`, which takes every one of them back.

Network faults are iptables rules inside the host's own network namespace; a frozen bus is its dbus-daemon
stopped with SIGSTOP; a dead sshd is its sshd.service cgroup killed (listener and sessions, as a crash
of the unit would). Nothing here reaches the machine's own network or processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from enum import Enum

from fleetbus.sandbox.fleet.control import Fleet, FleetError, SimulatedHost
from fleetbus.sandbox.fleet.files import SSH_PORT
from fleetbus.sandbox.fleet.layout import SSHD_CGROUP
from fleetbus.sandbox.keeper import RESTORE_SIGNAL

RESTORE_TIMEOUT = 10.0
SSH_PACKETS = ("-p", "tcp", "--dport", str(SSH_PORT))


class Fault(Enum):
    DROP = "drop"
    """Packets to port 22 vanish: connections and calls hang until the client's deadline."""
    REJECT = "reject"
    """Port 22 answers with a TCP reset: connections fail at once."""
    FREEZE_BUS = "freeze-bus"
    """The host's dbus-daemon stops (SIGSTOP): ssh works, every bus call and new bus connection hangs."""
    KILL_SSHD = "kill-sshd"
    """sshd and every session it carries are killed; nothing listens on port 22 until `clear`."""
    CLEAR = "clear"
    """Takes back every fault above."""


def apply(fleet: Fleet, name: str, fault: Fault) -> None:
    host = fleet.host(name)
    if not host.alive():
        raise FleetError(f"simulated host {name} is not running")
    if fault is Fault.DROP:
        _iptables(host, "-I", "INPUT", *SSH_PACKETS, "-j", "DROP")
    elif fault is Fault.REJECT:
        _iptables(host, "-I", "INPUT", *SSH_PACKETS, "-j", "REJECT", "--reject-with", "tcp-reset")
    elif fault is Fault.FREEZE_BUS:
        pids = fleet.bus_pids(host)
        if not pids:
            raise FleetError(f"{name}: no dbus-daemon found to freeze")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
    elif fault is Fault.KILL_SSHD:
        fleet.cgroups.kill(f"{host.paths.cgroup_name}/{SSHD_CGROUP}")
    else:
        clear(fleet, host)


def clear(fleet: Fleet, host: SimulatedHost) -> None:
    _iptables(host, "-F", "INPUT")
    fleet.resume_bus(host)
    if not fleet.cgroups.pids(f"{host.paths.cgroup_name}/{SSHD_CGROUP}"):
        os.kill(host.keeper_pid, RESTORE_SIGNAL)
    deadline = time.monotonic() + RESTORE_TIMEOUT
    while not sshd_answers(host):
        if time.monotonic() > deadline:
            raise FleetError(f"{host.name}: sshd did not come back within {RESTORE_TIMEOUT:g} s")
        time.sleep(0.05)


def sshd_answers(host: SimulatedHost) -> bool:
    result = subprocess.run(
        host.in_network(["socat", "-u", "OPEN:/dev/null", f"TCP:{host.address}:{SSH_PORT},connect-timeout=1"]),
        capture_output=True,
        timeout=5,
        check=False,
    )
    return result.returncode == 0


def _iptables(host: SimulatedHost, *args: str) -> None:
    result = subprocess.run(
        host.in_network(["iptables", "-w", "5", *args]), capture_output=True, text=True, timeout=15, check=False
    )
    if result.returncode != 0:
        raise FleetError(f"{host.name}: iptables {' '.join(args)} failed: {result.stderr.strip()}")
