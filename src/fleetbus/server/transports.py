"""Serving the MCP server: choosing the transport — stdio; Streamable HTTP with bearer tokens; a unix socket whose
peers are identified by SO_PEERCRED; and the sockets systemd passes (socket activation: Accept=no serves many
clients on the passed listening sockets, Accept=yes speaks stdio framing on the one passed connection).

Every transport stops the same way on SIGTERM (or SIGINT): tell systemd STOPPING=1, take no new calls, let calls in
flight finish up to `shutdown_timeout`, cancel the rest with error results, close (the audit log is synced on
close), exit 0 (server/stopping.py).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path

from fleetbus.command_line import print_error
from fleetbus.config import Settings
from fleetbus.guard.scopes import ScopeError
from fleetbus.runtime import Runtime
from fleetbus.server import systemd
from fleetbus.server.auth import PeerScopes, identify_peer
from fleetbus.server.sockets import (
    StartError,
    bind_tcp,
    bound_unix_socket,
    default_socket_path,
    is_loopback,
    parse_listen,
    url_host,
)
from fleetbus.server.stdio import serve_connection, serve_stdio

__all__ = ["TRANSPORTS", "ServeOptions", "StartError", "add_serve_options", "default_socket_path", "serve"]

TRANSPORTS = ("stdio", "http", "unix")


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


async def serve(settings: Settings, options: ServeOptions) -> None:
    systemd.log_to_journal_if_stderr_is_journal(settings.journal_socket)
    passed = systemd.listen_fds()
    if passed:
        await _serve_passed(settings, options, passed)
        return
    if options.transport == "stdio":
        await serve_stdio(Runtime.build(settings), settings)
        return
    # The HTTP transport is imported only when it serves: stdio (what most clients start) never loads uvicorn's
    # protocol, h11 or the token machinery, and starts faster and smaller for it.
    from fleetbus.server import http  # noqa: PLC0415

    if options.transport == "http":
        host, port = parse_listen(options.listen)
        # Authentication is settled before anything listens: a refused start never opens a port.
        public = url_host(host, port)
        identify, verifier = http.http_auth(settings, options.insecure_no_auth, is_loopback(host), public)
        await http.serve_http(settings, [bind_tcp(host, port)], identify, verifier, public)
        return
    path = options.socket_path or default_socket_path()
    peers = _peer_scopes(settings)
    with bound_unix_socket(path, settings.socket_group) as sock:
        await http.serve_http(settings, [sock], identify_peer(peers), None, "localhost", unix=True)


async def _serve_passed(settings: Settings, options: ServeOptions, passed: list[systemd.PassedSocket]) -> None:
    connections = [p for p in passed if not p.listening]
    if connections:
        # Accept=yes: this instance serves exactly one connection, in stdio framing.
        if len(passed) != 1:
            raise StartError(f"socket activation passed {len(passed)} sockets with Accept=yes; expected one")
        await serve_connection(settings, connections[0].sock, _peer_scopes(settings))
        return
    from fleetbus.server import http  # noqa: PLC0415 — only now, as in serve()

    families = {p.sock.family for p in passed}
    if families == {socket.AF_UNIX}:
        identify = identify_peer(_peer_scopes(settings))
        await http.serve_http(settings, [p.sock for p in passed], identify, None, "localhost", unix=True)
        return
    if families <= {socket.AF_INET, socket.AF_INET6}:
        addresses = [p.sock.getsockname() for p in passed]
        loopback = all(is_loopback(str(address[0])) for address in addresses)
        public = url_host(str(addresses[0][0]), addresses[0][1])
        identify, verifier = http.http_auth(settings, options.insecure_no_auth, loopback, public)
        await http.serve_http(settings, [p.sock for p in passed], identify, verifier, public)
        return
    raise StartError(
        "socket activation passed both unix and TCP sockets; give fleetbus.socket one kind (unix sockets identify "
        "peers by uid, TCP needs tokens)"
    )


def _peer_scopes(settings: Settings) -> PeerScopes:
    try:
        return PeerScopes.from_settings(settings.peer_scopes)
    except ScopeError as exc:
        raise StartError(f"peer_scopes: {exc}") from exc
