"""The sandbox itself: real services on a private bus, units and journal, and a clean machine afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.layout import CgroupLayout, SandboxPaths

pytestmark = pytest.mark.sandbox

FLEETBUS = [sys.executable, "-m", "fleetbus"]
EXPECTED_NAMES = (
    "org.freedesktop.systemd1",
    "org.freedesktop.hostname1",
    "org.freedesktop.timedate1",
    "org.freedesktop.locale1",
    "org.freedesktop.login1",
    "org.freedesktop.PolicyKit1",
)
CAP_SYS_TIME = 25


def fleetbus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEETBUS, *args], capture_output=True, text=True, timeout=timeout, check=False)


def machine_fingerprint() -> dict[str, object]:
    """What a sandbox must leave exactly as it found it."""
    return {
        "hostname": socket.gethostname(),
        "run": sorted(os.listdir("/run")),
        "run_dbus": sorted(os.listdir("/run/dbus")),
        "etc_hostname": Path("/etc/hostname").read_text() if Path("/etc/hostname").exists() else None,
        "machine_id": Path("/etc/machine-id").read_text() if Path("/etc/machine-id").exists() else None,
        "mounts": sorted(line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()),
    }


def leftovers(directory: str) -> list[str]:
    """Processes and cgroups the sandbox in `directory` left behind (other tests' sandboxes may be running)."""
    cgroup = SandboxPaths(Path(directory)).cgroup_name
    found = [f"cgroup {h / cgroup}" for h in CgroupLayout.detect().hierarchies if (h / cgroup).exists()]
    return found + [f"pid {pid}" for pid in sandbox_processes(directory)]


def sandbox_processes(directory: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if directory.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_real_services_are_on_the_private_system_bus() -> None:
    result = fleetbus("sandbox", "run", "--", "sh", "-c", "busctl --address=$DBUS_SYSTEM_BUS_ADDRESS list --no-pager")
    assert result.returncode == 0, result.stderr
    for name in EXPECTED_NAMES:
        assert name in result.stdout, f"{name} missing from:\n{result.stdout}"


def test_the_service_manager_lists_units_over_the_system_bus() -> None:
    call = (
        "busctl --address=$DBUS_SYSTEM_BUS_ADDRESS call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
        "org.freedesktop.systemd1.Manager ListUnits"
    )
    result = fleetbus("sandbox", "run", "--", "sh", "-c", call)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("a(ssssssouso) ")
    assert '"dbus.service" "D-Bus System Message Bus" "loaded" "active" "running"' in result.stdout


def test_units_given_with_units_start_and_their_output_reaches_the_journal(tmp_path: Path) -> None:
    marker = f"hello-{os.getpid()}-{time.time_ns()}"
    # The greeter stays a moment after its line: journald ties a line to its unit through the sender's cgroup,
    # which a process that already exited no longer has. And journald reads the stream when it gets to it.
    (tmp_path / "hello.service").write_text(
        f"[Unit]\nDescription=Greeter\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo {marker}; sleep 1'\n"
    )
    read = "journalctl -u hello.service -o cat --no-pager"
    wait = f"for i in $(seq 100); do {read} | grep -q {marker} && break; sleep 0.1; done"
    script = f"systemctl start hello.service && {wait}; {read}"
    result = fleetbus("sandbox", "run", "--units", str(tmp_path), "--", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout.splitlines()


def test_the_command_exit_code_is_returned_and_nothing_is_left_behind() -> None:
    before = machine_fingerprint()
    result = fleetbus("sandbox", "run", "--", "sh", "-c", 'echo "$FLEETBUS_SANDBOX"; sleep 300 & exit 7')
    assert result.returncode == 7, result.stderr
    directory = result.stdout.strip()
    assert directory.startswith("/")
    assert not Path(directory).exists()
    assert leftovers(directory) == []
    assert machine_fingerprint() == before


def test_an_interrupted_run_still_tears_down() -> None:
    before = machine_fingerprint()
    script = 'echo "$FLEETBUS_SANDBOX"; exec sleep 300'
    runner = subprocess.Popen(
        [*FLEETBUS, "sandbox", "run", "--", "sh", "-c", script], stdout=subprocess.PIPE, text=True
    )
    assert runner.stdout is not None
    directory = runner.stdout.readline().strip()
    assert Path(directory).is_dir()
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=60) == 128 + signal.SIGTERM
    assert not Path(directory).exists()
    assert leftovers(directory) == []
    assert machine_fingerprint() == before


def test_two_sandboxes_run_side_by_side() -> None:
    with Sandbox.create(die_with_parent=True) as first, Sandbox.create(die_with_parent=True) as second:
        names = []
        for box in (first, second):
            out = box.busctl(
                "get-property",
                "org.freedesktop.hostname1",
                "/org/freedesktop/hostname1",
                "org.freedesktop.hostname1",
                "Hostname",
            )
            names.append(out.strip())
            inside = box.run(["hostname"], capture_output=True, text=True, check=True).stdout.strip()
            assert out.strip() == f's "{inside}"'
        assert names[0] != names[1]
        assert first.paths.system_bus_socket != second.paths.system_bus_socket


def test_a_killed_keeper_is_cleaned_up_from_outside() -> None:
    before = machine_fingerprint()
    box = Sandbox.create(die_with_parent=True)
    directory = str(box.paths.root)
    os.kill(box.keeper_pid, signal.SIGKILL)
    box.stop()
    assert leftovers(directory) == []
    assert not Path(directory).exists()
    assert machine_fingerprint() == before


def capability_bounding_set(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no CapBnd for {pid}")


def test_nothing_in_the_sandbox_can_set_the_clock(sandbox: Sandbox) -> None:
    # Activate timedated, then check the bounding set of every process in the sandbox's cgroups.
    sandbox.busctl(
        "get-property",
        "org.freedesktop.timedate1",
        "/org/freedesktop/timedate1",
        "org.freedesktop.timedate1",
        "Timezone",
    )
    command = sandbox.popen(["sleep", "30"])
    try:
        time.sleep(0.3)
        pids = CgroupLayout.detect().pids(sandbox.paths.cgroup_name) | {sandbox.keeper_pid}
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in pids if Path(f"/proc/{p}").exists()}
        assert {"systemd", "systemd-timedat", "systemd-journal", "sleep"} <= names
        for pid in pids:
            if Path(f"/proc/{pid}").exists():
                assert not capability_bounding_set(pid) & (1 << CAP_SYS_TIME), f"pid {pid} may set the clock"
    finally:
        command.kill()
        command.wait()


def test_start_env_exec_stop_for_people_at_a_shell() -> None:
    started = fleetbus("sandbox", "start")
    assert started.returncode == 0, started.stderr
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines() if line.startswith("export ")
    )
    directory = exports["FLEETBUS_SANDBOX"]
    try:
        assert fleetbus("sandbox", "env", directory).stdout == started.stdout.split("# stop")[0].rstrip() + "\n"
        inside = fleetbus("sandbox", "exec", directory, "--", "cat", "/etc/hostname")
        state = json.loads((Path(directory) / "state.json").read_text())
        assert inside.stdout.strip() == state["hostname"]
    finally:
        stopped = fleetbus("sandbox", "stop", directory)
    assert stopped.returncode == 0, stopped.stderr
    assert not Path(directory).exists()
    assert leftovers(directory) == []


def test_exec_without_a_directory_takes_the_sandbox_from_the_environment_and_the_command_after_dashes() -> None:
    started = fleetbus("sandbox", "start")
    assert started.returncode == 0, started.stderr
    directory = next(
        line.split("=", 1)[1] for line in started.stdout.splitlines() if line.startswith("export FLEETBUS_SANDBOX=")
    )
    try:
        inside = subprocess.run(
            [*FLEETBUS, "sandbox", "exec", "--", "cat", "/etc/hostname"],
            env={**os.environ, "FLEETBUS_SANDBOX": directory},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        state = json.loads((Path(directory) / "state.json").read_text())
    finally:
        fleetbus("sandbox", "stop", directory)
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.strip() == state["hostname"]


def test_run_runs_the_command_in_the_callers_working_directory(tmp_path: Path) -> None:
    (tmp_path / "here.sh").write_text('#!/bin/sh\necho "ran in $(pwd)"\n')
    (tmp_path / "here.sh").chmod(0o755)
    result = subprocess.run(
        [*FLEETBUS, "sandbox", "run", "--", "./here.sh"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ran in {tmp_path}"
