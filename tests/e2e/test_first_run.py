"""The README's main job on what a newcomer gets: a clean clone of HEAD, no `.venv`, `scripts/run.sh` started by
an MCP client over stdio. Nothing it starts (the sandbox's processes, mounts, cgroups) may outlive it."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetbus.sandbox.control import DIRECTORY_PREFIX
from fleetbus.sandbox.layout import CgroupLayout, SandboxPaths
from tests.e2e.client import ROOT

pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(600), pytest.mark.xdist_group("fresh-clone")]

FIRST_ANSWER_SECONDS = 300.0
"""Creating the venv and installing fleetbus (~35-60 s here, pip's cache helps) comes before the first answer."""
ANSWER_SECONDS = 60.0
PROBE_UNIT = "first-run-probe.service"
READ_TOOLS = {"list_units", "unit_status", "get_property", "call_method"}
SYSTEMD = {
    "service": "org.freedesktop.systemd1",
    "path": "/org/freedesktop/systemd1",
    "interface": "org.freedesktop.systemd1.Manager",
}


@dataclass(frozen=True)
class Clone:
    root: Path
    tmpdir: Path
    """TMPDIR for run.sh: the sandbox is made there, so this test can tell its own sandbox from others'."""


@pytest.fixture(scope="module")
def clone() -> Iterator[Clone]:
    """A clean clone of the committed HEAD in a fresh private (0700) directory, as `mktemp -d` makes."""
    base = Path(tempfile.mkdtemp(prefix="fleetbus-first-run-"))
    try:
        root = base / "fleetbus"
        head = git(ROOT, "rev-parse", "HEAD")
        git(base, "clone", "--quiet", str(ROOT), str(root))
        # From a worktree or a detached checkout, the clone's HEAD may be another commit: take the one under test.
        git(root, "checkout", "--quiet", "--detach", head)
        assert not (root / ".venv").exists()
        tmpdir = base / "tmp"
        tmpdir.mkdir(mode=0o700)
        yield Clone(root, tmpdir)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


class StdioClient:
    """`scripts/run.sh` as an MCP client starts it: JSON-RPC lines on stdin and stdout, stderr for people."""

    def __init__(self, clone: Clone, *args: str) -> None:
        self.clone = clone
        self.stderr_path = clone.tmpdir.parent / f"stderr-{time.monotonic_ns()}.log"
        self._stderr = self.stderr_path.open("wb")
        # Only what any login has: no DBUS_* or FLEETBUS_* variables, run from an unrelated directory.
        env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "TMPDIR": str(clone.tmpdir)}
        self.process = subprocess.Popen(
            [str(clone.root / "scripts" / "run.sh"), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=clone.tmpdir,
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next_id = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"jsonrpc": "2.0", **message}).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any], timeout: float = ANSWER_SECONDS) -> dict[str, Any]:
        self._next_id += 1
        self.send({"id": self._next_id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no answer to {method} within {timeout:.0f} s; stderr:\n{self.stderr()}"
                ) from None
            if not line:
                raise AssertionError(f"stdout closed before the answer to {method}; stderr:\n{self.stderr()}")
            # Anything on stdout that is not JSON-RPC would break a client: a stray print fails here.
            message = json.loads(line)
            assert message.get("jsonrpc") == "2.0", message
            if message.get("id") == self._next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def initialize(self, timeout: float = ANSWER_SECONDS) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "first-run", "version": "1"}},
            timeout=timeout,
        )
        self.send({"method": "notifications/initialized"})
        return result

    def tool_names(self) -> set[str]:
        return {tool["name"] for tool in self.request("tools/list", {})["tools"]}

    def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments})

    def sandbox_directory(self) -> Path:
        found = sorted(self.clone.tmpdir.glob(f"{DIRECTORY_PREFIX}*"))
        assert len(found) == 1, f"expected this run's sandbox in {self.clone.tmpdir}, found {found}"
        return found[0]

    def close_stdin(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.wait()

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=60)
        finally:
            self._stderr.close()

    def stderr(self) -> str:
        # The child writes this file itself; the handle here is only passed to it.
        return self.stderr_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


def leftovers(directory: Path) -> list[str]:
    """What the sandbox in `directory` left on the machine: its directory, processes, mounts, cgroups."""
    found = [f"directory {directory}"] if directory.exists() else []
    cgroup = SandboxPaths(directory).cgroup_name
    found += [f"cgroup {h / cgroup}" for h in CgroupLayout.detect().hierarchies if (h / cgroup).exists()]
    needle = str(directory).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes() or needle in (entry / "mountinfo").read_bytes():
                found.append(f"pid {entry.name}: {(entry / 'cmdline').read_bytes()!r}")
        except OSError:
            continue
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line}" for line in mounts.splitlines() if str(directory) in line]
    return found


@contextlib.contextmanager
def run_sh(clone: Clone, *args: str) -> Iterator[StdioClient]:
    client = StdioClient(clone, *args)
    try:
        yield client
    finally:
        client.kill()


def test_a_fresh_clone_serves_mcp_over_stdio(clone: Clone) -> None:
    with run_sh(clone) as client:
        started = time.monotonic()
        hello = client.initialize(timeout=FIRST_ANSWER_SECONDS)
        first_answer = time.monotonic() - started
        tools = client.tool_names()
        directory = client.sandbox_directory()
        code = client.close_stdin()  # what a client does when it is done: the server and its sandbox end
    stderr = client.stderr()
    assert hello["serverInfo"]["name"] == "fleetbus", hello
    assert "tools" in hello["capabilities"]
    assert tools >= READ_TOOLS
    assert "set_property" not in tools  # the readonly preset, the default
    assert code == 0, stderr
    assert "fleetbus: serving MCP on stdio" in stderr  # the banner, on stderr
    assert str(clone.root / "scripts" / "run.sh") in stderr
    assert leftovers(directory) == []
    print(f"fresh clone: first answer after {first_answer:.1f} s")  # shown with pytest -s


def test_safety_and_units_reach_the_server_and_its_approvals_are_decided_from_any_shell(clone: Clone) -> None:
    units = clone.tmpdir.parent / "units"
    units.mkdir(exist_ok=True)
    (units / PROBE_UNIT).write_text("[Unit]\nDescription=First-run probe\n[Service]\nExecStart=/bin/sleep 300\n")
    restart = {**SYSTEMD, "method": "RestartUnit", "args": [PROBE_UNIT, "replace"]}
    # A relative --units is the caller's: run.sh is started in clone.tmpdir.
    with run_sh(clone, "--safety", "operator", "--units", os.path.relpath(units, clone.tmpdir)) as client:
        client.initialize(timeout=FIRST_ANSWER_SECONDS)
        tools = client.tool_names()
        asked = client.call("call_method", **restart)
        approved = run_the_approve_line(text(asked))
        again = client.call("call_method", **restart)  # approved: the restart starts the probe unit
        status = client.call("unit_status", unit=PROBE_UNIT, lines=0)
        directory = client.sandbox_directory()
        client.process.send_signal(signal.SIGTERM)
        code = client.wait()
    assert "set_property" in tools  # operator: changes are listed (they wait for approval)
    assert asked.get("isError"), asked
    assert "needs a person's approval" in text(asked)
    assert approved.returncode == 0, approved.stderr
    assert "approved" in approved.stdout
    assert not again.get("isError"), again
    assert not status.get("isError"), status
    assert (status["structuredContent"]["load"], status["structuredContent"]["active"]) == ("loaded", "active")
    assert code == 0, client.stderr()  # SIGTERM reaches the server, which stops cleanly; then the sandbox goes
    assert leftovers(directory) == []


def test_run_sh_with_stdin_closed_prints_its_banner_and_ends(clone: Clone) -> None:
    """`scripts/run.sh </dev/null`, the README's first command: a banner, then a clean end."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "TMPDIR": str(clone.tmpdir)}
    done = subprocess.run(
        [str(clone.root / "scripts" / "run.sh")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        cwd=clone.tmpdir,
        timeout=FIRST_ANSWER_SECONDS,
        check=False,
    )
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert done.stdout == b""  # stdout is the MCP stream: nothing else may be written there
    assert "fleetbus: serving MCP on stdio" in stderr
    assert list(clone.tmpdir.glob(f"{DIRECTORY_PREFIX}*")) == []


def run_the_approve_line(message: str) -> subprocess.CompletedProcess[str]:
    """What a person does with an approval message: copy its approve line into a shell of their own."""
    lines = [line.strip() for line in message.splitlines() if " approve " in f" {line} "]
    assert len(lines) == 1, message
    # No sandbox variables, another working directory: only what the line itself says.
    plain = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        ["sh", "-c", lines[0]], env=plain, cwd="/", capture_output=True, text=True, timeout=60, check=False
    )


def text(result: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in result.get("content", []))
