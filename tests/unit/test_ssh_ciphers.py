"""The cipher order fleetbus asks asyncssh for: AES-GCM first on a CPU with AES instructions, unless the operator's
OpenSSH config says Ciphers (or includes files that might)."""

from __future__ import annotations

from pathlib import Path

import asyncssh
import pytest

from fleetbus.hosts import ssh_options
from fleetbus.hosts.ssh_options import AES_FIRST, cipher_preference


@pytest.fixture
def aes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh_options, "aes_in_hardware", lambda: True)


def test_every_cipher_asked_for_is_one_asyncssh_knows() -> None:
    known = {alg.decode() for alg in asyncssh.encryption.get_encryption_algs()}
    assert set(AES_FIRST) <= known
    assert {alg.decode() for alg in asyncssh.encryption.get_default_encryption_algs()} <= set(AES_FIRST)


@pytest.mark.usefixtures("aes")
def test_aes_gcm_first_when_the_config_is_silent(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host web*\n    User deploy\n    # Ciphers in a comment is not a setting\n")
    assert cipher_preference((config,)) == AES_FIRST
    assert cipher_preference((tmp_path / "missing",)) == AES_FIRST


@pytest.mark.usefixtures("aes")
@pytest.mark.parametrize("line", ["Ciphers aes256-ctr", "  ciphers=aes256-gcm@openssh.com", "Include ~/.ssh/conf.d/*"])
def test_the_operators_cipher_policy_wins(tmp_path: Path, line: str) -> None:
    config = tmp_path / "config"
    config.write_text(f"Host *\n    {line}\n")
    assert cipher_preference((config,)) is None


def test_no_preference_without_aes_instructions(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ssh_options, "aes_in_hardware", lambda: False)
    assert cipher_preference((tmp_path / "config",)) is None
