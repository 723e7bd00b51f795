"""Accepting a host's key on purpose (`fleetbus hosts trust NAME`): fetch the key the host offers, without
logging in, show its fingerprint, and — once a person said yes — add it to the known_hosts fleetbus reads."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from fleetbus.hosts.errors import HostUnreachable
from fleetbus.hosts.host_keys import DEFAULT_KNOWN_HOSTS, KnownHosts
from fleetbus.hosts.ssh import SshTarget


@dataclass(frozen=True)
class OfferedHostKey:
    host: str
    key_type: str
    fingerprint: str
    line: str
    """The known_hosts line that trusts it: the host's name (and address), the key."""
    listed: str
    """What the known_hosts file says of the host already: `none`, `same` (this key) or `other` (a different one)."""


def known_hosts_file(configured: Path | None) -> Path:
    """The file `trust` writes: the configured known_hosts, else ~/.ssh/known_hosts."""
    return (configured or DEFAULT_KNOWN_HOSTS[0]).expanduser()


async def offered_key(target: SshTarget, known_hosts: Path, *, timeout: float) -> OfferedHostKey:
    """The key `target` offers (only the key exchange runs: no credential is sent) and how known_hosts sees it."""
    destination = target.address or target.name
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
    names = list(dict.fromkeys(n for n in (target.name, target.address) if n))
    if target.port not in (None, 22):
        names = [f"[{name}]:{target.port}" for name in names]
    public = key.export_public_key("openssh").decode().split()
    line = f"{','.join(names)} {public[0]} {public[1]}\n"
    known = KnownHosts.load([known_hosts])
    listed = "none"
    for name in (target.name, target.address):
        if not name:
            continue
        trusted = known.entries.match(name, "", target.port if target.port not in (None, 22) else None)[0]
        if trusted:
            same = any(k.public_data == key.public_data for k in trusted)
            listed = "same" if same else "other"
            break
    return OfferedHostKey(target.name, key.get_algorithm(), key.get_fingerprint("sha256"), line, listed)


def add_known_host(path: Path, offered: OfferedHostKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = path.read_text() if path.exists() else ""
    with path.open("a") as out:
        if existing and not existing.endswith("\n"):
            out.write("\n")
        out.write(offered.line)
