"""The fan-out engine and grouping over real simulated hosts (sshd, bus, systemd in their own namespaces): a
unit running everywhere but failing on host04 comes back as two groups; a dropped or frozen host is named in its
failure within the per-host deadline + 1 s while the others are grouped; progress counts every host."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from fleetbus.dbus.link import BusLink
from fleetbus.hosts.ssh import SshHost, SshLimits
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fault, Fleet, faults
from fleetbus.tools.fanout.engine import Progress, fan_out
from fleetbus.tools.fanout.grouping import group_outcomes
from tests.fleet.conftest import ssh_host, start_fleet

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-fanout")]

HOSTS = [f"host{n:02d}" for n in range(1, 6)]
DEADLINE = 2.0
LIMITS = SshLimits(connect_timeout=DEADLINE, bus_setup_timeout=DEADLINE)
SD, SD_PATH, MANAGER = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
PROPERTIES, UNIT = "org.freedesktop.DBus.Properties", "org.freedesktop.systemd1.Unit"


@pytest.fixture(scope="module")
def fleet_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    units = tmp_path_factory.mktemp("fanout-units")
    (units / "worker.service").write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    (units / "host04").mkdir()
    (units / "host04" / "worker.service").write_text(
        "[Service]\nExecStart=/bin/sh -c 'echo worker: cannot bind :8080 >&2; exit 1'\n"
    )
    with start_fleet(hosts=len(HOSTS), units=units) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def fleet(fleet_sandbox: Sandbox) -> Fleet:
    assert fleet_sandbox.fleet is not None
    return fleet_sandbox.fleet


class Links:
    """One SSH connection and one system-bus link per host, made on first use (what a HostRegistry keeps)."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.hosts: dict[str, SshHost] = {}
        self.links: dict[str, BusLink] = {}

    async def link(self, name: str) -> BusLink:
        if name not in self.links:
            host = self.hosts.setdefault(name, ssh_host(self.fleet, name, LIMITS))
            connection = await host.connect()
            self.links[name] = await connection.open_link("system", connect_timeout=DEADLINE)
        return self.links[name]

    async def unit_state(self, name: str, unit: str = "worker.service") -> dict[str, Any]:
        link = await self.link(name)
        (path,) = (await link.call(SD, SD_PATH, MANAGER, "GetUnit", "s", [unit], timeout=DEADLINE)).body
        state = {}
        for prop in ("ActiveState", "SubState", "Description"):
            reply = await link.call(SD, path, PROPERTIES, "Get", "ss", [UNIT, prop], timeout=DEADLINE)
            state[prop] = reply.body[0].value
        pid = await link.call(
            SD, path, PROPERTIES, "Get", "ss", ["org.freedesktop.systemd1.Service", "MainPID"], timeout=DEADLINE
        )
        state["MainPID"] = pid.body[0].value
        return state

    async def close(self) -> None:
        for link in self.links.values():
            link.close()
        for host in self.hosts.values():
            await host.close()
        self.links.clear()
        self.hosts.clear()


@pytest.fixture(scope="module")
async def started(fleet: Fleet) -> AsyncIterator[None]:
    """worker.service started on every host, host04's already failed (waited for with a deadline)."""
    links = Links(fleet)
    try:
        for name in HOSTS:
            link = await links.link(name)
            await link.call(SD, SD_PATH, MANAGER, "StartUnit", "ss", ["worker.service", "replace"], timeout=DEADLINE)
        for _ in range(200):  # 10 s at most
            if (await links.unit_state("host04"))["ActiveState"] == "failed":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("worker.service on host04 did not fail within 10 s")
        yield
    finally:
        await links.close()


@pytest.fixture
async def links(fleet: Fleet, started: None) -> AsyncIterator[Links]:
    fresh = Links(fleet)  # a fresh registry per test: faults act on new connections too
    yield fresh
    await fresh.close()


async def test_one_answer_in_two_groups(links: Links) -> None:
    seen: list[Progress] = []
    result = await fan_out(HOSTS, links.unit_state, per_host_deadline=DEADLINE + 3, on_done=seen.append)
    grouped = group_outcomes(result.outcomes, volatile=["MainPID"])
    rows = [group.row() for group in grouped.answers]
    assert [(row["hosts"], row["answer"]["ActiveState"]) for row in rows] == [
        ("host[01-03,05]", "active"),
        ("host04", "failed"),
    ]
    assert rows[1]["answer"]["MainPID"] == 0  # the outlier is shown whole
    assert grouped.failures == []
    assert [p.done for p in seen] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("faulted", "kind"), [("host02", Fault.DROP), ("host03", Fault.FREEZE_BUS)])
async def test_a_faulted_host_is_named_within_the_deadline_and_the_rest_are_grouped(
    fleet: Fleet, links: Links, faulted: str, kind: Fault
) -> None:
    faults.apply(fleet, faulted, kind)
    try:
        began = time.monotonic()
        result = await fan_out(HOSTS, links.unit_state, per_host_deadline=DEADLINE + 0.5, overall_deadline=30)
        took = time.monotonic() - began
    finally:
        faults.apply(fleet, faulted, Fault.CLEAR)
    assert took < DEADLINE + 0.5 + 1, f"took {took:.2f} s"
    grouped = group_outcomes(result.outcomes, volatile=["MainPID"])
    (failure,) = [group.row() for group in grouped.failures]
    assert failure["hosts"] == faulted
    # A dropped host's connect fails in its connect deadline; a frozen bus's link in its own.
    assert failure["kind"] == "unreachable", failure
    healthy = [h for h in HOSTS if h not in (faulted, "host04")]
    assert grouped.answers[0].hosts == healthy
    assert grouped.answers[1].hosts == ["host04"]
