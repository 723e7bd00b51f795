"""Following services: the registry's pack tools kept in step with the bus as services come and go."""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
from collections.abc import Callable, Sequence

from fleetbus import well_known
from fleetbus.config import PackSettings
from fleetbus.dbus.errors import BusError
from fleetbus.dbus.introspect import ObjectInfo
from fleetbus.dbus.link import BusLink
from fleetbus.dbus.signals import ReceivedSignal, Subscription
from fleetbus.gateway import Caller, Gateway, GatewayError, dbus_call
from fleetbus.operation import DBUS_WATCH, LOCAL_HOST, Operation
from fleetbus.tools.packs.build import KnownMethod, build_tools
from fleetbus.tools.registry import ToolRegistry

log = logging.getLogger(__name__)

DBUS = well_known.DBUS
WALK_NODES = 64
WALK_DEPTH = 6


class PackManager:
    """Keeps the registry's pack tools in step with the bus: a service appearing gets tools within the debounce
    delay; one disappearing (and not activatable) loses them. All bus access goes through the gateway."""

    def __init__(
        self,
        gateway: Gateway,
        registry: ToolRegistry,
        packs: Sequence[PackSettings],
        *,
        debounce: float = 0.15,
        on_services_changed: Callable[[], None] | None = None,
        host: str = LOCAL_HOST,
    ) -> None:
        self.gateway = gateway
        self.host = host
        """The host whose services the packs follow (their tools are built from its introspection)."""
        self.registry = registry
        self.packs = list(packs)
        self.debounce = debounce
        self.caller = Caller("fleetbus:packs")
        self.methods: dict[str, list[KnownMethod]] = {}
        self.on_services_changed = on_services_changed
        """Called on every name change on a followed bus (the server turns it into resource notifications)."""
        self._subscriptions: dict[str, Subscription] = {}
        self._following = False
        self._pending: set[tuple[str, str]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._activatable: dict[str, set[str]] = {}

    def _buses(self) -> list[str]:
        configured = self.gateway.hosts.get(self.host).buses
        return sorted({pack.bus for pack in self.packs if pack.bus in configured})

    async def start(self) -> None:
        self._following = True
        # After a drop, the host registry reconnects these links and says so: the watch re-opens on the new
        # link and a rescan brings the tools (and the clients' lists, by list_changed) up to date.
        self.gateway.hosts.add_link_listener(self._relinked)
        for bus in self._buses():
            self.gateway.hosts.keep(self.host, bus)
            await self._follow(bus)
        await self.scan()

    async def _follow(self, bus: str) -> None:
        watch = Operation(DBUS_WATCH, self.host, bus, destination=DBUS, interface=DBUS, member="NameOwnerChanged")
        try:
            self._subscriptions[bus] = await self.gateway.subscribe(watch, self.caller, self._on_owner_changed)
        except (BusError, GatewayError) as exc:
            log.warning("tool packs cannot follow the %s bus of %s: %s", bus, self.host, exc)

    def _relinked(self, host: str, bus: str, link: BusLink) -> None:
        if not self._following or host != self.host or bus not in self._buses():
            return
        current = self._subscriptions.get(bus)
        if current is not None and current.link is link and not current.closed:
            return  # the link this watch was opened on (its first connection)
        task = asyncio.get_running_loop().create_task(self._refollow(bus))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refollow(self, bus: str) -> None:
        """The watch on a new link, then every pack of the bus rebuilt: services may have come or gone meanwhile."""
        old = self._subscriptions.pop(bus, None)
        if old is not None:
            with contextlib.suppress(BusError):
                await old.close()
        log.info("tool packs follow the %s bus of %s again after a reconnect", bus, self.host)
        await self._follow(bus)
        await self.scan()
        if self.on_services_changed is not None:
            self.on_services_changed()

    async def scan(self) -> None:
        """Find every service a pack covers (running or activatable) and build its tools."""
        for bus in self._buses():
            try:
                running = await self._names(bus, "ListNames")
                self._activatable[bus] = set(await self._names(bus, "ListActivatableNames"))
            except (BusError, GatewayError) as exc:
                log.warning("tool packs cannot list services on the %s bus: %s", bus, exc)
                continue
            names = set(running) | self._activatable[bus]
            await asyncio.gather(
                *(
                    self.refresh(pack, name)
                    for pack in self.packs
                    if pack.bus == bus
                    for name in sorted(names)
                    if not name.startswith(":") and fnmatch.fnmatchcase(name, pack.service)
                )
            )

    async def _names(self, bus: str, member: str) -> list[str]:
        operation = dbus_call(DBUS, "/org/freedesktop/DBus", DBUS, member, "", [], bus=bus, host=self.host)
        reply = await self.gateway.call(operation, self.caller)
        return [str(n) for n in reply.body[0]]

    def _on_owner_changed(self, signal: ReceivedSignal) -> None:
        if signal.signature != "sss":
            return
        name, _old, new = (str(v) for v in signal.body)
        if name.startswith(":"):
            return
        bus = next((pack.bus for pack in self.packs if fnmatch.fnmatchcase(name, pack.service)), None)
        if self.on_services_changed is not None:
            self.on_services_changed()
        if bus is None:
            return
        # An activatable service exiting when idle keeps its tools: the next call starts it again.
        if not new and name in self._activatable.get(bus, set()):
            return
        for pack in self.packs:
            if fnmatch.fnmatchcase(name, pack.service):
                self._pending.add((pack.name, name))
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.debounce, self._flush)

    def _flush(self) -> None:
        self._timer = None
        pending, self._pending = self._pending, set()
        by_name = {pack.name: pack for pack in self.packs}
        for pack_name, service in sorted(pending):
            task = asyncio.get_running_loop().create_task(self.refresh(by_name[pack_name], service))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def refresh(self, pack: PackSettings, service: str) -> None:
        group = f"pack:{pack.name}:{service}"
        try:
            objects = await self._objects(pack, service)
        except (BusError, GatewayError) as exc:
            log.info("pack %s: %s is not reachable (%s); its tools are withdrawn", pack.name, service, exc)
            objects = []
        tools = build_tools(pack, service, objects, self.gateway.policy.knowledge, self.packs.index(pack))
        self.methods[group] = tools.methods
        try:
            self.registry.replace_group(group, tools.specs)
        except ValueError as exc:
            log.warning("pack %s: %s", pack.name, exc)

    async def _objects(self, pack: PackSettings, service: str) -> list[ObjectInfo]:
        owner = await self._owner(pack.bus, service)
        if owner is None and service not in self._activatable.get(pack.bus, set()):
            return []
        if pack.paths:
            return [
                await self.gateway.introspect(service, path, self.caller, bus=pack.bus, host=self.host)
                for path in pack.paths
            ]
        walked = await self.gateway.walk(
            service, "/", self.caller, bus=pack.bus, host=self.host, max_nodes=WALK_NODES, max_depth=WALK_DEPTH
        )
        return list(walked.objects)

    async def _owner(self, bus: str, service: str) -> str | None:
        operation = dbus_call(
            DBUS, "/org/freedesktop/DBus", DBUS, "NameHasOwner", "s", [service], bus=bus, host=self.host
        )
        reply = await self.gateway.call(operation, self.caller)
        return service if reply.body[0] else None

    async def stop(self) -> None:
        self._following = False
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for subscription in self._subscriptions.values():
            with contextlib.suppress(BusError):
                await subscription.close()
        self._subscriptions.clear()

    def known_methods(self) -> list[KnownMethod]:
        return [method for methods in self.methods.values() for method in methods]
