"""Bounds on HTTP connections: a deadline for a request's head and for its body, a cap on connections and a
lower one on connections not yet authenticated, and accept errors logged once per interval.

uvicorn (0.3x) has a keep-alive timeout between requests but none before the first one: a socket that connects
and sends nothing is kept for ever, and ~1,010 of them (no token needed) took every fd of the shipped unit, after
which the log filled with one "accept out of system resource" traceback per attempt (549 MB in 65 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

ACCEPT_ERROR = "socket.accept() out of system resource"


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 512
    max_unauthenticated: int = 64
    header_timeout: float = 10.0
    """Seconds from connecting (or from the end of the previous response) to a request's complete head."""
    body_timeout: float = 30.0
    """Seconds from a request's head to the end of its body."""
    authenticated_by_default: bool = False
    """No tokens to wait for: a unix socket (the kernel names the peer) or --insecure-no-auth on loopback."""


@dataclass
class ConnectionCount:
    """What every connection of one server shares: who is connected, the unauthenticated in connect order."""

    limits: ConnectionLimits
    open: set[Any] = field(default_factory=set)
    unauthenticated: OrderedDict[Any, None] = field(default_factory=OrderedDict)
    refused: int = 0
    timed_out: int = 0
    _refusals: RateLimitedLog | None = None

    def refusal_log(self) -> RateLimitedLog:
        if self._refusals is None:
            self._refusals = RateLimitedLog(log, interval=10.0)
        return self._refusals


class RateLimitedLog:
    """One line per `interval` for a repeating event, saying how many times it happened since the last line."""

    def __init__(self, logger: logging.Logger, *, interval: float, clock: Callable[[], float] = time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._since = 0
        self.lines = 0

    def event(self, message: str, *args: object) -> None:
        self._since += 1
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return
        count, self._since, self._last = self._since, 0, now
        self.lines += 1
        self.logger.warning(message + " (%d× since the last such line; one line per %g s)", *args, count, self.interval)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol under ConnectionLimits. Built per connection by uvicorn with its own
    arguments; `bounded_protocol` gives it the shared count."""

    count: ConnectionCount

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        count, limits = self.count, self.count.limits
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._timed_cycle: Any = None
        if len(count.open) >= limits.max_connections:
            count.refused += 1
            count.refusal_log().event("refusing HTTP connections: %d are open, the most allowed", len(count.open))
            transport.abort()
            return
        count.open.add(self)
        if not limits.authenticated_by_default:
            if len(count.unauthenticated) >= limits.max_unauthenticated and not self._evict_oldest_waiting():
                count.refused += 1
                count.refusal_log().event(
                    "refusing unauthenticated HTTP connections: %d are open, the most allowed",
                    limits.max_unauthenticated,
                )
                count.open.discard(self)
                transport.abort()
                return
            count.unauthenticated[self] = None
        self._arm_head_timer()
        app = self.app

        async def noting_authentication(scope: Scope, receive: Receive, send: Send) -> None:
            async def noted(message: Message) -> None:
                # At the response's start, not its end: a stream (a GET for notifications) may last for hours.
                if message["type"] == "http.response.start" and isinstance(scope.get("user"), AuthenticatedUser):
                    self.count.unauthenticated.pop(self, None)
                await send(message)

            await app(scope, receive, noted)

        self.app = noting_authentication

    def _evict_oldest_waiting(self) -> bool:
        """Close the longest-waiting unauthenticated connection that is not being answered: a flood of silent
        sockets then pushes out only its own oldest, never keeps a real client from connecting."""
        count = self.count
        for connection in count.unauthenticated:
            if connection.cycle is None or connection.cycle.response_complete:
                count.unauthenticated.pop(connection)
                count.refused += 1
                count.refusal_log().event(
                    "closing unauthenticated HTTP connections to make room: %d were open, the most allowed",
                    count.limits.max_unauthenticated,
                )
                connection.transport.abort()
                return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.count.open.discard(self)
        self.count.unauthenticated.pop(self, None)
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not None and self.cycle is not self._timed_cycle:
            # A new request's head is complete: its deadline now is the body's.
            self._timed_cycle = self.cycle
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            if self.cycle.more_body:
                self._body_timer = self.loop.call_later(self.count.limits.body_timeout, self._body_late, self.cycle)

    def on_response_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_head_timer()  # the next request's head, however slowly it trickles in

    def _arm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.count.limits.header_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being served (a long SSE stream): not waiting for a head
        self.count.timed_out += 1
        log.debug("closing an HTTP connection that sent no request head in %g s", self.count.limits.header_timeout)
        self.transport.close()

    def _body_late(self, cycle: Any) -> None:
        self._body_timer = None
        # Only the request the timer was set for: by now the connection may be reading a later one's body.
        if cycle is self.cycle and cycle.more_body:
            self.count.timed_out += 1
            log.info("closing an HTTP connection whose request body took over %g s", self.count.limits.body_timeout)
            cycle.disconnected = True
            self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (getattr(self, "_head_timer", None), getattr(self, "_body_timer", None)):
            if timer is not None:
                timer.cancel()


def bounded_protocol(base: type[H11Protocol], limits: ConnectionLimits) -> tuple[type[H11Protocol], ConnectionCount]:
    """A protocol class (derived from `base`, e.g. the unix socket's) whose connections share one count."""
    count = ConnectionCount(limits)
    bounded = type(f"Bounded{base.__name__}", (BoundedH11Protocol, base), {"count": count})
    return bounded, count


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval: float = 10.0) -> RateLimitedLog:
    """asyncio reports every failed accept (EMFILE) through the loop's exception handler, with a traceback; keep
    one line per `interval` with a count, and leave every other report as it was."""
    limited = RateLimitedLog(logging.getLogger("fleetbus.server.accept"), interval=interval)
    previous = loop.get_exception_handler()

    def handler(current: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith(ACCEPT_ERROR):
            error = context.get("exception")
            limited.event("cannot accept HTTP connections: %s", error or "out of file descriptors")
            return
        if previous is not None:
            previous(current, context)
        else:
            current.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return limited
