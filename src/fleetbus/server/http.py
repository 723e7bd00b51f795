"""MCP over Streamable HTTP, served by uvicorn on sockets handed in (TCP with bearer tokens, or a unix socket
whose peers are identified by SO_PEERCRED); sessions are kept for the handshake era's back-channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any, cast

import uvicorn
from mcp.server import Server
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleetbus.config import Settings
from fleetbus.guard.scopes import ScopeError, parse_scopes
from fleetbus.runtime import Runtime
from fleetbus.server import systemd
from fleetbus.server.app import build_server
from fleetbus.server.auth import (
    PEER_EXTENSION,
    Identify,
    StoredTokens,
    TokenError,
    TokenRecord,
    TokenStore,
    Verifiers,
    identify_token,
    peer_credentials,
)
from fleetbus.server.banner import http_banner, unix_banner
from fleetbus.server.connections import ConnectionLimits, bounded_protocol, quiet_accept_errors
from fleetbus.server.discovery import BearerChallenge, Discovery
from fleetbus.server.http_frames import check_frames
from fleetbus.server.http_sessions import SessionBounds, SessionLimits
from fleetbus.server.sockets import MCP_PATH, StartError, describe
from fleetbus.server.stopping import InFlight, Stop, ready, watchdog

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
SOCKET_HOSTS = ["localhost", "localhost:*"]
"""Clients of a unix socket send `Host: localhost` (http://localhost/mcp); nothing else is plausible there."""
STREAM_GRACE = 1
"""After calls have drained, how long open streams (a handshake-era client's GET stream) may linger."""


def http_auth(
    settings: Settings, insecure_no_auth: bool, loopback: bool, url_host: str
) -> tuple[Identify, Verifiers | None]:
    """Tokens (fleetbus's own, and an external issuer's JWTs when configured), or — only when asked for and only on
    loopback — no authentication at all."""
    if insecure_no_auth:
        if not loopback:
            raise StartError("--insecure-no-auth is only allowed on a loopback address (127.0.0.1, ::1, localhost)")
        try:
            anonymous = parse_scopes(settings.anonymous_scopes)
        except ScopeError as exc:
            raise StartError(f"anonymous_scopes: {exc}") from exc
        log.warning("serving HTTP without authentication; clients get scopes %s", ",".join(sorted(anonymous)))
        return identify_token(anonymous), None
    store = TokenStore(settings.tokens_path)
    try:
        configured = bool(store.load())
    except TokenError as exc:
        raise StartError(str(exc)) from exc
    if not configured and settings.jwt is None:
        raise StartError(
            f"HTTP needs bearer tokens and {settings.tokens_path} has none: mint one with "
            "`fleetbus token mint --name NAME --scopes read`, or pass --insecure-no-auth on a loopback address"
        )
    issued = None
    if settings.jwt is not None:
        from fleetbus.server.issuer import IssuedTokens  # noqa: PLC0415 — PyJWT, cryptography: only if asked

        issued = IssuedTokens(settings.jwt, f"http://{url_host}{MCP_PATH}")
    return identify_token(), Verifiers(StoredTokens(store), issued)


class _PeerCredentialsProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, plus the peer's SO_PEERCRED in each request's scope (`extensions`), read once
    per connection when it is made. An ASGI middleware cannot see the socket; the protocol can."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        credentials = peer_credentials(cast(socket.socket, sock)) if sock is not None else None
        app = self.app

        async def with_peer(scope: Scope, receive: Receive, send: Send) -> None:
            extensions = {**scope.get("extensions", {}), PEER_EXTENSION: credentials}
            await app({**scope, "extensions": extensions}, receive, send)

        self.app = with_peer


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling (`Stop` decides how fleetbus stops), saying when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_app(
    server: Server[Any],
    verifier: Verifiers | None,
    url_host: str,
    allowed_hosts: list[str],
    origins: list[str],
    issuer: str | None = None,
    sessions: SessionLimits | None = None,
) -> ASGIApp:
    """The SDK's Streamable HTTP app; with tokens, wrapped so a 401 and OAuth discovery say what is true here
    (server/discovery.py): an external `issuer` is the authorization server, else there is none."""
    base = f"http://{url_host}"
    discovery = Discovery(f"{base}{MCP_PATH}", issuer)
    # resource_server_url=None: the resource metadata (and the challenge) are discovery's, not the SDK's, which
    # would name this server as its own authorization server.
    auth = AuthSettings(issuer_url=issuer or base, resource_server_url=None) if verifier is not None else None  # type: ignore[arg-type]
    limits = sessions or SessionLimits()
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        # Sessions are kept (not stateless, not JSON-only): handshake-era clients need the back-channel for
        # notifications and elicitation.
        stateless_http=False,
        json_response=False,
        session_idle_timeout=limits.idle_timeout,
        max_sessions=limits.total,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=origins
        ),
        auth=auth,
        token_verifier=verifier,
        custom_starlette_routes=discovery.routes() if verifier is not None else None,
    )
    SessionBounds(server.session_manager, limits).install()
    check_frames(app, MCP_PATH)  # a malformed body gets JSON-RPC's answer, as on stdio
    return BearerChallenge(app, discovery) if verifier is not None else app


async def serve_http(
    settings: Settings,
    sockets: list[socket.socket],
    identify: Identify,
    verifier: Verifiers | None,
    url_host: str,
    *,
    unix: bool = False,
) -> None:
    runtime = Runtime.build(settings)
    server = build_server(runtime, client="http", identify=identify)
    if verifier is not None:
        audit_log = runtime.gateway.audit_log

        def refused(record: TokenRecord, state: str) -> None:
            audit_log.append({"event": "token-refused", "client": record.name, "token": record.id, "reason": state})

        verifier.stored.on_refused = refused
    calls = InFlight()
    server.middleware.append(calls)
    if unix:
        hosts, origins = SOCKET_HOSTS, []
    else:
        hosts = [*LOOPBACK_HOSTS, url_host, *settings.http_allowed_hosts]
        origins = [*LOOPBACK_ORIGINS, f"http://{url_host}", *(f"http://{h}" for h in settings.http_allowed_hosts)]
    issuer = settings.jwt.issuer if verifier is not None and verifier.issued is not None and settings.jwt else None
    limits = SessionLimits(
        settings.http_sessions_max, settings.http_sessions_per_client, settings.http_session_idle_minutes * 60
    )
    app = http_app(server, verifier, url_host, hosts, origins, issuer, limits)
    protocol, _ = bounded_protocol(
        _PeerCredentialsProtocol if unix else H11Protocol,
        ConnectionLimits(
            max_connections=settings.http_max_connections,
            max_unauthenticated=settings.http_max_unauthenticated,
            header_timeout=settings.http_header_timeout,
            body_timeout=settings.http_body_timeout,
            authenticated_by_default=unix or verifier is None,
        ),
    )
    quiet_accept_errors(asyncio.get_running_loop())
    config = uvicorn.Config(
        app,
        http=protocol,
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=STREAM_GRACE,
    )
    http = _Server(config)
    description = " and ".join(describe(sock) for sock in sockets)
    try:
        with Stop().installed() as stop:
            serving = asyncio.create_task(http.serve(sockets=sockets))
            listening = asyncio.create_task(http.listening.wait())
            await asyncio.wait({listening, serving}, return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            if serving.done():
                serving.result()  # re-raises why it could not start
                raise StartError(f"HTTP server on {description} stopped while starting")
            async with watchdog():
                ready(description)
                banner = _banner(settings, sockets, verifier, url_host, issuer, unix=unix)
                print(banner, end="", file=sys.stderr, flush=True)
                waiting = asyncio.create_task(stop.requested.wait())
                await asyncio.wait({waiting, serving}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
            systemd.notify("STOPPING=1")
            for listener in http.servers:
                listener.close()  # no new connections; with socket activation systemd queues them for the next us
            await stop.drain(calls, settings.shutdown_timeout)
            http.should_exit = True
            await serving
    finally:
        runtime.close()


def _banner(
    settings: Settings,
    sockets: list[socket.socket],
    verifier: Verifiers | None,
    url_host: str,
    issuer: str | None,
    *,
    unix: bool,
) -> str:
    if unix:
        return unix_banner(settings, [str(sock.getsockname() or "(unnamed)") for sock in sockets])
    return http_banner(settings, f"http://{url_host}{MCP_PATH}", authenticated=verifier is not None, issuer=issuer)
