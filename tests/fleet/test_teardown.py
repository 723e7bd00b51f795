"""A stopped fleet leaves nothing: no process, mount, cgroup, network namespace entry, iptables rule or file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fleetbus.sandbox.fleet import Fault, faults
from fleetbus.sandbox.layout import CgroupLayout
from tests.fleet.conftest import start_fleet

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-teardown")]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                words = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {words}")
    return found


def test_a_stopped_fleet_leaves_nothing_behind() -> None:
    netns_before = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    sandbox = start_fleet(hosts=2, units=None)
    root = str(sandbox.paths.root)
    assert sandbox.fleet is not None
    keepers = [host.keeper_pid for host in sandbox.fleet.hosts]
    netns = [host.netns for host in sandbox.fleet.hosts]
    try:
        env = sandbox.with_fleet_path(dict(sandbox.env()))
        ssh = subprocess.run(["ssh", "host01", "true"], env=env, capture_output=True, timeout=30, check=False)
        assert ssh.returncode == 0, ssh.stderr
        # Left in place on purpose: teardown must not depend on faults being cleared.
        faults.apply(sandbox.fleet, "host02", Fault.DROP)
        faults.apply(sandbox.fleet, "host01", Fault.FREEZE_BUS)
    finally:
        sandbox.stop()
    assert processes_mentioning(root) == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in keepers)
    assert all(not Path(path).exists() for path in netns)
    cgroup = sandbox.paths.cgroup_name
    assert [h for h in CgroupLayout.detect().hierarchies if (h / cgroup).exists()] == []
    assert [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if root in line] == []
    assert not Path(root).exists()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout == netns_before
