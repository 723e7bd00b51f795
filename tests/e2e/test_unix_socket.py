"""`fleetbus serve --transport unix`: Streamable HTTP on a socket only its owner (or a configured group) may open;
the peer's uid, from SO_PEERCRED, is the client identity and picks its scopes."""

from __future__ import annotations

import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ERAS, ROOT, text
from tests.e2e.serving import HOSTNAME1, audit_records, http_client, unix_server
from tests.e2e.test_guard import started_worker

pytestmark = pytest.mark.sandbox
NOBODY = 65534

# The protocol version a handshake-era client announces in `initialize` and then sends as a header.
HANDSHAKE_VERSION = "2025-06-18"


@pytest.mark.parametrize("era", ERAS)
async def test_the_owner_is_served_as_the_operator(sandbox: Sandbox, tmp_path: Path, era: str) -> None:
    state, path = tmp_path / "state", tmp_path / "run" / "fleetbus.sock"
    with unix_server(sandbox, state, path) as served:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        async with http_client(served.url, era=era, uds=path) as client:
            result = await client.call_tool("get_property", HOSTNAME1)
    assert served.returncode == 0, served.output()
    assert not result.is_error, text(result)
    assert not path.exists(), "the socket is removed when the server stops"
    clients = {r["client"] for r in audit_records(state) if r["operation"]["member"] == "Get"}
    assert clients == {"uid:0"}


def post_as(uid: int, socket_path: Path, message: dict[str, Any], session: str | None) -> tuple[str, str]:
    """POST one JSON-RPC message over the socket from a process running as `uid`; (headers, body) of the answer.

    curl, not the SDK: the other user must not need to read this checkout or its virtualenv (a clone in a private
    directory, as CI makes), and /usr/bin/curl is there for everyone. A connection's SO_PEERCRED is that of the
    process that connected, so every request below is the other user's.
    """
    command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "curl", "--silent", "--show-error"]
    command += ["--max-time", "60", "--unix-socket", str(socket_path), "--dump-header", "-"]
    command += ["-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream"]
    if session is not None:
        command += ["-H", f"mcp-session-id: {session}", "-H", f"mcp-protocol-version: {HANDSHAKE_VERSION}"]
    command += ["--data-binary", json.dumps(message), "http://localhost/mcp"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False, cwd="/")
    assert done.returncode == 0, done.stderr
    headers, _, body = done.stdout.partition("\n\n")  # text mode turned CRLF into LF
    return headers, body


def answer_to(body: str, request_id: int) -> dict[str, Any]:
    """The JSON-RPC response with `request_id` in a plain JSON or an SSE (`data:` lines) body."""
    # An SSE stream may open with a priming event whose data is empty (for resumption); it answers nothing.
    data = [line[len("data:") :] for line in body.splitlines() if line.startswith("data:")]
    for candidate in [d for d in data if d.strip()] if data else [body]:
        message = json.loads(candidate)
        if isinstance(message, dict) and message.get("id") == request_id:
            return message
    raise AssertionError(f"no response to request {request_id} in {body!r}")


def run_as(uid: int, socket_path: Path, unit: str = "worker-peer.service") -> list[object]:
    """As `uid`: initialize, read hostname1's Hostname, try to restart `unit`; [read refused, restart refused, text]."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers, body = post_as(uid, socket_path, initialize, None)
    assert "result" in answer_to(body, 1), body
    session = next(
        line.split(":", 1)[1].strip() for line in headers.splitlines() if line.lower().startswith("mcp-session-id:")
    )
    post_as(uid, socket_path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    results = []
    for request_id, (tool, arguments) in enumerate(
        [("get_property", HOSTNAME1), ("unit_job", {"unit": unit, "action": "restart"})], start=2
    ):
        call = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        _, body = post_as(uid, socket_path, call, session)
        results.append(answer_to(body, request_id)["result"])
    read, change = results
    return [read["isError"], change["isError"], "".join(c.get("text", "") for c in change["content"])]


@pytest.fixture
def reachable(tmp_path: Path) -> Iterator[Path]:
    """A directory other users can traverse (pytest's own temporary directories are root's alone)."""
    directory = Path(tempfile.mkdtemp(prefix="fleetbus-socket-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_other_users_get_their_mapped_scopes(sandbox: Sandbox, tmp_path: Path, reachable: Path) -> None:
    group = grp.getgrgid(NOBODY).gr_name
    state, path = tmp_path / "state", reachable / "fleetbus.sock"
    with unix_server(sandbox, state, path, socket_group=group, safety="operator") as served:
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert path.stat().st_gid == NOBODY
        started_worker(sandbox, "worker-peer.service")
        read_ok, change_refused, message = run_as(NOBODY, path)
    assert served.returncode == 0, served.output()
    assert read_ok is False
    assert change_refused is True
    assert "client 'uid:65534' lacks scope units:write" in str(message)
    records = [r for r in audit_records(state) if r["client"] == f"uid:{NOBODY}"]
    assert {"succeeded", "denied"} <= {r["event"] for r in records}


def test_a_mapping_can_grant_more_or_less(sandbox: Sandbox, tmp_path: Path, reachable: Path) -> None:
    group = grp.getgrgid(NOBODY).gr_name
    state, path = tmp_path / "state", reachable / "fleetbus.sock"
    with unix_server(
        sandbox, state, path, socket_group=group, peer_scopes=f'{{"{NOBODY}": ["units:write:nothing-*"]}}'
    ) as served:
        read_refused, _, _ = run_as(NOBODY, path)
    assert served.returncode == 0, served.output()
    assert read_refused is True  # the mapping gave no read scope


def test_a_live_socket_is_not_taken_over(sandbox: Sandbox, tmp_path: Path) -> None:
    state, path = tmp_path / "state", tmp_path / "fleetbus.sock"
    with unix_server(sandbox, state, path):
        second = subprocess.run(
            [sys.executable, "-m", "fleetbus", "serve", "--transport", "unix", "--socket", str(path)],
            env={"PATH": os.environ["PATH"], **sandbox.env(), "FLEETBUS_STATE_DIR": str(tmp_path / "other")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
        assert second.returncode == 2
        assert "another server is listening" in second.stderr
        assert path.is_socket()
