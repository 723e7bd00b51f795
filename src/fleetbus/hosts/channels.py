"""A cap on the SSH channels one connection holds at once: sshd refuses sessions past `MaxSessions` (10 by
default), so callers queue here, within their own deadline, instead of being refused there."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fleetbus.hosts.errors import RemoteTimeout

DEFAULT_MAX_CHANNELS = 10
"""sshd's MaxSessions default. Every bus link (a stdio-bridge session) holds one for as long as it lives."""


class ChannelSlots:
    def __init__(self, host: str, limit: int = DEFAULT_MAX_CHANNELS) -> None:
        if limit < 1:
            raise ValueError(f"a connection needs at least one channel, not {limit}")
        self.host = host
        self.limit = limit
        self._free = asyncio.Semaphore(limit)
        self.in_use = 0

    @contextlib.asynccontextmanager
    async def slot(self, timeout: float) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(timeout):
                await self.acquire()
        except TimeoutError:
            raise RemoteTimeout(
                self.host, f"all {self.limit} SSH channels of the connection stayed busy for {timeout:g} s"
            ) from None
        try:
            yield
        finally:
            self.release()

    async def acquire(self) -> None:
        """A slot for a channel that outlives one call (a bus link's); the caller bounds the wait."""
        await self._free.acquire()
        self.in_use += 1

    def release(self) -> None:
        self.in_use -= 1
        self._free.release()
