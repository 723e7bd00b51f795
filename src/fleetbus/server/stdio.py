"""MCP in stdio framing: over this process's stdin and stdout, or over the one unix-socket connection systemd
passes with Accept=yes (its peer identified by SO_PEERCRED)."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import stat
from typing import Any, cast

import anyio
from mcp.server import Server
from mcp.server.stdio import stdio_server

from fleetbus.config import Settings
from fleetbus.runtime import Runtime
from fleetbus.server import systemd
from fleetbus.server.app import build_server
from fleetbus.server.auth import PeerScopes, peer_caller, peer_credentials
from fleetbus.server.sockets import StartError
from fleetbus.server.stopping import InFlight, Stop, ready, watchdog

log = logging.getLogger(__name__)


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


class _Writer:
    """The write half of a non-blocking pipe or socket, for the SDK's stdio framing (which awaits `write` then
    `flush`). It writes at once and waits only while the client is not reading: the SDK's own stdout writer hands
    every line to a worker thread twice (write, then flush), two thread hops per answer."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode())
        while data:
            try:
                data = data[os.write(self.fd, data) :]
            except BlockingIOError:
                await anyio.wait_writable(self.fd)

    async def flush(self) -> None:
        return None


async def serve_stdio(runtime: Runtime, settings: Settings | None = None) -> None:
    """MCP over this process's stdin and stdout, as the operator (no scope restriction)."""
    server = build_server(runtime, client="stdio")
    stdin_fd = _divert_stdin()
    stdout_fd = _divert_stdout()
    writer = _Writer(stdout_fd) if stdout_fd is not None else None
    try:
        await _serve_streams(runtime, server, _Lines(stdin_fd), writer, settings or runtime.settings, "stdio")
    finally:
        os.close(stdin_fd)
        if stdout_fd is not None:
            os.close(stdout_fd)


def _divert_stdin() -> int:
    """A private copy of fd 0 for the protocol, and fd 0 itself pointed at /dev/null, so a child process that
    inherits stdin can never swallow protocol bytes (what the SDK's stdio transport does for its own reader)."""
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return private


def _divert_stdout() -> int | None:
    """A private, non-blocking copy of fd 1 for the protocol when it is a pipe or a socket (what MCP clients give),
    and fd 1 itself pointed at stderr, so nothing else (a print, a child process) can write into the protocol
    stream. Anything else (a terminal, a file) is left to the SDK's writer: making it non-blocking would change it
    for every other process that shares it."""
    try:
        mode = os.fstat(1).st_mode
    except OSError:
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None
    private = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    os.set_blocking(private, False)
    os.dup2(2, 1)
    return private


async def serve_connection(settings: Settings, sock: socket.socket, peers: PeerScopes) -> None:
    """Accept=yes: one client on one unix-socket connection, in stdio framing, identified by its uid."""
    credentials = peer_credentials(sock)
    if credentials is None:
        raise StartError(
            "Accept=yes serves unix-socket connections only: a TCP connection carries no identity without HTTP "
            "tokens; use ListenStream= with Accept=no for HTTP over TCP"
        )
    caller = peer_caller(credentials, peers)
    sock.setblocking(False)
    runtime = Runtime.build(settings)
    server = build_server(runtime, client=caller.client, identify=lambda ctx: caller)
    log.info("serving one connection from %s (pid %d)", caller.client, credentials.pid)
    await _serve_streams(runtime, server, _Lines(sock.fileno()), _Writer(sock.fileno()), settings, caller.client)
    sock.close()


async def _serve_streams(
    runtime: Runtime, server: Server[Any], reader: _Lines, writer: _Writer | None, settings: Settings, description: str
) -> None:
    calls = InFlight()
    server.middleware.append(calls)
    try:
        with Stop().installed() as stop:
            async with (
                stdio_server(stdin=cast(Any, reader), stdout=cast(Any, writer)) as (read_stream, write_stream),
                watchdog(),
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
                ready(description)
    finally:
        runtime.close()
