"""`fleetbus serve` over HTTP or a unix socket as a real process, and the official SDK client talking to it.

with http_server(sandbox, state) as server:           # SIGTERM on the way out; server.returncode after
    async with http_client(server.url, token, era) as client:
        await client.call_tool(…)
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
from mcp import Client
from mcp.client.session import ElicitationFnT
from mcp.client.streamable_http import streamable_http_client

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, server_env

HOSTNAME1 = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
    "property": "Hostname",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fleetbus(
    sandbox: Sandbox, state: Path, *args: str, env: dict[str, str] | None = None, **settings: str
) -> subprocess.CompletedProcess[str]:
    """The CLI, as a person at the server runs it, with the server's state directory."""
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", *args],
        env={**server_env(sandbox, state_dir=str(state), **settings), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


def mint(sandbox: Sandbox, state: Path, name: str, scopes: str, *extra: str) -> str:
    minted = fleetbus(sandbox, state, "token", "mint", "--name", name, "--scopes", scopes, *extra)
    assert minted.returncode == 0, minted.stderr
    return minted.stdout.strip()


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    log: Path
    socket_path: Path | None = None
    returncode: int | None = field(default=None)

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.returncode = self.process.wait(timeout=timeout)
        return self.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_until_listening(served: Served, connect: Callable[[], None], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise AssertionError(f"fleetbus serve exited with {served.process.returncode}:\n{served.output()}")
        with contextlib.suppress(OSError):
            connect()
            return
        time.sleep(0.05)
    raise AssertionError(f"fleetbus serve did not listen within {timeout} s:\n{served.output()}")


@contextlib.contextmanager
def _serving(
    sandbox: Sandbox,
    state: Path,
    log_name: str,
    transport: list[str],
    env: dict[str, str] | None,
    settings: dict[str, str],
    *,
    url: str,
    socket_path: Path | None,
    connect: Callable[[], None],
) -> Iterator[Served]:
    """`fleetbus serve` with `transport` arguments, its output in a log beside `state`; stopped with SIGTERM."""
    log = state.parent / log_name
    state.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "fleetbus", "--log-level", "INFO", "serve", *transport]
    with open(log, "w") as output:
        process = subprocess.Popen(
            command,
            env={**server_env(sandbox, state_dir=str(state), **settings), **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
    served = Served(process, url, log, socket_path)
    try:
        _wait_until_listening(served, connect)
        yield served
    finally:
        served.stop()


def http_server(
    sandbox: Sandbox,
    state: Path,
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    **settings: str,
) -> contextlib.AbstractContextManager[Served]:
    """`fleetbus serve --transport http` on a (free) loopback port."""
    port = port or free_port()
    transport = ["--transport", "http", "--listen", f"127.0.0.1:{port}", *args]

    def connect() -> None:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    url = f"http://127.0.0.1:{port}/mcp"
    return _serving(
        sandbox, state, f"serve-{port}.log", transport, env, settings, url=url, socket_path=None, connect=connect
    )


def unix_server(
    sandbox: Sandbox, state: Path, path: Path, *args: str, env: dict[str, str] | None = None, **settings: str
) -> contextlib.AbstractContextManager[Served]:
    """`fleetbus serve --transport unix` on `path`."""
    transport = ["--transport", "unix", "--socket", str(path), *args]

    def connect() -> None:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(str(path))

    url = "http://localhost/mcp"
    return _serving(
        sandbox, state, f"serve-{path.name}.log", transport, env, settings, url=url, socket_path=path, connect=connect
    )


@asynccontextmanager
async def http_client(
    url: str,
    token: str | None = None,
    era: str = "legacy",
    *,
    uds: Path | None = None,
    elicitation: ElicitationFnT | None = None,
) -> AsyncIterator[Client]:
    """The SDK client over Streamable HTTP (through a unix socket with `uds`), sending `token` as a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx2.AsyncHTTPTransport(uds=str(uds)) if uds else None
    http = httpx2.AsyncClient(headers=headers, transport=transport, timeout=httpx2.Timeout(60, read=120))
    async with (
        http,
        Client(streamable_http_client(url, http_client=http), mode=era, elicitation_callback=elicitation) as client,
    ):
        yield client


def audit_records(state: Path) -> list[dict[str, Any]]:
    log = state / "audit" / "audit.log"
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def verify_audit(sandbox: Sandbox, state: Path) -> subprocess.CompletedProcess[str]:
    return fleetbus(sandbox, state, "audit", "verify")


def raw_post(
    url: str, body: dict[str, Any], *, token: str | None = None, headers: Sequence[tuple[str, str]] = ()
) -> httpx2.Response:
    sent = {"accept": "application/json, text/event-stream", "content-type": "application/json", **dict(headers)}
    if token:
        sent["authorization"] = f"Bearer {token}"
    return httpx2.post(url, json=body, headers=sent, timeout=30)


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 0,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}
