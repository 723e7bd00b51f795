"""The simulated fleet as any SSH client sees it: OpenSSH `ssh` and `busctl -H` through the fleet's ssh_config,
each host with its own name, machine id, units and network, and nothing of it reachable from outside."""

from __future__ import annotations

import configparser
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fleet

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-openssh")]

HOSTNAME1 = ["org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.hostname1"]
CAP_SYS_TIME = 25


def client(sandbox: Sandbox, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`argv` with the environment `sandbox run` gives a command: the fleet's `ssh` first on PATH."""
    env = sandbox.with_fleet_path({**os.environ, **sandbox.env()})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def test_every_host_answers_ssh_as_itself(fleet_sandbox: Sandbox, fleet: Fleet) -> None:
    for host in fleet.hosts:
        result = client(fleet_sandbox, "ssh", host.name, "hostname")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == host.name


def test_busctl_host_reaches_each_hosts_own_hostnamed_and_machine_id(fleet_sandbox: Sandbox, fleet: Fleet) -> None:
    machine_ids = set()
    for host in fleet.hosts:
        hostname = client(fleet_sandbox, "busctl", "-H", host.name, "get-property", *HOSTNAME1, "Hostname")
        assert hostname.returncode == 0, hostname.stderr
        assert hostname.stdout.split() == ["s", f'"{host.name}"']
        machine_id = client(
            fleet_sandbox, "busctl", "-H", host.name, "call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
            "org.freedesktop.DBus.Peer", "GetMachineId",
        )  # fmt: skip
        assert machine_id.returncode == 0, machine_id.stderr
        on_disk = client(fleet_sandbox, "ssh", host.name, "cat", "/etc/machine-id").stdout.strip()
        assert machine_id.stdout.split() == ["s", f'"{on_disk}"']
        machine_ids.add(on_disk)
    assert len(machine_ids) == len(fleet.hosts)
    assert Path("/etc/machine-id").read_text().strip() not in machine_ids


def test_a_unit_given_to_host03_exists_only_there(fleet_sandbox: Sandbox, fleet: Fleet) -> None:
    def load_state(host: str, unit: str) -> str:
        result = client(fleet_sandbox, "systemctl", "-H", host, "show", "--property=LoadState", "--value", unit)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    for host in fleet.hosts:
        assert load_state(host.name, "fleet-everywhere.service") == "loaded"
        expected = "loaded" if host.name == "host03" else "not-found"
        assert load_state(host.name, "only-on-host03.service") == expected
    # The local sandbox's manager gets the shared units, and neither a host's own nor groups.ini.
    assert (fleet_sandbox.paths.unit_dir / "fleet-everywhere.service").exists()
    assert not (fleet_sandbox.paths.unit_dir / "host03").exists()
    assert not (fleet_sandbox.paths.unit_dir / "groups.ini").exists()


def test_the_inventory_lists_the_fleet_and_the_groups_given(fleet_sandbox: Sandbox, fleet: Fleet) -> None:
    env = fleet_sandbox.env()
    assert env["FLEETBUS_INVENTORY"] == str(fleet.paths.inventory)
    assert {"FLEETBUS_SSH_CONFIG", "FLEETBUS_KNOWN_HOSTS", "FLEETBUS_SSH_KEY"} <= env.keys()
    inventory = configparser.ConfigParser(allow_no_value=True, delimiters=(" ",))
    inventory.read(fleet.paths.inventory)
    assert list(inventory["fleet"]) == ["host01", "host02", "host03"]
    assert inventory["fleet"]["host02"] == "ansible_host=127.0.1.2"
    assert list(inventory["web"]) == ["host01", "host02"]
    assert list(inventory["db"]) == ["host03"]


def test_each_host_listens_only_inside_its_own_network(fleet: Fleet) -> None:
    own = os.stat("/proc/self/ns/net").st_ino
    namespaces = {os.stat(host.netns).st_ino for host in fleet.hosts}
    assert own not in namespaces
    assert len(namespaces) == len(fleet.hosts)
    for host in fleet.hosts:
        # From here the address leads nowhere: nothing listens on it outside the host's namespace.
        with pytest.raises(ConnectionRefusedError), socket.create_connection((host.address, 22), timeout=2):
            pass


def test_no_process_on_a_host_may_set_the_clock(fleet: Fleet) -> None:
    for host in fleet.hosts:
        pids = fleet.cgroups.pids(host.paths.cgroup_name)
        assert len(pids) >= 4  # keeper's children: journald, the manager, the bus, sshd
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            bounding = int(next(line for line in status.splitlines() if line.startswith("CapBnd:")).split()[1], 16)
            assert not bounding & (1 << CAP_SYS_TIME), f"pid {pid} on {host.name} may set the clock"


def fault(sandbox: Sandbox, host: str, kind: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "fleetbus", "sandbox", "fault", host, kind, str(sandbox.paths.root)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


def test_fault_commands_work_from_the_cli(fleet_sandbox: Sandbox) -> None:
    reject = fault(fleet_sandbox, "host02", "reject")
    assert reject.returncode == 0, reject.stderr
    try:
        assert client(fleet_sandbox, "ssh", "host02", "true").returncode != 0
        assert client(fleet_sandbox, "ssh", "host01", "true").returncode == 0
    finally:
        cleared = fault(fleet_sandbox, "host02", "clear")
    assert cleared.returncode == 0, cleared.stderr
    assert client(fleet_sandbox, "ssh", "host02", "true").returncode == 0
    unknown = fault(fleet_sandbox, "host09", "drop")
    assert unknown.returncode == 2  # as every sandbox command refusing what it was asked
    assert "no simulated host 'host09'" in unknown.stderr
