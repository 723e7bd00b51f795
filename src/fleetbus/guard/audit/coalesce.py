"""Repeated refusals in one record: the first refusal of an operation by a client is written at once, repeats of it
within the interval are counted and written as one record when the interval ends (or at shutdown), so a flood of
refused calls costs a few records, and none goes uncounted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetbus.guard.audit.log import AuditLog
from fleetbus.guard.audit.records import now_stamp

COALESCED_EVENTS = frozenset({"denied", "rate-limited", "rejected"})
MAX_OPEN = 10_000
"""Operations counted at once; beyond it the oldest count is written early (memory a flood cannot grow)."""
MAX_TAGS = 32
"""Distinct fleet call ids (and work orders) a count lists beside its first record's; more are only counted."""
TAGS = (("call_id", "call_ids"), ("work_order", "work_orders"))
"""A repeat's field, and the list in the count record that keeps it findable (`audit query --call-id`)."""

Key = tuple[str, str, str]
"""(client, operation digest, event)."""


@dataclass
class _Window:
    opened: float
    fields: dict[str, Any]
    first_seq: int
    repeats: int = 0
    since: str | None = None
    until: str | None = None
    tags: dict[str, list[str]] = field(default_factory=dict)
    """Fleet call ids and work orders of repeats that differ from the first record's (at most MAX_TAGS each)."""
    tags_dropped: int = 0

    def tag(self, fields: Mapping[str, Any]) -> None:
        # A repeat from another fan-out or ticket is counted here, but must still be found by its own id.
        for name, plural in TAGS:
            value = fields.get(name)
            if value is None or value == self.fields.get(name):
                continue
            seen = self.tags.setdefault(plural, [])
            if value in seen:
                continue
            if len(seen) < MAX_TAGS:
                seen.append(str(value))
            else:
                self.tags_dropped += 1


class Coalescer:
    """Writes refusal records to `log`, one per (client, operation digest, event) per `interval` seconds, plus
    one record counting the repeats. `interval` 0 writes every refusal as its own record."""

    def __init__(self, log: AuditLog, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._open: dict[Key, _Window] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def append(self, fields: Mapping[str, Any]) -> None:
        """Record one refusal (`fields` as the gateway builds them: client, digest, event…)."""
        if self.interval <= 0:
            self.log.append({**fields, "count": 1})
            return
        key = (str(fields.get("client")), str(fields.get("digest")), str(fields.get("event")))
        now = self.clock()
        self._flush_expired(now)
        window = self._open.get(key)
        if window is not None:
            window.repeats += 1
            window.tag(fields)
            stamp = now_stamp()
            window.since = window.since or stamp
            window.until = stamp
            return
        if len(self._open) >= MAX_OPEN:
            self._flush(next(iter(self._open)))  # dicts keep insertion order: the oldest window
        record = self.log.append({**fields, "count": 1})
        self._open[key] = _Window(now, dict(fields), int(record["seq"]))
        self._schedule()

    def flush(self) -> None:
        """Write every count still open (the server stops, or a reader wants them now)."""
        for key in list(self._open):
            self._flush(key)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def open_windows(self) -> int:
        return len(self._open)

    def _flush_expired(self, now: float) -> None:
        # Windows open in time order, so the expired ones are the first ones.
        for key, window in list(self._open.items()):
            if now - window.opened < self.interval:
                break
            self._flush(key)

    def _flush(self, key: Key) -> None:
        window = self._open.pop(key)
        if window.repeats:
            self.log.append(
                {
                    **window.fields,
                    "count": window.repeats,
                    "repeats": window.first_seq,
                    "since": window.since,
                    "until": window.until,
                    **window.tags,
                    **({"tags_dropped": window.tags_dropped} if window.tags_dropped else {}),
                }
            )

    def _schedule(self) -> None:
        """Under an event loop, write counts when their interval ends even if no further refusal comes."""
        if self._timer is not None and self._timer_loop is not None and not self._timer_loop.is_closed():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # a one-shot command: the next refusal or the close writes them
        oldest = next(iter(self._open.values()), None)
        delay = self.interval if oldest is None else max(0.0, oldest.opened + self.interval - self.clock())
        self._timer, self._timer_loop = loop.call_later(delay, self._tick), loop

    def _tick(self) -> None:
        self._timer = None
        self._flush_expired(self.clock())
        if self._open:
            self._schedule()
