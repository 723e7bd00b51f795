"""Which refusal an unverified host key gets: unknown (nothing listed for the host), changed (something else
listed), revoked — each naming the host and the offered key's fingerprint."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from fleetbus.hosts.errors import ChangedHostKey, HostKeyError, RevokedHostKey, UnknownHostKey
from fleetbus.hosts.host_keys import HostKeyWitness, KnownHosts, refusal


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


@pytest.fixture
def offered() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519").convert_to_public()


def witnessed(key: asyncssh.SSHKey, host: str = "web01") -> HostKeyWitness:
    witness = HostKeyWitness()
    assert witness.refuse(host, "", 22, key) is False  # the witness never trusts anything itself
    return witness


def known(tmp_path: Path, text: str) -> KnownHosts:
    path = tmp_path / "known_hosts"
    path.write_text(text)
    return KnownHosts.load([path, tmp_path / "missing"])


def test_nothing_listed_for_the_host_is_an_unknown_key(tmp_path: Path, offered: asyncssh.SSHKey) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    error = refusal("web01", known(tmp_path, f"db01 {public_line(other)}\n"), witnessed(offered), "not trusted")
    assert isinstance(error, UnknownHostKey)
    assert error.code == "unknown-hostkey"
    assert error.fingerprint == offered.get_fingerprint("sha256")
    assert error.fingerprint.startswith("SHA256:")
    assert error.key_type == "ssh-ed25519"
    assert str(error).startswith("web01: unknown-hostkey: the host offered ssh-ed25519 key SHA256:")
    assert str(tmp_path / "known_hosts") in str(error)
    assert "missing" not in str(error)  # only files that exist are named as read


def test_another_key_listed_for_the_host_is_a_changed_key(tmp_path: Path, offered: asyncssh.SSHKey) -> None:
    listed = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    error = refusal("web01", known(tmp_path, f"web01,10.0.0.1 {public_line(listed)}\n"), witnessed(offered), "x")
    assert isinstance(error, ChangedHostKey)
    assert error.fingerprint == offered.get_fingerprint("sha256")
    assert listed.get_fingerprint("sha256") in str(error)
    assert "possible attack" in str(error)


def test_a_revoked_key_is_refused_as_revoked(tmp_path: Path) -> None:
    error = refusal("web01", known(tmp_path, ""), HostKeyWitness(), "Host key is revoked for host web01")
    assert isinstance(error, RevokedHostKey)


def test_a_refusal_asyncssh_explains_otherwise_keeps_its_words(tmp_path: Path) -> None:
    error = refusal("web01", known(tmp_path, ""), HostKeyWitness(), "Unable to decode host key")
    assert type(error) is HostKeyError
    assert "Unable to decode host key" in str(error)


def test_no_known_hosts_file_at_all_makes_every_key_unknown(tmp_path: Path, offered: asyncssh.SSHKey) -> None:
    nothing = KnownHosts.load([tmp_path / "absent"])
    error = refusal("web01", nothing, witnessed(offered), "not trusted")
    assert isinstance(error, UnknownHostKey)
    assert "none found" in str(error)
