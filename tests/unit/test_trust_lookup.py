"""`fleetbus hosts trust` writes the key under the names a connection looks it up by, as asyncssh does: the
config's HostKeyAlias alone, else the HostName it connects to (with the inventory's name and address), on the
config's Port."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from fleetbus.hosts.ssh_options import SshTarget
from fleetbus.hosts.trust import KeyLookup, key_lookup

CONFIG = """\
Host web01
    HostName 10.9.9.9
    Port 2222
    HostKeyAlias web-alias
Host web02
    HostName 10.9.9.8
Host web04
    Port 2200
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (SshTarget("web01"), KeyLookup(("web-alias",), 2222)),
        (SshTarget("web02"), KeyLookup(("web02", "10.9.9.8"), None)),
        (SshTarget("web03", address="192.0.2.3"), KeyLookup(("web03", "192.0.2.3"), None)),
        (SshTarget("web04"), KeyLookup(("web04",), 2200)),
        (SshTarget("web04", port=22), KeyLookup(("web04",), None)),  # the inventory's port wins
        (SshTarget("db01", port=2022), KeyLookup(("db01",), 2022)),
    ],
)
def test_the_names_and_port_a_connection_looks_the_key_up_by(
    config: Path, target: SshTarget, expected: KeyLookup
) -> None:
    assert key_lookup(replace(target, config=(config,))) == expected
