"""Telling clients that tools or resources changed, in both protocol eras.

Handshake-era clients hear it on their connection: the SDK's ServerSession is a per-request proxy, so the
latest one of each connection is kept, keyed weakly by the connection (which lives as long as the client) and
forgotten when sending fails; 2026-07-28 clients hear it on their `subscriptions/listen` streams, fed by the
subscription bus.
Bursts (a pack refreshing several services) are coalesced into one notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.session import ServerSession
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, *, delay: float = 0.1) -> None:
        self.bus = InMemorySubscriptionBus()
        self.delay = delay
        self._sessions: weakref.WeakKeyDictionary[Any, ServerSession] = weakref.WeakKeyDictionary()
        self._subscribers: dict[str, weakref.WeakKeyDictionary[Any, ServerSession]] = {}
        self._pending: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent: dict[str, int] = {"tools": 0, "resources": 0}
        """How many notifications of each kind went out (for tests and diagnostics)."""

    def remember(self, session: Any) -> None:
        """A handshake-era client that made a request; it gets list_changed notifications from now on."""
        if isinstance(session, ServerSession):
            self._sessions[_connection(session)] = session

    def subscribe(self, session: Any, uri: str) -> None:
        """A handshake-era resources/subscribe (2026-07-28 clients name URIs in their listen request)."""
        if isinstance(session, ServerSession):
            self._subscribers.setdefault(uri, weakref.WeakKeyDictionary())[_connection(session)] = session

    def unsubscribe(self, session: Any, uri: str) -> None:
        if uri in self._subscribers and isinstance(session, ServerSession):
            self._subscribers[uri].pop(_connection(session), None)

    def resource_updated(self, uri: str) -> None:
        self._schedule(f"updated:{uri}")

    def tools_changed(self) -> None:
        self._schedule("tools")

    def resources_changed(self) -> None:
        self._schedule("resources")

    def _schedule(self, kind: str) -> None:
        self._pending.add(kind)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no server running (the CLI): nobody to tell
        if self._flush is None:
            self._flush = loop.call_later(self.delay, self._send_pending)

    def _send_pending(self) -> None:
        self._flush = None
        kinds, self._pending = self._pending, set()
        for kind in sorted(kinds):
            task = asyncio.get_running_loop().create_task(self._send(kind))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, kind: str) -> None:
        if kind.startswith("updated:"):
            uri = kind.removeprefix("updated:")
            await self.bus.publish(ResourceUpdated(uri))
            sessions = self._subscribers.get(uri, weakref.WeakKeyDictionary())
            await self._each(sessions, lambda session: session.send_resource_updated(uri))
            self.sent["updated"] = self.sent.get("updated", 0) + 1
            return
        event: ServerEvent = ToolsListChanged() if kind == "tools" else ResourcesListChanged()
        await self.bus.publish(event)
        if kind == "tools":
            await self._each(self._sessions, lambda session: session.send_tool_list_changed())
        else:
            await self._each(self._sessions, lambda session: session.send_resource_list_changed())
        self.sent[kind] += 1

    async def _each(
        self, sessions: weakref.WeakKeyDictionary[Any, ServerSession], send: Callable[[ServerSession], Awaitable[None]]
    ) -> None:
        for connection, session in list(sessions.items()):
            try:
                await send(session)
            except Exception:  # a closed connection: forget it
                log.debug("dropping a connection that cannot be notified", exc_info=True)
                sessions.pop(connection, None)
                self._sessions.pop(connection, None)

    async def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _connection(session: ServerSession) -> Any:
    """What a session belongs to: its connection where the SDK exposes it (2.3 does, privately), else itself."""
    return getattr(session, "_connection", session)
