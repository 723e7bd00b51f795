"""This machine's figures as fleetbus reads them from /proc, against psutil's (what system_status reported before
it parsed /proc itself) read at the same moment: the same figures, without the 0.2 s sleep."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleetbus.executors import procfs
from fleetbus.executors.cpu_use import CpuMeter
from fleetbus.executors.metrics import LocalFigures

PROC_STAT = Path("/proc/stat")


@pytest.fixture
def figures() -> Iterator[LocalFigures]:
    local = LocalFigures()
    yield local
    local.close()


def test_the_system_snapshot_matches_psutil(figures: LocalFigures) -> None:
    status = figures.system()
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


def test_cpu_use_over_a_window_matches_psutil_over_the_same_window() -> None:
    meter = CpuMeter(lambda: procfs.proc_stat(PROC_STAT.read_text()).cpu, tick=None)
    psutil.cpu_percent(None)  # psutil measures from its previous call
    meter.sample()
    time.sleep(0.5)
    theirs = psutil.cpu_percent(None)
    ours = meter.reading()
    # Both divide the same /proc/stat counters; they are read microseconds apart.
    assert abs(ours.percent - theirs) < 3.0, (ours, theirs)
    assert 0.5 <= ours.window_s < 1.0
