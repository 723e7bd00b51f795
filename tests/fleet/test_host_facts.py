"""Host facts of a remote host, read through a real SSH runner (one persistent connection to a simulated host):
its figures, processes, sockets, identity and journal are that host's own, not this machine's."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from fleetbus.executors.command import LocalRunner
from fleetbus.executors.host_facts import HostFacts
from fleetbus.executors.journal import JournalReader
from fleetbus.hosts.ssh import SshConnection
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fleet
from tests.fleet.conftest import ssh_host

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-host-facts")]


@pytest.fixture
async def host02(fleet: Fleet) -> AsyncIterator[SshConnection]:
    host = ssh_host(fleet, "host02")
    try:
        yield await host.connect()
    finally:
        await host.close()


@pytest.fixture
def local() -> Iterator[HostFacts]:
    facts = HostFacts.local(cpu_tick=None)
    yield facts
    facts.close()


async def cat(connection: SshConnection, path: str) -> str:
    result = await connection.run(["cat", path], timeout=10, max_bytes=4096)
    assert result.exit_status == 0, result.stderr
    return result.stdout.decode().strip()


async def test_identity_is_the_hosts_own(host02: SshConnection, local: HostFacts) -> None:
    remote = HostFacts.remote(host02.runner)
    theirs = await remote.figures.snapshot("identity", {}, timeout=10)
    ours = await local.figures.snapshot("identity", {}, timeout=10)
    assert theirs["hostname"] == "host02"
    assert theirs["machine_id"] == await cat(host02, "/etc/machine-id")
    assert theirs["machine_id"] != ours["machine_id"]
    assert theirs["boot_id"] == (await cat(host02, "/proc/sys/kernel/random/boot_id")).replace("-", "")
    assert theirs["boot_id"] != ours["boot_id"]
    assert theirs["os"] == ours["os"]  # the same Debian underneath: read from the host's /etc/os-release
    assert theirs["monotonic_usec"] > 0


async def test_system_figures_come_from_the_host(host02: SshConnection, local: HostFacts) -> None:
    figures = HostFacts.remote(host02.runner).figures
    first = await figures.snapshot("system", {}, timeout=10)
    ours = await local.figures.snapshot("system", {}, timeout=10)
    assert first["cpus"] == ours["cpus"]  # one kernel under every simulated host
    assert first["memory"]["total_mb"] == ours["memory"]["total_mb"]
    assert 0 < first["cpu_window_s"] < 2  # the first reading measured its own short window
    assert 0 <= first["cpu_percent"] <= 100
    assert first["disks"], first  # statvfs figures of the host's block mounts, through its df
    second = await figures.snapshot("system", {}, timeout=10)
    assert second["uptime_s"] >= first["uptime_s"]


async def test_processes_are_the_hosts_with_its_own_pids(host02: SshConnection) -> None:
    figures = HostFacts.remote(host02.runner).figures
    by_memory = await figures.snapshot("processes", {"sort": "memory", "limit": 100}, timeout=20)
    rows = {row["pid"]: row for row in by_memory["processes"]}
    # PID 1 of host02 is its keeper (the host's init); this machine's PID 1 is something else.
    assert "fleetbus.sandbox.fleet.host_keeper" in rows[1]["command"]
    assert "--hostname host02" in rows[1]["command"]
    names = {row["name"] for row in rows.values()}
    assert {"sshd", "dbus-daemon", "systemd"} <= names, names
    assert all(row["user"] == "root" for row in rows.values() if row["name"] == "sshd")
    by_cpu = await figures.snapshot("processes", {"sort": "cpu", "limit": 5, "sample": 0.2}, timeout=20)
    assert 0.2 <= by_cpu["cpu_window_s"] < 5
    assert by_cpu["processes"]
    named = await figures.snapshot("process_names", {"pids": [1, 999_999]}, timeout=10)
    assert named["names"] == {"1": rows[1]["name"]}


async def test_network_is_the_hosts(host02: SshConnection, fleet: Fleet) -> None:
    address = next(h.address for h in fleet.hosts if h.name == "host02")
    network = await HostFacts.remote(host02.runner).figures.snapshot("network", {}, timeout=20)
    assert [row["name"] for row in network["interfaces"]] == ["lo"]  # a namespace of its own: nothing else
    assert f"{address}/32" in network["interfaces"][0]["addresses"]
    sshd = [row for row in network["listening"] if row["port"] == 22]
    assert sshd == [{"proto": "tcp", "address": address, "port": 22, "pid": sshd[0]["pid"], "process": "sshd"}]
    assert network["connections"].get("established", 0) >= 1  # our own SSH connection


async def test_a_journal_line_written_on_host02_is_read_there_only(
    host02: SshConnection, fleet: Fleet, fleet_sandbox: Sandbox
) -> None:
    marker = f"fleetbus-facts-{uuid.uuid4().hex}"
    # Test setup, not fleetbus: a line in host02's own journal, written by its journald.
    written = await host02.run(["systemd-cat", "-t", marker, "echo", marker], timeout=10, max_bytes=1024)
    assert written.exit_status == 0, written.stderr
    options = [f"SYSLOG_IDENTIFIER={marker}", "--output-fields=MESSAGE,_HOSTNAME,_BOOT_ID"]
    remote = HostFacts.remote(host02.runner).journal
    deadline = time.monotonic() + 20
    while True:
        read = await remote.read(options, timeout=10, max_entries=5)
        if read.entries or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert [e["MESSAGE"] for e in read.entries] == [marker]
    entry = read.entries[0]
    assert entry["_HOSTNAME"] == "host02"
    assert entry["_BOOT_ID"] == (await cat(host02, "/proc/sys/kernel/random/boot_id")).replace("-", "")
    host01 = ssh_host(fleet, "host01")
    try:
        elsewhere = await HostFacts.remote((await host01.connect()).runner).journal.read(
            options, timeout=10, max_entries=5
        )
    finally:
        await host01.close()
    assert elsewhere.entries == []
    here = await JournalReader(LocalRunner(), fleet_sandbox.paths.journal_dir).read(options, timeout=10, max_entries=5)
    assert here.entries == []


async def test_remote_system_status_costs_round_trips_not_waits(host02: SshConnection, local: HostFacts) -> None:
    """Warm (a CPU sample of the last seconds at hand), a remote system_status is two runs over the persistent
    connection; generous bounds, the machine is shared."""
    remote = HostFacts.remote(host02.runner).figures
    await remote.snapshot("system", {}, timeout=10)  # the first one measures its own CPU window
    remote_times, local_times = [], []
    for _ in range(10):
        started = time.perf_counter()
        await remote.snapshot("system", {}, timeout=10)
        remote_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        await local.figures.snapshot("system", {}, timeout=10)
        local_times.append(time.perf_counter() - started)
    remote_median, local_median = statistics.median(remote_times), statistics.median(local_times)
    print(f"system_status median: remote {remote_median * 1000:.1f} ms, local {local_median * 1000:.2f} ms")
    assert remote_median < 1.0
