"""MCP in stdio framing: over this process's stdin and stdout, or over the one unix-socket connection systemd
passes with Accept=yes (its peer identified by SO_PEERCRED)."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import stat
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import mcp_types as types
from mcp.server import Server
from mcp.shared._context_streams import create_context_streams
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage

from fleetbus.config import DEFAULT_MAX_FRAME_BYTES, Settings
from fleetbus.runtime import Runtime
from fleetbus.server import frames, systemd
from fleetbus.server.app import build_server
from fleetbus.server.auth import PeerScopes, peer_caller, peer_credentials
from fleetbus.server.frames import BadFrame
from fleetbus.server.sockets import StartError
from fleetbus.server.stopping import InFlight, Stop, ready, watchdog

log = logging.getLogger(__name__)


class _Lines:
    """Frames (lines, as bytes) from a file descriptor, read only once it is readable — so a stop can end the wait
    for a silent client (a worker thread blocked in read(), as in the SDK's default stdin reader, cannot be
    cancelled). A line longer than `max_bytes` is skipped up to its newline and reported as `TOO_LONG`: a client
    that never sends a newline cannot grow the buffer without bound."""

    TOO_LONG = b""
    """Stands for a skipped over-long line (an empty line is never a frame: blank lines are passed over)."""

    def __init__(self, fd: int, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.fd = fd
        self.max_bytes = max_bytes
        self._buffer = bytearray()
        self._skipping = False
        self._eof = False
        self._pollable = True
        self._waiting: asyncio.Future[None] | None = None
        self._closed = False

    def close(self) -> None:
        """Make the reader end as if the client had closed: the server then finishes its work and returns."""
        self._closed = True
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_result(None)

    def __aiter__(self) -> _Lines:
        return self

    async def __anext__(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if self._skipping:
                    self._skipping = False
                    return self.TOO_LONG
                if line.strip():
                    return line
                continue
            if len(self._buffer) > self.max_bytes:
                self._skipping = True
                self._buffer.clear()
            if self._eof or self._closed:
                line, skipped = bytes(self._buffer), self._skipping
                self._buffer.clear()
                self._skipping = False
                if self._closed:
                    raise StopAsyncIteration
                if skipped:
                    return self.TOO_LONG
                if line.strip():
                    return line
                raise StopAsyncIteration
            chunk = await self._read()
            if chunk is None:
                continue
            if not chunk:
                self._eof = True
            self._buffer += chunk

    async def _read(self) -> bytes | None:
        if self._pollable:
            try:
                await self._readable()
            except PermissionError:  # a regular file: epoll cannot watch it, and it never blocks for long
                self._pollable = False
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

    async def _readable(self) -> None:
        """Until the descriptor is readable, or the reader is closed. The reader callback is one-shot, as
        anyio.wait_readable's, which spent more on its per-call lookups than the read itself (once per request)."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            loop.remove_reader(self.fd)  # level-triggered: left in place, it would fire on every loop pass
            if not waiting.done():
                waiting.set_result(None)

        loop.add_reader(self.fd, readable)
        self._waiting = waiting
        try:
            await waiting
        finally:
            self._waiting = None
            loop.remove_reader(self.fd)


class _Writer:
    """The write half of the protocol stream. On a non-blocking pipe or socket it writes at once and waits only
    while the client is not reading (the SDK's own stdout writer hands every line to a worker thread twice, write
    then flush); anything else (a terminal, a file) stays blocking and is written from a worker thread."""

    def __init__(self, fd: int, blocking: bool = False) -> None:
        self.fd = fd
        self.blocking = blocking
        self.lock = asyncio.Lock()
        """Answers to bad frames and the session's messages share the stream; a line is written whole. (asyncio's:
        taken free, it does not pass through the event loop as anyio's does, once per answer.)"""
        self.gone = False
        """The client closed its end: what is left to write is dropped (the reader sees the end and the session
        finishes), not raised, which would end a socket-activated instance with a traceback and exit status 1."""

    async def write(self, text: str) -> None:
        async with self.lock:
            if self.gone:
                return
            try:
                if self.blocking:
                    await anyio.to_thread.run_sync(self._write_all, text.encode())
                    return
                encoded = text.encode()
                try:
                    written = os.write(self.fd, encoded)
                except BlockingIOError:
                    written = 0
                if written == len(encoded):  # the usual case: the pipe had room for all of it
                    return
                data = memoryview(encoded)[written:]
                while data:
                    try:
                        data = data[os.write(self.fd, data) :]
                    except BlockingIOError:
                        await anyio.wait_writable(self.fd)
            except (BrokenPipeError, ConnectionResetError):
                self.gone = True
                log.info("the client closed its end; a message of %d characters, and any after it, dropped", len(text))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]


class _FrameLog:
    """One log line per bad frame, but at most one a second: a client flooding bad frames cannot flood the log
    (the suppressed ones are counted in the next line)."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._last = -1.0
        self._suppressed = 0

    def bad(self, bad: BadFrame, size: int) -> None:
        now = time.monotonic()
        if now - self._last < 1.0:
            self._suppressed += 1
            return
        more = f" (and {self._suppressed} more in the last second)" if self._suppressed else ""
        log.warning(
            "%s: a bad frame of %d bytes answered with %d: %s%s", self.description, size, bad.code, bad.message, more
        )
        self._last, self._suppressed = now, 0


@asynccontextmanager
async def _framed(
    reader: _Lines, writer: _Writer, description: str
) -> AsyncIterator[tuple[ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]]]:
    """MCP stdio framing over `reader` and `writer` (in place of the SDK's stdio_server): a frame that is no
    valid message is answered here, as JSON-RPC says (fleetbus.server.frames), and never reaches the session."""
    read_sender, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_receiver = create_context_streams[SessionMessage](0)
    frame_log = _FrameLog(description)

    async def answer(bad: BadFrame, size: int) -> None:
        frame_log.bad(bad, size)
        await writer.write(bad.answer().model_dump_json(by_alias=True, exclude_unset=True) + "\n")

    async def read_frames() -> None:
        try:
            async with read_sender:
                async for frame in reader:
                    if frame is _Lines.TOO_LONG:
                        too_long = f"Invalid Request: a frame is at most {reader.max_bytes} bytes"
                        await answer(BadFrame(types.INVALID_REQUEST, too_long, None), reader.max_bytes)
                        continue
                    message = frames.decode(frame)
                    if isinstance(message, BadFrame):
                        await answer(message, len(frame))
                        continue
                    await read_sender.send(SessionMessage(message))
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async def write_messages() -> None:
        try:
            async with write_receiver:
                async for session_message in write_receiver:
                    line = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await writer.write(line + "\n")
        except anyio.ClosedResourceError:
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(read_frames)
        group.start_soon(write_messages)
        yield read_stream, write_stream


async def serve_stdio(runtime: Runtime, settings: Settings | None = None) -> None:
    """MCP over this process's stdin and stdout, as the operator (no scope restriction)."""
    settings = settings or runtime.settings
    server = build_server(runtime, client="stdio")
    stdin_fd = _divert_stdin()
    stdout_fd, blocking = _divert_stdout()
    reader = _Lines(stdin_fd, settings.max_frame_bytes)
    try:
        await _serve_streams(runtime, server, reader, _Writer(stdout_fd, blocking), settings, "stdio")
    finally:
        os.close(stdin_fd)
        os.close(stdout_fd)


def _divert_stdin() -> int:
    """A private copy of fd 0 for the protocol, and fd 0 itself pointed at /dev/null, so a child process that
    inherits stdin can never swallow protocol bytes (what the SDK's stdio transport does for its own reader)."""
    private = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return private


def _divert_stdout() -> tuple[int, bool]:
    """A private copy of fd 1 for the protocol, and fd 1 itself pointed at stderr, so nothing else (a print, a child
    process) can write into the protocol stream; and whether the copy stays blocking. A pipe or a socket (what MCP
    clients give) is made non-blocking; anything else (a terminal, a file) is not: that would change it for every
    other process that shares it."""
    mode = os.fstat(1).st_mode
    private = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    blocking = not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode))
    if not blocking:
        os.set_blocking(private, False)
    os.dup2(2, 1)
    return private, blocking


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
    reader = _Lines(sock.fileno(), settings.max_frame_bytes)
    await _serve_streams(runtime, server, reader, _Writer(sock.fileno()), settings, caller.client)
    sock.close()


async def _serve_streams(
    runtime: Runtime, server: Server[Any], reader: _Lines, writer: _Writer, settings: Settings, description: str
) -> None:
    calls = InFlight()
    server.middleware.append(calls)
    try:
        with Stop().installed() as stop:
            async with (
                _framed(reader, writer, description) as (read_stream, write_stream),
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
