"""Room in the audit log's filesystem: what a change must find free before it runs, how a write that failed is
told to the caller, and what one tool call ran without its outcome being recorded."""

from __future__ import annotations

import errno
import os
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_RESERVE = 1 << 20
"""Free bytes a change needs before its "allowed" record: room for its outcome record (and those of the changes
running beside it) even as other writers fill the disk."""
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def free_bytes(directory: Path) -> int:
    """Bytes fleetbus may still write in `directory`'s filesystem (root may use the blocks reserved for it)."""
    info = os.statvfs(directory)
    blocks = info.f_bfree if os.geteuid() == 0 else info.f_bavail
    return blocks * info.f_frsize


def mount_point(directory: Path) -> Path:
    """The mount point of the filesystem holding `directory`: the disk a person must free."""
    path = directory.resolve()
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def unwritable(directory: Path, exc: OSError | None = None, *, free: int | None = None, needed: int = 0) -> str:
    """'the audit log cannot be written (disk full at PATH)', with what the filesystem said."""
    try:
        disk = mount_point(directory)
        where = f"{directory}" if disk == directory else f"{directory}, on the filesystem mounted at {disk}"
    except OSError:
        where = str(directory)
    if exc is None or exc.errno in FULL:
        detail = f" — {free} bytes free, a change needs {needed}" if free is not None else ""
        return f"the audit log cannot be written (disk full at {where}){detail}"
    return f"the audit log cannot be written ({exc.strerror or exc} at {where})"


@dataclass
class CallAudit:
    """What the audit log could not hold during one tool call; the tool registry tells it with the result."""

    unrecorded: list[str] = field(default_factory=list)
    """One line per change that ran but whose outcome record could not be written, or per gap after it."""
    changes_ran: list[str] = field(default_factory=list)
    """The changes this call has run (admitted and executed): after one, the call must not end as a failure."""


CALL_AUDIT: ContextVar[CallAudit | None] = ContextVar("fleetbus_call_audit", default=None)
