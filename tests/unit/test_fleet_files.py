"""The client side of a simulated fleet, as text: names, addresses, ssh_config, known_hosts and inventory."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from fleetbus.sandbox.fleet import files
from fleetbus.sandbox.fleet.layout import host_address, host_names

HOSTS = [
    files.HostEntry("host01", "127.0.1.1", "ssh-ed25519 AAAAC3one host01", "/proc/10/ns/net"),
    files.HostEntry("host02", "127.0.1.2", "ssh-ed25519 AAAAC3two host02", "/proc/20/ns/net"),
]


def test_host_names_count_up_zero_padded_and_addresses_follow() -> None:
    assert host_names(3) == ["host01", "host02", "host03"]
    assert host_names(120)[-1] == "host120"
    assert host_names(120)[0] == "host001"
    assert host_address(7) == "127.0.1.7"
    for wrong in (0, 255):
        with pytest.raises(ValueError, match="1 to 254"):
            host_names(wrong)


def test_ssh_config_reaches_each_host_through_its_namespace_with_strict_keys() -> None:
    text = files.ssh_config(HOSTS, Path("/f/known_hosts"), Path("/f/id_ed25519"))
    assert "Host host01 127.0.1.1\n    HostName 127.0.1.1\n    HostKeyAlias host01\n" in text
    assert "ProxyCommand nsenter --net=/proc/20/ns/net socat STDIO TCP:%h:%p,nodelay" in text
    for line in (
        "UserKnownHostsFile /f/known_hosts",
        "StrictHostKeyChecking yes",
        "IdentityFile /f/id_ed25519",
        "User root",
    ):
        assert f"    {line}\n" in text
    assert "ProxyUseFdpass" not in text  # asyncssh runs ProxyCommand over pipes


def test_known_hosts_lists_each_key_under_alias_and_address() -> None:
    assert files.known_hosts(HOSTS) == (
        "host01,127.0.1.1 ssh-ed25519 AAAAC3one\nhost02,127.0.1.2 ssh-ed25519 AAAAC3two\n"
    )


def test_inventory_is_ansible_ini_with_the_fleet_group_and_extra_groups() -> None:
    text = files.inventory(HOSTS, Path("/f/ssh config"), Path("/f/id"), "[web]\nhost02\n")
    parsed = configparser.ConfigParser(allow_no_value=True, delimiters=("=",))
    parsed.read_string(text)
    assert list(parsed["fleet"]) == ["host01 ansible_host", "host02 ansible_host"]
    assert parsed["fleet:vars"]["ansible_user"] == "root"
    assert shlex.split(parsed["fleet:vars"]["ansible_ssh_common_args"]) == ["-F /f/ssh config"]
    assert list(parsed["web"]) == ["host02"]


def test_sshd_config_is_key_only_with_the_default_limits() -> None:
    text = files.sshd_config("127.0.1.4", Path("/h/key"))
    for line in (
        "ListenAddress 127.0.1.4:22",
        "HostKey /h/key",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods publickey",
        "MaxStartups 10:30:100",
        "MaxSessions 10",
    ):
        assert f"{line}\n" in text


def test_unit_entries_leave_host_directories_and_groups_out(tmp_path: Path) -> None:
    for name in ("a.service", "b.timer", "groups.ini", "notes.txt"):
        (tmp_path / name).write_text("")
    for name in ("host03", "a.service.d", "default.target.wants"):
        (tmp_path / name).mkdir()
    names = [entry.name for entry in files.unit_entries(tmp_path)]
    assert names == ["a.service", "a.service.d", "b.timer", "default.target.wants"]
    assert files.unit_entries(tmp_path / "absent") == []
