"""fleetbus.hosts.ssh on simulated hosts: one connection per host through the fleet's ssh_config, commands by argv
with deadlines and caps, and a D-Bus relay that gives dbus-fast the right host's bus."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from fleetbus.dbus.errors import RemoteError
from fleetbus.hosts.errors import RemoteTimeout
from fleetbus.hosts.relay import SYSTEM_BUS_SOCKET, Bridged, Forwarded, can_forward
from fleetbus.hosts.ssh import HandshakeGate, SshHost, SshLimits, SshTarget
from fleetbus.hosts.ssh_options import aes_in_hardware
from fleetbus.sandbox.fleet import Fleet
from tests.fleet.conftest import ssh_host

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-asyncssh")]

HOSTNAME1 = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.DBus.Properties")


async def test_one_connection_runs_commands_and_carries_each_hosts_bus(fleet: Fleet) -> None:
    for simulated in fleet.hosts:
        host = ssh_host(fleet, simulated.name)
        connection = await host.connect()
        try:
            assert await host.connect() is connection  # one persistent connection per host
            machine_id = await connection.run(["cat", "/etc/machine-id"], timeout=5, max_bytes=100)
            assert machine_id.exit_status == 0
            link = await connection.open_link("system", connect_timeout=5)
            try:
                reply = await link.call(
                    "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Peer", "GetMachineId",
                    timeout=5,
                )  # fmt: skip
                assert reply.body == [machine_id.stdout.decode().strip()]
                hostname = await link.call(
                    *HOSTNAME1, "Get", "ss", ["org.freedesktop.hostname1", "Hostname"], timeout=5
                )
                assert hostname.body[0].value == simulated.name
            finally:
                link.close()
        finally:
            await host.close()


async def test_the_relay_socket_is_private_and_gone_with_the_connection(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host01")
    connection = await host.connect()
    address = await connection.bus_address("system")
    path = Path(address.removeprefix("unix:path="))
    directory = path.parent.stat()
    assert stat.S_IMODE(directory.st_mode) == 0o700
    assert directory.st_uid == os.geteuid()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert await connection.bus_address("system") == address  # one relay per bus, however many links
    await host.close()
    assert not path.parent.exists()


async def test_the_runner_runs_cat_proc_loadavg(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host02")
    connection = await host.connect()
    try:
        result = await connection.run(["cat", "/proc/loadavg"], timeout=5, max_bytes=4096)
        assert result.exit_status == 0
        fields = result.stdout.decode().split()
        assert len(fields) == 5
        assert float(fields[0]) >= 0
        assert "/" in fields[3]
    finally:
        await host.close()


async def test_the_runner_passes_each_word_as_it_is_and_refuses_anything_but_a_list(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host02")
    connection = await host.connect()
    try:
        words = ["a b", "it's", "$(touch /tmp/pwned)", "`id`", ";", "*", ""]
        echoed = await connection.run(["printf", "%s\\n", *words], timeout=5, max_bytes=4096)
        assert echoed.stdout.decode().split("\n")[:-1] == words
        failing = await connection.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=5, max_bytes=100)
        assert (failing.exit_status, failing.stdout, failing.stderr) == (3, b"out\n", b"err\n")
        for wrong in ("cat /proc/loadavg", b"cat", ["cat", 1], [], ("cat", None)):
            with pytest.raises((TypeError, ValueError)):
                await connection.run(wrong, timeout=5, max_bytes=100)  # type: ignore[arg-type]
        assert connection.channels_in_use == 0
        pwned = await connection.run(["test", "-e", "/tmp/pwned"], timeout=5, max_bytes=100)
        assert pwned.exit_status == 1
    finally:
        await host.close()


async def test_the_runner_stops_at_its_output_cap_and_its_deadline_and_leaves_nothing_running(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host03")
    connection = await host.connect()
    try:
        capped = await connection.run(["yes"], timeout=5, max_bytes=10_000)
        assert capped.truncated
        assert capped.exit_status is None
        assert len(capped.stdout) == 10_000
        began = time.monotonic()
        with pytest.raises(RemoteTimeout, match=r"host03: sleep did not finish within 1 s"):
            await connection.run(["sleep", "300"], timeout=1, max_bytes=100)
        assert time.monotonic() - began < 1.5
        assert await _still_running(connection, "sleep 300") == ""
        assert await _still_running(connection, "yes") == ""
    finally:
        await host.close()


async def test_channels_beyond_the_cap_wait_for_a_free_one(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host01", SshLimits(max_channels=2))
    connection = await host.connect()
    try:
        began = time.monotonic()
        results = await asyncio.gather(*(connection.run(["sleep", "0.5"], timeout=5, max_bytes=10) for _ in range(4)))
        assert [r.exit_status for r in results] == [0, 0, 0, 0]
        assert time.monotonic() - began >= 1.0  # two rounds of two
        busy = [asyncio.create_task(connection.run(["sleep", "2"], timeout=5, max_bytes=10)) for _ in range(2)]
        await asyncio.sleep(0.3)
        with pytest.raises(RemoteTimeout, match="channels"):
            await connection.run(["true"], timeout=0.5, max_bytes=10)
        await asyncio.gather(*busy)
    finally:
        await host.close()


async def _still_running(connection: object, pattern: str) -> str:
    from fleetbus.hosts.ssh import SshConnection  # noqa: PLC0415

    assert isinstance(connection, SshConnection)
    await asyncio.sleep(0.3)  # the kill goes over a channel of its own
    result = await connection.run(["pgrep", "-fx", pattern], timeout=5, max_bytes=1000)
    return result.stdout.decode().strip()


async def test_a_shared_handshake_gate_bounds_handshakes_in_flight(fleet: Fleet) -> None:
    gate = HandshakeGate(limit=1)
    hosts = [
        SshHost(SshTarget(h.name, config=(fleet.paths.ssh_config,), known_hosts=(fleet.paths.known_hosts,)),
                handshakes=gate)
        for h in fleet.hosts
    ]  # fmt: skip
    connections = await asyncio.gather(*(host.connect() for host in hosts))
    assert gate.peak == 1
    assert gate.in_flight == 0
    assert [c.host for c in connections] == [h.name for h in fleet.hosts]
    for host in hosts:
        await host.close()


async def test_the_system_bus_is_forwarded_with_aes_gcm_and_the_kernel_names_the_uid(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host01")
    connection = await host.connect()
    try:
        link = await connection.open_link("system", connect_timeout=5)
        try:
            assert connection.bus_route("system") == Forwarded(SYSTEM_BUS_SOCKET)
            if aes_in_hardware():
                assert connection._raw.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
            # No process on the host carries it: sshd itself connected to the bus socket, as the login user.
            bridges = await connection.run(["pgrep", "-c", "-x", "systemd-stdio-b"], timeout=5, max_bytes=100)
            assert bridges.stdout.decode().strip() == "0"
            reply = await link.call(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetConnectionUnixUser", "s",
                [link.unique_name], timeout=5,
            )  # fmt: skip
            assert reply.body == [0]  # root on the host, whatever uid this process has
        finally:
            link.close()
    finally:
        await host.close()


async def test_without_forwarding_the_system_bus_goes_through_the_bridge(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host02", SshLimits(forward_system_bus=False))
    connection = await host.connect()
    try:
        # Where sshd refuses the channel (forbidden, or nothing listens at the path), the probe says no.
        assert not await can_forward(connection._raw, "/run/dbus/no-bus-here", 5)
        link = await connection.open_link("system", connect_timeout=5)
        try:
            assert connection.bus_route("system") == Bridged(("systemd-stdio-bridge",))
            hostname = await link.call(*HOSTNAME1, "Get", "ss", ["org.freedesktop.hostname1", "Hostname"], timeout=5)
            assert hostname.body[0].value == "host02"
        finally:
            link.close()
    finally:
        await host.close()


async def test_a_relay_carries_large_messages_both_ways(fleet: Fleet) -> None:
    """Flow control on both sides: a message larger than the SSH window and the socket buffers arrives whole."""
    host = ssh_host(fleet, "host03")
    connection = await host.connect()
    try:
        link = await connection.open_link("system", connect_timeout=5)
        try:
            payload = "x" * 3_000_000
            # The bus refuses the call (no such name), after reading every byte of it.
            with pytest.raises(RemoteError, match=r"ServiceUnknown|Nobody"):
                await link.call("org.fleetbus.Nobody", "/", "org.fleetbus.Nobody", "Echo", "s", [payload], timeout=10)
            reply = await link.call(
                "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.Introspectable", "Introspect",
                timeout=5,
            )  # fmt: skip
            assert "<node" in reply.body[0]
        finally:
            link.close()
    finally:
        await host.close()
