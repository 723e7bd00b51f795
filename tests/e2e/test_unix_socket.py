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

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ERAS, ROOT, text
from tests.e2e.serving import HOSTNAME1, audit_records, http_client, unix_server
from tests.e2e.test_guard import started_worker

pytestmark = pytest.mark.sandbox
NOBODY = 65534

# A client run as another user: the SDK over the unix socket, printing what the server answered.
AS_ANOTHER_USER = """
import asyncio, json, sys
from pathlib import Path
from tests.e2e.serving import http_client, HOSTNAME1
async def main():
    async with http_client("http://localhost/mcp", uds=Path(sys.argv[1])) as client:
        read = await client.call_tool("get_property", HOSTNAME1)
        change = await client.call_tool("restart_unit", {"unit": sys.argv[2]})
    print(json.dumps([read.is_error, change.is_error, "".join(c.text for c in change.content)]))
asyncio.run(main())
"""


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


def run_as(uid: int, socket_path: Path, unit: str = "worker-peer.service") -> list[object]:
    done = subprocess.run(
        [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            sys.executable,
            "-c",
            AS_ANOTHER_USER,
            str(socket_path),
            unit,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    answer: list[object] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


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
