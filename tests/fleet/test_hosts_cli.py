"""`fleetbus hosts list|check|trust` on simulated hosts, as a person runs them from a shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncssh
import pytest

from fleetbus.hosts.host_keys import DEFAULT_KNOWN_HOSTS
from fleetbus.hosts.ssh import SshTarget
from fleetbus.hosts.trust import known_hosts_read, offered_key
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fleet
from tests.e2e.client import ROOT
from tests.fleet.conftest import accepted_logins

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-hosts-cli")]


def hosts(sandbox: Sandbox, state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", "hosts", *args],
        env={**os.environ, **sandbox.env(), "FLEETBUS_STATE_DIR": str(state), **env},
        capture_output=True, text=True, timeout=60, check=False, cwd=ROOT, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def without(fleet: Fleet, host: str, path: Path) -> Path:
    path.write_text("".join(line for line in fleet.paths.known_hosts.read_text().splitlines(True) if host not in line))
    return path


def test_list_and_check(fleet_sandbox: Sandbox, fleet: Fleet, tmp_path: Path) -> None:
    listed = hosts(fleet_sandbox, tmp_path, "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert [row[0] for row in rows] == ["local", "host01", "host02", "host03"]
    assert rows[2][1] == fleet.host("host02").address
    checked = hosts(fleet_sandbox, tmp_path, "check", "fleet:!host01")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [line.split()[:2] for line in checked.stdout.splitlines()] == [
        ["host02", "reachable"],
        ["host03", "reachable"],
    ]


def test_trust_shows_the_key_and_adds_it_only_when_told(fleet_sandbox: Sandbox, fleet: Fleet, tmp_path: Path) -> None:
    known = without(fleet, "host02", tmp_path / "known_hosts")
    logins = accepted_logins(fleet.host("host02"))
    unknown = hosts(fleet_sandbox, tmp_path, "check", "host02", FLEETBUS_KNOWN_HOSTS=str(known))
    assert unknown.returncode == 1
    assert "unknown-hostkey" in unknown.stdout
    asked = hosts(fleet_sandbox, tmp_path, "trust", "host02", FLEETBUS_KNOWN_HOSTS=str(known))
    assert asked.returncode == 1
    fingerprint = asked.stdout.split("fingerprint ")[1].split()[0]
    assert fingerprint.startswith("SHA256:")
    assert fingerprint in unknown.stdout
    assert "host02" not in known.read_text()  # no terminal, no --yes: nothing added
    added = hosts(fleet_sandbox, tmp_path, "trust", "host02", "--yes", FLEETBUS_KNOWN_HOSTS=str(known))
    assert added.returncode == 0, added.stderr
    assert f"added to {known}" in added.stdout
    assert accepted_logins(fleet.host("host02")) == logins  # fetching the key logs in nowhere
    again = hosts(fleet_sandbox, tmp_path, "check", "host02", FLEETBUS_KNOWN_HOSTS=str(known))
    assert again.returncode == 0, again.stdout
    assert "already trusts" in hosts(fleet_sandbox, tmp_path, "trust", "host02", "--yes",
                                     FLEETBUS_KNOWN_HOSTS=str(known)).stdout  # fmt: skip


def test_trust_refuses_a_changed_key(fleet_sandbox: Sandbox, fleet: Fleet, tmp_path: Path) -> None:
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    known = without(fleet, "host03", tmp_path / "known_hosts")
    with known.open("a") as out:
        out.write(f"host03,{fleet.host('host03').address} {impostor[0]} {impostor[1]}\n")
    before = known.read_text()
    refused = hosts(fleet_sandbox, tmp_path, "trust", "host03", "--yes", FLEETBUS_KNOWN_HOSTS=str(known))
    assert refused.returncode == 1
    assert "lists a different key for host03" in refused.stderr
    assert known.read_text() == before


async def test_trust_sees_a_different_key_in_any_file_a_connection_reads(fleet: Fleet, tmp_path: Path) -> None:
    # With no known_hosts configured, connections read ~/.ssh/known_hosts *and* /etc/ssh/ssh_known_hosts, and
    # trust writes the first. A key listed only in the second must stop trust as it stops the connection:
    # adding the offered key beside it would let a changed key (a possible attack) in.
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    system_wide = tmp_path / "ssh_known_hosts"
    system_wide.write_text(f"host03,{fleet.host('host03').address} {impostor[0]} {impostor[1]}\n")
    own = without(fleet, "host03", tmp_path / "known_hosts")
    target = SshTarget("host03", config=(fleet.paths.ssh_config,))
    offered = await offered_key(target, own, timeout=10, read=(own, system_wide))
    assert offered.listed == "other"
    assert offered.listed_in == (system_wide,)
    alone = await offered_key(target, own, timeout=10)  # the written file alone lists nothing for host03
    assert alone.listed == "none"
    # The CLI checks the same files a connection does.
    assert known_hosts_read(None) == DEFAULT_KNOWN_HOSTS
    assert known_hosts_read(own) == (own,)
