"""What a process holds now — resident memory and open file descriptors — for tests that push past a bound."""

from __future__ import annotations

import os

import psutil

MiB = 1024 * 1024


def rss(pid: int | None = None) -> int:
    """Resident set size in bytes."""
    return int(psutil.Process(pid or os.getpid()).memory_info().rss)


def open_fds(pid: int | None = None) -> int:
    return int(psutil.Process(pid or os.getpid()).num_fds())
