"""Parsers of /proc file text: pure functions of what a file says, so that the same code serves a host whose
/proc is read locally and one whose /proc is read over SSH. Reading the files is the caller's business."""

from __future__ import annotations

import re
from dataclasses import dataclass

PSI_AVERAGES = ("avg10", "avg60", "avg300")
MEMINFO_FIELDS = frozenset(
    {"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SReclaimable", "SwapTotal", "SwapFree"}
)
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


class ProcFormatError(ValueError):
    """A /proc file does not say what its format promises (a truncated read, the wrong file)."""


@dataclass(frozen=True)
class LoadAverage:
    one: float
    five: float
    fifteen: float


def load_average(text: str) -> LoadAverage:
    """/proc/loadavg: `0.52 0.58 0.59 2/345 12345`."""
    fields = text.split()
    try:
        return LoadAverage(float(fields[0]), float(fields[1]), float(fields[2]))
    except (IndexError, ValueError):
        raise ProcFormatError(f"/proc/loadavg: expected three load averages, got {text[:80]!r}") from None


@dataclass(frozen=True)
class CpuTicks:
    """The machine's CPU time since boot, all CPUs together, in clock ticks (USER_HZ)."""

    busy: int
    total: int


@dataclass(frozen=True)
class ProcStat:
    cpu: CpuTicks
    cpus: int
    """Online CPUs: one `cpuN` line each."""
    boot_time: int
    """Seconds since the epoch, as the kernel reckons it (`btime`)."""


def proc_stat(text: str) -> ProcStat:
    """/proc/stat: the aggregate `cpu` line, the `cpuN` lines and `btime`.

    The `cpu` fields are user nice system idle iowait irq softirq steal guest guest_nice. Guest time is already
    counted in user and nice, so it is left out of the total; idle and iowait are not busy. This is psutil's
    reckoning, so the figures match what fleetbus reported before it parsed /proc itself.
    """
    ticks: CpuTicks | None = None
    cpus = 0
    boot_time: int | None = None
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if name == "cpu":
            ticks = _cpu_ticks(rest)
        elif name.startswith("cpu") and name[3:].isdigit():
            cpus += 1
        elif name == "btime":
            boot_time = int(rest)
    if ticks is None or boot_time is None or cpus == 0:
        raise ProcFormatError("/proc/stat: no aggregate cpu line, no cpuN lines or no btime")
    return ProcStat(ticks, cpus, boot_time)


def _cpu_ticks(fields_text: str) -> CpuTicks:
    try:
        values = [int(v) for v in fields_text.split()]
    except ValueError:
        raise ProcFormatError(f"/proc/stat: cpu line {fields_text[:80]!r} is not numbers") from None
    if len(values) < 4:
        raise ProcFormatError(f"/proc/stat: cpu line {fields_text[:80]!r} has fewer than four fields")
    named = dict(zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"), values, strict=False))
    guest = sum(values[8:10])
    total = sum(values) - guest
    return CpuTicks(busy=total - named["idle"] - named.get("iowait", 0), total=total)


def uptime(text: str) -> float:
    """/proc/uptime: seconds since boot (the first of its two figures)."""
    try:
        return float(text.split(maxsplit=1)[0])
    except (IndexError, ValueError):
        raise ProcFormatError(f"/proc/uptime: expected seconds, got {text[:80]!r}") from None


@dataclass(frozen=True)
class Memory:
    """Bytes. `available` is the kernel's estimate of what can be given to programs without swapping."""

    total: int
    available: int
    swap_total: int
    swap_free: int


def memory(text: str) -> Memory:
    """/proc/meminfo (`MemTotal:  16314744 kB` lines). Before MemAvailable existed (kernels older than 3.14),
    or when it reads 0, available is estimated as free + buffers + page cache + reclaimable slab."""
    kib: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in MEMINFO_FIELDS:
            value = rest.split()
            if value and value[0].isdigit():
                kib[name] = int(value[0])
    if "MemTotal" not in kib:
        raise ProcFormatError("/proc/meminfo: no MemTotal")
    total = kib["MemTotal"] * 1024
    available = kib.get("MemAvailable", 0) * 1024
    if available <= 0:
        estimate = sum(kib.get(k, 0) for k in ("MemFree", "Buffers", "Cached", "SReclaimable"))
        available = estimate * 1024
    if available > total:
        # Inside some containers the figures contradict each other; what is free is then the honest answer.
        available = kib.get("MemFree", 0) * 1024
    return Memory(total, available, kib.get("SwapTotal", 0) * 1024, kib.get("SwapFree", 0) * 1024)


def pressure(text: str) -> dict[str, float]:
    """One /proc/pressure/{cpu,memory,io} file: the share of time tasks stalled, in percent, as
    `some_avg10`, `full_avg60`…; `some` is at least one task stalled, `full` all of them."""
    figures: dict[str, float] = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        for item in fields:
            key, _, value = item.partition("=")
            if key in PSI_AVERAGES:
                try:
                    figures[f"{kind}_{key}"] = float(value)
                except ValueError:
                    raise ProcFormatError(f"pressure: {item!r} is not a number") from None
    return figures


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str


def block_filesystems(text: str) -> frozenset[str]:
    """/proc/filesystems: the types that need a block device (lines without `nodev`), plus zfs, which is
    marked nodev but stores files on disks."""
    found = set()
    for line in text.splitlines():
        flag, _, name = line.rpartition("\t")
        name = name.strip()
        if name and (flag.strip() != "nodev" or name == "zfs"):
            found.add(name)
    return frozenset(found)


def disk_mounts(mounts_text: str, filesystems_text: str) -> list[Mount]:
    """The mounts of /proc/self/mounts that store files on a device (psutil's `disk_partitions(all=False)`):
    a device is named and the filesystem type needs one — no proc, tmpfs, cgroup, overlay… Nor a file bound
    somewhere inside /proc or /sys (a container's or a simulated host's stand-in for a kernel file): not a disk."""
    wanted = block_filesystems(filesystems_text)
    found = []
    for line in mounts_text.splitlines():
        fields = line.split(maxsplit=3)
        if len(fields) < 3 or fields[0] == "none" or _unescape(fields[2]) not in wanted:
            continue
        if fields[1].startswith(("/proc/", "/sys/")):
            continue
        found.append(Mount(*(_unescape(f) for f in fields[:3])))
    return found


def _unescape(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash in names as octal escapes."""
    if "\\" not in field:
        return field
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), field)
