"""Where a host is, how to log in, and the limits of the SSH connection to it: plain settings, importable without
asyncssh (which costs a server that reaches no other host ~0.2 s and, at import, a writable temp directory)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from fleetbus.hosts.channels import DEFAULT_MAX_CHANNELS

DEFAULT_MAX_HANDSHAKES = 8
"""Below sshd's MaxStartups 10:30:100, where a server starts dropping unauthenticated connections."""


@dataclass(frozen=True)
class SshTarget:
    """Where a host is and how to log in; unset fields come from OpenSSH client config, as for `ssh NAME`."""

    name: str
    """The host's name in the inventory; every error names it."""
    address: str | None = None
    """What to connect to (ansible_host); by default the name. Config `Host` blocks match this."""
    port: int | None = None
    user: str | None = None
    identity_files: tuple[Path, ...] = ()
    known_hosts: tuple[Path, ...] = ()
    """Files listing trusted host keys; by default ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts. Config
    cannot turn checking off: `UserKnownHostsFile /dev/null` or `StrictHostKeyChecking no` change nothing."""
    config: tuple[Path, ...] = ()
    """OpenSSH client config files; by default ~/.ssh/config."""


@dataclass(frozen=True)
class SshLimits:
    connect_timeout: float = 10.0
    """TCP (or proxy), key exchange and login together; asyncssh alone would wait for the kernel (~127 s)."""
    keepalive_interval: float = 15.0
    keepalive_count_max: int = 3
    """A connection whose host stops answering is closed after interval × count seconds."""
    max_channels: int = DEFAULT_MAX_CHANNELS
    bus_setup_timeout: float = 10.0
    """How long a new bus link may wait for a channel and for the bridge to start on the host."""


@dataclass
class HandshakeGate:
    """Bounds SSH handshakes in flight across every host that shares it (a registry shares one)."""

    limit: int = DEFAULT_MAX_HANDSHAKES
    in_flight: int = field(default=0, init=False)
    peak: int = field(default=0, init=False)
    """The most handshakes ever in flight at once (for tests and figures)."""
    _free: asyncio.Semaphore = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._free = asyncio.Semaphore(self.limit)

    async def __aenter__(self) -> None:
        await self._free.acquire()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    async def __aexit__(self, *_exc: object) -> None:
        self.in_flight -= 1
        self._free.release()
