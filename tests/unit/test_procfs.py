"""The /proc parsers on golden text: files as a Debian 12 VM (2 CPUs, kernel 6.x) wrote them, and the older or
odder forms other hosts write."""

from __future__ import annotations

import pytest

from fleetbus.executors import procfs

STAT = """\
cpu  124046 0 10846 119606 363 0 364 1417 0 0
cpu0 61777 0 5494 59972 218 0 142 751 0 0
cpu1 62269 0 5351 59633 144 0 221 666 0 0
intr 1033126 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 800 0 0
ctxt 2329046
btime 1796162535
processes 18054
procs_running 5
procs_blocked 0
softirq 467786 0 70128 6 39842 53436 0 2 115390 0 188982
"""

MEMINFO = """\
MemTotal:       24683584 kB
MemFree:        20707416 kB
MemAvailable:   23632136 kB
Buffers:          109920 kB
Cached:          2910820 kB
SwapCached:            0 kB
Active:          1281852 kB
SwapTotal:       2097148 kB
SwapFree:        1572860 kB
Dirty:             24364 kB
SReclaimable:     190332 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

FILESYSTEMS = "nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\n\text3\n\text4\nnodev\toverlay\n\txfs\nnodev\tzfs\n"

MOUNTS = """\
proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
tmpfs /dev/shm tmpfs rw,relatime,size=24683584k 0 0
/dev/vda / ext4 rw,relatime,discard 0 0
/dev/vdb1 /srv/data\\040disk xfs rw,relatime 0 0
overlay /var/lib/containers/overlay overlay rw,lowerdir=/a,upperdir=/b 0 0
tank/home /home zfs rw,xattr 0 0
none /mnt/none ext4 rw 0 0
"""


def test_load_average() -> None:
    assert procfs.load_average("1.20 1.25 0.75 1/86 10221\n") == procfs.LoadAverage(1.2, 1.25, 0.75)


def test_proc_stat_counts_busy_time_as_psutil_does() -> None:
    stat = procfs.proc_stat(STAT)
    assert (stat.cpus, stat.boot_time) == (2, 1796162535)
    # user+nice+system+irq+softirq+steal are busy; idle and iowait are not.
    assert stat.cpu.busy == 124046 + 10846 + 364 + 1417
    assert stat.cpu.total == 124046 + 10846 + 119606 + 363 + 364 + 1417


def test_guest_time_is_not_counted_twice() -> None:
    # guest (9th) and guest_nice (10th) are already inside user and nice.
    stat = procfs.proc_stat("cpu  100 10 50 800 20 5 5 10 30 3\ncpu0 100 10 50 800 20 5 5 10 30 3\nbtime 5\n")
    assert stat.cpu.total == 100 + 10 + 50 + 800 + 20 + 5 + 5 + 10
    assert stat.cpu.busy == stat.cpu.total - 800 - 20


def test_an_old_kernels_short_cpu_line() -> None:
    # Linux 2.4 wrote four fields (no iowait, irq, softirq, steal).
    stat = procfs.proc_stat("cpu 10 0 5 85\ncpu0 10 0 5 85\nbtime 7\n")
    assert (stat.cpu.busy, stat.cpu.total) == (15, 100)


@pytest.mark.parametrize(
    "text",
    ["", "cpu0 1 2 3 4\nbtime 1\n", "cpu 1 2 3 4\ncpu0 1 2 3 4\n", "cpu 1 x 3 4\ncpu0 1 2 3 4\nbtime 1\n"],
    ids=["empty", "no-aggregate", "no-btime", "not-numbers"],
)
def test_a_truncated_or_foreign_stat_is_an_error(text: str) -> None:
    with pytest.raises(procfs.ProcFormatError):
        procfs.proc_stat(text)


def test_uptime() -> None:
    assert procfs.uptime("898.49 1000.31\n") == 898.49
    with pytest.raises(procfs.ProcFormatError):
        procfs.uptime("")


def test_memory_in_bytes() -> None:
    found = procfs.memory(MEMINFO)
    assert found == procfs.Memory(24683584 * 1024, 23632136 * 1024, 2097148 * 1024, 1572860 * 1024)


def test_memory_before_mem_available_existed() -> None:
    text = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 300 kB\nSReclaimable: 20 kB\n"
    assert procfs.memory(text).available == (100 + 50 + 300 + 20) * 1024


def test_memory_inside_a_container_that_contradicts_itself() -> None:
    text = "MemTotal: 1000 kB\nMemFree: 400 kB\nMemAvailable: 5000 kB\n"
    assert procfs.memory(text).available == 400 * 1024
    with pytest.raises(procfs.ProcFormatError):
        procfs.memory("MemFree: 400 kB\n")


def test_pressure() -> None:
    text = "some avg10=1.50 avg60=0.25 avg300=0.00 total=73577560\nfull avg10=0.00 avg60=0.10 avg300=0.01 total=9\n"
    assert procfs.pressure(text) == {
        "some_avg10": 1.5,
        "some_avg60": 0.25,
        "some_avg300": 0.0,
        "full_avg10": 0.0,
        "full_avg60": 0.1,
        "full_avg300": 0.01,
    }
    # /proc/pressure/cpu had no `full` line before Linux 5.13.
    assert procfs.pressure("some avg10=3.00 avg60=2.00 avg300=1.00 total=5\n") == {
        "some_avg10": 3.0,
        "some_avg60": 2.0,
        "some_avg300": 1.0,
    }


def test_block_filesystems() -> None:
    assert procfs.block_filesystems(FILESYSTEMS) == {"ext3", "ext4", "xfs", "zfs"}


def test_disk_mounts_are_those_on_a_device() -> None:
    mounts = procfs.disk_mounts(MOUNTS, FILESYSTEMS)
    assert mounts == [
        procfs.Mount("/dev/vda", "/", "ext4"),
        procfs.Mount("/dev/vdb1", "/srv/data disk", "xfs"),  # \040 is a space in the mount point
        procfs.Mount("tank/home", "/home", "zfs"),
    ]
