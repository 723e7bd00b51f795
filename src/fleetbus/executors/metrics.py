"""Figures of the machine fleetbus runs on. /proc is read here and parsed by `procfs` (the parsers every host
shares), disks are measured with statvfs, processes and sockets through psutil. Blocking calls: the gateway
runs them in a thread under a deadline."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

import psutil

from fleetbus.executors import procfs
from fleetbus.executors.cpu_use import TICK, CpuMeter
from fleetbus.executors.figures import (
    DiskUsage,
    ProcessFigures,
    ProcessSort,
    process_row,
    rank_processes,
    system_figures,
)

PROC = Path("/proc")
PRESSURE_RESOURCES = ("cpu", "memory", "io")
READ_SIZE = 64 * 1024
SNAPSHOTS = ("system", "processes", "network", "identity")
CPU_SCALE = "percent of one CPU, as in top: {cpus} CPUs busy make {full}"


class MetricsSource(Protocol):
    """What the gateway asks a host's figures of: this machine's (LocalFigures), later a remote host's, whose
    /proc text arrives over SSH and goes through the same `procfs` parsers and `figures` shapes."""

    def snapshot(self, name: str, params: dict[str, Any]) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalFigures:
    """The `system`, `processes`, `network` and `identity` snapshots of this machine. Owns a background CPU
    sampler (so system_status need not sleep to measure CPU use); `close` stops it."""

    def __init__(self, proc: Path = PROC, *, cpu_tick: float | None = TICK) -> None:
        self.proc = proc
        self.cpu = CpuMeter(self._cpu_ticks, tick=cpu_tick)

    def read(self, name: str) -> str:
        """One /proc file. os.read rather than a text file object: a third of the cost, and a snapshot reads eight."""
        fd = os.open(f"{self.proc}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, READ_SIZE):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode(errors="replace")

    def _cpu_ticks(self) -> procfs.CpuTicks:
        return procfs.proc_stat(self.read("stat")).cpu

    def system(self, disk_limit: int = 20) -> dict[str, Any]:
        stat = procfs.proc_stat(self.read("stat"))
        return system_figures(
            load=procfs.load_average(self.read("loadavg")),
            cpus=stat.cpus,
            cpu=self.cpu.reading(),
            memory=procfs.memory(self.read("meminfo")),
            disks=self.disks(disk_limit),
            pressure=self.pressure(),
            uptime_s=procfs.uptime(self.read("uptime")),
        )

    def disks(self, limit: int) -> list[DiskUsage]:
        found: list[DiskUsage] = []
        for mount in procfs.disk_mounts(self.read("self/mounts"), self.read("filesystems")):
            if len(found) >= limit:
                break
            with contextlib.suppress(OSError):  # unmounted meanwhile, or not ours to look at
                st = os.statvfs(mount.mountpoint)
                found.append(
                    DiskUsage.from_statvfs(
                        mount.mountpoint, mount.fstype, st.f_blocks, st.f_bfree, st.f_bavail, st.f_frsize
                    )
                )
        return found

    def pressure(self) -> dict[str, dict[str, float]] | None:
        """Pressure stall figures per resource; None where the kernel has none (no PSI, or psi=0)."""
        if not (self.proc / "pressure").is_dir():
            return None
        found: dict[str, dict[str, float]] = {}
        for resource in PRESSURE_RESOURCES:
            with contextlib.suppress(OSError):
                found[resource] = procfs.pressure(self.read(f"pressure/{resource}"))
        return found or None

    def processes(self, sort: ProcessSort = "cpu", limit: int = 10, sample: float = 0.5) -> dict[str, Any]:
        """The top processes by CPU, measured over `sample` seconds, or by resident memory. By memory no CPU
        figure is given: it would need the same wait, and a figure without one is noise (psutil then divides
        by a few microseconds and says 295 % on 2 CPUs)."""
        fields = ["pid", "name", "username", "status", "memory_info", "memory_percent"]
        procs = list(psutil.process_iter(fields))
        window = None
        if sort == "cpu":
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.cpu_percent(None)  # the first call only starts the measurement
            started = time.monotonic()
            time.sleep(sample)
            window = time.monotonic() - started
        figures: list[ProcessFigures] = []
        for proc in procs:
            try:
                info = proc.info
                figures.append(
                    ProcessFigures(
                        pid=proc.pid,
                        name=info.get("name") or "",
                        user=info.get("username") or "",
                        state=info.get("status") or "",
                        rss=info["memory_info"].rss if info.get("memory_info") else 0,
                        memory_percent=info.get("memory_percent") or 0.0,
                        cpu_percent=proc.cpu_percent(None) if window is not None else None,
                    )
                )
            except psutil.Error:
                continue  # it exited while we looked
        top, ranked = rank_processes(figures, sort, limit)
        result: dict[str, Any] = {
            "processes": [process_row(p, _command(p.pid)) for p in top],
            "total": ranked,
            "sort": sort,
        }
        if window is not None:
            cpus = psutil.cpu_count() or 1
            result |= {"cpu_window_s": round(window, 2), "cpu_scale": CPU_SCALE.format(cpus=cpus, full=cpus * 100)}
        else:
            result["left_out"] = len(figures) - ranked
        return result

    def network(self, limit: int = 50) -> dict[str, Any]:
        addresses = psutil.net_if_addrs()
        stats = psutil.net_if_stats()
        interfaces = []
        for name in sorted(addresses)[:limit]:
            stat = stats.get(name)
            addrs = [
                f"{a.address}/{_prefix(a.netmask)}" if a.netmask else a.address
                for a in addresses[name]
                if a.family in (socket.AF_INET, socket.AF_INET6)
            ]
            interfaces.append(
                {
                    "name": name,
                    "up": bool(stat.isup) if stat else False,
                    "mtu": stat.mtu if stat else None,
                    "speed_mbps": stat.speed if stat and stat.speed else None,
                    "addresses": " ".join(addrs),
                }
            )
        connections = psutil.net_connections(kind="inet")
        states: Counter[str] = Counter()
        listening = []
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN or (conn.type == socket.SOCK_DGRAM and not conn.raddr):
                listening.append(
                    {
                        "proto": ("tcp" if conn.type == socket.SOCK_STREAM else "udp")
                        + ("6" if conn.family == socket.AF_INET6 else ""),
                        "address": conn.laddr.ip if conn.laddr else "",
                        "port": conn.laddr.port if conn.laddr else 0,
                        "pid": conn.pid,
                        "process": _process_name(conn.pid),
                    }
                )
            elif conn.type == socket.SOCK_STREAM:
                states[conn.status.lower()] += 1
        listening.sort(key=lambda row: (row["port"], row["proto"], row["address"]))
        return {
            "interfaces": interfaces,
            "listening": listening[:limit],
            "listening_total": len(listening),
            "connections": dict(sorted(states.items())),
        }

    def identity(self) -> dict[str, Any]:
        """Boot and clocks. `monotonic_usec` is the clock systemd's *TimestampMonotonic properties count on."""
        boot_id = ""
        with contextlib.suppress(OSError):
            boot_id = self.read("sys/kernel/random/boot_id").strip().replace("-", "")
        return {
            "boot_id": boot_id,
            "boot_time": procfs.proc_stat(self.read("stat")).boot_time,
            "uptime_s": int(procfs.uptime(self.read("uptime"))),
            "monotonic_usec": time.monotonic_ns() // 1000,
        }

    def snapshot(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == "system":
            return self.system(int(params.get("disk_limit", 20)))
        if name == "processes":
            sort: ProcessSort = "memory" if params.get("sort") == "memory" else "cpu"
            return self.processes(sort, int(params.get("limit", 10)), float(params.get("sample", 0.5)))
        if name == "network":
            return self.network(int(params.get("limit", 50)))
        if name == "identity":
            return self.identity()
        raise ValueError(f"unknown metrics snapshot {name!r}; known: {', '.join(SNAPSHOTS)}")

    def close(self) -> None:
        self.cpu.close()


def _command(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())[:160]
    except psutil.Error:
        return ""


def _prefix(netmask: str) -> int:
    if ":" in netmask:
        return sum(bin(int(part, 16)).count("1") for part in netmask.split(":") if part)
    return sum(bin(int(part)).count("1") for part in netmask.split(".") if part.isdigit())


def _process_name(pid: int | None) -> str | None:
    if not pid:
        return None
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None
