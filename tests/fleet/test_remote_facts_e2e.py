"""The Done means that need host facts read on the host itself (the facts work: figures and the journal through the
host's runner), over MCP stdio on a simulated fleet. These fail until that work is merged: every figure here must
come from host03, never from the machine fleetbus runs on."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import call, serve, text

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-remote-facts")]


def on_host(sandbox: Sandbox, host: str, *argv: str) -> str:
    env = sandbox.with_fleet_path({**os.environ, **sandbox.env()})
    done = subprocess.run(["ssh", host, *argv], capture_output=True, text=True, timeout=30, env=env, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, text(result)
    value: dict[str, Any] = result.structured_content
    return value


async def test_host_info_describes_host03(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    machine_id = on_host(fleet_sandbox, "host03", "cat", "/etc/machine-id")
    boot_id = on_host(fleet_sandbox, "host03", "cat", "/proc/sys/kernel/random/boot_id")
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "state")) as client:
        info = structured(await call(client, "host_info", host="host03", format="json"))
    assert info["hostname"] == "host03"
    assert info["machine_id"] == machine_id
    assert info["boot_id"] == boot_id.replace("-", "")  # as journald writes _BOOT_ID


async def test_system_status_and_processes_are_host03s(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    pid_one = on_host(fleet_sandbox, "host03", "cat", "/proc/1/comm")
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "state")) as client:
        status = structured(await call(client, "system_status", host="host03", format="json"))
        assert status["load"] is not None
        processes = structured(await call(client, "top_processes", host="host03", limit=50, format="json"))
        local = structured(await call(client, "top_processes", limit=50, format="json"))
    # host03 has a PID namespace of its own: its process 1 is its own init, and far fewer processes run there.
    rows = processes["processes"]
    assert any(row["pid"] == 1 and row["name"] == pid_one for row in rows), rows
    assert len(rows) < len(local["processes"]) or processes.get("total", 0) < local.get("total", 0)


async def test_query_journal_reads_host03s_journal(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    marker = f"fleetbus-remote-journal-{uuid.uuid4().hex}"
    on_host(fleet_sandbox, "host03", "systemd-cat", "-t", "fleetbus-probe", "echo", marker)
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "state")) as client:
        on03 = structured(await call(client, "query_journal", host="host03", grep=marker, format="json"))
        on01 = structured(await call(client, "query_journal", host="host01", grep=marker, format="json"))
    assert [row["message"] for row in on03["entries"]] == [marker]
    assert on01["entries"] == []


async def test_health_check_and_unit_status_with_lines_on_host03(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "state")) as client:
        health = await call(client, "health_check", host="host03", format="json")
        assert not health.is_error, text(health)
        status = structured(await call(client, "unit_status", host="host03", unit="dbus.service", format="json"))
    assert status["active"] == "active"
    assert isinstance(status["lines"], list)
