"""Accepting a host's key on purpose (`fleetbus hosts trust NAME`): fetch the key the host offers, without
logging in, show its fingerprint, and — once a person said yes — add it to the known_hosts fleetbus reads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from fleetbus.hosts.errors import HostUnreachable
from fleetbus.hosts.host_keys import DEFAULT_KNOWN_HOSTS, KnownHosts
from fleetbus.hosts.ssh import SshTarget, check_destination


@dataclass(frozen=True)
class OfferedHostKey:
    host: str
    key_type: str
    fingerprint: str
    line: str
    """The known_hosts line that trusts it: the host's name (and address), the key."""
    listed: str
    """What the known_hosts files say of the host already: `none`, `same` (this key) or `other` (a different one)."""
    listed_in: tuple[Path, ...] = ()
    """The files that list a key for the host (for `other`: where the old key is)."""


def known_hosts_file(configured: Path | None) -> Path:
    """The file `trust` writes: the configured known_hosts, else ~/.ssh/known_hosts."""
    return (configured or DEFAULT_KNOWN_HOSTS[0]).expanduser()


def known_hosts_read(configured: Path | None) -> tuple[Path, ...]:
    """Every file a connection checks keys against (as SshHost does): the configured one, else both defaults.
    `trust` must look at all of them: a key listed only in /etc/ssh/ssh_known_hosts is still listed, and adding
    another beside it would make a changed key (a possible attack) pass."""
    return (configured,) if configured else DEFAULT_KNOWN_HOSTS


async def offered_key(
    target: SshTarget, known_hosts: Path, *, timeout: float, read: Sequence[Path] = ()
) -> OfferedHostKey:
    """The key `target` offers (only the key exchange runs: no credential is sent) and how the known_hosts files
    a connection reads (`read`, by default just `known_hosts`) see it."""
    destination = check_destination(target)
    options: dict[str, object] = {}
    if target.config:
        options["config"] = [str(p) for p in target.config]
    if target.port is not None:
        options["port"] = target.port
    try:
        async with asyncio.timeout(timeout):
            key = await asyncssh.get_server_host_key(destination, **options)  # type: ignore[arg-type]
    except TimeoutError:
        raise HostUnreachable(target.name, f"no key exchange with {destination} within {timeout:g} s") from None
    except (asyncssh.Error, OSError) as exc:
        raise HostUnreachable(target.name, f"cannot reach {destination}: {exc}") from exc
    if key is None:
        raise HostUnreachable(target.name, f"{destination} offered no host key")
    lookup = key_lookup(target)
    names = [f"[{name}]:{lookup.port}" if lookup.port is not None else name for name in lookup.names]
    public = key.export_public_key("openssh").decode().split()
    line = f"{','.join(names)} {public[0]} {public[1]}\n"
    files = tuple(dict.fromkeys(p.expanduser() for p in (read or (known_hosts,))))
    listed = "none"
    listed_in: list[Path] = []
    for file in files:
        trusted = _listed(KnownHosts.load([file]), lookup)
        if not trusted:
            continue
        listed_in.append(file)
        if any(k.public_data == key.public_data for k in trusted):
            listed = "same"
        elif listed == "none":
            listed = "other"
    return OfferedHostKey(
        target.name, key.get_algorithm(), key.get_fingerprint("sha256"), line, listed, tuple(listed_in)
    )


@dataclass(frozen=True)
class KeyLookup:
    names: tuple[str, ...]
    """What a connection looks the key up by: the config's HostKeyAlias alone, else the host name it connects to
    (the config's HostName), with the inventory's name and address."""
    port: int | None
    """The port it connects to, where it is not 22 (known_hosts then lists `[name]:port`)."""


def key_lookup(target: SshTarget) -> KeyLookup:
    """As asyncssh looks the key up when it connects — by `HostKeyAlias or HostName` on the config's Port — so a
    key `trust` adds is the key the next connection finds (a Port or HostKeyAlias only in ~/.ssh/config used to
    be ignored, and the host stayed unknown after trusting it)."""
    destination = target.address or target.name
    alias: str | None = None
    host, port = destination, target.port
    try:
        options = asyncssh.SSHClientConnectionOptions(
            host=destination,
            port=target.port if target.port is not None else (),
            config=[str(p) for p in target.config] if target.config else (),
        )
    except (asyncssh.Error, OSError, ValueError):
        pass  # a config asyncssh cannot read fails the connection anyway; the names below are the inventory's
    else:
        alias, host, port = options.host_key_alias, options.host, options.port
    names = (alias,) if alias else tuple(dict.fromkeys(n for n in (target.name, target.address, host) if n))
    return KeyLookup(names, port if port not in (None, 22) else None)


def _listed(known: KnownHosts, lookup: KeyLookup) -> Sequence[asyncssh.SSHKey]:
    """The keys `known` trusts for the host, by the first of its names that lists any."""
    for name in lookup.names:
        trusted: Sequence[asyncssh.SSHKey] = known.entries.match(name, "", lookup.port)[0]
        if trusted:
            return trusted
    return ()


def add_known_host(path: Path, offered: OfferedHostKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = path.read_text() if path.exists() else ""
    with path.open("a") as out:
        if existing and not existing.endswith("\n"):
            out.write("\n")
        out.write(offered.line)
