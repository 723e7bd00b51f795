"""Every host of the inventory (and `local`) as a Host: connected lazily, one connection per host, reconnected
with backoff and jitter when a link someone follows drops, and within an fd budget (the least recently used
idle host is closed to make room). Listeners hear when a host's link is (re)connected, so subscriptions that
lived on the old link re-open on the new one."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleetbus.dbus.introspect import IntrospectionCache
from fleetbus.dbus.link import BusLink
from fleetbus.hosts.errors import HostError, HostUnreachable
from fleetbus.hosts.host import LOCAL, Host, HostState
from fleetbus.hosts.inventory import LOCAL_HOST, Inventory
from fleetbus.hosts.inventory import Host as InventoryHost
from fleetbus.hosts.patterns import PatternError, compile_pattern
from fleetbus.hosts.ssh_options import HandshakeGate, SshLimits, SshTarget
from fleetbus.suggestions import unknown

log = logging.getLogger(__name__)

LinkListener = Callable[[str, str, BusLink], None]
"""(host, bus, link): a link was made — the first time, or again after a drop."""
OwnerListener = Callable[[BusLink, str, str, str], None]
"""(link, name, old_owner, new_owner) for NameOwnerChanged on every link of every host."""


class UnknownHost(HostError):
    """A host name the inventory does not hold; the message names the closest ones."""

    def __init__(self, name: str, known: list[str], source: str) -> None:
        message = unknown("host", name, known, argument="host", see=f"list_hosts shows the inventory ({source})")
        Exception.__init__(self, message)
        self.host = name


@dataclass(frozen=True)
class SshOptions:
    """How remote hosts are reached, from the settings (`ssh_config`, `known_hosts`, `ssh_key`)."""

    config: tuple[Path, ...] = ()
    known_hosts: tuple[Path, ...] = ()
    identity_file: Path | None = None
    limits: SshLimits = field(default_factory=SshLimits)


@dataclass(frozen=True)
class Backoff:
    """Delays between reconnection attempts: doubling from `first` to `most`, each scaled by a random factor in
    [1 - jitter, 1 + jitter] so hosts dropped together do not all come back in the same instant."""

    first: float = 0.5
    most: float = 30.0
    jitter: float = 0.3

    def delay(self, attempt: int) -> float:
        base = min(self.first * (2.0**attempt), self.most)
        factor: float = random.uniform(1 - self.jitter, 1 + self.jitter)  # jitter, not secrecy
        return base * factor


class HostRegistry:
    def __init__(
        self,
        inventory: Inventory,
        *,
        addresses: Mapping[str, str],
        connect_timeout: float,
        ssh: SshOptions | None = None,
        max_connected: int = 64,
        cache_factory: Callable[[], IntrospectionCache] = IntrospectionCache,
        backoff: Backoff | None = None,
    ) -> None:
        if max_connected < 1:
            raise ValueError(f"max_connected must be at least 1, not {max_connected}")
        self.inventory = inventory
        self.addresses = dict(addresses)
        self.connect_timeout = connect_timeout
        self.ssh = ssh or SshOptions()
        self.max_connected = max_connected
        self.backoff = backoff or Backoff()
        self._cache_factory = cache_factory
        self._handshakes = HandshakeGate()
        self._hosts: dict[str, Host] = {}
        self._link_listeners: list[LinkListener] = []
        self._owner_listeners: list[OwnerListener] = []
        self._kept: set[tuple[str, str]] = set()
        self._reconnecting: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._room = asyncio.Lock()
        self._closed = False

    # ---- which hosts there are --------------------------------------------------------------------

    def names(self) -> list[str]:
        """`local`, then the inventory's hosts in its order."""
        return [LOCAL, *self.inventory.hosts]

    def entry(self, name: str) -> InventoryHost:
        found = self.inventory.get(name)
        if found is None:
            raise UnknownHost(name, self.names(), self.inventory.source)
        return found

    def check_name(self, name: str) -> None:
        """Raises UnknownHost (naming the closest hosts) unless the inventory holds `name`."""
        self.entry(name)

    def get(self, name: str) -> Host:
        """The Host of that name (made on first use, never connecting); UnknownHost if there is none."""
        host = self._hosts.get(name)
        if host is not None:
            return host
        entry = self.entry(name)
        host = self._hosts[name] = self._make(entry)
        return host

    def peek(self, name: str) -> Host | None:
        return self._hosts.get(name)

    def select(self, pattern: str | Sequence[str], *, allow_regex: bool = False) -> list[str]:
        """The names an Ansible host pattern (or a list of them, combined as Ansible combines a list) selects;
        `local` only by its name. Raises PatternError for a pattern outside the grammar. `~regex` terms only
        with `allow_regex` (the operator's policy file; never a client's input)."""
        parts = [pattern] if isinstance(pattern, str) else list(pattern)
        local = any(part.strip() == LOCAL for part in parts)
        rest = [part for part in parts if part.strip() != LOCAL]
        names = list(compile_pattern(rest, allow_regex=allow_regex).select(self.inventory).names) if rest else []
        return [LOCAL, *names] if local else names

    def matches(self, patterns: Sequence[str], name: str) -> bool:
        """Whether `patterns` (a token's or a caller's, in Ansible's grammar, combined) select host `name`; `*`
        also selects local, and `!local` takes it out again. A pattern outside the grammar selects nothing.

        The whole list is evaluated, never one item alone: `["*", "!host03"]` or `["host03", "!host03"]`
        leave host03 out, as Ansible would."""
        try:
            selected = self.select(patterns)
        except PatternError:
            return False
        if name != LOCAL:
            return name in selected
        words = {part.strip() for part in patterns}
        return (LOCAL in selected or "*" in words) and f"!{LOCAL}" not in words

    def _make(self, entry: InventoryHost) -> Host:
        cache = self._cache_factory()
        if entry.is_local:
            return Host(
                LOCAL_HOST,
                connect_timeout=self.connect_timeout,
                cache=cache,
                addresses=self.addresses,
                on_link=self._linked,
                on_lost=self._lost,
            )
        options = self.ssh
        identity = entry.identity_file or options.identity_file
        target = SshTarget(
            entry.name,
            address=entry.address,
            port=entry.port,
            user=entry.user,
            identity_files=(identity,) if identity is not None else (),
            known_hosts=options.known_hosts,
            config=options.config,
        )
        from fleetbus.hosts.ssh import SshHost  # noqa: PLC0415 - asyncssh only once a remote host is made

        ssh = SshHost(target, options.limits, handshakes=self._handshakes)
        return Host(
            entry, connect_timeout=self.connect_timeout, cache=cache, ssh=ssh, on_link=self._linked, on_lost=self._lost
        )

    # ---- links --------------------------------------------------------------------------------------

    async def link(self, name: str, bus: str) -> BusLink:
        """A connected link to `bus` on host `name`, connecting (within the fd budget) if need be."""
        live = self.live_link(name, bus)
        if live is not None:
            return live
        host = self.get(name)
        if not host.is_local and not host.connected:
            await self._make_room(host)
        return await host.link(bus)

    def live_link(self, name: str, bus: str) -> BusLink | None:
        """`link` when the link is up already (its host counts as used now): None means `link` has to connect."""
        host = self._hosts.get(name)
        if host is None:
            return None
        live = host.peek(bus)
        if live is not None:
            host.last_used = time.monotonic()
        return live

    def peek_link(self, name: str, bus: str) -> BusLink | None:
        host = self._hosts.get(name)
        return host.peek(bus) if host is not None else None

    async def runner_of(self, name: str) -> Host:
        """The host, for its `runner` (remote runners connect on demand; the fd budget applies)."""
        host = self.get(name)
        if not host.is_local and not host.connected:
            await self._make_room(host)
        return host

    def keep(self, name: str, bus: str) -> None:
        """Keep this link up: after a drop, reconnect it (with backoff) and tell the link listeners."""
        self._kept.add((name, bus))

    def add_link_listener(self, listener: LinkListener) -> None:
        self._link_listeners.append(listener)

    def add_owner_listener(self, listener: OwnerListener) -> None:
        """Told of NameOwnerChanged on every link, now and later."""
        self._owner_listeners.append(listener)

    def _linked(self, host: Host, bus: str, link: BusLink) -> None:
        for owner_listener in self._owner_listeners:
            link.add_owner_listener(functools.partial(owner_listener, link))
        for listener in list(self._link_listeners):
            try:
                listener(host.name, bus, link)
            except Exception:
                log.exception("link listener failed")

    def _lost(self, host: Host, bus: str, _link: BusLink) -> None:
        key = (host.name, bus)
        if self._closed or key not in self._kept or key in self._reconnecting:
            return
        log.info("%s: the %s bus link dropped; reconnecting", host.name, bus)
        task = asyncio.get_running_loop().create_task(self._reconnect(host, bus))
        self._reconnecting[key] = task
        task.add_done_callback(lambda _t: self._reconnecting.pop(key, None))

    async def _reconnect(self, host: Host, bus: str) -> None:
        attempt = 0
        while not self._closed and (host.name, bus) in self._kept and host.peek(bus) is None:
            await asyncio.sleep(self.backoff.delay(attempt))
            try:
                await self.link(host.name, bus)
                return
            except Exception as exc:  # every failure is retried later; the next call reports it
                log.info("%s: reconnecting the %s bus failed (attempt %d): %s", host.name, bus, attempt + 1, exc)
            attempt += 1

    # ---- the fd budget ------------------------------------------------------------------------------

    def connected_count(self) -> int:
        """Remote hosts with an SSH connection now (each costs a socket, relays and their channels)."""
        return sum(1 for host in self._hosts.values() if not host.is_local and host.connected)

    @property
    def connections_made(self) -> int:
        """SSH connections opened since start, over all hosts."""
        return sum(host.connections_made for host in self._hosts.values())

    async def _make_room(self, wanted: Host) -> None:
        async with self._room:
            while self.connected_count() >= self.max_connected:
                # Hosts whose links someone follows (kept) are not idle: closing one would end the following.
                followed = {name for name, _bus in self._kept}
                idle = [
                    host
                    for host in self._hosts.values()
                    if not host.is_local
                    and host.connected
                    and host is not wanted
                    and not host.busy
                    and host.name not in followed
                ]
                if not idle:
                    raise HostUnreachable(
                        wanted.name,
                        f"{self.max_connected} hosts are connected (max_connected_hosts) and all are busy or "
                        "followed; try again when a call ends",
                    )
                oldest = min(idle, key=lambda host: host.last_used)
                log.info("closing the idle connection to %s to stay within %d hosts", oldest.name, self.max_connected)
                await oldest.close()

    # ---- state and closing --------------------------------------------------------------------------

    async def check(self, names: list[str], *, concurrency: int = 16) -> list[HostState]:
        """Each host's state after trying to reach it (concurrently, each within the connect deadline)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(name: str) -> HostState:
            async with gate:
                host = await self.runner_of(name) if name != LOCAL else self.get(name)
                return await host.check()

        async def guarded(name: str) -> HostState:
            try:
                return await one(name)
            except HostError as exc:
                return HostState(name, "unreachable", False, str(exc))

        return list(await asyncio.gather(*(guarded(name) for name in names)))

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._reconnecting.values()):
            task.cancel()
        for host in list(self._hosts.values()):
            await host.close()

    def close(self) -> None:
        """Closes every link now (for a synchronous shutdown; SSH connections end with the event loop)."""
        self._closed = True
        for task in list(self._reconnecting.values()):
            task.cancel()
        for host in self._hosts.values():
            host.close_now()
            host.cache.close()  # its sweep timer (a cache shared by hosts closes once; closing again is nothing)
