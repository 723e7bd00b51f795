"""Shaping parsed host facts into answers: disk usage as df reckons it, the system snapshot, process rankings."""

from __future__ import annotations

from fleetbus.executors.cpu_use import CpuUse
from fleetbus.executors.figures import GIB, MIB, DiskUsage, ProcessFigures, process_row, rank_processes, system_figures
from fleetbus.executors.procfs import LoadAverage, Memory


def test_disk_usage_leaves_roots_reserve_out_as_df_does() -> None:
    # 1000 blocks of 4 KiB, 400 free, of which 350 are free for users (50 reserved for root).
    disk = DiskUsage.from_statvfs("/", "ext4", blocks=1000, free=400, available=350, fragment=4096)
    assert (disk.total, disk.used, disk.available) == (4096000, 600 * 4096, 350 * 4096)
    assert disk.row()["used_percent"] == round(100 * 600 / 950, 1)  # df: used / (used + available)


def test_system_figures() -> None:
    figures = system_figures(
        load=LoadAverage(3.0, 2.5, 1.0),
        cpus=2,
        cpu=CpuUse(42.04, 1.234),
        memory=Memory(total=8 * GIB, available=2 * GIB, swap_total=0, swap_free=0),
        disks=[DiskUsage("/", "ext4", 100 * GIB, 25 * GIB, 75 * GIB)],
        pressure=None,
        uptime_s=3600.9,
    )
    assert figures == {
        "load": {"1m": 3.0, "5m": 2.5, "15m": 1.0},
        "cpus": 2,
        "load_per_cpu": 1.5,
        "cpu_percent": 42.0,
        "cpu_window_s": 1.23,
        "memory": {"total_mb": 8192, "available_mb": 2048, "used_percent": 75.0},
        "swap": {"total_mb": 0, "used_percent": 0.0},
        "disks": [{"mount": "/", "fs": "ext4", "size_gb": 100.0, "used_percent": 25.0}],
        "pressure": None,
        "uptime_s": 3600,
    }


def process(pid: int, rss_mb: float, cpu: float | None = None, name: str = "worker") -> ProcessFigures:
    return ProcessFigures(pid, name, "root", "sleeping", int(rss_mb * MIB), rss_mb / 100, cpu)


def test_by_memory_kernel_threads_are_left_out() -> None:
    processes = [process(2, 0, name="kthreadd"), process(3, 0, name="kworker/0:0"), process(900, 5), process(50, 80)]
    top, ranked = rank_processes(processes, "memory", 10)
    assert [p.pid for p in top] == [50, 900]
    assert ranked == 2


def test_by_cpu_a_busy_kernel_thread_is_a_finding() -> None:
    processes = [process(40, 0, cpu=99.0, name="kswapd0"), process(900, 300, cpu=3.0), process(901, 10, cpu=0.0)]
    top, ranked = rank_processes(processes, "cpu", 2)
    assert [p.pid for p in top] == [40, 900]
    assert ranked == 3


def test_a_row_without_a_measured_cpu_figure_has_no_cpu_column() -> None:
    assert "cpu_percent" not in process_row(process(1, 12.5), "/sbin/init")
    row = process_row(process(1, 12.5, cpu=150.04), "/sbin/init")
    assert (row["cpu_percent"], row["rss_mb"], row["command"]) == (150.0, 12.5, "/sbin/init")
