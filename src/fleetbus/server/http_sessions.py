"""Bounds on Streamable HTTP sessions: at most so many per credential and in total, the idlest evicted first.

The SDK's session manager has a total cap (a 503 at the limit, nothing evicted) and an idle timeout; it has no
per-credential cap, and a client that opens sessions and leaves them (~46 kB each) could fill the total and lock
everyone else out. Here a new session first evicts the least recently used idle session of the same credential
when that credential is at its cap, else the least recently used idle session of anyone when the total is
reached. An evicted session's id then answers 404, which the spec tells a client to meet by initializing again.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, authorization_context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetbus.server.auth import PEER_EXTENSION, PeerCredentials

log = logging.getLogger(__name__)

SESSION_HEADER = b"mcp-session-id"
VERSION_HEADER = b"mcp-protocol-version"


@dataclass(frozen=True)
class SessionLimits:
    total: int = 256
    per_owner: int = 16
    idle_timeout: float = 600.0
    """Seconds without a request in flight after which the SDK ends a session."""


@dataclass
class _Held:
    owner: str
    last_used: float = field(default_factory=time.monotonic)
    in_flight: int = 0


def owner_of(scope: Scope) -> str:
    """The credential a request came with: a token's principal, a unix peer's uid, or nobody (no auth)."""
    user = scope.get("user")
    if isinstance(user, AuthenticatedUser):
        # The same principal the SDK binds a session to (a TypedDict: client id, issuer, subject).
        context = authorization_context(user)
        return "token:" + ":".join(str(context.get(key)) for key in ("client_id", "issuer", "subject"))
    peer = scope.get("extensions", {}).get(PEER_EXTENSION)
    if isinstance(peer, PeerCredentials):
        return f"uid:{peer.uid}"
    return "anonymous"


class SessionBounds:
    """Wraps the session manager's ASGI entry (it runs after authentication, so `scope["user"]` is known)."""

    def __init__(self, manager: StreamableHTTPSessionManager, limits: SessionLimits) -> None:
        self.manager = manager
        self.limits = limits
        self._held: OrderedDict[str, _Held] = OrderedDict()
        """Known sessions, least recently used first."""
        self._opening: dict[str, int] = {}
        """Per owner: requests without a session id being answered now (each may open one)."""
        self.evicted = 0
        self.refused = 0

    def install(self) -> SessionBounds:
        inner: ASGIApp = self.manager.asgi_app

        async def bounded(scope: Scope, receive: Receive, send: Send) -> None:
            await self(inner, scope, receive, send)

        # The SDK's StreamableHTTPASGIApp calls `manager.asgi_app` for every request, inside the auth middleware.
        self.manager.asgi_app = bounded  # type: ignore[assignment]
        return self

    def sessions(self, owner: str | None = None) -> int:
        self._forget_ended()
        return sum(1 for held in self._held.values() if owner is None or held.owner == owner)

    async def __call__(self, inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers", []))
        session_id = headers.get(SESSION_HEADER, b"").decode("latin-1")
        version = headers.get(VERSION_HEADER, b"").decode("latin-1")
        if scope.get("type") != "http" or (version and version not in HANDSHAKE_PROTOCOL_VERSIONS):
            await inner(scope, receive, send)  # the sessionless era holds nothing between requests
            return
        if session_id:
            await self._existing(inner, session_id, scope, receive, send)
        elif scope.get("method") == "POST":  # only a POST without a session id can open one (an initialize)
            await self._opening_request(inner, scope, receive, send)
        else:
            await inner(scope, receive, send)

    async def _existing(self, inner: ASGIApp, session_id: str, scope: Scope, receive: Receive, send: Send) -> None:
        held = self._held.get(session_id)
        if held is None:
            await inner(scope, receive, send)  # unknown or evicted: the SDK answers 404
            return
        self._held.move_to_end(session_id)
        held.in_flight += 1
        try:
            await inner(scope, receive, send)
        finally:
            held.in_flight -= 1
            held.last_used = time.monotonic()

    async def _opening_request(self, inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        owner = owner_of(scope)
        if not await self._make_room(owner):
            self.refused += 1
            log.warning("refusing a new HTTP session for %s: every session is busy", owner)
            response = JSONResponse(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {
                        "code": -32603,
                        "message": f"too many open sessions ({self.limits.per_owner} per client, "
                        f"{self.limits.total} in all) and none idle; end one (DELETE) and retry",
                    },
                },
                status_code=503,
            )
            await response(scope, receive, send)
            return
        opened: list[str] = []

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                for key, value in message.get("headers", []):
                    if key.lower() == SESSION_HEADER:
                        opened.append(value.decode("latin-1"))
                        self._held[opened[-1]] = _Held(owner, in_flight=1)
            await send(message)

        self._opening[owner] = self._opening.get(owner, 0) + 1
        try:
            await inner(scope, receive, watch)
        finally:
            self._opening[owner] -= 1
            if not self._opening[owner]:
                del self._opening[owner]
            for session_id in opened:
                if session_id in self._held:
                    self._held[session_id].in_flight -= 1
                    self._held[session_id].last_used = time.monotonic()

    async def _make_room(self, owner: str) -> bool:
        """Evict until `owner` may open one more session; False when only busy sessions stand in the way."""
        self._forget_ended()
        opening = self._opening.get(owner, 0)
        while self.sessions(owner) + opening >= self.limits.per_owner:
            if not await self._evict_idlest(owner):
                return False
        while len(self._held) + sum(self._opening.values()) >= self.limits.total:
            if not await self._evict_idlest(None):
                return False
        return True

    async def _evict_idlest(self, owner: str | None) -> bool:
        idle = [
            (held.last_used, session_id)
            for session_id, held in self._held.items()
            if held.in_flight == 0 and (owner is None or held.owner == owner)
        ]
        if not idle:
            return False
        _, session_id = min(idle)
        held = self._held.pop(session_id)
        self.evicted += 1
        log.info("evicting HTTP session %s of %s, idle %.0f s, to make room", session_id[:8], held.owner, _idle(held))
        await self._end(session_id)
        return True

    async def _end(self, session_id: str) -> None:
        # The SDK (2.3) keeps its sessions in `_server_instances` and ends one with `_discard_session`, which
        # forgets the id before it awaits anything: from then on the id answers 404.
        instances: dict[str, Any] = self.manager._server_instances
        transport = instances.get(session_id)
        if transport is not None:
            await self.manager._discard_session(session_id, transport)

    def _forget_ended(self) -> None:
        """Sessions the SDK ended itself (idle timeout, DELETE, a crash)."""
        instances: dict[str, Any] = self.manager._server_instances
        for session_id in [s for s, held in self._held.items() if s not in instances and held.in_flight == 0]:
            del self._held[session_id]


def _idle(held: _Held) -> float:
    return time.monotonic() - held.last_used
