"""Simulated hosts for a person at a shell: `sandbox start --hosts`, `exec`, `stop`, and a `sandbox run` whose
controller is killed outright still takes its hosts with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetbus.sandbox import Sandbox
from tests.fleet.test_teardown import processes_mentioning

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-cli")]

FLEETBUS = [sys.executable, "-m", "fleetbus"]


def fleetbus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEETBUS, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_start_exports_the_fleet_and_exec_reaches_its_hosts_by_name() -> None:
    started = fleetbus("sandbox", "start", "--hosts", "2")
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export "))
    directory = exports["FLEETBUS_SANDBOX"]
    try:
        assert exports["FLEETBUS_INVENTORY"] == f"{directory}/fleet/inventory.ini"
        assert exports["PATH"] == f'{directory}/fleet/bin:"$PATH"'
        inside = fleetbus("sandbox", "exec", directory, "--", "sh", "-c", "ssh host01 hostname; ssh host02 hostname")
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout.split() == ["host01", "host02"]
        hosts = json.loads((Path(directory) / "state.json").read_text())["fleet"]
        assert [h["name"] for h in hosts] == ["host01", "host02"]
    finally:
        stopped = fleetbus("sandbox", "stop", directory)
    assert stopped.returncode == 0, stopped.stderr
    assert processes_mentioning(directory) == []
    assert not Path(directory).exists()


def test_hosts_end_with_a_sandbox_run_whose_controller_is_killed() -> None:
    runner = subprocess.Popen(
        [*FLEETBUS, "sandbox", "run", "--hosts", "2", "--", "sh", "-c", 'echo "$FLEETBUS_SANDBOX"; exec sleep 300'],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert runner.stdout is not None
    directory = runner.stdout.readline().strip()
    hosts = json.loads((Path(directory) / "state.json").read_text())["fleet"]
    keepers = [int(h["keeper_pid"]) for h in hosts]
    assert all(Path(f"/proc/{pid}").exists() for pid in keepers)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    deadline = time.monotonic() + 20
    while any(Path(f"/proc/{pid}").exists() for pid in keepers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in keepers)
    # What a killed controller could not remove (its directory), `stop` does.
    Sandbox.attach(Path(directory)).stop()
    assert processes_mentioning(directory) == []
    assert not Path(directory).exists()
