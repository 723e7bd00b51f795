"""This machine's figures as fleetbus reads them from /proc, against psutil's (what system_status reported before
it parsed /proc itself) read at the same moment: the same figures, without the 0.2 s sleep."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleetbus.executors import procfs
from fleetbus.executors.command import LocalRunner
from fleetbus.executors.cpu_use import CpuMeter
from fleetbus.executors.metrics import HostFigures
from fleetbus.executors.proc_files import LocalFiles

PROC_STAT = Path("/proc/stat")


@pytest.fixture
def figures() -> Iterator[HostFigures]:
    local = HostFigures.local()
    yield local
    local.close()


async def test_the_system_snapshot_matches_psutil(figures: HostFigures) -> None:
    status = await figures.system()
    memory = psutil.virtual_memory()
    assert status["cpus"] == psutil.cpu_count()
    assert status["memory"]["total_mb"] == memory.total // (1024 * 1024)
    assert abs(status["memory"]["used_percent"] - memory.percent) < 1.0  # a moment apart on a busy machine
    assert status["swap"]["total_mb"] == psutil.swap_memory().total // (1024 * 1024)
    assert abs(status["load"]["15m"] - os.getloadavg()[2]) < 0.05
    assert abs(status["uptime_s"] - (time.time() - psutil.boot_time())) < 2
    ours = {d["mount"]: d for d in status["disks"]}
    theirs = psutil.disk_partitions(all=False)
    assert sorted(ours) == sorted(p.mountpoint for p in theirs)
    for partition in theirs:
        assert abs(ours[partition.mountpoint]["used_percent"] - psutil.disk_usage(partition.mountpoint).percent) < 0.2


async def test_cpu_use_over_a_window_matches_psutil_over_the_same_window() -> None:
    meter = CpuMeter()

    async def read_ticks() -> procfs.CpuTicks:
        return procfs.proc_stat(LocalFiles().read_text("/proc/stat")).cpu

    psutil.cpu_percent(None)  # psutil measures from its previous call
    meter.record(await read_ticks())
    await asyncio.sleep(0.5)
    theirs = psutil.cpu_percent(None)
    ours = await meter.reading(await read_ticks(), read_ticks)
    # Both divide the same /proc/stat counters; they are read microseconds apart.
    assert abs(ours.percent - theirs) < 3.0, (ours, theirs)
    assert 0.5 <= ours.window_s < 1.0


async def test_processes_by_memory_match_psutil(figures: HostFigures) -> None:
    ours = await figures.processes("memory", 5)
    assert ours["processes"], ours
    for row in ours["processes"]:
        try:
            theirs = psutil.Process(row["pid"])
            rss_mb = theirs.memory_info().rss / (1024 * 1024)
            name, user = theirs.name(), theirs.username()
        except psutil.NoSuchProcess:
            continue  # it ended between the two reads
        assert row["name"] == name
        assert row["user"] == user
        assert abs(row["rss_mb"] - rss_mb) <= max(2.0, 0.1 * rss_mb), (row, rss_mb)  # read a moment apart


async def test_processes_by_cpu_measure_over_the_window(figures: HostFigures) -> None:
    ours = await figures.processes("cpu", 3, 0.2)
    assert 0.2 <= ours["cpu_window_s"] < 2.0
    assert all(0 <= row["cpu_percent"] <= 100 * (psutil.cpu_count() or 1) + 5 for row in ours["processes"])
    assert ours["total"] >= len(ours["processes"])


async def test_network_matches_psutil(figures: HostFigures) -> None:
    ours = await figures.network(500)
    stats = psutil.net_if_stats()
    assert {row["name"]: row["up"] for row in ours["interfaces"]} == {name: s.isup for name, s in stats.items()}
    theirs = set()
    for c in psutil.net_connections("inet"):
        listening = c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and not c.raddr)
        if listening and isinstance(c.laddr, tuple) and len(c.laddr) == 2:
            theirs.add((c.laddr[1], "tcp" if c.type == socket.SOCK_STREAM else "udp"))
    assert {(row["port"], row["proto"].rstrip("6")) for row in ours["listening"]} == theirs


async def test_process_names_are_psutils(figures: HostFigures) -> None:
    pid = os.getpid()
    found = await figures.process_names([pid, 1])
    assert found["names"][str(pid)] == psutil.Process(pid).name()
    assert found["names"]["1"] == psutil.Process(1).name()


async def test_the_remote_way_of_reading_gives_this_machines_figures_too(figures: HostFigures) -> None:
    """HostFigures.remote over a local runner reads /proc with grep -H, processes with find + grep and disks with
    df — what a remote host gets — and must agree with the in-process reads of the same machine."""
    remote = HostFigures.remote(LocalRunner())
    theirs, ours = await remote.identity(), await figures.identity()
    assert {k: v for k, v in theirs.items() if k not in ("uptime_s", "monotonic_usec")} == {
        k: v for k, v in ours.items() if k not in ("uptime_s", "monotonic_usec")
    }
    assert abs(theirs["monotonic_usec"] - ours["monotonic_usec"]) < 5_000_000  # boottime stands in remotely
    system_there, system_here = await remote.system(), await figures.system()
    assert system_there["cpus"] == system_here["cpus"]
    assert system_there["memory"]["total_mb"] == system_here["memory"]["total_mb"]
    assert [d["mount"] for d in system_there["disks"]] == [d["mount"] for d in system_here["disks"]]
    for there, here in zip(system_there["disks"], system_here["disks"], strict=True):
        assert there["fs"] == here["fs"]
        assert abs(there["used_percent"] - here["used_percent"]) < 0.5
    pid1_there = (await remote.processes("memory", 500))["processes"]
    pid1_here = (await figures.processes("memory", 500))["processes"]
    assert {r["pid"]: r["name"] for r in pid1_there if r["pid"] == 1} == {
        r["pid"]: r["name"] for r in pid1_here if r["pid"] == 1
    }
    assert (await remote.process_names([1])) == (await figures.process_names([1]))
