"""Parsers of a process's /proc files (status, stat, cmdline, comm) and of /etc/passwd: pure functions of what
the files say, shared by every host however its files were read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fleetbus.executors.procfs import ProcFormatError

USER_HZ = 100
"""Clock ticks per second of /proc/PID/stat's utime and stime: the kernel's USER_HZ, 100 on every architecture
Linux runs servers on (x86, arm, arm64, ppc, s390, riscv) whatever its internal HZ, so it needs no remote lookup."""
COMM_LENGTH = 15
"""The kernel keeps 15 characters of a command name; a longer name is cut there."""
MAX_COMMAND = 160


@dataclass(frozen=True)
class ProcessStatus:
    name: str
    state: str
    """psutil's words: sleeping, running, idle, disk-sleep, zombie, stopped, tracing-stop, dead, parked."""
    uid: int | None
    """The real uid."""
    rss: int
    """Resident memory in bytes; 0 for kernel threads and zombies (they have no VmRSS line)."""


def status(text: str) -> ProcessStatus:
    """/proc/PID/status (`Name:\tsshd`, `State:\tS (sleeping)`, `Uid:\t0\t0\t0\t0`, `VmRSS:\t  1234 kB`)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key in ("Name", "State", "Uid", "VmRSS"):
            fields[key] = value.strip()
    if "Name" not in fields:
        raise ProcFormatError("/proc/PID/status: no Name line")
    state = fields.get("State", "")
    word = state[state.find("(") + 1 : state.rfind(")")] if "(" in state else state
    uid = fields.get("Uid", "").split()
    rss = fields.get("VmRSS", "").split()
    return ProcessStatus(
        name=_unescape_name(fields["Name"]),
        state=word.replace(" ", "-"),
        uid=int(uid[0]) if uid and uid[0].isdigit() else None,
        rss=int(rss[0]) * 1024 if rss and rss[0].isdigit() else 0,
    )


def _unescape_name(name: str) -> str:
    # status escapes a backslash and a newline in a name (`\\`, `\n`); comm and stat do not.
    return name.replace("\\n", "\n").replace("\\\\", "\\") if "\\" in name else name


def cpu_ticks(text: str) -> int:
    """utime + stime of /proc/PID/stat. The command name (in parentheses) may hold spaces and parentheses
    itself, so the fields are counted from the last `)`."""
    rest = text[text.rfind(")") + 1 :].split()
    try:
        # After the name: state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime.
        return int(rest[11]) + int(rest[12])
    except (IndexError, ValueError):
        raise ProcFormatError(f"/proc/PID/stat: no utime and stime in {text[:80]!r}") from None


def arguments(cmdline: str) -> list[str]:
    """/proc/PID/cmdline: arguments each ended by a NUL; empty for kernel threads and zombies."""
    words = cmdline.rstrip("\n").split("\0")
    if words and words[-1] == "":
        words.pop()
    return words


def command_line(cmdline: str) -> str:
    return " ".join(arguments(cmdline))[:MAX_COMMAND]


def process_name(short: str, cmdline: str | None) -> str:
    """A process's name: the kernel's (comm, cut at 15 characters), completed from the first argument when it was
    cut and that argument's last path part starts with it — what psutil's Process.name() reports."""
    if len(short) < COMM_LENGTH or not cmdline:
        return short
    words = arguments(cmdline)
    if words:
        full = words[0].rsplit("/", 1)[-1]
        if full.startswith(short):
            return full
    return short


def passwd_names(text: str) -> dict[int, str]:
    """/etc/passwd: uid → login name (the first line for a uid wins, as getpwuid does)."""
    names: dict[int, str] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            names.setdefault(int(fields[2]), fields[0])
    return names


def user_name(uid: int | None, names: Mapping[int, str]) -> str:
    if uid is None:
        return ""
    return names.get(uid, str(uid))
