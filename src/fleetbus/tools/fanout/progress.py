"""Progress of a fan-out for MCP clients: hosts done / total as `notifications/progress`, in both protocol eras.

The SDK's request-scoped `session.report_progress(progress, total, message)` sends against the caller's
`progressToken` (handshake era) or the request's own channel (2026-07-28), and does nothing when the caller
asked for no progress; so a handler needs only that session, passed down to it as a `ProgressSession`.
"""

from __future__ import annotations

import logging
from typing import Protocol

from fleetbus.tools.fanout.engine import OnDone, Progress

log = logging.getLogger(__name__)


class ProgressSession(Protocol):
    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None: ...


def progress_message(progress: Progress) -> str:
    """`host03: ok`, `host04: unreachable` — short, and never the host's own text (that stays in the result)."""
    outcome = progress.outcome
    return f"{outcome.host}: {'ok' if outcome.ok else outcome.kind}"


def report_to(session: ProgressSession | None) -> OnDone | None:
    """An `on_done` for `fan_out` that tells the client each finished host; None without a session (the CLI).

    A client that went away must not fail the fan-out: the first failed send is logged and later ones are
    skipped."""
    if session is None:
        return None
    broken = False

    async def on_done(progress: Progress) -> None:
        nonlocal broken
        if broken:
            return
        try:
            await session.report_progress(progress.done, progress.total, progress_message(progress))
        except Exception:
            broken = True
            log.info("progress notifications stopped: the client cannot be told", exc_info=True)

    return on_done
