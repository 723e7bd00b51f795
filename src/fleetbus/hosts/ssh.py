"""One persistent SSH connection per host (asyncssh), carrying that host's bus links and commands.

Everything has a deadline: the connection (TCP, key exchange and login together), every channel, every
command. Host keys are checked against known_hosts files, always; OpenSSH client config is honoured (Host
aliases, HostName, User, Port, IdentityFile, ProxyJump, ProxyCommand). Nothing here knows of MCP or policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from fleetbus.argv import CommandResult
from fleetbus.dbus.link import BusLink
from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.errors import AuthenticationFailed, HostError, HostUnreachable
from fleetbus.hosts.host_keys import DEFAULT_KNOWN_HOSTS, HostKeyWitness, KnownHosts, refusal
from fleetbus.hosts.relay import SYSTEM_BUS_SOCKET, Bridged, BusRelay, Forwarded, Route, bridge_argv, can_forward
from fleetbus.hosts.remote_process import RemoteKiller
from fleetbus.hosts.runner import RemoteRunner
from fleetbus.hosts.ssh_options import DEFAULT_MAX_HANDSHAKES, HandshakeGate, SshLimits, SshTarget, cipher_preference

__all__ = ["DEFAULT_MAX_HANDSHAKES", "HandshakeGate", "SshConnection", "SshHost", "SshLimits", "SshTarget"]

log = logging.getLogger(__name__)

CloseListener = Callable[["SshConnection", Exception | None], None]


# Destinations and users that may be expanded into ProxyCommand or `Match exec` (OpenSSH 9.6 refuses shell and
# option syntax there since CVE-2023-51385): no whitespace, quotes, `$;|&…`, and no leading `-`. A DNS name, an
# ssh_config alias or a user name fits.
_SAFE_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_SAFE_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")


def check_destination(target: SshTarget) -> str:
    """The destination (address, else name) to connect to, refused unless it is an IP address or a plain host
    name, and the user likewise. asyncssh expands them (%h, %r) into the config's ProxyCommand, which is split
    into an argv: an inventory value such as `x:1 -oProxyCommand=… y` (a dynamic inventory's tag, say) would
    otherwise become options of `ssh -W %h:%p bastion`, which runs them."""
    destination = target.address or target.name
    if not _safe_host(destination):
        raise HostUnreachable(
            target.name,
            f"address {destination[:80]!r} is not an IP address or a host name (letters, digits and ._-); "
            "refused before any SSH config or ProxyCommand could use it",
        )
    if target.user is not None and not _SAFE_USER.fullmatch(target.user):
        raise HostUnreachable(
            target.name,
            f"user {target.user[:80]!r} is not a user name (letters, digits and ._-@); refused before any SSH "
            "config or ProxyCommand could use it",
        )
    return destination


def _safe_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return len(text) <= 255 and _SAFE_HOST.fullmatch(text) is not None
    return True


class SshHost:
    """A host reached over SSH: makes its one connection on demand, and a new one after it is lost."""

    def __init__(
        self,
        target: SshTarget,
        limits: SshLimits | None = None,
        *,
        handshakes: HandshakeGate | None = None,
        relay_directory: Path | None = None,
    ) -> None:
        self.target = target
        self.limits = limits or SshLimits()
        # A gate of its own bounds nothing (one host makes one connection at a time): a registry shares one.
        self._handshakes = handshakes or HandshakeGate()
        self._relay_directory = relay_directory
        self._connection: SshConnection | None = None
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def connection(self) -> SshConnection | None:
        """The live connection, if there is one; never connects."""
        connection = self._connection
        return connection if connection is not None and not connection.closed else None

    async def connect(self) -> SshConnection:
        """The live connection, or a new one (one attempt, within `connect_timeout`)."""
        live = self.connection
        if live is not None:
            return live
        async with self._lock:
            live = self.connection
            if live is not None:
                return live
            self._connection = await self._open()
            return self._connection

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def _open(self) -> SshConnection:
        target, limits = self.target, self.limits
        known = KnownHosts.load(target.known_hosts or DEFAULT_KNOWN_HOSTS)
        witness = HostKeyWitness()
        client = _Client(witness)
        options: dict[str, Any] = {
            # An SSHKnownHosts object: asyncssh checks against it and never reads config's UserKnownHostsFile.
            "known_hosts": known.entries,
            "client_factory": lambda: client,
            "connect_timeout": limits.connect_timeout,
            "login_timeout": limits.connect_timeout,
            "keepalive_interval": limits.keepalive_interval,
            "keepalive_count_max": limits.keepalive_count_max,
        }
        if target.config:
            options["config"] = [str(p) for p in target.config]
        if target.port is not None:
            options["port"] = target.port
        if target.user is not None:
            options["username"] = target.user
        if target.identity_files:
            options["client_keys"] = [str(p) for p in target.identity_files]
        ciphers = cipher_preference(target.config)
        if ciphers is not None:
            options["encryption_algs"] = ciphers
        destination = check_destination(target)
        try:
            # The deadline covers the wait for a handshake slot too: a caller's budget is wall-clock.
            async with asyncio.timeout(limits.connect_timeout):
                async with self._handshakes:
                    raw = await asyncssh.connect(destination, **options)
        except TimeoutError:
            raise HostUnreachable(
                self.name, f"no SSH connection to {destination} within {limits.connect_timeout:g} s"
            ) from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise refusal(self.name, known, witness, exc.reason) from None
        except asyncssh.PermissionDenied as exc:
            raise AuthenticationFailed(
                self.name, f"{destination} accepted none of our credentials: {exc.reason}"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise HostUnreachable(self.name, f"cannot connect to {destination}: {_reason(exc)}") from exc
        connection = SshConnection(self.name, raw, limits, relay_directory=self._relay_directory)
        client.connection = connection
        return connection


class SshConnection:
    """One authenticated connection: its bus relays, its command runner, and what happens when it is lost."""

    def __init__(
        self, host: str, raw: asyncssh.SSHClientConnection, limits: SshLimits, *, relay_directory: Path | None = None
    ) -> None:
        self.host = host
        self.limits = limits
        self._raw = raw
        self._slots = ChannelSlots(host, limits.max_channels)
        self._killer = RemoteKiller(host, raw)
        self._relay_directory = relay_directory
        self._relays: dict[str, BusRelay] = {}
        self._relay_lock = asyncio.Lock()
        self._listeners: list[CloseListener] = []
        self.closed = False
        self.close_reason: Exception | None = None
        self._closing: asyncio.Task[None] | None = None
        self.runner = RemoteRunner(host, raw, self._slots, self._killer)

    @property
    def channels_in_use(self) -> int:
        return self._slots.in_use

    async def bus_address(self, bus: str = "system") -> str:
        """A local `unix:path=` address whose connections reach `bus` ("system" or "user") on the host."""
        if self.closed:
            raise HostUnreachable(self.host, f"the SSH connection is closed ({self.close_reason or 'by us'})")
        async with self._relay_lock:
            relay = self._relays.get(bus)
            if relay is None:
                relay = BusRelay(
                    self.host,
                    self._raw,
                    self._slots,
                    self._killer,
                    await self._route(bus),
                    setup_timeout=self.limits.bus_setup_timeout,
                    directory=self._relay_directory,
                )
                await relay.start()
                if self.closed:
                    # Lost while the route was probed (the probe then fails and says "bridge"): `lost` has
                    # closed the relays it knew of, and this one would outlive the connection with nobody to close it.
                    await relay.close()
                    raise HostUnreachable(self.host, f"the SSH connection was lost ({self.close_reason or 'closed'})")
                self._relays[bus] = relay
            return relay.address

    def bus_route(self, bus: str) -> Route | None:
        """How `bus` is reached on this connection, once a link to it has been asked for."""
        relay = self._relays.get(bus)
        return relay.route if relay is not None else None

    async def _route(self, bus: str) -> Route:
        """The system bus by stream-local forwarding where the host's sshd allows it (no process on the host,
        ~0.15 ms less per round trip than the bridge); the bridge otherwise, and always for the user bus, whose
        socket is under the remote user's own runtime directory."""
        if (
            bus == "system"
            and self.limits.forward_system_bus
            and await can_forward(self._raw, SYSTEM_BUS_SOCKET, self.limits.bus_setup_timeout)
        ):
            return Forwarded(SYSTEM_BUS_SOCKET)
        return Bridged(tuple(bridge_argv(bus)))

    async def open_link(self, bus: str = "system", *, connect_timeout: float) -> BusLink:
        """A connected link to `bus` on the host, set up (with the bus's Hello) within `connect_timeout`."""
        link = BusLink(bus, await self.bus_address(bus), connect_timeout, self.host)
        await link.connect()
        return link

    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandResult:
        return await self.runner.run(argv, timeout=timeout, max_bytes=max_bytes)

    def add_close_listener(self, listener: CloseListener) -> None:
        """Called once, when the connection is lost or closed (with the reason, or None when we closed it)."""
        self._listeners.append(listener)

    async def close(self) -> None:
        await self._close_relays()
        await self._killer.drain()
        if not self.closed:
            self._raw.close()
        with contextlib.suppress(asyncssh.Error, OSError):
            await self._raw.wait_closed()
        await self._close_relays()

    async def wait_closed(self) -> None:
        await self._raw.wait_closed()

    def lost(self, reason: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        if reason is not None:
            log.info("%s: SSH connection lost: %s", self.host, reason)
        self._closing = asyncio.get_running_loop().create_task(self._close_relays())
        for listener in list(self._listeners):
            try:
                listener(self, reason)
            except Exception:
                log.exception("close listener failed")

    async def _close_relays(self) -> None:
        relays, self._relays = list(self._relays.values()), {}
        for relay in relays:
            await relay.close()


class _Client(asyncssh.SSHClient):
    """asyncssh's view of our side: the host-key witness, and the news that the connection is gone."""

    def __init__(self, witness: HostKeyWitness) -> None:
        self.witness = witness
        self.connection: SshConnection | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self.witness.refuse(host, addr, port, key)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.connection is not None:
            self.connection.lost(exc if exc is not None else None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncssh.Error) and exc.reason:
        return exc.reason
    return str(exc) or type(exc).__name__


__all__ = ["HandshakeGate", "HostError", "SshConnection", "SshHost", "SshLimits", "SshTarget"]
