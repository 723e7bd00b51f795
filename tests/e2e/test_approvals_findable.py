"""A person finds the server's approval requests from a plain shell: the approval message is a command that works
pasted anywhere, and `fleetbus approvals|approve` look in running sandboxes' stores when none is named."""

from __future__ import annotations

import calendar
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import call, serve, text

pytestmark = pytest.mark.sandbox

SYSTEMD = {
    "service": "org.freedesktop.systemd1",
    "path": "/org/freedesktop/systemd1",
    "interface": "org.freedesktop.systemd1.Manager",
}
WORKER = "[Unit]\nDescription=A worker to restart\n[Service]\nExecStart=/bin/sleep infinity\n"
PLAIN = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/root")}
"""A person's own shell: no FLEETBUS_* or sandbox variables, and fleetbus not on its PATH."""


def restart(unit: str) -> dict[str, object]:
    return {**SYSTEMD, "method": "RestartUnit", "args": [unit, "replace"]}


def started(sandbox: Sandbox, unit: str) -> str:
    sandbox.write_unit(unit, WORKER)
    sandbox.systemd("StartUnit", "ss", unit, "replace")
    return unit


def in_a_plain_shell(command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], env=PLAIN, cwd="/", capture_output=True, text=True, timeout=60, check=False
    )


def fleetbus_plain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", *args],
        env=PLAIN,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def approve_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if " approve " in f" {line} "]
    assert len(lines) == 1, message
    return lines[0]


def approval_id(message: str) -> str:
    return message.split("Approval id ", 1)[1].split(maxsplit=1)[0]


async def test_the_message_is_a_command_that_works_from_any_shell(sandbox: Sandbox, tmp_path: Path) -> None:
    unit = started(sandbox, "worker-paste.service")
    elsewhere = tmp_path / "elsewhere"  # a state directory only the server's environment names
    async with serve(sandbox, "legacy", safety="operator", state_dir=str(elsewhere)) as client:
        asked = await call(client, "call_method", **restart(unit))
        line = approve_line(text(asked))
        approved = in_a_plain_shell(line)
        done = await call(client, "call_method", **restart(unit))
    assert asked.is_error
    assert f"--state-dir {elsewhere}" in line
    assert line.startswith(str(Path(sys.executable).with_name("fleetbus")))  # absolute: no PATH needed
    assert approved.returncode == 0, (line, approved.stderr)
    assert not done.is_error, text(done)


async def test_a_plain_approve_finds_the_running_sandbox_store(sandbox: Sandbox) -> None:
    unit = started(sandbox, "worker-found.service")
    # The server keeps its state in the sandbox (FLEETBUS_STATE_DIR from the sandbox's environment).
    async with serve(sandbox, "legacy", safety="operator") as client:
        asked = await call(client, "call_method", **restart(unit))
        wanted = approval_id(text(asked))
        listed = fleetbus_plain("approvals")
        approved = fleetbus_plain("approve", wanted)
        done = await call(client, "call_method", **restart(unit))
        again = await call(client, "call_method", **restart(unit))
        refused = fleetbus_plain("deny", approval_id(text(again)))
        retried = await call(client, "call_method", **restart(unit))
    assert wanted in listed.stdout, listed.stderr
    assert f"# {sandbox.paths.state_dir / 'approvals'} (sandbox {sandbox.paths.root})" in listed.stdout
    assert approved.returncode == 0, approved.stderr
    assert not done.is_error, text(done)
    assert refused.returncode == 0, refused.stderr
    assert retried.is_error
    # The refusal says until when it stands: the request's expiry, some 15 minutes from now.
    until = text(retried).split("refused until ", 1)[1].split(",", 1)[0]
    remaining = calendar.timegm(time.strptime(until, "%Y-%m-%dT%H:%M:%SZ")) - time.time()
    assert 800 < remaining <= 900, text(retried)


def test_an_unknown_id_names_every_store_looked_in(sandbox: Sandbox) -> None:
    missing = fleetbus_plain("approve", "0badcafe")
    assert missing.returncode == 1
    assert "no approval 0badcafe in " in missing.stderr
    assert f"{sandbox.paths.state_dir / 'approvals'} (sandbox {sandbox.paths.root})" in missing.stderr
