"""The fleet tier: simulated hosts (real sshd, bus, systemd, hostnamed in namespaces of their own), one fleet per
test module. Every module here is one xdist group, so its tests share that module's fleet on one worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetbus.hosts.ssh import SshHost, SshLimits, SshTarget
from fleetbus.sandbox import Sandbox, missing_requirements
from fleetbus.sandbox.fleet import Fleet, SimulatedHost

UNITS = Path(__file__).resolve().parent / "units"
HOSTS = 3


def start_fleet(hosts: int = HOSTS, units: Path | None = UNITS) -> Sandbox:
    problems = missing_requirements(hosts=True)
    if problems:
        # Not a skip: a machine that cannot start simulated hosts cannot run these tests honestly.
        pytest.fail("simulated hosts cannot start here: " + "; ".join(problems))
    return Sandbox.create(units=units, hosts=hosts, die_with_parent=True)


@pytest.fixture(scope="module")
def fleet_sandbox() -> Iterator[Sandbox]:
    with start_fleet() as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def fleet(fleet_sandbox: Sandbox) -> Fleet:
    assert fleet_sandbox.fleet is not None
    return fleet_sandbox.fleet


def ssh_host(
    fleet: Fleet,
    name: str,
    limits: SshLimits | None = None,
    *,
    known_hosts: tuple[Path, ...] | None = None,
    config: tuple[Path, ...] | None = None,
) -> SshHost:
    """An SshHost for a simulated host as fleetbus makes one from the fleet's files (its ssh_config, known_hosts)."""
    target = SshTarget(
        name,
        config=config if config is not None else (fleet.paths.ssh_config,),
        known_hosts=known_hosts if known_hosts is not None else (fleet.paths.known_hosts,),
    )
    return SshHost(target, limits)


def accepted_logins(host: SimulatedHost) -> int:
    """How many logins the host's sshd has accepted (its log is the host's own record)."""
    log = (host.paths.root / "sshd.log").read_text(errors="replace")
    return log.count("Accepted publickey")
