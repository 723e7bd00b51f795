"""Which rotated files retention removes: the oldest ones, while they are older than the configured age or the
log is larger than the configured total. The writer removes them only after a checkpoint record that says where
the remaining log starts, so `verify` can tell retention from deletion."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAY = 86_400.0
CHECKPOINT = "checkpoint"
"""The event of the record that carries the chain over removed files: the log may start where it says."""


@dataclass(frozen=True)
class Retention:
    """`days`: remove rotated files whose last record is older; `max_total_bytes`: remove the oldest rotated files
    while all files together are larger. None: no limit of that kind."""

    days: float | None = None
    max_total_bytes: int | None = None

    @property
    def active(self) -> bool:
        return self.days is not None or self.max_total_bytes is not None

    def doomed(self, rotated: list[Path], current_bytes: int, now: float) -> list[Path]:
        """The rotated files (oldest first, as given) to remove; the current file always stays."""
        if not self.active:
            return []
        stats = [(path, os.stat(path)) for path in rotated]
        total = current_bytes + sum(info.st_size for _, info in stats)
        chosen: list[Path] = []
        for path, info in stats:
            # A rotated file is never written again: its mtime is the time of its last record.
            too_old = self.days is not None and now - info.st_mtime > self.days * DAY
            too_big = self.max_total_bytes is not None and total > self.max_total_bytes
            if not (too_old or too_big):
                break  # files stay in chain order: never leave a hole
            chosen.append(path)
            total -= info.st_size
        return chosen


def first_record(path: Path) -> dict[str, Any] | None:
    """The first record of a file, reading only its first line (never the whole file)."""
    try:
        with open(path, "rb") as handle:
            line = handle.readline()
    except FileNotFoundError:
        return None
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
