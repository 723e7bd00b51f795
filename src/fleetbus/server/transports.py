"""Serving the MCP server: stdio; Streamable HTTP with bearer tokens; a unix socket whose peers are identified by
SO_PEERCRED; and the sockets systemd passes (socket activation: Accept=no serves many clients on the passed
listening sockets, Accept=yes speaks stdio framing on the one passed connection).

Every transport stops the same way on SIGTERM (or SIGINT): tell systemd STOPPING=1, take no new calls, let calls in
flight finish up to `shutdown_timeout`, cancel the rest with error results, close (the audit log is synced on
close), exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import grp
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio
import mcp_types as types
import uvicorn
from mcp.server import Server, ServerRequestContext
from mcp.server.auth.settings import AuthSettings
from mcp.server.context import CallNext, HandlerResult
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from fleetbus.command_line import print_error
from fleetbus.config import Settings
from fleetbus.guard.scopes import ScopeError, parse_scopes
from fleetbus.runtime import Runtime
from fleetbus.server import systemd
from fleetbus.server.app import build_server
from fleetbus.server.auth import (
    PEER_EXTENSION,
    Identify,
    IssuedTokens,
    PeerScopes,
    StoredTokens,
    TokenError,
    TokenRecord,
    TokenStore,
    Verifiers,
    identify_peer,
    identify_token,
    peer_caller,
    peer_credentials,
)

log = logging.getLogger(__name__)

TRANSPORTS = ("stdio", "http", "unix")
MCP_PATH = "/mcp"
LOOPBACK_HOSTS = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
SOCKET_HOSTS = ["localhost", "localhost:*"]
"""Clients of a unix socket send `Host: localhost` (http://localhost/mcp); nothing else is plausible there."""
STREAM_GRACE = 1
"""After calls have drained, how long open streams (a handshake-era client's GET stream) may linger."""
STOPPING_MESSAGE = "fleetbus is stopping and takes no new calls; repeat the call when it is back"
CANCELLED_MESSAGE = (
    "fleetbus stopped before this call finished, so it was cancelled; the audit log records it as failed. "
    "Check the outcome before repeating it."
)


class StartError(Exception):
    """fleetbus will not serve as asked (no tokens for HTTP, a socket in the way…); the message says what to do."""


@dataclass(frozen=True)
class ServeOptions:
    transport: str = "stdio"
    listen: str = "127.0.0.1:8765"
    socket_path: Path | None = None
    insecure_no_auth: bool = False


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default="stdio",
        help="how clients connect (sockets passed by systemd socket activation are used whatever this says)",
    )
    parser.add_argument("--listen", metavar="HOST:PORT", help="HTTP address (default 127.0.0.1:8765)")
    parser.add_argument("--socket", type=Path, metavar="PATH", help="unix socket path for --transport unix")
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve HTTP without tokens (loopback addresses only; clients get `anonymous_scopes`)",
    )


def serve_command(args: argparse.Namespace, settings: Settings) -> int:
    options = ServeOptions(
        transport=args.transport,
        listen=args.listen or settings.listen,
        socket_path=args.socket or settings.socket_path or default_socket_path(),
        insecure_no_auth=args.insecure_no_auth,
    )
    try:
        asyncio.run(serve(settings, options))
    except StartError as exc:
        print_error(args.command_name, str(exc))
        return 2
    return 0


def default_socket_path() -> Path:
    """/run/fleetbus/fleetbus.sock for root (what fleetbus.socket listens on), else in $XDG_RUNTIME_DIR."""
    if os.geteuid() == 0:
        return Path("/run/fleetbus/fleetbus.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return Path(runtime_dir) / "fleetbus" / "fleetbus.sock"


async def serve(settings: Settings, options: ServeOptions) -> None:
    systemd.log_to_journal_if_stderr_is_journal(settings.journal_socket)
    passed = systemd.listen_fds()
    if passed:
        await _serve_passed(settings, options, passed)
    elif options.transport == "http":
        host, port = parse_listen(options.listen)
        # Authentication is settled before anything listens: a refused start never opens a port.
        url_host = _url_host(host, port)
        identify, verifier = _http_auth(settings, options, is_loopback(host), url_host)
        await serve_http(settings, [_bind_tcp(host, port)], identify, verifier, url_host)
    elif options.transport == "unix":
        path = options.socket_path or default_socket_path()
        peers = _peer_scopes(settings)
        with _bound_unix_socket(path, settings.socket_group) as sock:
            await serve_http(settings, [sock], identify_peer(peers), None, "localhost", unix=True)
    else:
        await serve_stdio(Runtime.build(settings), settings)


async def _serve_passed(settings: Settings, options: ServeOptions, passed: list[systemd.PassedSocket]) -> None:
    connections = [p for p in passed if not p.listening]
    if connections:
        # Accept=yes: this instance serves exactly one connection, in stdio framing.
        if len(passed) != 1:
            raise StartError(f"socket activation passed {len(passed)} sockets with Accept=yes; expected one")
        await serve_connection(settings, connections[0].sock)
        return
    families = {p.sock.family for p in passed}
    if families == {socket.AF_UNIX}:
        identify = identify_peer(_peer_scopes(settings))
        await serve_http(settings, [p.sock for p in passed], identify, None, "localhost", unix=True)
        return
    if families <= {socket.AF_INET, socket.AF_INET6}:
        addresses = [p.sock.getsockname() for p in passed]
        loopback = all(is_loopback(str(address[0])) for address in addresses)
        url_host = _url_host(str(addresses[0][0]), addresses[0][1])
        identify, verifier = _http_auth(settings, options, loopback, url_host)
        await serve_http(settings, [p.sock for p in passed], identify, verifier, url_host)
        return
    raise StartError(
        "socket activation passed both unix and TCP sockets; give fleetbus.socket one kind (unix sockets identify "
        "peers by uid, TCP needs tokens)"
    )


# ---- addresses and sockets ------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise StartError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Say IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP, and without it
    # every small SSE write waits for a delayed ACK (44 ms per call, measured).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


@contextlib.contextmanager
def _bound_unix_socket(path: Path, group: str | None) -> Iterator[socket.socket]:
    """The socket, bound by us with the mode set before anyone can connect (uvicorn's `uds=` would make it 0666)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.is_socket() or path.exists():
        if not path.is_socket():
            raise StartError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a stale socket of a server that is gone
        else:
            raise StartError(f"another server is listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # umask closes the window between bind() and chmod() in which the socket would have default permissions.
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    mode = 0o600
    if group is not None:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except KeyError:
            sock.close()
            path.unlink()
            raise StartError(f"socket_group {group!r}: no such group") from None
        mode = 0o660
    os.chmod(path, mode)
    sock.listen(128)
    inode = path.stat().st_ino
    try:
        yield sock
    finally:
        sock.close()
        # Only remove it if it is still ours: a newer server may have replaced it.
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()


def _peer_scopes(settings: Settings) -> PeerScopes:
    try:
        return PeerScopes.from_settings(settings.peer_scopes)
    except ScopeError as exc:
        raise StartError(f"peer_scopes: {exc}") from exc


def _http_auth(
    settings: Settings, options: ServeOptions, loopback: bool, url_host: str
) -> tuple[Identify, Verifiers | None]:
    """Tokens (fleetbus's own, and an external issuer's JWTs when configured), or — only when asked for and only on
    loopback — no authentication at all."""
    if options.insecure_no_auth:
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
    issued = IssuedTokens(settings.jwt, f"http://{url_host}{MCP_PATH}") if settings.jwt is not None else None
    return identify_token(), Verifiers(StoredTokens(store), issued)


# ---- calls in flight and stopping ---------------------------------------------------------------


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
async def _watchdog() -> AsyncIterator[None]:
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


def _ready(description: str) -> None:
    systemd.notify(f"READY=1\nSTATUS=serving {description}")
    log.info("fleetbus serving %s", description)


# ---- stdio, and one connection (Accept=yes) -------------------------------------------------------


class _Lines:
    """Lines from a file descriptor, read only once it is readable — so a stop can end the wait for a silent
    client (a worker thread blocked in read(), as in the SDK's default stdin reader, cannot be cancelled)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = b""
        self._eof = False
        self._pollable = True
        self._waiting: anyio.CancelScope | None = None
        self._closed = False

    def close(self) -> None:
        """Make the reader end as if the client had closed: the server then finishes its work and returns."""
        self._closed = True
        if self._waiting is not None:
            self._waiting.cancel()

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> str:
        while b"\n" not in self._buffer:
            if self._eof or self._closed:
                if self._buffer and not self._closed:
                    line, self._buffer = self._buffer, b""
                    return line.decode("utf-8", "replace")
                raise StopAsyncIteration
            chunk = await self._read()
            if chunk is None:
                continue
            if not chunk:
                self._eof = True
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace") + "\n"

    async def _read(self) -> bytes | None:
        if self._pollable:
            with anyio.CancelScope() as self._waiting:
                try:
                    await anyio.wait_readable(self.fd)
                except PermissionError:  # a regular file: epoll cannot watch it, and it never blocks for long
                    self._pollable = False
            self._waiting = None
            if self._closed:
                return b""
        if not self._pollable:
            return await anyio.to_thread.run_sync(os.read, self.fd, 65536)
        try:
            return os.read(self.fd, 65536)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return b""


class _SocketWriter:
    """The write half of a connection, for the SDK's stdio framing (which awaits `write` then `flush`)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    async def write(self, text: str) -> None:
        data = memoryview(text.encode())
        while data:
            await anyio.wait_writable(self.sock)
            try:
                data = data[self.sock.send(data) :]
            except BlockingIOError:
                continue

    async def flush(self) -> None:
        return None


async def serve_stdio(runtime: Runtime, settings: Settings | None = None) -> None:
    """MCP over this process's stdin and stdout, as the operator (no scope restriction)."""
    server = build_server(runtime, client="stdio")
    stdin_fd = _divert_stdin()
    try:
        await _serve_streams(runtime, server, _Lines(stdin_fd), None, settings or runtime.settings, "stdio")
    finally:
        os.close(stdin_fd)


def _divert_stdin() -> int:
    """A private copy of fd 0 for the protocol, and fd 0 itself pointed at /dev/null, so a child process that
    inherits stdin can never swallow protocol bytes (what the SDK's stdio transport does for its own reader)."""
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return private


async def serve_connection(settings: Settings, sock: socket.socket) -> None:
    """Accept=yes: one client on one unix-socket connection, in stdio framing, identified by its uid."""
    credentials = peer_credentials(sock)
    if credentials is None:
        raise StartError(
            "Accept=yes serves unix-socket connections only: a TCP connection carries no identity without HTTP "
            "tokens; use ListenStream= with Accept=no for HTTP over TCP"
        )
    caller = peer_caller(credentials, _peer_scopes(settings))
    sock.setblocking(False)
    runtime = Runtime.build(settings)
    server = build_server(runtime, client=caller.client, identify=lambda ctx: caller)
    log.info("serving one connection from %s (pid %d)", caller.client, credentials.pid)
    await _serve_streams(runtime, server, _Lines(sock.fileno()), _SocketWriter(sock), settings, caller.client)
    sock.close()


async def _serve_streams(
    runtime: Runtime,
    server: Server[Any],
    reader: _Lines,
    writer: _SocketWriter | None,
    settings: Settings,
    description: str,
) -> None:
    calls = InFlight()
    server.middleware.append(calls)
    try:
        with Stop().installed() as stop:
            async with (
                stdio_server(stdin=cast(Any, reader), stdout=cast(Any, writer)) as (read_stream, write_stream),
                _watchdog(),
                anyio.create_task_group() as group,
            ):

                async def run() -> None:
                    await server.run(read_stream, write_stream, server.create_initialization_options())
                    group.cancel_scope.cancel()  # the client closed the stream

                async def stop_when_asked() -> None:
                    await stop.requested.wait()
                    systemd.notify("STOPPING=1")
                    await stop.drain(calls, settings.shutdown_timeout)
                    reader.close()  # as if the client had closed: answers already given are flushed first
                    await anyio.sleep(5.0)
                    group.cancel_scope.cancel()

                group.start_soon(run)
                group.start_soon(stop_when_asked)
                _ready(description)
    finally:
        runtime.close()


# ---- Streamable HTTP (TCP or a unix socket) ---------------------------------------------------------


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
    server: Server[Any], verifier: Verifiers | None, url_host: str, allowed_hosts: list[str], origins: list[str]
) -> ASGIApp:
    base = f"http://{url_host}"
    auth = (
        AuthSettings(issuer_url=base, resource_server_url=f"{base}{MCP_PATH}", validate_token_resource=False)  # type: ignore[arg-type]
        if verifier is not None
        else None
    )
    return server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        # Sessions are kept (not stateless, not JSON-only): handshake-era clients need the back-channel for
        # notifications and elicitation.
        stateless_http=False,
        json_response=False,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts, allowed_origins=origins
        ),
        auth=auth,
        token_verifier=verifier,
    )


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
    app = http_app(server, verifier, url_host, hosts, origins)
    config = uvicorn.Config(
        app,
        http=_PeerCredentialsProtocol if unix else "h11",
        ws="none",
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=STREAM_GRACE,
    )
    http = _Server(config)
    description = " and ".join(_describe(sock) for sock in sockets)
    try:
        with Stop().installed() as stop:
            serving = asyncio.create_task(http.serve(sockets=sockets))
            listening = asyncio.create_task(http.listening.wait())
            await asyncio.wait({listening, serving}, return_when=asyncio.FIRST_COMPLETED)
            listening.cancel()
            if serving.done():
                serving.result()  # re-raises why it could not start
                raise StartError(f"HTTP server on {description} stopped while starting")
            async with _watchdog():
                _ready(description)
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


def _describe(sock: socket.socket) -> str:
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"http+unix://{address or '(unnamed)'}{MCP_PATH}"
    return f"http://{_url_host(str(address[0]), int(address[1]))}{MCP_PATH}"
