"""An inventory's address and user are expanded into the SSH config's ProxyCommand (%h, %r): only plain host
names, IP addresses and user names may get there (OpenSSH refuses the rest since CVE-2023-51385)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbus.hosts.errors import HostUnreachable
from fleetbus.hosts.ssh import SshHost, SshLimits, SshTarget, check_destination


@pytest.mark.parametrize(
    "address", ["web01", "web01.example.com", "bastion-web_01", "127.0.1.3", "2001:db8::1", "fe80::1%eth0", "::1"]
)
def test_host_names_and_addresses_pass(address: str) -> None:
    assert check_destination(SshTarget("web01", address=address, user="deploy@corp.example")) == address


@pytest.mark.parametrize(
    "address",
    [
        "x:1 -oProxyCommand='touch /tmp/p' y",
        "-oProxyCommand=touch",
        "web01;id",
        "$(id)",
        "web01 extra",
        "web01\ttab",
        "`id`",
        "a|b",
        "w" * 300,
    ],
)
def test_anything_else_is_refused_naming_the_host(address: str) -> None:
    with pytest.raises(HostUnreachable, match=r"^web01: address .* is not an IP address or a host name"):
        check_destination(SshTarget("web01", address=address))


def test_the_name_is_checked_when_it_is_the_destination_and_so_is_the_user() -> None:
    with pytest.raises(HostUnreachable, match="is not an IP address"):
        check_destination(SshTarget("a$(id)"))
    with pytest.raises(HostUnreachable, match="user '-oX' is not a user name"):
        check_destination(SshTarget("web01", user="-oX"))


async def test_a_hostile_address_never_reaches_the_proxy_command(tmp_path: Path) -> None:
    # `touch DIR/seen-%h`, split into an argv after %h is expanded: the address `a DIR/injected` would add an
    # argument of its own (with `ssh -W %h:%p bastion`, an -oProxyCommand that runs).
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    ProxyCommand touch {tmp_path}/seen-%h\n")
    limits = SshLimits(connect_timeout=5)
    hostile = SshHost(SshTarget("web01", address=f"a {tmp_path}/injected", config=(config,)), limits)
    with pytest.raises(HostUnreachable, match="is not an IP address or a host name"):
        await hostile.connect()
    assert not (tmp_path / "injected").exists()
    assert not (tmp_path / "seen-a").exists()
    # A plain address does reach the ProxyCommand (which, being `touch`, then fails the connection).
    plain = SshHost(SshTarget("web01", address="b", config=(config,), known_hosts=(tmp_path / "none",)), limits)
    with pytest.raises(HostUnreachable):
        await plain.connect()
    assert (tmp_path / "seen-b").exists()
