"""The bus relay attacked as a hostile or unlucky client would: another uid, clients that send nothing, half-close,
hang up mid-message or send garbage, a reader that stops reading, more links than the channel cap, opens cut short
by a dropped network, a relay closed while connections arrive. Whatever happens, nothing may stay behind: no pair,
no channel slot, no SSH channel, no descriptor, no bridge on the host."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
from dbus_fast import Message, MessageFlag

from fleetbus.dbus.errors import BusUnavailable
from fleetbus.hosts.errors import HostUnreachable
from fleetbus.hosts.relay import SYSTEM_BUS_SOCKET, Bridged, BusRelay, Forwarded
from fleetbus.hosts.ssh import SshConnection, SshLimits
from fleetbus.sandbox.fleet import Fault, Fleet, faults
from tests.fleet import relay_client
from tests.fleet.conftest import ssh_host
from tests.fleet.test_faults import bridges, hostname

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-relay")]

CLIENT = str(Path(relay_client.__file__))
SETUP = 2.0
ROUTES = {"forwarded": True, "bridged": False}
MiB = 1 << 20


def limits(route: str, **changes: Any) -> SshLimits:
    return replace(SshLimits(forward_system_bus=ROUTES[route], bus_setup_timeout=SETUP), **changes)


def relay_of(connection: SshConnection) -> BusRelay:
    return connection._relays["system"]


def ssh_channels(connection: SshConnection) -> int:
    """The channels asyncssh still has open on the connection: what the host's sshd is holding for us."""
    return len(connection._raw._channels)


def descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settled(condition: Callable[[], bool], timeout: float) -> bool:
    """Whether `condition` holds within `timeout` (a closing channel takes a round trip or two)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run_client(*argv: str, prefix: tuple[str, ...] = ()) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, CLIENT, *argv, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return json.loads(out.decode().splitlines()[-1])  # type: ignore[no-any-return]


@asynccontextmanager
async def relay_on(fleet: Fleet, name: str, lims: SshLimits) -> AsyncIterator[tuple[SshConnection, str]]:
    """A connection and its system-bus relay socket; on the way out, proof that nothing was left behind."""
    host = ssh_host(fleet, name, lims)
    connection = await host.connect()
    path = (await connection.bus_address("system")).removeprefix("unix:path=")
    before = descriptors()
    try:
        yield connection, path
        relay = relay_of(connection)
        assert await settled(lambda: not relay._pairs and connection.channels_in_use == 0, 5)
        assert await settled(lambda: ssh_channels(connection) == 0, 5)
        assert descriptors() == before
        assert await bridges(connection) == 0
    finally:
        await host.close()


@contextmanager
def fault(fleet: Fleet, name: str, kind: Fault) -> Iterator[None]:
    faults.apply(fleet, name, kind)
    try:
        yield
    finally:
        faults.apply(fleet, name, Fault.CLEAR)


async def test_a_connection_from_another_user_is_closed_unread(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    async with relay_on(fleet, "host01", limits("forwarded")) as (connection, path):
        assert "unique_name" in await run_client(path, "hello")
        # The 0700 directory is the first wall; open it up (as a careless `directory=` might) to reach the second.
        directory = Path(path).parent
        directory.chmod(0o711)
        os.chmod(path, 0o777)
        try:
            with caplog.at_level(logging.WARNING, "fleetbus.hosts.relay"):
                other = await run_client(
                    path, "hello", prefix=("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
                )
        finally:
            directory.chmod(0o700)
        assert "error" in other  # closed before a byte of its auth was read
        assert "refused a relay connection from another user" in caplog.text
        assert connection.channels_in_use == 0
        assert not relay_of(connection)._pairs


@pytest.mark.parametrize("route", ROUTES)
async def test_careless_clients_leave_nothing_behind(fleet: Fleet, route: str) -> None:
    async with relay_on(fleet, "host01", limits(route)) as (connection, path):
        for delay in (0, 0.001, 0.005, 0.02, 0.1) * 4:  # connect and hang up, before or after the channel opened
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(path)
                await asyncio.sleep(delay)
        for greeting in (b"GARBAGE\r\n" * 100, os.urandom(100_000)):  # the bus (or the bridge) hangs up
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(greeting)
            assert await asyncio.wait_for(reader.read(), SETUP) == b""
            writer.close()
        # Half-closed during auth: a client that hangs up is done.
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"\0AUTH EXTERNAL\r\n")
        assert await asyncio.wait_for(reader.readline(), SETUP) == b"DATA\r\n"
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), SETUP) == b""
        writer.close()
        # Gone in the middle of a message that announced a megabyte.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            await asyncio.to_thread(relay_client.authenticate, sock)
            sock.sendall(b"l\x01\x00\x01" + (MiB).to_bytes(4, "little") + b"\x01\0\0\0" + b"\0" * 100)
            await asyncio.sleep(0.2)
        # Connected, and silent: holds its channel (the host's bus bounds that by its auth timeout), nothing more.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            assert await settled(lambda: connection.channels_in_use == 1, SETUP)
        assert "unique_name" in await run_client(path, "hello")


@pytest.mark.parametrize("route", ROUTES)
async def test_a_reader_that_stops_reading_is_held_back_not_buffered(fleet: Fleet, route: str) -> None:
    """The host's bus sends 64 MiB back to a client that reads nothing for a while: fleetbus holds at most the
    SSH window and a socket buffer's worth of it, and every message arrives once the client reads again."""
    async with relay_on(fleet, "host02", limits(route)) as (connection, path):
        me = psutil.Process()
        rss = me.memory_info().rss
        process = await asyncio.create_subprocess_exec(
            sys.executable, CLIENT, path, "flood", "64", str(MiB), "3", stdout=asyncio.subprocess.PIPE
        )
        assert process.stdout is not None
        sent = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
        assert sent["sent"] == 64
        await asyncio.sleep(1.5)  # the client is asleep: what does fleetbus hold?
        (pair,) = relay_of(connection)._pairs
        assert pair.local is not None
        assert pair.channel is not None
        held = pair.local.get_write_buffer_size() + sum(len(data) for data, _ in pair.channel._recv_buf)
        assert held <= 3 * MiB, f"{held} bytes buffered for a client that does not read"
        grown = me.memory_info().rss - rss
        assert grown < 32 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
        received = json.loads((await asyncio.wait_for(process.stdout.read(), 60)).decode().splitlines()[-1])
        assert received["received"] == 64
        await process.wait()


async def test_a_writer_into_a_frozen_bus_is_held_back_not_buffered(fleet: Fleet) -> None:
    """The other way: the host's bus reads nothing, so fleetbus stops reading the client, which stalls."""
    async with relay_on(fleet, "host03", limits("forwarded")) as (connection, path):
        me = psutil.Process()
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(SETUP)
            sock.connect(path)
            name = await asyncio.to_thread(relay_client.hello, sock)
            rss = me.memory_info().rss
            message = Message(
                destination=name, path="/", interface="org.fleetbus.Flood", member="Take", signature="s",
                body=["y" * MiB], serial=2, flags=MessageFlag.NO_REPLY_EXPECTED,
            )._marshall(False)  # fmt: skip
            written = 0

            def write() -> None:
                nonlocal written
                try:
                    while written < 256 * MiB:
                        sock.sendall(message)
                        written += len(message)
                except TimeoutError:
                    pass  # stalled: what we want to see

            with fault(fleet, "host03", Fault.FREEZE_BUS):
                writer = threading.Thread(target=write)
                writer.start()
                await asyncio.to_thread(writer.join)
                (pair,) = relay_of(connection)._pairs
                assert pair.channel is not None
                assert pair.channel._send_buf_len <= 256 * 1024
                assert written < 32 * MiB
                assert me.memory_info().rss - rss < 32 * MiB


@pytest.mark.parametrize("route", ROUTES)
async def test_links_past_the_channel_cap_wait_then_fail_and_a_freed_slot_is_really_free(
    fleet: Fleet, route: str
) -> None:
    async with relay_on(fleet, "host01", limits(route)) as (connection, _path):
        links = [await connection.open_link("system", connect_timeout=5) for _ in range(10)]
        assert connection.channels_in_use == 10
        began = time.monotonic()
        with pytest.raises(BusUnavailable):
            await connection.open_link("system", connect_timeout=5)
        assert SETUP - 0.1 < time.monotonic() - began < SETUP + 1  # waited for a slot, then gave up cleanly
        assert connection.channels_in_use == 10
        # A waiter takes the slot a closing link frees, and gets its channel although sshd still counts the old
        # session for a moment (MaxSessions 10): round after round, the oldest link closing as a new one waits.
        for _ in range(10):
            waiting = asyncio.create_task(connection.open_link("system", connect_timeout=5))
            await asyncio.sleep(0.05)
            links.pop(0).close()
            links.append(await waiting)
            assert connection.channels_in_use == 10
        assert await hostname(links[-1]) == "host01"
        for link in links:
            link.close()


async def test_opens_cut_short_by_a_dropped_network_leave_no_session_on_the_host(fleet: Fleet) -> None:
    """Ten bus clients give up while their channels are still opening; when the network comes back, the host
    must not be left holding ten sessions nobody uses (sshd would refuse every new one: MaxSessions 10)."""
    async with relay_on(fleet, "host02", limits("bridged")) as (connection, path):
        with fault(fleet, "host02", Fault.DROP):
            sockets = []
            for _ in range(10):
                sock = socket.socket(socket.AF_UNIX)
                sock.connect(path)
                sockets.append(sock)
            await asyncio.sleep(SETUP + 0.5)  # every client's setup deadline has passed
            assert not relay_of(connection)._pairs
            for sock in sockets:
                sock.close()
        # The opens reach sshd once TCP retransmits them: what they open must be closed again, and their slots
        # (the sessions they may yet open) held until then.
        assert await settled(lambda: ssh_channels(connection) == 0, 10), f"{ssh_channels(connection)} channels left"
        assert connection.channels_in_use == 0
        links = [await connection.open_link("system", connect_timeout=5) for _ in range(10)]
        assert [await hostname(link) for link in links[:1]] == ["host02"]
        for link in links:
            link.close()


async def test_a_relay_closed_while_connections_arrive_leaves_nothing_open(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host03")
    connection = await host.connect()
    try:
        for turns in range(8):  # the connection accepted, its pair made, its channel opening…
            relay = BusRelay(
                "host03", connection._raw, connection._slots, connection._killer, Bridged(("systemd-stdio-bridge",)),
                setup_timeout=SETUP,
            )  # fmt: skip
            await relay.start()
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(relay.path))
                for _ in range(turns):
                    await asyncio.sleep(0)
                await relay.close()
                await asyncio.sleep(0.1)
                assert not relay._pairs, f"a pair outlived its relay (after {turns} turns)"
            assert await settled(lambda: connection.channels_in_use == 0 and ssh_channels(connection) == 0, 5), (
                f"after {turns} turns: {connection.channels_in_use} slots, {ssh_channels(connection)} channels"
            )
        assert await bridges(connection) == 0
    finally:
        await host.close()


async def test_a_bus_address_asked_as_the_connection_is_lost_is_refused(fleet: Fleet) -> None:
    """The forwarding probe fails because the connection died: no relay may be set up on a dead connection."""
    host = ssh_host(fleet, "host02", limits("forwarded", keepalive_interval=0.5, keepalive_count_max=2))
    connection = await host.connect()
    try:
        with fault(fleet, "host02", Fault.DROP), pytest.raises(HostUnreachable, match=r"^host02: "):
            await connection.bus_address("system")
        assert connection.closed
        assert connection._relays == {}
    finally:
        await host.close()


async def test_a_killed_sshd_ends_open_and_opening_pairs(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host03", limits("bridged", bus_setup_timeout=8, max_channels=3))
    connection = await host.connect()
    path = Path((await connection.bus_address("system")).removeprefix("unix:path="))
    before = descriptors()
    links = [await connection.open_link("system", connect_timeout=5) for _ in range(3)]
    try:
        # A fourth is still opening: waiting for a channel slot.
        opening = asyncio.create_task(connection.open_link("system", connect_timeout=8))
        assert await settled(lambda: len(relay_of(connection)._pairs) == 4, 2)
        began = time.monotonic()
        with fault(fleet, "host03", Fault.KILL_SSHD):
            with pytest.raises(BusUnavailable):
                await opening
            assert time.monotonic() - began < 2
            assert await settled(lambda: connection.closed and not path.parent.exists(), 2)
            assert connection.channels_in_use == 0
            assert ssh_channels(connection) == 0
            assert await settled(lambda: not [link for link in links if link.connected], 2)
    finally:
        for link in links:
            link.close()
        await host.close()
    assert descriptors() <= before
    # The host is clean too: nothing of ours runs there.
    assert await bridges(await host.connect()) == 0
    await host.close()


async def test_a_connection_lost_to_a_dropped_network_ends_open_and_opening_pairs(fleet: Fleet) -> None:
    """Keepalives notice the host is gone; the links on it, and the opens on their way (sent, never answered),
    end with the connection, and give back their slots."""
    host = ssh_host(fleet, "host01", limits("bridged", keepalive_interval=0.5, keepalive_count_max=2))
    connection = await host.connect()
    path = Path((await connection.bus_address("system")).removeprefix("unix:path="))
    links = [await connection.open_link("system", connect_timeout=5) for _ in range(3)]
    try:
        with fault(fleet, "host01", Fault.DROP):
            opening = [asyncio.create_task(connection.open_link("system", connect_timeout=8)) for _ in range(2)]
            assert await settled(lambda: connection.channels_in_use == 5, 1)
            began = time.monotonic()
            for task in opening:
                with pytest.raises(BusUnavailable):
                    await task
            assert time.monotonic() - began < 0.5 * 2 + 1.5
            assert await settled(lambda: connection.closed and not path.parent.exists(), 1)
            assert connection.channels_in_use == 0
            assert ssh_channels(connection) == 0
            assert await settled(lambda: not [link for link in links if link.connected], 1)
    finally:
        for link in links:
            link.close()
        await host.close()


async def test_the_user_bus_goes_through_the_bridge(fleet: Fleet) -> None:
    host = ssh_host(fleet, "host01")
    connection = await host.connect()
    try:
        link = await connection.open_link("user", connect_timeout=5)
        assert connection.bus_route("user") == Bridged(("systemd-stdio-bridge", "--user"))
        names = await link.call(
            "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames", timeout=5
        )
        assert "org.freedesktop.systemd1" in names.body[0]  # the host's own user manager
        link.close()
    finally:
        await host.close()


async def test_a_host_whose_sshd_refuses_forwarding_gets_the_bridge(fleet: Fleet) -> None:
    simulated = fleet.host("host02")
    config = simulated.paths.sshd_config
    original = config.read_text()

    def restart_sshd(text: str) -> None:
        config.write_text(text)
        faults.apply(fleet, "host02", Fault.KILL_SSHD)
        faults.apply(fleet, "host02", Fault.CLEAR)  # sshd comes back with the config as it is now

    restart_sshd(original + "AllowStreamLocalForwarding no\n")
    try:
        host = ssh_host(fleet, "host02")
        connection = await host.connect()
        try:
            link = await connection.open_link("system", connect_timeout=5)
            assert connection.bus_route("system") == Bridged(("systemd-stdio-bridge",))
            assert await hostname(link) == "host02"
            link.close()
        finally:
            await host.close()
    finally:
        restart_sshd(original)
    host = ssh_host(fleet, "host02")
    connection = await host.connect()
    await connection.bus_address("system")
    assert connection.bus_route("system") == Forwarded(SYSTEM_BUS_SOCKET)
    await host.close()
