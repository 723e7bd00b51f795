"""The answers of the host-figure snapshots, shaped from parsed facts: one shape and one rounding for every
host, whichever way its facts were read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from fleetbus.executors.cpu_use import CpuUse
from fleetbus.executors.procfs import LoadAverage, Memory

MIB = 1024 * 1024
GIB = 1024 * MIB
ProcessSort = Literal["cpu", "memory"]


def _round(value: float, digits: int = 1) -> float:
    return round(float(value), digits)


def _percent(part: float, whole: float) -> float:
    return _round(100.0 * part / whole) if whole > 0 else 0.0


@dataclass(frozen=True)
class DiskUsage:
    """Bytes of one mounted filesystem. `available` is what an unprivileged user may still write (without the
    blocks reserved for root), so used + available can be less than total, as in df."""

    mount: str
    fstype: str
    total: int
    used: int
    available: int

    @classmethod
    def from_statvfs(cls, mount: str, fstype: str, blocks: int, free: int, available: int, fragment: int) -> DiskUsage:
        total = blocks * fragment
        return cls(mount, fstype, total, total - free * fragment, available * fragment)

    def row(self) -> dict[str, Any]:
        # Used share of what a user can fill (df's Use%, psutil's percent): a disk "full" for users says 100.
        return {
            "mount": self.mount,
            "fs": self.fstype,
            "size_gb": _round(self.total / GIB),
            "used_percent": _percent(self.used, self.used + self.available),
        }


def system_figures(
    *,
    load: LoadAverage,
    cpus: int,
    cpu: CpuUse,
    memory: Memory,
    disks: Iterable[DiskUsage],
    pressure: Mapping[str, Mapping[str, float]] | None,
    uptime_s: float,
) -> dict[str, Any]:
    """The `system` snapshot: what system_status answers."""
    return {
        "load": {"1m": _round(load.one, 2), "5m": _round(load.five, 2), "15m": _round(load.fifteen, 2)},
        "cpus": cpus,
        "load_per_cpu": _round(load.one / max(cpus, 1), 2),
        "cpu_percent": _round(cpu.percent),
        "cpu_window_s": _round(cpu.window_s, 2),
        "memory": {
            "total_mb": memory.total // MIB,
            "available_mb": memory.available // MIB,
            "used_percent": _percent(memory.total - memory.available, memory.total),
        },
        "swap": {
            "total_mb": memory.swap_total // MIB,
            "used_percent": _percent(memory.swap_total - memory.swap_free, memory.swap_total),
        },
        "disks": [disk.row() for disk in disks],
        "pressure": {name: dict(figures) for name, figures in pressure.items()} if pressure is not None else None,
        "uptime_s": int(uptime_s),
    }


@dataclass(frozen=True)
class ProcessFigures:
    pid: int
    name: str
    user: str
    state: str
    rss: int
    """Resident memory, bytes: 0 for kernel threads and zombies, which have no user memory."""
    memory_percent: float
    cpu_percent: float | None = None
    """Over a measured window, in percent of one CPU (top's scale); None when not measured."""


def rank_processes(
    processes: Iterable[ProcessFigures], sort: ProcessSort, limit: int
) -> tuple[list[ProcessFigures], int]:
    """The top `limit` by CPU or by resident memory, and how many were ranked. By memory only processes that
    have resident memory are ranked: kernel threads (and zombies) have none and would pad the list. By CPU
    every process is, kernel threads included: one spinning (kswapd, ksoftirqd) is a finding."""
    if sort == "memory":
        ranked = sorted((p for p in processes if p.rss > 0), key=lambda p: (-p.rss, p.pid))
    else:
        ranked = sorted(processes, key=lambda p: (-(p.cpu_percent or 0.0), p.pid))
    return ranked[:limit], len(ranked)


def process_row(process: ProcessFigures, command: str) -> dict[str, Any]:
    row: dict[str, Any] = {"pid": process.pid, "name": process.name, "user": process.user, "state": process.state}
    if process.cpu_percent is not None:
        row["cpu_percent"] = _round(process.cpu_percent)
    row |= {
        "rss_mb": _round(process.rss / MIB),
        "memory_percent": _round(process.memory_percent, 2),
        "command": command,
    }
    return row
