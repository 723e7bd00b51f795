"""Faults on simulated hosts and what fleetbus.hosts makes of them: every failure within its deadline (+1 s),
naming the host, while the other hosts keep answering; after `clear`, a new connection works."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from fleetbus.dbus.errors import BusUnavailable, CallTimeout
from fleetbus.dbus.link import BusLink
from fleetbus.hosts.errors import HostUnreachable, RemoteTimeout
from fleetbus.hosts.relay import Bridged, Forwarded
from fleetbus.hosts.ssh import SshConnection, SshLimits
from fleetbus.sandbox.fleet import Fault, Fleet, faults
from tests.fleet.conftest import ssh_host

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-faults")]

DEADLINE = 2.0
LIMITS = SshLimits(connect_timeout=DEADLINE, bus_setup_timeout=DEADLINE)
HOSTNAME = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.DBus.Properties", "Get", "ss")


@contextmanager
def within(seconds: float) -> Iterator[None]:
    began = time.monotonic()
    yield
    took = time.monotonic() - began
    assert took < seconds, f"took {took:.2f} s, allowed {seconds:g} s"


@contextmanager
def fault(fleet: Fleet, host: str, kind: Fault) -> Iterator[None]:
    faults.apply(fleet, host, kind)
    try:
        yield
    finally:
        faults.apply(fleet, host, Fault.CLEAR)


async def hostname(link: BusLink, timeout: float = DEADLINE) -> str:
    reply = await link.call(*HOSTNAME, ["org.freedesktop.hostname1", "Hostname"], timeout=timeout)
    return str(reply.body[0].value)


async def answers(connection: SshConnection) -> str:
    result = await connection.run(["hostname"], timeout=DEADLINE, max_bytes=100)
    return result.stdout.decode().strip()


@pytest.fixture
async def healthy(fleet: Fleet) -> AsyncIterator[SshConnection]:
    """A connection to host01, which no test here faults: it must keep answering throughout."""
    host = ssh_host(fleet, "host01", LIMITS)
    connection = await host.connect()
    yield connection
    assert await answers(connection) == "host01"
    await host.close()


async def test_drop_fails_calls_and_connections_within_their_deadline(fleet: Fleet, healthy: SshConnection) -> None:
    host = ssh_host(fleet, "host02", LIMITS)
    connection = await host.connect()
    link = await connection.open_link("system", connect_timeout=DEADLINE)
    try:
        with fault(fleet, "host02", Fault.DROP):
            with within(DEADLINE + 1), pytest.raises(CallTimeout):
                await hostname(link)
            with within(DEADLINE + 1), pytest.raises(RemoteTimeout, match=r"^host02: "):
                await connection.run(["true"], timeout=DEADLINE, max_bytes=10)
            fresh = ssh_host(fleet, "host02", LIMITS)
            with within(DEADLINE + 1), pytest.raises(HostUnreachable, match=r"^host02: no SSH connection .* 2 s"):
                await fresh.connect()
            assert await answers(healthy) == "host01"
        await fresh_connection_works(fleet, "host02")
    finally:
        link.close()
        await host.close()
    assert proxies_to(fleet, "host02") == []


async def test_reject_fails_a_connection_at_once(fleet: Fleet, healthy: SshConnection) -> None:
    with fault(fleet, "host02", Fault.REJECT):
        with within(1.0), pytest.raises(HostUnreachable, match=r"^host02: cannot connect"):
            await ssh_host(fleet, "host02", LIMITS).connect()
        assert await answers(healthy) == "host01"
    await fresh_connection_works(fleet, "host02")


@pytest.mark.parametrize("route", ["forwarded", "bridged"])
async def test_a_frozen_bus_times_calls_and_links_out_within_their_deadline(
    fleet: Fleet, healthy: SshConnection, route: str
) -> None:
    limits = replace(LIMITS, forward_system_bus=route == "forwarded")
    host = ssh_host(fleet, "host03", limits)
    connection = await host.connect()
    link = await connection.open_link("system", connect_timeout=DEADLINE)
    assert type(connection.bus_route("system")) is (Forwarded if route == "forwarded" else Bridged)
    try:
        with fault(fleet, "host03", Fault.FREEZE_BUS):
            with within(DEADLINE + 1), pytest.raises(CallTimeout):
                await hostname(link)
            # No ~90 s hang in authentication: the link's own wall-clock deadline.
            with within(DEADLINE + 1), pytest.raises(BusUnavailable):
                await connection.open_link("system", connect_timeout=DEADLINE)
            # SSH still works, and what was left on the frozen bus is gone, not holding a channel or a session:
            # the bridge killed, the forwarded channel closed.
            assert await answers(connection) == "host03"
            await asyncio.sleep(0.5)
            assert await bridges(connection) == (1 if route == "bridged" else 0)
            assert connection.channels_in_use == 1
        assert await hostname(link) == "host03"
        second = await connection.open_link("system", connect_timeout=DEADLINE)
        assert await hostname(second) == "host03"
        second.close()
    finally:
        link.close()
        await host.close()


async def test_a_killed_sshd_loses_the_connection_and_after_clear_a_new_one_works(
    fleet: Fleet, healthy: SshConnection
) -> None:
    host = ssh_host(fleet, "host02", LIMITS)
    connection = await host.connect()
    lost = asyncio.Event()
    connection.add_close_listener(lambda _connection, _reason: lost.set())
    faults.apply(fleet, "host02", Fault.KILL_SSHD)
    try:
        await asyncio.wait_for(lost.wait(), DEADLINE)
        assert connection.closed
        assert host.connection is None
        with within(1.0), pytest.raises(HostUnreachable, match=r"^host02: "):
            await host.connect()
        assert await answers(healthy) == "host01"
    finally:
        faults.apply(fleet, "host02", Fault.CLEAR)
    again = await host.connect()
    assert again is not connection
    assert await answers(again) == "host02"
    await host.close()


async def test_keepalives_close_a_connection_whose_host_stopped_answering(fleet: Fleet, healthy: SshConnection) -> None:
    host = ssh_host(fleet, "host03", SshLimits(connect_timeout=DEADLINE, keepalive_interval=0.5, keepalive_count_max=2))
    connection = await host.connect()
    lost = asyncio.Event()
    connection.add_close_listener(lambda _connection, _reason: lost.set())
    with fault(fleet, "host03", Fault.DROP):
        # An idle connection: nothing but the keepalives notices the host is gone (after about 2 × 0.5 s).
        with within(0.5 * 2 + 1.5):
            await asyncio.wait_for(lost.wait(), 5)
        assert host.connection is None
        assert connection.close_reason is not None
    await fresh_connection_works(fleet, "host03")


async def fresh_connection_works(fleet: Fleet, name: str) -> None:
    host = ssh_host(fleet, name, LIMITS)
    connection = await host.connect()
    try:
        assert await answers(connection) == name
        link = await connection.open_link("system", connect_timeout=DEADLINE)
        assert await hostname(link) == name
        link.close()
    finally:
        await host.close()


async def bridges(connection: SshConnection) -> int:
    result = await connection.run(["pgrep", "-c", "-x", "systemd-stdio-b"], timeout=DEADLINE, max_bytes=100)
    return int(result.stdout.decode().strip() or 0)


def proxies_to(fleet: Fleet, name: str) -> list[int]:
    """ProxyCommand processes (nsenter → socat) still running into the host's network namespace."""
    netns = fleet.host(name).netns.encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if netns in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
