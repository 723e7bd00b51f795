"""Names of this machine's processes, for labelling bus peers (`local` only: a remote host's come from its runner)."""

from __future__ import annotations

import psutil


def process_name(pid: int) -> str | None:
    """The command name of process `pid` here; None when it is gone or cannot be read."""
    try:
        return str(psutil.Process(pid).name())
    except (psutil.Error, ValueError):
        return None
