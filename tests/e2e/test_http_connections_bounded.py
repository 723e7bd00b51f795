"""Half-open HTTP connections cannot take the server's file descriptors: 10× the cap of unauthenticated sockets
that send nothing leave at most the cap open, each is closed after the header timeout, an authenticated client
is answered throughout, and the log says so in a few lines rather than a line per connection."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.serving import HOSTNAME1, Served, http_client, http_server, mint
from tests.resources_used import open_fds

pytestmark = pytest.mark.sandbox

UNAUTHENTICATED = 20
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("connections") / "state"


@pytest.fixture(scope="module")
def token(sandbox: Sandbox, state: Path) -> str:
    return mint(sandbox, state, "connections", "read")


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, state: Path, token: str) -> Iterator[Served]:
    with http_server(
        sandbox,
        state,
        http_max_unauthenticated=str(UNAUTHENTICATED),
        http_header_timeout=str(HEADER_TIMEOUT),
        http_body_timeout=str(BODY_TIMEOUT),
    ) as served:
        yield served
    assert served.returncode == 0, served.output()


def closed_by_peer(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(1) == b""
    except OSError:  # reset: closed too
        return True


async def test_ten_times_the_unauthenticated_cap_of_silent_sockets(server: Served, token: str) -> None:
    address = urlsplit(server.url)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    pid = server.process.pid
    async with http_client(server.url, token) as client:
        assert not (await client.call_tool("get_property", HOSTNAME1)).is_error  # warm up; this connection is known
        await asyncio.sleep(0.2)
        start = open_fds(pid)
        silent: list[socket.socket] = []
        try:
            for _ in range(10 * UNAUTHENTICATED):
                silent.append(socket.create_connection((host, port), timeout=5))
            await asyncio.sleep(0.3)  # let the server accept what is queued
            held = open_fds(pid)
            # The authenticated client is answered while the flood is held.
            for _ in range(5):
                assert not (await client.call_tool("get_property", HOSTNAME1)).is_error
            assert held <= start + UNAUTHENTICATED + 8, f"{held} fds with the flood held, {start} before"

            # Every silent socket is closed by the server: evicted, or at the header timeout.
            deadline = time.monotonic() + HEADER_TIMEOUT + 20
            while time.monotonic() < deadline and not all(closed_by_peer(s) for s in silent):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            still_open = sum(1 for s in silent if not closed_by_peer(s))
            assert still_open == 0, f"{still_open} silent sockets still open after the header timeout"
        finally:
            for sock in silent:
                with contextlib.suppress(OSError):
                    sock.close()
        assert not (await client.call_tool("get_property", HOSTNAME1)).is_error
        deadline = time.monotonic() + 10
        while open_fds(pid) > start and time.monotonic() < deadline:  # noqa: ASYNC110 — another process
            await asyncio.sleep(0.1)
        assert open_fds(pid) <= start, f"{open_fds(pid)} fds after the flood, {start} before"

    lines = server.output().splitlines()
    about_it = [line for line in lines if "unauthenticated HTTP connections" in line]
    assert 1 <= len(about_it) <= 4, about_it
    assert not any("Traceback" in line for line in lines)


async def test_a_request_head_that_trickles_in_is_cut_off(server: Served) -> None:
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=5) as sock:
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT + 10:
            try:
                sock.sendall(b"P")  # one byte of a head, never finished
            except OSError:
                closed = True
                break
            await asyncio.sleep(0.3)
            if closed_by_peer(sock):
                closed = True
                break
        assert closed
        assert time.monotonic() - started < HEADER_TIMEOUT + 5


async def test_a_body_that_never_ends_is_cut_off_and_the_next_request_is_not(server: Served, token: str) -> None:
    address = urlsplit(server.url)
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
        "Content-Length: 1000\r\n\r\n{"
    ).encode()
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=5) as sock:
        sock.sendall(head)
        started = time.monotonic()
        while not closed_by_peer(sock) and time.monotonic() - started < BODY_TIMEOUT + 10:
            sock.sendall(b" ")  # a byte now and then: the head timeout does not apply, the body's does
            await asyncio.sleep(0.5)
        assert closed_by_peer(sock)
        assert BODY_TIMEOUT - 0.5 <= time.monotonic() - started < BODY_TIMEOUT + 5
    # Complete requests on one connection, slower in all than the body timeout, are not cut off.
    async with http_client(server.url, token) as client:
        for _ in range(4):
            assert not (await client.call_tool("get_property", HOSTNAME1)).is_error
            await asyncio.sleep(1)
