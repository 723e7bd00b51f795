"""Figures of one host — this machine or a remote one — from its own /proc and fixed read-only commands.

`HostFigures(runner, files)` answers the snapshots (system, processes, network, identity, process_names) through
a `FileReader` (in-process here, `grep -H` over SSH there) and a `CommandRunner` (`ip`, `ss`, `df`), and shapes
them with the parsers every host shares (`procfs`, `processes`, `network`, `identity`) and `figures`.
No tool argument reaches an argv: snapshot parameters are numbers (limits, a sample window) or, for
process_names, PIDs that are checked to be integers before they become `/proc/PID/…` paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from fleetbus.executors import identity, network, processes, procfs
from fleetbus.executors.command import CommandRunner, LocalRunner, failure
from fleetbus.executors.cpu_use import TICK, CpuMeter, CpuSampler
from fleetbus.executors.figures import (
    DiskUsage,
    ProcessFigures,
    ProcessSort,
    process_row,
    rank_processes,
    system_figures,
)
from fleetbus.executors.proc_files import C_LOCALE, FileReader, LocalFiles, ReadFailed, RemoteFiles

PRESSURE_RESOURCES = ("cpu", "memory", "io")
SNAPSHOTS = ("system", "processes", "network", "identity", "process_names")
CPU_SCALE = "percent of one CPU, as in top: {cpus} CPUs busy make {full}"
SYSTEM_FILES = (
    "/proc/loadavg",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/uptime",
    "/proc/self/mounts",
    "/proc/filesystems",
    *(f"/proc/pressure/{resource}" for resource in PRESSURE_RESOURCES),
)
IDENTITY_FILES = (
    "/proc/sys/kernel/random/boot_id",
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/osrelease",
    "/proc/stat",
    "/proc/uptime",
    "/etc/machine-id",
    "/etc/os-release",
    "/usr/lib/os-release",
)
IP_ADDR = (*C_LOCALE, "ip", "-j", "addr")
SS = (*C_LOCALE, "ss", "-Htuanp")
"""Every TCP and UDP socket with its process: listeners and connection states from one read (`-p` names a
socket's process, where we may see it)."""
MAX_COMMAND_BYTES = 8 << 20
MAX_PIDS = 1000
DEFAULT_TIMEOUT = 10.0


class HostFigures:
    """The snapshots of one host. `local()` for this machine (with a background CPU sampler, so system_status
    need not wait to measure CPU use), `remote(runner)` for a host reached through its runner (a reading waits
    FIRST_WINDOW only when no sample of the last MAX_AGE seconds is at hand). `close` stops the sampler."""

    def __init__(self, runner: CommandRunner, files: FileReader, *, sampler: CpuSampler | None = None) -> None:
        self.runner = runner
        self.files = files
        self.cpu = CpuMeter()
        self._sampler = sampler
        self._mountpoints: list[str] = []

    @classmethod
    def local(cls, *, cpu_tick: float | None = TICK, root: str = "") -> HostFigures:
        files = LocalFiles(root)
        figures = cls(LocalRunner(), files)
        if cpu_tick is not None:
            figures._sampler = CpuSampler(
                figures.cpu, lambda: procfs.proc_stat(files.read_text("/proc/stat")).cpu, cpu_tick
            )
        return figures

    @classmethod
    def remote(cls, runner: CommandRunner) -> HostFigures:
        return cls(runner, RemoteFiles(runner))

    async def snapshot(self, name: str, params: dict[str, Any], *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        if name == "system":
            return await self.system(int(params.get("disk_limit", 20)), timeout=timeout)
        if name == "processes":
            sort: ProcessSort = "memory" if params.get("sort") == "memory" else "cpu"
            return await self.processes(
                sort, int(params.get("limit", 10)), float(params.get("sample", 0.5)), timeout=timeout
            )
        if name == "network":
            return await self.network(int(params.get("limit", 50)), timeout=timeout)
        if name == "identity":
            return await self.identity(timeout=timeout)
        if name == "process_names":
            return await self.process_names(params.get("pids", []), timeout=timeout)
        raise ValueError(f"unknown metrics snapshot {name!r}; known: {', '.join(SNAPSHOTS)}")

    # ---- system ------------------------------------------------------------------------------------

    async def system(self, disk_limit: int = 20, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        # Mounts rarely change: the last snapshot's mount points are measured while /proc is read, so a remote
        # host answers in one round trip; only when its mounts changed is df run again for the new list.
        known = self._mountpoints
        early = asyncio.ensure_future(self.files.disk_usage(known, timeout=timeout)) if known else None
        try:
            files = await self.files.read(SYSTEM_FILES, timeout=timeout)
        except BaseException:
            if early is not None:
                early.cancel()
                with contextlib.suppress(BaseException):
                    await early
            raise
        stat = procfs.proc_stat(_need(files, "/proc/stat"))

        async def read_ticks() -> procfs.CpuTicks:
            again = await self.files.read(["/proc/stat"], timeout=timeout)
            return procfs.proc_stat(_need(again, "/proc/stat")).cpu

        cpu, disks = await asyncio.gather(
            self.cpu.reading(stat.cpu, read_ticks), self.disks(files, disk_limit, early, timeout=timeout)
        )
        pressure = {
            resource: procfs.pressure(files[f"/proc/pressure/{resource}"])
            for resource in PRESSURE_RESOURCES
            if f"/proc/pressure/{resource}" in files
        }
        return system_figures(
            load=procfs.load_average(_need(files, "/proc/loadavg")),
            cpus=stat.cpus,
            cpu=cpu,
            memory=procfs.memory(_need(files, "/proc/meminfo")),
            disks=disks,
            # None where the kernel has no pressure stall information (no PSI, or psi=0).
            pressure=pressure or None,
            uptime_s=procfs.uptime(_need(files, "/proc/uptime")),
        )

    async def disks(
        self,
        files: dict[str, str],
        limit: int,
        early: asyncio.Future[dict[str, DiskUsage]] | None = None,
        *,
        timeout: float,
    ) -> list[DiskUsage]:
        mounts = procfs.disk_mounts(_need(files, "/proc/self/mounts"), _need(files, "/proc/filesystems"))
        # A mount point seen twice (a bind mount of the same tree) is measured once, as df shows it.
        points = list(dict.fromkeys(m.mountpoint for m in mounts))
        if early is not None and points == self._mountpoints:
            usage = await early
        else:
            if early is not None:
                early.cancel()
                with contextlib.suppress(BaseException):
                    await early
            usage = await self.files.disk_usage(points, timeout=timeout)
        self._mountpoints = points
        fstypes = {m.mountpoint: m.fstype for m in mounts}
        found = [
            DiskUsage(point, fstypes[point], usage[point].total, usage[point].used, usage[point].available)
            for point in points
            if point in usage
        ]
        return found[:limit]

    # ---- processes ---------------------------------------------------------------------------------

    async def processes(
        self, sort: ProcessSort = "cpu", limit: int = 10, sample: float = 0.5, *, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """The top processes by CPU, measured over `sample` seconds, or by resident memory. By memory no CPU
        figure is given: it would need the same wait, and a figure without one is noise."""
        shared = await self.files.read(["/proc/meminfo", "/proc/stat", "/etc/passwd"], timeout=timeout)
        window = None
        before: dict[int, dict[str, str]] = {}
        if sort == "cpu":
            before = await self.files.read_processes(["stat"], timeout=timeout)
            started = time.monotonic()
            await asyncio.sleep(sample)
            found = await self.files.read_processes(["stat", "status", "cmdline"], timeout=timeout)
            window = time.monotonic() - started
        else:
            found = await self.files.read_processes(["status", "cmdline"], timeout=timeout)
        total = procfs.memory(_need(shared, "/proc/meminfo")).total
        cpus = procfs.proc_stat(_need(shared, "/proc/stat")).cpus
        users = processes.passwd_names(shared.get("/etc/passwd", ""))
        figures: list[ProcessFigures] = []
        commands: dict[int, str] = {}
        for pid, files in found.items():
            if "status" not in files:
                continue  # it exited while we looked
            try:
                state = processes.status(files["status"])
                cpu = None
                if window is not None:
                    if pid not in before or "stat" not in files:
                        continue  # started during the window: no figure over the same window as the others
                    ticks = processes.cpu_ticks(files["stat"]) - processes.cpu_ticks(before[pid]["stat"])
                    cpu = 100.0 * ticks / processes.USER_HZ / window if window > 0 else 0.0
            except procfs.ProcFormatError:
                continue
            cmdline = files.get("cmdline", "")
            commands[pid] = processes.command_line(cmdline)
            figures.append(
                ProcessFigures(
                    pid=pid,
                    name=processes.process_name(state.name, cmdline),
                    user=processes.user_name(state.uid, users),
                    state=state.state,
                    rss=state.rss,
                    memory_percent=100.0 * state.rss / total if total else 0.0,
                    cpu_percent=cpu,
                )
            )
        top, ranked = rank_processes(figures, sort, limit)
        result: dict[str, Any] = {
            "processes": [process_row(p, commands.get(p.pid, "")) for p in top],
            "total": ranked,
            "sort": sort,
        }
        if window is not None:
            result |= {"cpu_window_s": round(window, 2), "cpu_scale": CPU_SCALE.format(cpus=cpus, full=cpus * 100)}
        else:
            result["left_out"] = len(figures) - ranked
        return result

    async def process_names(self, pids: Sequence[Any], *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The names of the given processes (bus peers to label); a process that is gone has none."""
        checked = checked_pids(pids)
        if not checked:
            return {"names": {}}
        paths = [f"/proc/{pid}/{name}" for pid in checked for name in ("comm", "cmdline")]
        files = await self.files.read(paths, timeout=timeout)
        names = {}
        for pid in checked:
            comm = files.get(f"/proc/{pid}/comm")
            if comm is not None:
                names[str(pid)] = processes.process_name(comm.rstrip("\n"), files.get(f"/proc/{pid}/cmdline"))
        return {"names": names}

    # ---- network -----------------------------------------------------------------------------------

    async def network(self, limit: int = 50, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        addr, ss = await asyncio.gather(
            self.runner.run(IP_ADDR, timeout=timeout, max_bytes=MAX_COMMAND_BYTES),
            self.runner.run(SS, timeout=timeout, max_bytes=MAX_COMMAND_BYTES),
        )
        if addr.exit_status != 0:
            raise ReadFailed(failure(IP_ADDR, addr))
        if ss.exit_status != 0 and not ss.truncated:
            raise ReadFailed(failure(SS, ss))
        found = network.interfaces(addr.stdout.decode("utf-8", errors="replace"))
        text = ss.stdout.decode("utf-8", errors="replace")
        if ss.truncated:
            text = text[: text.rfind("\n") + 1]  # the last line was cut
        speed_paths = [f"/sys/class/net/{i.name}/speed" for i in found if network.plain_name(i.name)]
        speeds = await self.files.read(speed_paths, timeout=timeout) if speed_paths else {}
        return network.network_figures(
            found,
            network.sockets(text),
            {path.split("/")[4]: int(value) for path, value in speeds.items() if value.strip().lstrip("-").isdigit()},
            limit,
            sockets_complete=not ss.truncated,
        )

    # ---- identity ----------------------------------------------------------------------------------

    async def identity(self, *, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The host's boot, clocks, name and OS. `monotonic_usec` is the clock systemd's *TimestampMonotonic
        properties count on: read directly here; on a remote host CLOCK_BOOTTIME from /proc/uptime stands for it
        (the same unless the host has been suspended; no file shows CLOCK_MONOTONIC to an unprivileged reader)."""
        files = await self.files.read(IDENTITY_FILES, timeout=timeout)
        uptime = procfs.uptime(_need(files, "/proc/uptime"))
        monotonic = self.files.monotonic_usec()
        release = identity.os_release(files.get("/etc/os-release") or files.get("/usr/lib/os-release") or "")
        return {
            "boot_id": files.get("/proc/sys/kernel/random/boot_id", "").strip().replace("-", ""),
            "boot_time": procfs.proc_stat(_need(files, "/proc/stat")).boot_time,
            "uptime_s": int(uptime),
            "monotonic_usec": monotonic if monotonic is not None else int(uptime * 1_000_000),
            "hostname": files.get("/proc/sys/kernel/hostname", "").strip() or None,
            "kernel_release": files.get("/proc/sys/kernel/osrelease", "").strip() or None,
            "machine_id": files.get("/etc/machine-id", "").strip() or None,
            "os": release.get("PRETTY_NAME") or release.get("NAME"),
            "os_id": release.get("ID"),
            "os_version": release.get("VERSION_ID"),
        }

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.close()


def _need(files: dict[str, str], path: str) -> str:
    try:
        return files[path]
    except KeyError:
        raise ReadFailed(f"{path} could not be read") from None


def checked_pids(pids: Any) -> list[int]:
    """PIDs as integers (booleans and anything else refused), at most MAX_PIDS: they become /proc paths."""
    if isinstance(pids, str | bytes) or not isinstance(pids, Sequence):
        raise ValueError("pids must be a list of process ids")
    checked = []
    for pid in pids:
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError(f"not a process id: {pid!r}")
        checked.append(pid)
    if len(checked) > MAX_PIDS:
        raise ValueError(f"at most {MAX_PIDS} process ids at once, not {len(checked)}")
    return list(dict.fromkeys(checked))
