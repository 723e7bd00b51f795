"""Where a host is, how to log in, and the limits of the SSH connection to it: plain settings, importable without
asyncssh (which costs a server that reaches no other host ~0.2 s and, at import, a writable temp directory)."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Sequence
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
    forward_system_bus: bool = True
    """Reach the system bus by stream-local forwarding where sshd allows it; False: always through
    systemd-stdio-bridge, a named command in the host's sshd log (as `busctl -H` does)."""


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


AES_FIRST = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)
"""asyncssh's own ciphers, AES-GCM first. asyncssh (like OpenSSH) puts ChaCha20-Poly1305 first, the safe choice
on a CPU without AES instructions; in Python it is several cryptography calls per packet against AES-GCM's one,
and a bus round trip over the connection took 0.56 against 0.47 ms (bench/bench_hosts.py, ciphers compared)."""

_SETS_CIPHERS = re.compile(r"^\s*(ciphers|include)\b", re.IGNORECASE | re.MULTILINE)


def cipher_preference(config: Sequence[Path]) -> tuple[str, ...] | None:
    """The cipher order to ask for, or None to leave it to the OpenSSH config and asyncssh's defaults: when
    the CPU lacks AES instructions, or a config file says `Ciphers` (or includes others that might) — an
    operator's cipher policy (FIPS, say) wins over our speed."""
    if not aes_in_hardware():
        return None
    for path in config or (Path.home() / ".ssh" / "config",):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if _SETS_CIPHERS.search(text):
            return None
    return AES_FIRST


@functools.cache
def aes_in_hardware() -> bool:
    """AES-NI on x86, the AES extension on ARM: both show as an `aes` flag in /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return any(
        "aes" in line.split(":", 1)[1].split()
        for line in text.splitlines()
        if line.lower().startswith(("flags", "features")) and ":" in line
    )
