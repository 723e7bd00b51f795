"""How every transport stops on SIGTERM (or SIGINT): take no new calls, let calls in flight finish up to a
timeout, cancel the rest with error results; and the systemd watchdog and readiness that go with serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult

from fleetbus.server import systemd

log = logging.getLogger(__name__)

STOPPING_MESSAGE = "fleetbus is stopping and takes no new calls; repeat the call when it is back"
CANCELLED_MESSAGE = (
    "fleetbus stopped before this call finished, so it was cancelled; the audit log records it as failed. "
    "Check the outcome before repeating it."
)


def _error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class InFlight:
    """Server middleware that knows the tool calls in flight, so a stop can let them finish and then cancel what
    is left — each cancelled call still answers, with an error result."""

    def __init__(self) -> None:
        self.stopping = False
        self._calls: set[anyio.CancelScope] = set()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._calls)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        if self.stopping:
            return _error_result(STOPPING_MESSAGE)
        scope = anyio.CancelScope()
        self._calls.add(scope)
        try:
            with scope:
                return await call_next(ctx)
        finally:
            self._calls.discard(scope)
            self._changed.set()
        return _error_result(CANCELLED_MESSAGE)  # reached only when the stop cancelled the call

    async def _settled(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while self._calls:
                self._changed.clear()
                await self._changed.wait()
        return not self._calls

    async def drain(self, timeout: float) -> int:
        """Refuse new calls, wait up to `timeout` for those in flight, cancel the rest; how many were cancelled."""
        self.stopping = True
        if await self._settled(timeout):
            return 0
        left = list(self._calls)
        log.warning("cancelling %d call(s) still running after %.1f s", len(left), timeout)
        for scope in left:
            scope.cancel()
        await self._settled(5.0)
        return len(left)


@dataclass
class Stop:
    """SIGTERM or SIGINT asks for a graceful stop; a second one stops waiting for calls in flight."""

    requested: asyncio.Event = field(default_factory=asyncio.Event)
    hurry: asyncio.Event = field(default_factory=asyncio.Event)

    def _signalled(self) -> None:
        if self.requested.is_set():
            self.hurry.set()
        self.requested.set()

    @contextlib.contextmanager
    def installed(self) -> Iterator[Stop]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signalled)
        try:
            yield self
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def drain(self, calls: InFlight, timeout: float) -> None:
        """Drain `calls`, cutting the wait short if a second signal arrives."""
        async with anyio.create_task_group() as group:

            async def hurry() -> None:
                await self.hurry.wait()
                group.cancel_scope.cancel()

            group.start_soon(hurry)
            await calls.drain(timeout)
            group.cancel_scope.cancel()
        if calls:  # hurried: cancel whatever is left without waiting
            await calls.drain(0)


@contextlib.asynccontextmanager
async def watchdog() -> AsyncIterator[None]:
    interval = systemd.watchdog_interval()
    if interval is None:
        yield
        return
    task = asyncio.create_task(systemd.feed_watchdog(interval))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def ready(description: str) -> None:
    systemd.notify(f"READY=1\nSTATUS=serving {description}")
    log.info("fleetbus serving %s", description)
