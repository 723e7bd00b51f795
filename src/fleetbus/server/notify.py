"""Telling clients that tools or resources changed, in both protocol eras.

Handshake-era clients hear it on their connection: the SDK's ServerSession is a per-request proxy, so the
latest one of each connection is kept, keyed weakly by the connection (which lives as long as the client) and
forgotten when the connection closes (its exit stack) or sending fails; so are its resource subscriptions, at most
`subscriptions_per_session` of them. 2026-07-28 clients hear it on their `subscriptions/listen` streams, fed by
the subscription bus.
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


class SubscriptionLimit(ValueError):
    """A connection already holds as many resource subscriptions as it may."""


class Notifier:
    def __init__(self, *, delay: float = 0.1, subscriptions_per_session: int = 64) -> None:
        self.bus = InMemorySubscriptionBus()
        self.delay = delay
        self.subscriptions_per_session = subscriptions_per_session
        self._sessions: weakref.WeakKeyDictionary[Any, ServerSession] = weakref.WeakKeyDictionary()
        # Per connection, not per URI: what a connection subscribed to goes with it (a URI-keyed map kept every
        # URI string ever subscribed to, 1,000 × 100 kB: +205 MB never freed).
        self._subscribed: weakref.WeakKeyDictionary[Any, dict[str, ServerSession]] = weakref.WeakKeyDictionary()
        self._pending: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent: dict[str, int] = {"tools": 0, "resources": 0}
        """How many notifications of each kind went out (for tests and diagnostics)."""

    def remember(self, session: Any) -> None:
        """A handshake-era client that made a request; it gets list_changed notifications from now on."""
        if isinstance(session, ServerSession):
            self._follow(session)

    def _follow(self, session: ServerSession) -> Any:
        connection = _connection(session)
        if connection not in self._sessions:
            # The value (a session proxy) refers to its connection, so the weak key alone never lets go: the
            # connection's own teardown does.
            stack = getattr(connection, "exit_stack", None)
            if stack is not None:
                stack.callback(self.forget, connection)
        self._sessions[connection] = session
        return connection

    def forget(self, connection: Any) -> None:
        """A connection that closed: no more notifications, and its subscriptions end."""
        self._sessions.pop(connection, None)
        self._subscribed.pop(connection, None)

    def subscribe(self, session: Any, uri: str) -> None:
        """A handshake-era resources/subscribe (2026-07-28 clients name URIs in their listen request).

        Raises SubscriptionLimit when the connection holds `subscriptions_per_session` already."""
        if not isinstance(session, ServerSession):
            return
        connection = self._follow(session)
        held = self._subscribed.setdefault(connection, {})
        if uri not in held and len(held) >= self.subscriptions_per_session:
            raise SubscriptionLimit(
                f"this session holds {len(held)} resource subscriptions, the most it may; unsubscribe from one first"
            )
        held[uri] = session

    def unsubscribe(self, session: Any, uri: str) -> None:
        if isinstance(session, ServerSession):
            self._subscribed.get(_connection(session), {}).pop(uri, None)

    def subscriptions(self) -> int:
        """Resource subscriptions held, over every connection."""
        return sum(len(held) for held in self._subscribed.values())

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
            sessions: weakref.WeakKeyDictionary[Any, ServerSession] = weakref.WeakKeyDictionary(
                {connection: held[uri] for connection, held in list(self._subscribed.items()) if uri in held}
            )
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
                self.forget(connection)

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
