"""The light host profile at scale: `sandbox start --hosts 30 --profile light` brings up thirty hosts with sshd, a
system bus and hostnamed (no service manager); one fan-out of a read over all of them answers in one group, and
`sandbox stop` leaves no process, mount, network namespace or cgroup behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus.dbus.link import BusLink
from fleetbus.hosts.ssh import HandshakeGate, SshHost, SshLimits, SshTarget
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fault, Fleet, faults
from fleetbus.sandbox.layout import CgroupLayout
from fleetbus.tools.fanout.engine import fan_out
from fleetbus.tools.fanout.grouping import group_outcomes
from tests.fleet.test_fleet_cli import fleetbus
from tests.fleet.test_teardown import processes_mentioning

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-light")]

HOSTS = 30
DEADLINE = 10.0
HOSTNAME1 = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.DBus.Properties", "Get", "ss")
DBUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s")


def ip_netns() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def light_directory() -> Iterator[Path]:
    started = fleetbus("sandbox", "start", "--hosts", str(HOSTS), "--profile", "light")
    assert started.returncode == 0, started.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines() if line.startswith("export ")
    )
    directory = Path(exports["FLEETBUS_SANDBOX"])
    try:
        yield directory
    finally:
        if directory.exists():
            Sandbox.attach(directory).stop()


class Links:
    """One SSH connection and bus link per host, the handshakes bounded by one gate (as the registry does)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.gate = HandshakeGate()
        self.hosts: list[SshHost] = []
        self.links: list[BusLink] = []

    async def property(self, name: str, prop: str) -> object:
        target = SshTarget(name, config=(self.fleet.paths.ssh_config,), known_hosts=(self.fleet.paths.known_hosts,))
        host = SshHost(target, SshLimits(connect_timeout=DEADLINE, bus_setup_timeout=DEADLINE), handshakes=self.gate)
        self.hosts.append(host)
        link = await (await host.connect()).open_link("system", connect_timeout=DEADLINE)
        self.links.append(link)
        reply = await link.call(*HOSTNAME1, ["org.freedesktop.hostname1", prop], timeout=DEADLINE)
        has_manager = await link.call(*DBUS, ["org.freedesktop.systemd1"], timeout=DEADLINE)
        assert has_manager.body == [False], "a light host has no service manager on its bus"
        return {"os": reply.body[0].value}

    async def close(self) -> None:
        for link in self.links:
            link.close()
        for host in self.hosts:
            await host.close()


async def test_a_read_over_thirty_light_hosts_answers_in_one_group(light_directory: Path) -> None:
    fleet = Sandbox.attach(light_directory).fleet
    assert fleet is not None
    names = [host.name for host in fleet.hosts]
    assert len(names) == HOSTS
    links = Links(fleet)
    try:
        result = await fan_out(
            names,
            lambda name: links.property(name, "OperatingSystemPrettyName"),
            per_host_deadline=DEADLINE,
            overall_deadline=45,
        )
    finally:
        await links.close()
    grouped = group_outcomes(result.outcomes)
    assert [(group.row()["hosts"], group.row()["count"]) for group in grouped.answers] == [("host[01-30]", HOSTS)]
    assert grouped.failures == []
    assert links.gate.peak <= links.gate.limit


def test_a_stopped_light_fleet_leaves_nothing_behind(light_directory: Path) -> None:
    netns_before = ip_netns()
    sandbox = Sandbox.attach(light_directory)
    assert sandbox.fleet is not None
    keepers = [host.keeper_pid for host in sandbox.fleet.hosts]
    netns = [host.netns for host in sandbox.fleet.hosts]
    assert all(Path(path).exists() for path in netns)
    # A light host's bus is found (and frozen) as a full host's is; left frozen: teardown must not need a clear.
    faults.apply(sandbox.fleet, "host07", Fault.FREEZE_BUS)
    stopped = fleetbus("sandbox", "stop", str(light_directory))
    assert stopped.returncode == 0, stopped.stderr
    root = str(light_directory)
    assert processes_mentioning(root) == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in keepers)
    assert all(not Path(path).exists() for path in netns)
    cgroup = sandbox.paths.cgroup_name
    assert [h for h in CgroupLayout.detect().hierarchies if (h / cgroup).exists()] == []
    assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if root in line] == []
    assert not light_directory.exists()
    assert ip_netns() == netns_before
