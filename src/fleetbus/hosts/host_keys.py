"""Host keys are never trusted silently: known_hosts files decide, and a refusal says which key was offered.

asyncssh checks the offered key against the known_hosts we hand it (never `known_hosts=None`); when the key is
not listed it asks the client object, which here only records the key and says no. That record is what tells
an unknown host (nothing listed for it) from a changed key (something else listed: possibly an attack).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from fleetbus.hosts.errors import ChangedHostKey, HostKeyError, RevokedHostKey, UnknownHostKey

DEFAULT_KNOWN_HOSTS = (Path("~/.ssh/known_hosts"), Path("/etc/ssh/ssh_known_hosts"))
TRUST_COMMAND = "fleetbus hosts trust {name}"
"""How an operator accepts a new host's key; named in the unknown-hostkey error."""


@dataclass(frozen=True)
class KnownHosts:
    """The known_hosts entries one connection is checked against, and where they came from."""

    entries: asyncssh.SSHKnownHosts
    files: tuple[Path, ...]
    """The files that existed and were read; the error messages name them."""

    @classmethod
    def load(cls, files: Sequence[Path]) -> KnownHosts:
        """Read the files that exist. Missing ones are skipped (then every key is unknown); a malformed one
        raises, since silently reading half of it could drop a @revoked line."""
        present = tuple(p.expanduser() for p in files if p.expanduser().is_file())
        entries = asyncssh.read_known_hosts([str(p) for p in present]) if present else asyncssh.SSHKnownHosts()
        return cls(entries, present)


@dataclass
class OfferedKey:
    """The key a host offered that known_hosts did not list, as asyncssh looked it up."""

    host: str
    """The name asyncssh matched known_hosts against (HostKeyAlias, or the host name it connected to)."""
    addr: str
    port: int
    key: asyncssh.SSHKey


class HostKeyWitness:
    """Handed to asyncssh as the client's last word on an unlisted key: it records the key and refuses it."""

    def __init__(self) -> None:
        self.offered: OfferedKey | None = None

    def refuse(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = OfferedKey(host, addr, port, key)
        return False


def refusal(name: str, known: KnownHosts, witness: HostKeyWitness, detail: str) -> HostKeyError:
    """The error for a host whose key asyncssh did not verify (`detail` is asyncssh's own message)."""
    offered = witness.offered
    sources = ", ".join(str(p) for p in known.files) or "none found"
    if offered is None:
        # asyncssh refuses a @revoked key itself, before asking us: the key is not at hand then.
        if "revoked" in detail.lower():
            return RevokedHostKey(
                name,
                f"revoked-hostkey: the host offered a key known_hosts ({sources}) marks @revoked; refused",
                key_type="",
                fingerprint="",
            )
        return HostKeyError(name, f"hostkey-refused: {detail}", key_type="", fingerprint="")
    key_type = offered.key.get_algorithm()
    fingerprint = offered.key.get_fingerprint("sha256")
    port = offered.port if offered.port != 22 else None
    listed = known.entries.match(offered.host, offered.addr, port)
    trusted_keys, ca_keys = listed[0], listed[1]
    if trusted_keys or ca_keys:
        known_prints = ", ".join(k.get_fingerprint("sha256") for k in trusted_keys) or "a CA key"
        return ChangedHostKey(
            name,
            f"changed-hostkey: the host offered {key_type} key {fingerprint}, but known_hosts ({sources}) lists "
            f"{known_prints} for {offered.host!r}. Refused as a possible attack: someone may be intercepting the "
            f"connection. If the host was really reinstalled, remove the old entry (ssh-keygen -R {offered.host}) "
            "and trust the new key.",
            key_type=key_type,
            fingerprint=fingerprint,
        )
    return UnknownHostKey(
        name,
        f"unknown-hostkey: the host offered {key_type} key {fingerprint}, and no known_hosts file ({sources}) "
        f"lists a key for {offered.host!r}; no credentials were sent. If that is the host's key, accept it with "
        f"`{TRUST_COMMAND.format(name=name)}`.",
        key_type=key_type,
        fingerprint=fingerprint,
    )
