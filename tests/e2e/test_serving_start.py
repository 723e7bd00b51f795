"""What `fleetbus serve` does at start: stdio loads no HTTP stack (a faster, smaller cold start)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, server_env

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
    answers = [json.loads(server.stdout.readline()) for _ in range(2)]
    assert [answer["id"] for answer in answers] == [1, 2]
    assert answers[1]["result"]["tools"], "it served: tools were listed"
    _, stderr = server.communicate(timeout=60)  # end of input: the server stops
    assert server.returncode == 0, stderr
    report = next(line for line in stderr.splitlines() if line.startswith("MODULES "))
    loaded = set(json.loads(report.removeprefix("MODULES ")))
    assert "fleetbus.server.stdio" in loaded
    assert loaded.isdisjoint(HTTP_STACK), sorted(loaded & set(HTTP_STACK))
