"""What `fleetbus serve` does at start: stdio loads no HTTP stack (a faster, smaller cold start); HTTP and a unix
socket say, at the default log level, where they listen and how a client gets in."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, server_env
from tests.e2e.serving import fleetbus, free_port, mint

pytestmark = pytest.mark.sandbox

HTTP_STACK = ("fleetbus.server.http", "fleetbus.server.issuer", "uvicorn.protocols.http.h11_impl", "h11", "jwt")
"""Modules only Streamable HTTP needs (the SDK itself imports uvicorn's package and starlette, not these)."""
HANDSHAKE = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}},
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]
# The real entry point (what the `fleetbus` script runs), then a report of what it had imported.
SERVE_AND_REPORT = """
import json, sys
from fleetbus.cli import main
code = main(["serve"])
print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr)
sys.exit(code)
"""


def test_serving_stdio_imports_no_http_stack(sandbox: Sandbox) -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", SERVE_AND_REPORT],
        env=server_env(sandbox),
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write("".join(json.dumps(message) + "\n" for message in HANDSHAKE))
    server.stdin.flush()
    answers: dict[int, dict[str, Any]] = {}
    while len(answers) < 2:  # notifications (tools/list_changed…) may come between the answers
        message = json.loads(server.stdout.readline())
        if "id" in message:
            answers[message["id"]] = message
    assert answers[2]["result"]["tools"], "it served: tools were listed"
    _, stderr = server.communicate(timeout=60)  # end of input: the server stops
    assert server.returncode == 0, stderr
    report = next(line for line in stderr.splitlines() if line.startswith("MODULES "))
    loaded = set(json.loads(report.removeprefix("MODULES ")))
    assert "fleetbus.server.stdio" in loaded
    assert loaded.isdisjoint(HTTP_STACK), sorted(loaded & set(HTTP_STACK))


def started(sandbox: Sandbox, state: Path, *transport: str, lines: int) -> list[str]:
    """The first `lines` lines `fleetbus serve TRANSPORT…` prints on stderr, at the default log level; then it
    is stopped."""
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "serve", *transport],
        env=server_env(sandbox, state_dir=str(state)),
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        return [server.stderr.readline() for _ in range(lines)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def test_serving_http_says_where_it_listens_and_how_to_get_a_token(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    mint(sandbox, state, "first", "read")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    banner = started(sandbox, state, "--transport", "http", "--listen", f"127.0.0.1:{port}", lines=3)
    assert banner[0] == f"fleetbus serves MCP (Streamable HTTP) at {url}\n"
    assert f"1 active in {state / 'tokens.json'}" in banner[1]
    mint_command = banner[1].split("`")[1]  # copy-pasteable: it mints into the store this server reads
    minted = fleetbus(sandbox, tmp_path / "elsewhere", *shlex.split(mint_command)[1:])
    assert minted.returncode == 0, minted.stderr
    assert len(json.loads((state / "tokens.json").read_text())["tokens"]) == 2
    config = json.loads(banner[2].split("client config: ", 1)[1])
    assert config["mcpServers"]["fleetbus"]["url"] == url


def test_serving_a_unix_socket_says_where_and_who_may_call(sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "fleetbus.sock"
    banner = started(sandbox, tmp_path / "state", "--transport", "unix", "--socket", str(path), lines=3)
    assert banner[0] == f"fleetbus serves MCP (Streamable HTTP) on the unix socket {path} (mode 0600, owner root)\n"
    assert "http://localhost/mcp" in banner[1]
    assert "identified by uid" in banner[2]
