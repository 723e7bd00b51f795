"""Reading a host's /proc (and a few fixed files such as /etc/os-release): in-process on this machine, and on a
remote host with one fixed argv per read, so that one round trip brings every file a snapshot needs.

Remotely, `grep -a -H -s '' FILE…` prints every line of every file prefixed by its path and a colon; a path
here never contains a colon and a line never contains a newline, so the output splits back into files without
any marker a file's content could imitate. Unreadable or vanished files are left out (`-s`), as they are here.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from fleetbus.executors.command import CommandRunner, failure
from fleetbus.executors.figures import DiskUsage

READ_SIZE = 64 * 1024
C_LOCALE = ("env", "LC_ALL=C")
"""Every command runs in the C locale: its output is then the same on every host (and in the goldens)."""
GREP_FILES = (*C_LOCALE, "grep", "-a", "-H", "-s", "")
GREP_STATUS_OK = (0, 1, 2)
"""0: lines printed; 1: every file was empty; 2: a file could not be read (left out, as `-s` keeps quiet)."""
PATH = re.compile(r"/(proc|sys|etc|usr/lib)/[A-Za-z0-9_./-]+")
PROCESS_FILES = frozenset({"stat", "status", "cmdline", "comm"})
MAX_FILES_BYTES = 8 << 20
MAX_PROCESS_BYTES = 32 << 20
DF = (*C_LOCALE, "df", "-k", "--output=fstype,size,used,avail,target")


class ReadFailed(Exception):
    """The host's files could not be read at all (the reading command failed); the message says why."""


class FileReader(Protocol):
    """A host's fixed files, its per-process /proc files, and its disks' usage."""

    async def read(self, paths: Sequence[str], *, timeout: float) -> dict[str, str]:
        """The text of each of `paths` that could be read; one that could not is absent."""
        ...

    async def read_processes(self, names: Sequence[str], *, timeout: float) -> dict[int, dict[str, str]]:
        """/proc/PID/NAME of every process, for each of `names` (stat, status, cmdline, comm)."""
        ...

    async def disk_usage(self, mountpoints: Sequence[str], *, timeout: float) -> dict[str, DiskUsage]:
        """Usage of each of `mountpoints` that could be measured, by mount point."""
        ...

    def monotonic_usec(self) -> int | None:
        """The host's CLOCK_MONOTONIC now, where it can be read without a round trip; else None."""
        ...


def check_path(path: str) -> str:
    """Only absolute paths below /proc, /sys, /etc and /usr/lib, without `..`: what the snapshots read. Nothing
    a tool passes is a path; this makes sure no path (a pid included) can become an option or leave those trees."""
    if not PATH.fullmatch(path) or "/../" in path or path.endswith("/.."):
        raise ValueError(f"not a host file fleetbus reads: {path!r}")
    return path


def check_process_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in PROCESS_FILES]
    if unknown or not names:
        raise ValueError(f"per-process files must be some of {sorted(PROCESS_FILES)}, not {list(names)!r}")


def split_tagged(output: bytes) -> dict[str, str]:
    """`grep -H` output back into files: path → text (its lines joined by newlines, with a final newline)."""
    lines: dict[str, list[str]] = {}
    for raw in output.split(b"\n"):
        path, colon, content = raw.partition(b":")
        if not colon:
            continue  # the empty piece after the last newline, or a line cut short by the output cap
        lines.setdefault(path.decode("utf-8", errors="replace"), []).append(content.decode("utf-8", errors="replace"))
    return {path: "\n".join(text) + "\n" for path, text in lines.items()}


def by_process(files: Mapping[str, str], names: Iterable[str]) -> dict[int, dict[str, str]]:
    """Per-process files (`/proc/PID/NAME` → text) grouped by PID."""
    wanted = set(names)
    found: dict[int, dict[str, str]] = {}
    for path, text in files.items():
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "proc" and parts[2].isdigit() and parts[3] in wanted:
            found.setdefault(int(parts[2]), {})[parts[3]] = text
    return found


def df_usage(text: str) -> dict[str, DiskUsage]:
    """`df -k --output=fstype,size,used,avail,target`: usage by mount point. The mount point is the last column
    and may hold spaces; the figures are KiB, as statvfs would give them times the fragment size."""
    found: dict[str, DiskUsage] = {}
    for line in text.splitlines()[1:]:
        fields = line.split(maxsplit=4)
        if len(fields) < 5 or not all(f.isdigit() for f in fields[1:4]):
            continue
        fstype, size, used, available, target = fields
        found[target] = DiskUsage(target, fstype, int(size) * 1024, int(used) * 1024, int(available) * 1024)
    return found


class LocalFiles:
    """This machine's files, read in-process (os.read: a third of the cost of a text file object)."""

    def __init__(self, root: str = "") -> None:
        self.root = root
        """Prefix of every path (tests point it at a copy of /proc); empty for the real one."""

    def read_text(self, path: str) -> str:
        fd = os.open(self.root + path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, READ_SIZE):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode(errors="replace")

    def read_now(self, paths: Sequence[str]) -> dict[str, str]:
        found = {}
        for path in paths:
            try:
                found[path] = self.read_text(check_path(path))
            except OSError:
                continue
        return found

    async def read(self, paths: Sequence[str], *, timeout: float) -> dict[str, str]:
        # A few reads of kernel-made files, microseconds each: no thread is worth its cost here.
        return self.read_now(paths)

    async def read_processes(self, names: Sequence[str], *, timeout: float) -> dict[int, dict[str, str]]:
        check_process_names(names)
        found: dict[int, dict[str, str]] = {}
        for entry in os.listdir(self.root + "/proc"):
            if not entry.isdigit():
                continue
            files = {}
            for name in names:
                try:
                    files[name] = self.read_text(f"/proc/{entry}/{name}")
                except OSError:
                    continue  # it exited while we looked, or is not ours to read
            if files:
                found[int(entry)] = files
        return found

    async def disk_usage(self, mountpoints: Sequence[str], *, timeout: float) -> dict[str, DiskUsage]:
        found = {}
        for mount in mountpoints:
            try:
                st = os.statvfs(mount)
            except OSError:
                continue  # unmounted meanwhile, or not ours to look at
            found[mount] = DiskUsage.from_statvfs(mount, "", st.f_blocks, st.f_bfree, st.f_bavail, st.f_frsize)
        return found

    def monotonic_usec(self) -> int | None:
        return None if self.root else _monotonic_usec()


def _monotonic_usec() -> int:
    return time.monotonic_ns() // 1000


class RemoteFiles:
    """A host's files read through its command runner: `grep -H` for files, `find … -exec grep -H` for every
    process's files, `df` for disks. Each read is one run of one fixed argv; only checked paths enter it."""

    def __init__(self, runner: CommandRunner) -> None:
        self.runner = runner

    async def read(self, paths: Sequence[str], *, timeout: float) -> dict[str, str]:
        argv = [*GREP_FILES, "--", *(check_path(p) for p in paths)]
        result = await self.runner.run(argv, timeout=timeout, max_bytes=MAX_FILES_BYTES)
        if result.exit_status not in GREP_STATUS_OK and not result.truncated:
            raise ReadFailed(failure(argv, result))
        return split_tagged(_whole_lines(result.stdout, result.truncated))

    async def read_processes(self, names: Sequence[str], *, timeout: float) -> dict[int, dict[str, str]]:
        check_process_names(names)
        argv = process_files_argv(names)
        result = await self.runner.run(argv, timeout=timeout, max_bytes=MAX_PROCESS_BYTES)
        # find says 1 when a process it listed exited before grep read it: the others are still there.
        if result.exit_status not in (0, 1) and not result.stdout:
            raise ReadFailed(failure(argv, result))
        return by_process(split_tagged(_whole_lines(result.stdout, result.truncated)), names)

    async def disk_usage(self, mountpoints: Sequence[str], *, timeout: float) -> dict[str, DiskUsage]:
        if not mountpoints:
            return {}
        # Mount points come from the host's own /proc/self/mounts; after `--` none can be an option.
        argv = [*DF, "--", *mountpoints]
        result = await self.runner.run(argv, timeout=timeout, max_bytes=MAX_FILES_BYTES)
        usage = df_usage(result.stdout.decode("utf-8", errors="replace"))
        if not usage and result.exit_status != 0:
            raise ReadFailed(failure(argv, result))
        return usage

    def monotonic_usec(self) -> int | None:
        return None


def _whole_lines(stdout: bytes, truncated: bool) -> bytes:
    """A cut output without its last, incomplete line (a half `VmRSS:` line would read as a smaller figure)."""
    return stdout[: stdout.rfind(b"\n") + 1] if truncated else stdout


def process_files_argv(names: Sequence[str]) -> list[str]:
    """One argv that prints `/proc/PID/NAME:line` for every process and each of `names` (no shell, no glob:
    find lists the PID directories, `-exec … +` hands their files to as few greps as fit a command line)."""
    check_process_names(names)
    choice: list[str] = ["("]
    for name in names:
        choice += [*(["-o"] if len(choice) > 1 else []), "-name", name]
    choice.append(")")
    return [
        *C_LOCALE,
        "find",
        "/proc",
        "-mindepth",
        "2",
        "-maxdepth",
        "2",
        "-path",
        "/proc/[0-9]*/*",
        *choice,
        "-exec",
        "grep",
        "-a",
        "-H",
        "-s",
        "",
        "{}",
        "+",
    ]
