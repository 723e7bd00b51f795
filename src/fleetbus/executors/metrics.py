"""Resource figures of the local host through psutil and /proc: load, CPU, memory, disks, pressure stall
information, processes and sockets. Blocking calls; the gateway runs them in a thread under a deadline."""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

PRESSURE_DIR = Path("/proc/pressure")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
MIB = 1024 * 1024
GIB = 1024 * MIB
SNAPSHOTS = ("system", "processes", "network", "identity")


def _round(value: float, digits: int = 1) -> float:
    return round(float(value), digits)


def pressure(directory: Path = PRESSURE_DIR) -> dict[str, dict[str, float]] | None:
    """PSI averages (percent of time stalled) per resource, `some` and `full`; None where the kernel has none."""
    if not directory.is_dir():
        return None
    found: dict[str, dict[str, float]] = {}
    for resource in ("cpu", "memory", "io"):
        try:
            text = (directory / resource).read_text()
        except OSError:
            continue
        figures: dict[str, float] = {}
        for line in text.splitlines():
            kind, *fields = line.split()
            for item in fields:
                key, _, value = item.partition("=")
                if key in ("avg10", "avg60", "avg300"):
                    figures[f"{kind}_{key}"] = float(value)
        found[resource] = figures
    return found


def system(disk_limit: int = 20, sample: float = 0.2) -> dict[str, Any]:
    load = psutil.getloadavg()
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    disks: list[dict[str, Any]] = []
    for partition in psutil.disk_partitions(all=False):
        if len(disks) >= disk_limit:
            break
        with contextlib.suppress(OSError):
            usage = psutil.disk_usage(partition.mountpoint)
            disks.append(
                {
                    "mount": partition.mountpoint,
                    "fs": partition.fstype,
                    "size_gb": _round(usage.total / GIB),
                    "used_percent": _round(usage.percent),
                }
            )
    cpus = psutil.cpu_count() or 1
    return {
        "load": {"1m": _round(load[0], 2), "5m": _round(load[1], 2), "15m": _round(load[2], 2)},
        "cpus": cpus,
        "load_per_cpu": _round(load[0] / cpus, 2),
        "cpu_percent": _round(psutil.cpu_percent(interval=sample)),
        "memory": {
            "total_mb": int(memory.total / MIB),
            "available_mb": int(memory.available / MIB),
            "used_percent": _round(memory.percent),
        },
        "swap": {"total_mb": int(swap.total / MIB), "used_percent": _round(swap.percent)},
        "disks": disks,
        "pressure": pressure(),
        "uptime_s": int(time.time() - psutil.boot_time()),
    }


def processes(sort: str = "cpu", limit: int = 10, sample: float = 0.5) -> dict[str, Any]:
    """The top processes by CPU (measured over `sample` seconds) or by resident memory."""
    procs = list(psutil.process_iter(["pid", "name", "username", "status", "memory_info", "memory_percent"]))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)  # the first call only starts the measurement
    if sort == "cpu":
        time.sleep(sample)
    rows: list[dict[str, Any]] = []
    for proc in procs:
        try:
            cpu = proc.cpu_percent(None)
            info = proc.info
            rss = info["memory_info"].rss if info.get("memory_info") else 0
            rows.append(
                {
                    "pid": proc.pid,
                    "name": info.get("name") or "",
                    "user": info.get("username") or "",
                    "state": info.get("status") or "",
                    "cpu_percent": _round(cpu),
                    "rss_mb": _round(rss / MIB),
                    "memory_percent": _round(info.get("memory_percent") or 0.0, 2),
                }
            )
        except psutil.Error:
            continue  # it exited while we looked
    key = "cpu_percent" if sort == "cpu" else "rss_mb"
    rows.sort(key=lambda row: (-float(row[key]), int(row["pid"])))
    top = rows[:limit]
    for row in top:
        with contextlib.suppress(psutil.Error):
            row["command"] = " ".join(psutil.Process(int(row["pid"])).cmdline())[:160]
        row.setdefault("command", "")
    return {"processes": top, "total": len(rows), "sort": sort}


def network(limit: int = 50) -> dict[str, Any]:
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


def identity() -> dict[str, Any]:
    boot_id = ""
    with contextlib.suppress(OSError):
        boot_id = BOOT_ID.read_text().strip().replace("-", "")
    booted = psutil.boot_time()
    return {"boot_id": boot_id, "boot_time": booted, "uptime_s": int(time.time() - booted)}


def snapshot(name: str, params: dict[str, Any]) -> dict[str, Any]:
    if name == "system":
        return system(int(params.get("disk_limit", 20)))
    if name == "processes":
        return processes(str(params.get("sort", "cpu")), int(params.get("limit", 10)), float(params.get("sample", 0.5)))
    if name == "network":
        return network(int(params.get("limit", 50)))
    if name == "identity":
        return identity()
    raise ValueError(f"unknown metrics snapshot {name!r}; known: {', '.join(SNAPSHOTS)}")


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
