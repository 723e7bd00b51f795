"""Socket activation, natively: fleetbus serves the sockets systemd passes (LISTEN_FDS) — Accept=no, one server for
many clients; Accept=yes, one instance per connection speaking stdio framing. Quick tests use
`systemd-socket-activate`; then the real units (deploy/systemd, user variant, written by `fleetbus install`) run in
a sandbox's systemd manager: started by the first connection, serving clients one after another and at once,
surviving a restart of the service with the socket kept, and an instance per connection with the drop-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e import inspector
from tests.e2e.client import ERAS, ROOT, server_env, text
from tests.e2e.serving import HOSTNAME1, audit_records, free_port, http_client, mint

pytestmark = pytest.mark.sandbox

PASSED_ENV = ["DBUS_SYSTEM_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS", "PATH"]
PASSED_ENV += [f"FLEETBUS_{name}" for name in ("STATE_DIR", "POLICY_FILE", "JOURNAL_SOCKET", "JOURNAL_DIRECTORY")]


@contextlib.contextmanager
def socket_activate(sandbox: Sandbox, state: Path, listen: str, *flags: str) -> Iterator[subprocess.Popen[str]]:
    """`systemd-socket-activate` listening on `listen`, starting `fleetbus serve` on the first connection."""
    env = server_env(sandbox, state_dir=str(state))
    command = ["systemd-socket-activate", "-l", listen, *flags]
    command += [arg for name in PASSED_ENV for arg in ("-E", name)]
    command += [sys.executable, "-m", "fleetbus", "--log-level", "INFO", "serve"]
    activator = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert activator.stderr is not None
    try:
        line = activator.stderr.readline()
        assert line.startswith("Listening on"), line
        yield activator
    finally:
        # The activator passes SIGTERM on to fleetbus (Accept=no) and ends.
        activator.send_signal(signal.SIGTERM)
        try:
            activator.wait(timeout=30)
        except subprocess.TimeoutExpired:
            activator.kill()
            activator.wait()


async def test_accept_no_serves_many_clients_on_the_passed_unix_socket(sandbox: Sandbox, tmp_path: Path) -> None:
    state, path = tmp_path / "state", tmp_path / "fleetbus.sock"
    with socket_activate(sandbox, state, str(path)):
        for era in ERAS:  # one after the other
            async with http_client("http://localhost/mcp", era=era, uds=path) as client:
                assert not (await client.call_tool("get_property", HOSTNAME1)).is_error

        async def one(era: str) -> bool:
            async with http_client("http://localhost/mcp", era=era, uds=path) as client:
                return not (await client.call_tool("get_property", HOSTNAME1)).is_error

        assert await asyncio.gather(*(one(ERAS[i % 2]) for i in range(4))) == [True] * 4  # at once
    served = [r for r in audit_records(state) if r["operation"]["member"] == "Get" and r["event"] == "succeeded"]
    assert len(served) == 6
    assert {r["client"] for r in served} == {"uid:0"}


def test_accept_no_over_tcp_needs_tokens(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    token = mint(sandbox, state, "activated", "read")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with socket_activate(sandbox, state, f"127.0.0.1:{port}"):
        refused = inspector.inspector(url, "--method", "tools/list")
        called = inspector.inspector(
            url,
            "--method",
            "tools/call",
            "--tool-name",
            "get_property",
            "--tool-args-json",
            json.dumps(HOSTNAME1),
            token=token,
        )
    assert "auth_required" in refused.stdout + refused.stderr
    assert called.returncode == 0, called.stderr
    assert called.json()["result"]["structuredContent"]["value"] == sandbox.hostname
    assert "activated" in {r["client"] for r in audit_records(state)}


class LineClient:
    """MCP's stdio framing (one JSON message per line) over a unix-socket connection."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(str(path))
        self.lines = self.sock.makefile("rb")
        self.next_id = 1

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        number, self.next_id = self.next_id, self.next_id + 1
        self.sock.sendall(json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params}).encode())
        self.sock.sendall(b"\n")
        for line in self.lines:
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == number:
                return message
        raise AssertionError("connection closed before the answer")

    def initialize(self) -> None:
        info = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        assert "result" in self.request("initialize", info)
        self.sock.sendall(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def hostname(self) -> str:
        answer = self.request("tools/call", {"name": "get_property", "arguments": HOSTNAME1})
        assert answer["result"]["isError"] is False, answer
        return str(answer["result"]["structuredContent"]["value"])

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


def test_accept_yes_speaks_stdio_framing_one_instance_per_connection(sandbox: Sandbox, tmp_path: Path) -> None:
    state, path = tmp_path / "state", tmp_path / "fleetbus.sock"
    with socket_activate(sandbox, state, str(path), "--accept") as activator:
        first, second = LineClient(path), LineClient(path)
        for client in (first, second):
            client.initialize()
            assert client.hostname() == sandbox.hostname
        first.close()
        second.close()
        # Each instance ends when its connection closes; the activator logs it when it reaps the instance, so
        # wait (bounded) until it has no child left rather than for a fixed time a loaded machine may overrun.
        deadline = time.monotonic() + 30
        while psutil.Process(activator.pid).children() and time.monotonic() < deadline:
            time.sleep(0.05)
    assert activator.stderr is not None
    log = activator.stderr.read()
    spawned = [line for line in log.splitlines() if line.startswith("Spawned")]
    assert len(spawned) == 2, log
    assert log.count("died with code 0") == 2, log


# ---- the units, in a sandbox's systemd manager ----------------------------------------------------


@pytest.fixture(scope="module")
def manager() -> Iterator[Sandbox]:
    """A sandbox of its own, outside /tmp: the units' PrivateTmp= would hide a sandbox (and its HOME) kept there."""
    base = ROOT / ".sandboxes"
    base.mkdir(exist_ok=True)
    with Sandbox.create(base, die_with_parent=True) as started:
        yield started


def install_units(sandbox: Sandbox, *flags: str) -> None:
    """`fleetbus install --user` with the sandbox's HOME: the units land in its manager's unit directory."""
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleetbus",
            "install",
            "--user",
            "--force-config",
            "--exec",
            f"{sys.executable} -m fleetbus",
            *flags,
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(sandbox.paths.home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    assert "fleetbus.socket" in installed.stdout
    config = sandbox.paths.home / ".config" / "fleetbus" / "config.toml"
    policy = ROOT / "tests" / "policies" / "example_service.toml"
    config.write_text(config.read_text() + f'policy_file = "{policy}"\n')
    if ROOT.is_relative_to("/tmp"):
        # PrivateTmp= gives the service an empty /tmp, which would hide a checkout kept there (its virtualenv is
        # the ExecStart= above). Only then, and only here, is it lifted; the shipped units keep it.
        units = sandbox.paths.home / ".config" / "systemd" / "user"
        for unit in ("fleetbus.service", "fleetbus@.service"):
            dropin = units / f"{unit}.d" / "checkout-in-tmp.conf"
            dropin.parent.mkdir(parents=True, exist_ok=True)
            dropin.write_text("[Service]\nPrivateTmp=no\n")
    sandbox.reload()


def unit_property(sandbox: Sandbox, unit: str, name: str, interface: str = "Unit") -> str:
    path = sandbox.systemd("LoadUnit", "s", unit).split()[1].strip('"')
    value = sandbox.busctl(
        "get-property", "org.freedesktop.systemd1", path, f"org.freedesktop.systemd1.{interface}", name
    )
    return value.split(" ", 1)[1].strip().strip('"')


def wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def socket_path(sandbox: Sandbox) -> Path:
    return sandbox.paths.run / "user" / "0" / "fleetbus" / "fleetbus.sock"  # %t/fleetbus/fleetbus.sock, seen outside


async def hostname_over_http(path: Path, era: str = "legacy") -> str:
    async with http_client("http://localhost/mcp", era=era, uds=path) as client:
        result = await client.call_tool("get_property", HOSTNAME1)
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return str(result.structured_content["value"])


async def test_the_socket_unit_starts_the_service_on_the_first_connection(manager: Sandbox) -> None:
    install_units(manager)
    manager.systemd("StartUnit", "ss", "fleetbus.socket", "replace")
    path = socket_path(manager)
    wait_for(path.is_socket, "the socket")
    assert path.stat().st_mode & 0o777 == 0o600
    assert unit_property(manager, "fleetbus.service", "ActiveState") == "inactive"

    assert await hostname_over_http(path) == manager.hostname  # true activation: this connection starts it
    wait_for(lambda: unit_property(manager, "fleetbus.service", "ActiveState") == "active", "READY=1")
    assert unit_property(manager, "fleetbus.service", "StatusText", "Service").startswith("serving http+unix://")
    first_pid = unit_property(manager, "fleetbus.service", "MainPID", "Service")

    assert await hostname_over_http(path, "2026-07-28") == manager.hostname  # a second client, after the first
    together = await asyncio.gather(*(hostname_over_http(path, ERAS[i % 2]) for i in range(4)))  # and at once
    assert together == [manager.hostname] * 4
    assert unit_property(manager, "fleetbus.service", "MainPID", "Service") == first_pid  # one server for all

    manager.systemd("RestartUnit", "ss", "fleetbus.service", "replace")
    wait_for(
        lambda: unit_property(manager, "fleetbus.service", "MainPID", "Service") not in ("0", first_pid), "restart"
    )
    assert path.is_socket(), "the socket survives a restart of the service"
    assert unit_property(manager, "fleetbus.socket", "ActiveState") == "active"
    assert await hostname_over_http(path) == manager.hostname

    # Under systemd, fleetbus logs to journald natively, with structured fields.
    entries = [json.loads(line) for line in manager.journal("SYSLOG_IDENTIFIER=fleetbus", "-o", "json").splitlines()]
    serving = [e for e in entries if e.get("FLEETBUS_LOGGER") == "fleetbus.server.stopping"]
    assert any(e["MESSAGE"].startswith("fleetbus serving") and e["PRIORITY"] == "6" for e in serving), entries[-5:]
    assert all("CODE_FILE" in e for e in serving)

    manager.systemd("StopUnit", "ss", "fleetbus.service", "replace")
    wait_for(lambda: unit_property(manager, "fleetbus.service", "ActiveState") == "inactive", "the stop")
    assert unit_property(manager, "fleetbus.service", "Result", "Service") == "success"  # exit 0 on SIGTERM
    manager.systemd("StopUnit", "ss", "fleetbus.socket", "replace")


def test_the_template_serves_one_connection_per_instance(manager: Sandbox) -> None:
    install_units(manager, "--per-connection")
    manager.systemd("StopUnit", "ss", "fleetbus.socket", "replace")
    manager.systemd("StartUnit", "ss", "fleetbus.socket", "replace")
    path = socket_path(manager)
    wait_for(path.is_socket, "the socket")

    def instances() -> list[str]:
        listed = manager.systemd("ListUnitsByPatterns", "asas", "1", "active", "1", "fleetbus@*.service")
        return [word.strip('"') for word in listed.split() if word.startswith('"fleetbus@')]

    first, second = LineClient(path), LineClient(path)
    try:
        for client in (first, second):
            client.initialize()
            assert client.hostname() == manager.hostname
        wait_for(lambda: len(instances()) == 2, "two instances")
    finally:
        first.close()
        second.close()
    wait_for(lambda: instances() == [], "the instances to end with their connections")
    manager.systemd("StopUnit", "ss", "fleetbus.socket", "replace")
