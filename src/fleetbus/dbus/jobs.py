"""Waiting for systemd jobs: JobRemoved is matched from before the call that queues the job, so a job that
finishes before its path is known (a no-op start finishes at once) is never missed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from types import TracebackType

from dbus_fast import Message

from fleetbus import well_known
from fleetbus.dbus.link import BusLink
from fleetbus.dbus.signals import SignalFilter

SYSTEMD = well_known.SYSTEMD
MANAGER_PATH = well_known.SYSTEMD_PATH
MANAGER = well_known.SYSTEMD_MANAGER
UNIT = well_known.SYSTEMD_UNIT
JOB_REMOVED = SignalFilter(SYSTEMD, MANAGER_PATH, MANAGER, "JobRemoved")
MAX_REMEMBERED = 1024
"""JobRemoved signals kept while waiting; other clients' jobs finish meanwhile too."""


@dataclass(frozen=True)
class JobOutcome:
    job: str
    unit: str
    result: str
    """systemd's result (done, canceled, timeout, failed, dependency, skipped, invalid), or "timeout" with
    `finished` False when the wait ended first."""
    finished: bool
    waited: float


class JobWatch:
    """`async with JobWatch(link) as jobs:` — queue the job inside, then `await jobs.wait(path, timeout)`."""

    def __init__(self, link: BusLink) -> None:
        self.link = link
        self._removed: dict[str, tuple[str, str]] = {}
        self._arrived = asyncio.Event()
        self._rule = JOB_REMOVED.rule()

    async def __aenter__(self) -> JobWatch:
        await self.link.owner_of(SYSTEMD)
        self.link.add_signal_listener(self._on_signal)
        try:
            await self.link.add_match(self._rule)
        except BaseException:
            self.link.remove_signal_listener(self._on_signal)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.link.remove_signal_listener(self._on_signal)
        await self.link.remove_match(self._rule)

    def _on_signal(self, message: Message) -> None:
        if not JOB_REMOVED.matches(message, self.link.owners.get(SYSTEMD)) or message.signature != "uoss":
            return
        _, job, unit, result = message.body
        if len(self._removed) >= MAX_REMEMBERED:
            self._removed.pop(next(iter(self._removed)))
        self._removed[str(job)] = (str(unit), str(result))
        self._arrived.set()

    async def wait(self, job: str, timeout: float) -> JobOutcome:
        started = time.monotonic()
        deadline = started + timeout
        while job not in self._removed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return JobOutcome(job, "", "timeout", False, time.monotonic() - started)
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                continue
        unit, result = self._removed[job]
        return JobOutcome(job, unit, result, True, time.monotonic() - started)
