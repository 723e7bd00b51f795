"""A host fleetbus reaches: its bus links (system, and the user bus when asked), its introspection cache and its
command runner. `local` is a Host like any other, reached without SSH; every other one over its SSH connection.

Nothing here knows of MCP or policy; the HostRegistry (registry.py) decides which hosts exist and when they
connect, and is told by each Host when one of its links was (re)made or lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fleetbus.argv import CommandResult
from fleetbus.dbus.errors import BusError, BusUnavailable
from fleetbus.dbus.introspect import IntrospectionCache
from fleetbus.dbus.link import BusLink
from fleetbus.hosts.errors import HostError, HostKeyError, HostUnreachable
from fleetbus.hosts.inventory import Host as InventoryHost

if TYPE_CHECKING:  # asyncssh is imported only when a remote host is made (registry), never for local alone
    from fleetbus.hosts.ssh import SshConnection, SshHost

log = logging.getLogger(__name__)

LOCAL = "local"
REMOTE_BUSES = {"system": "system", "session": "user"}
"""An Operation's bus names the host's buses: on a remote host `session` is the login user's own bus."""

LinkEvent = Callable[["Host", str, BusLink], None]
"""(host, bus, link): told when a link is made (first or again) and when it is lost."""


class Runner(Protocol):
    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandResult: ...


@dataclass(frozen=True)
class HostState:
    """What `list_hosts` and `fleetbus hosts check` say of a host."""

    name: str
    state: str
    """reachable, unknown-hostkey, changed-hostkey, revoked-hostkey, hostkey-refused, unreachable or unknown
    (not tried yet)."""
    connected: bool
    reason: str | None = None
    fingerprint: str | None = None


class Host:
    """One host: lazy links per bus, made one at a time (a lock per host), remembered until they drop."""

    def __init__(
        self,
        entry: InventoryHost,
        *,
        connect_timeout: float,
        cache: IntrospectionCache,
        addresses: Mapping[str, str] | None = None,
        ssh: SshHost | None = None,
        on_link: LinkEvent | None = None,
        on_lost: LinkEvent | None = None,
    ) -> None:
        if (ssh is None) == (entry.name != LOCAL):
            raise ValueError("the local host needs bus addresses and no SSH; every other host needs SSH")
        self.entry = entry
        self.name = entry.name
        self.connect_timeout = connect_timeout
        self.cache = cache
        """This host's introspection, keyed by link and unique owner; dropped with the host's connection."""
        self.addresses = dict(addresses or {})
        self.ssh = ssh
        self.last_used = 0.0
        self.last_error: HostError | BusError | None = None
        self.connections_made = 0
        """SSH connections this host has opened (0 for local): proof that a refusal opened none."""
        self._on_link = on_link
        self._on_lost = on_lost
        self._links: dict[str, BusLink] = {}
        self._lock = asyncio.Lock()
        self._watchers: set[asyncio.Task[None]] = set()
        self._in_use = 0
        self.runner: Runner | None = None if ssh is None else _RemoteRunner(self)
        """Runs argvs on this host (`await host.runner.run(argv, timeout=…, max_bytes=…)`), connecting if needed.
        None for `local`: this machine's commands run in executors/ (`executors.command.LocalRunner`)."""

    @property
    def is_local(self) -> bool:
        return self.ssh is None

    @property
    def buses(self) -> tuple[str, ...]:
        """The buses an Operation may name on this host."""
        return tuple(self.addresses) if self.ssh is None else tuple(REMOTE_BUSES)

    @property
    def connected(self) -> bool:
        if self.ssh is not None:
            return self.ssh.connection is not None
        return any(link.connected for link in self._links.values())

    @property
    def busy(self) -> bool:
        return self._in_use > 0

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        """Marks the host busy (so the fd budget never closes it under a call) and recently used."""
        self._in_use += 1
        self.last_used = time.monotonic()
        try:
            yield
        finally:
            self._in_use -= 1
            self.last_used = time.monotonic()

    def peek(self, bus: str) -> BusLink | None:
        """The connected link to `bus`, if there is one; never connects."""
        link = self._links.get(bus)
        return link if link is not None and link.connected else None

    async def link(self, bus: str) -> BusLink:
        """A connected link to `bus`, made now if there is none (within the connect deadline)."""
        self.last_used = time.monotonic()
        link = self.peek(bus)
        if link is not None:
            return link
        async with self._lock:
            link = self.peek(bus)
            if link is not None:
                return link
            try:
                link = await self._open_link(bus)
            except (HostError, BusError) as exc:
                self.last_error = exc
                raise
            self.last_error = None
            self._links[bus] = link
            watcher = asyncio.get_running_loop().create_task(self._watch(bus, link))
            self._watchers.add(watcher)
            watcher.add_done_callback(self._watchers.discard)
        if self._on_link is not None:
            self._on_link(self, bus, link)
        return link

    async def connection(self) -> SshConnection:
        """The host's SSH connection, made now if there is none (remote hosts only)."""
        if self.ssh is None:
            raise HostUnreachable(self.name, "the local host has no SSH connection")
        self.last_used = time.monotonic()
        live = self.ssh.connection
        if live is not None:
            return live
        try:
            connection = await self.ssh.connect()
        except HostError as exc:
            self.last_error = exc
            raise
        if connection is not live:
            self.connections_made += 1
        self.last_error = None
        return connection

    async def _open_link(self, bus: str) -> BusLink:
        if self.ssh is None:
            address = self.addresses.get(bus)
            if not address:
                raise BusUnavailable(f"no address configured for the {bus} bus")
            link = BusLink(bus, address, self.connect_timeout, self.name)
            await link.connect()
            return link
        remote = REMOTE_BUSES.get(bus)
        if remote is None:
            raise BusUnavailable(f"{self.name}: no {bus!r} bus; a host has {', '.join(REMOTE_BUSES)}")
        connection = await self.connection()
        link = BusLink(bus, await connection.bus_address(remote), self.connect_timeout, self.name)
        await link.connect()
        return link

    async def _watch(self, bus: str, link: BusLink) -> None:
        await link.wait_disconnected()
        if self._links.get(bus) is link:
            del self._links[bus]
        link.close()
        if self._on_lost is not None:
            self._on_lost(self, bus, link)

    async def check(self) -> HostState:
        """Whether the host can be reached now: connects (SSH, or the local system bus) within the deadline."""
        try:
            if self.ssh is None:
                await self.link(next(iter(self.addresses), "system"))
            else:
                await self.connection()
        except HostKeyError as exc:
            return HostState(self.name, exc.code, False, str(exc), exc.fingerprint or None)
        except (HostError, BusError) as exc:
            return HostState(self.name, "unreachable", self.connected, str(exc))
        return HostState(self.name, "reachable", True)

    def state(self) -> HostState:
        """What is known without connecting."""
        if self.connected:
            return HostState(self.name, "reachable", True)
        error = self.last_error
        if isinstance(error, HostKeyError):
            return HostState(self.name, error.code, False, str(error), error.fingerprint or None)
        if error is not None:
            return HostState(self.name, "unreachable", False, str(error))
        return HostState(self.name, "unknown", False)

    async def close(self) -> None:
        """Closes every link and the SSH connection; the next call connects again."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()
        for watcher in list(self._watchers):
            watcher.cancel()
        if self.ssh is not None:
            with contextlib.suppress(Exception):
                await self.ssh.close()

    def close_now(self) -> None:
        """Closes the links at once, for a shutdown that cannot wait (the SSH connection goes with the process)."""
        links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()
        for watcher in list(self._watchers):
            watcher.cancel()


class _RemoteRunner:
    """A remote host's runner: connects on demand, then runs on the host's one connection."""

    def __init__(self, host: Host) -> None:
        self._host = host

    async def run(self, argv: Sequence[str], *, timeout: float, max_bytes: int) -> CommandResult:
        began = time.monotonic()
        with self._host.in_use():
            try:
                async with asyncio.timeout(timeout):
                    connection = await self._host.connection()
            except TimeoutError:
                raise HostUnreachable(self._host.name, f"no SSH connection within {timeout:g} s") from None
            left = max(timeout - (time.monotonic() - began), 0.001)
            return await connection.run(argv, timeout=left, max_bytes=max_bytes)
