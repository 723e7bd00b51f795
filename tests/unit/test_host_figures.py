"""HostFigures' own logic on a /proc tree written by the test (LocalFiles rooted there): the system snapshot's
figures, disks following a change of mounts, CPU per process over the measured window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleetbus.executors.command import LocalRunner
from fleetbus.executors.metrics import HostFigures
from fleetbus.executors.proc_files import LocalFiles, ReadFailed

STAT = "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 50 0 50 400 0 0 0 0 0 0\ncpu1 50 0 50 400 0 0 0 0 0 0\nbtime 1700000000\n"
MEMINFO = "MemTotal: 1048576 kB\nMemFree: 524288 kB\nMemAvailable: 786432 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"
FILESYSTEMS = "nodev\tproc\nnodev\ttmpfs\n\text4\n"


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "/proc/loadavg": "1.50 1.00 0.50 2/100 4242\n",
            "/proc/meminfo": MEMINFO,
            "/proc/stat": STAT,
            "/proc/uptime": "3600.50 7000.00\n",
            "/proc/filesystems": FILESYSTEMS,
            "/proc/self/mounts": f"/dev/vda / ext4 rw 0 0\nproc /proc proc rw 0 0\n/dev/vdb {tmp_path} ext4 rw 0 0\n",
        },
    )
    return tmp_path


def figures(root: Path) -> HostFigures:
    return HostFigures(LocalRunner(), LocalFiles(str(root)))


async def test_the_system_snapshot_from_the_hosts_files(proc: Path) -> None:
    status = await figures(proc).system()
    assert status["load"] == {"1m": 1.5, "5m": 1.0, "15m": 0.5}
    assert (status["cpus"], status["load_per_cpu"]) == (2, 0.75)
    assert status["memory"] == {"total_mb": 1024, "available_mb": 768, "used_percent": 25.0}
    assert status["uptime_s"] == 3600
    assert status["pressure"] is None  # no /proc/pressure files: a kernel without PSI
    assert [d["mount"] for d in status["disks"]] == ["/", str(proc)]
    assert status["cpu_window_s"] >= 0.2  # no earlier sample: it measured a window of its own


async def test_disks_follow_a_change_of_mounts(proc: Path) -> None:
    host = figures(proc)
    assert len((await host.system())["disks"]) == 2
    write(proc, {"/proc/self/mounts": "/dev/vda / ext4 rw 0 0\n"})
    assert [d["mount"] for d in (await host.system())["disks"]] == ["/"]
    write(proc, {"/proc/self/mounts": f"/dev/vdb {proc} ext4 rw 0 0\n/dev/vda / ext4 rw 0 0\n"})
    assert [d["mount"] for d in (await host.system(disk_limit=1))["disks"]] == [str(proc)]


async def test_a_missing_file_is_a_read_failure_naming_it(proc: Path) -> None:
    os.unlink(proc / "proc" / "loadavg")
    with pytest.raises(ReadFailed, match="/proc/loadavg"):
        await figures(proc).system()


def process(root: Path, pid: int, name: str, ticks: int, rss_kb: int | None, uid: int = 0) -> None:
    rss = f"VmRSS:\t{rss_kb} kB\n" if rss_kb is not None else ""
    write(
        root,
        {
            f"/proc/{pid}/stat": f"{pid} ({name}) S 1 {pid} {pid} 0 -1 0 0 0 0 0 {ticks} 0 0 0 20 0 1 0 1 0 0\n",
            f"/proc/{pid}/status": f"Name:\t{name}\nState:\tS (sleeping)\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n{rss}",
            f"/proc/{pid}/cmdline": f"/usr/bin/{name}\0--flag\0",
        },
    )


async def test_processes_by_memory_and_their_users(proc: Path) -> None:
    write(proc, {"/etc/passwd": "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n"})
    process(proc, 10, "web", 0, 262144, uid=33)
    process(proc, 11, "kworker", 0, None)
    process(proc, 12, "db", 0, 524288, uid=999)
    top = await figures(proc).processes("memory", 5)
    rows = [(r["pid"], r["name"], r["user"], r["rss_mb"], r["memory_percent"]) for r in top["processes"]]
    assert rows == [(12, "db", "999", 512.0, 50.0), (10, "web", "www", 256.0, 25.0)]
    assert top["processes"][0]["command"] == "/usr/bin/db --flag"
    assert (top["total"], top["left_out"]) == (2, 1)


async def test_cpu_per_process_over_the_window(proc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    process(proc, 20, "busy", 0, 1024)
    process(proc, 21, "idle", 0, 1024)
    host = figures(proc)
    real_read = host.files.read_processes
    calls = 0

    async def read_processes(names: list[str], *, timeout: float) -> dict[int, dict[str, str]]:
        nonlocal calls
        calls += 1
        if calls == 2:  # between the two reads: 20 used 10 ticks (0.1 s of CPU), 22 started
            process(proc, 20, "busy", 10, 1024)
            process(proc, 22, "newcomer", 50, 1024)
        return await real_read(names, timeout=timeout)

    monkeypatch.setattr(host.files, "read_processes", read_processes)
    top = await host.processes("cpu", 5, sample=0.2)
    by_pid = {r["pid"]: r for r in top["processes"]}
    assert sorted(by_pid) == [20, 21]  # the newcomer has no figure over the same window
    window = top["cpu_window_s"]
    assert by_pid[20]["cpu_percent"] == pytest.approx(10 / 100 / window * 100, rel=0.05)  # window is rounded
    assert by_pid[21]["cpu_percent"] == 0.0
    assert top["cpu_scale"] == "percent of one CPU, as in top: 2 CPUs busy make 200"
