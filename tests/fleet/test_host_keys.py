"""Host keys on simulated hosts: an unknown key and a changed key are refused before any login, with the key's
fingerprint, and no client config can switch the check off."""

from __future__ import annotations

import subprocess
from pathlib import Path

import asyncssh
import pytest

from fleetbus.hosts.errors import ChangedHostKey, UnknownHostKey
from fleetbus.sandbox.fleet import Fleet
from tests.fleet.conftest import accepted_logins, ssh_host

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-host-keys")]


def fingerprint(public_key: Path) -> str:
    """As `ssh-keygen -l` prints it, which is what an operator compares."""
    words = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True, text=True, check=True)
    return words.stdout.split()[1]


async def test_an_unknown_host_key_is_refused_with_its_fingerprint_before_any_login(
    fleet: Fleet, tmp_path: Path
) -> None:
    simulated = fleet.host("host01")
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    before = accepted_logins(simulated)
    host = ssh_host(fleet, "host01", known_hosts=(empty,))
    with pytest.raises(UnknownHostKey) as refused:
        await host.connect()
    expected = fingerprint(simulated.paths.host_public_key)
    assert refused.value.code == "unknown-hostkey"
    assert refused.value.fingerprint == expected
    assert refused.value.host == "host01"
    message = str(refused.value)
    assert message.startswith("host01: unknown-hostkey:")
    assert expected in message
    assert "fleetbus hosts trust host01" in message
    assert host.connection is None
    assert accepted_logins(simulated) == before


async def test_a_changed_host_key_is_refused_as_a_possible_attack(fleet: Fleet, tmp_path: Path) -> None:
    simulated = fleet.host("host02")
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    listed = impostor.export_public_key().decode().split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"host02,{simulated.address} {listed[0]} {listed[1]}\n")
    before = accepted_logins(simulated)
    host = ssh_host(fleet, "host02", known_hosts=(known_hosts,))
    with pytest.raises(ChangedHostKey) as refused:
        await host.connect()
    assert refused.value.code == "changed-hostkey"
    assert refused.value.fingerprint == fingerprint(simulated.paths.host_public_key)
    assert "possible attack" in str(refused.value)
    assert impostor.get_fingerprint("sha256") in str(refused.value)
    assert accepted_logins(simulated) == before


async def test_client_config_cannot_switch_host_key_checking_off(fleet: Fleet, tmp_path: Path) -> None:
    # OpenSSH takes the first value it reads, so this file, read first, would win for any option it sets.
    careless = tmp_path / "ssh_config"
    careless.write_text(
        "Host host03 127.0.1.3\n    UserKnownHostsFile /dev/null\n    StrictHostKeyChecking no\n"
        "    GlobalKnownHostsFile /dev/null\n"
    )
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host = ssh_host(fleet, "host03", known_hosts=(empty,), config=(careless, fleet.paths.ssh_config))
    with pytest.raises(UnknownHostKey):
        await host.connect()


async def test_the_fleets_own_known_hosts_let_every_host_in(fleet: Fleet) -> None:
    for simulated in fleet.hosts:
        host = ssh_host(fleet, simulated.name)
        connection = await host.connect()
        await connection.close()
