"""SIGTERM is a graceful stop on every transport: calls in flight finish (or, past the deadline, are cancelled with
an error result), the audit log is flushed and still verifies, systemd hears READY/WATCHDOG/STOPPING, exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, server_env, text
from tests.e2e.serving import audit_records, http_client, http_server, mint, verify_audit

pytestmark = pytest.mark.sandbox


def slow(service: str, seconds: float) -> dict[str, Any]:
    """call_method of the example service's GetAfter, which answers after `seconds` (a read, per its policy)."""
    return {
        "service": service,
        "path": "/com/example/Fleet1",
        "interface": "com.example.Fleet1",
        "method": "GetAfter",
        "args": [seconds],
    }


@dataclass
class Stopped:
    result: Any
    returncode: int
    output: str
    after_signal: float
    """Seconds from the first SIGTERM until the server had exited."""


async def call_then_terminate(
    sandbox: Sandbox, example_service: str, state: Path, seconds: float, shutdown_timeout: str = "20", signals: int = 1
) -> Stopped:
    token = mint(sandbox, state, "slow-caller", "read")
    result: Any = None
    returncode = -1
    signalled = exited = 0.0
    with http_server(sandbox, state, shutdown_timeout=shutdown_timeout) as served:
        try:
            async with http_client(served.url, token) as client:
                # The SDK validates a result against the tool's output schema, listing tools first if it has not;
                # list them now, since a stopping server takes no new connections.
                await client.list_tools()
                call = asyncio.create_task(client.call_tool("call_method", slow(example_service, seconds)))
                await asyncio.sleep(0.8)  # the call is in flight
                signalled = time.monotonic()
                for _ in range(signals):
                    served.process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(0.2)
                result = await call
                returncode = await asyncio.to_thread(served.process.wait, 60)
                exited = time.monotonic()
        except* (httpx2.ConnectError, httpx2.RemoteProtocolError):
            pass  # leaving the session cannot reach a server that has exited
    assert result is not None, served.output()
    return Stopped(result, returncode, served.output(), exited - signalled)


async def test_sigterm_over_http_lets_a_slow_call_finish(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    stopped = await call_then_terminate(sandbox, example_service, state, 2.0)
    assert not stopped.result.is_error, text(stopped.result)
    assert stopped.result.structured_content is not None
    assert stopped.returncode == 0, stopped.output
    assert stopped.after_signal < 20  # the call's 2 s, not the 20 s deadline
    assert verify_audit(sandbox, state).returncode == 0
    events = [(r["event"], r["operation"]["member"]) for r in audit_records(state)]
    assert ("succeeded", "GetAfter") in events


async def test_sigterm_past_the_deadline_cancels_with_an_error_result(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    stopped = await call_then_terminate(sandbox, example_service, state, 8.0, shutdown_timeout="1")
    assert stopped.result.is_error
    assert "fleetbus stopped before this call finished" in text(stopped.result)
    assert stopped.returncode == 0, stopped.output
    assert verify_audit(sandbox, state).returncode == 0, verify_audit(sandbox, state).stderr
    failed = [r for r in audit_records(state) if r["event"] == "failed" and r["operation"]["member"] == "GetAfter"]
    assert failed, "the cancelled call is recorded as failed"


async def test_a_second_sigterm_stops_waiting(sandbox: Sandbox, example_service: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    stopped = await call_then_terminate(sandbox, example_service, state, 8.0, signals=2)
    assert stopped.result.is_error
    assert "fleetbus stopped before this call finished" in text(stopped.result)
    assert stopped.returncode == 0, stopped.output
    # Measured from the first SIGTERM, so a slow start on a loaded machine does not count: the call had more
    # than 7 s to go and the deadline is 20 s, and neither was waited for.
    assert stopped.after_signal < 5, stopped.after_signal
    assert verify_audit(sandbox, state).returncode == 0


def send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write((json.dumps(message) + "\n").encode())
    process.stdin.flush()


def initialize(process: subprocess.Popen[bytes]) -> None:
    send(
        process,
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        },
    )
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["id"] == 0
    send(process, {"jsonrpc": "2.0", "method": "notifications/initialized"})


def test_sigterm_over_stdio_answers_the_call_then_exits_0(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    notify_path = tmp_path / "notify"
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notifications.bind(str(notify_path))
    notifications.settimeout(10)
    env = {
        **server_env(sandbox, state_dir=str(state)),
        "NOTIFY_SOCKET": str(notify_path),
        "WATCHDOG_USEC": "200000",  # ping every 0.1 s
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=ROOT,
    )
    try:
        initialize(server)
        heard = [notifications.recv(4096).decode() for _ in range(3)]
        assert heard[0].startswith("READY=1")
        assert "WATCHDOG=1" in heard[1:]
        send(
            server,
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "call_method", "arguments": slow(example_service, 1.5)},
            },
        )
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        assert server.stdout is not None
        answer = next(m for m in map(json.loads, server.stdout) if m.get("id") == 7)  # past any notification
        assert answer["result"]["isError"] is False
        assert server.wait(timeout=30) == 0
        rest = []
        with contextlib.suppress(TimeoutError):
            notifications.settimeout(0.5)
            while True:
                rest.append(notifications.recv(4096).decode())
        assert "STOPPING=1" in rest
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        notifications.close()
    assert verify_audit(sandbox, state).returncode == 0
    events = [(r["event"], r["operation"]["member"]) for r in audit_records(state)]
    assert ("succeeded", "GetAfter") in events


def test_sigterm_with_an_idle_stdio_client_exits_promptly(sandbox: Sandbox, tmp_path: Path) -> None:
    """The client keeps stdin open and says nothing: the stop must not wait for it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=server_env(sandbox, state_dir=str(tmp_path / "state")),
        cwd=ROOT,
    )
    try:
        initialize(server)
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert time.monotonic() - started < 5
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
