"""The one choke point: every effect on a host is an Operation that passes `Gateway` — policy, then execution
with a deadline. Tools build Operations; only this module (and the executors below it) touch a bus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from fleetbus.dbus import types
from fleetbus.dbus.introspect import IntrospectionCache, ObjectInfo, WalkResult, parse, walk
from fleetbus.dbus.link import BusLink, LinkPool, Reply
from fleetbus.dbus.signals import Collected, SignalFilter, collect
from fleetbus.guard.policy import Decision
from fleetbus.operation import DBUS_CALL, DBUS_WATCH, LOCAL_HOST, Operation

INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PROPERTIES = "org.freedesktop.DBus.Properties"


class Rule(Protocol):
    def decide(self, operation: Operation) -> Decision: ...


class GatewayError(Exception):
    """Refused or impossible before anything reached a host."""


class OperationDenied(GatewayError):
    def __init__(self, operation: Operation, decision: Decision) -> None:
        super().__init__(f"refused by policy rule {decision.rule!r}: {decision.reason}")
        self.operation = operation
        self.decision = decision


@dataclass(frozen=True)
class Deadlines:
    default: float
    maximum: float
    connect: float

    def choose(self, requested: float | None) -> float:
        if requested is None:
            return self.default
        if requested <= 0:
            raise GatewayError(f"timeout must be a positive number of seconds, got {requested:g}")
        if requested > self.maximum:
            raise GatewayError(f"timeout {requested:g} s exceeds the configured maximum of {self.maximum:g} s")
        return requested


def dbus_call(
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str,
    args: Sequence[Any],
    *,
    names: Sequence[str | None] | None = None,
    bus: str = "system",
    host: str = LOCAL_HOST,
) -> Operation:
    """An Operation for a method call, its JSON arguments checked against `signature` and put in canonical form.

    Raises types.ValueConversionError / types.SignatureError naming the argument that does not fit.
    """
    body = types.from_json(signature, args, names)
    canonical = types.to_json(signature, body, variants="typed", bytes_as="base64")
    return Operation(DBUS_CALL, host, bus, destination, path, interface, member, signature, tuple(canonical))


class Gateway:
    def __init__(self, links: LinkPool, rule: Rule, deadlines: Deadlines, cache: IntrospectionCache) -> None:
        self.links = links
        self.rule = rule
        self.deadlines = deadlines
        self.cache = cache
        links.add_owner_listener(self._owner_changed)

    def decide(self, operation: Operation) -> Decision:
        return self.rule.decide(operation)

    def _admit(self, operation: Operation) -> None:
        decision = self.decide(operation)
        if not decision.allowed:
            raise OperationDenied(operation, decision)

    async def call(self, operation: Operation, timeout: float | None = None) -> Reply:
        """Run a D-Bus method call after policy allows it."""
        if operation.kind != DBUS_CALL:
            raise GatewayError(f"call() takes {DBUS_CALL} operations, not {operation.kind}")
        deadline = self.deadlines.choose(timeout)
        self._admit(operation)
        link = await self.links.get(operation.host, operation.bus)
        body = types.from_json(operation.signature, operation.args)
        return await link.call(
            operation.destination,
            operation.path,
            operation.interface,
            operation.member,
            operation.signature,
            body,
            timeout=deadline,
        )

    async def introspect(
        self,
        destination: str,
        path: str,
        *,
        bus: str = "system",
        host: str = LOCAL_HOST,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Introspection of one object, from the cache when the same owner answered recently."""
        operation = Operation(DBUS_CALL, host, bus, destination, path, INTROSPECTABLE, "Introspect")
        deadline = self.deadlines.choose(timeout)
        self._admit(operation)
        link = await self.links.get(host, bus)
        owner = link.owners.get(destination) if not destination.startswith(":") else destination
        if owner and (cached := self.cache.get(link.key, owner, path)) is not None:
            return cached
        reply = await link.call(destination, path, INTROSPECTABLE, "Introspect", timeout=deadline)
        info = parse(str(reply.body[0]) if reply.body else "", path)
        self.cache.put(link.key, reply.sender or destination, path, info)
        return info

    async def walk(
        self,
        destination: str,
        root: str,
        *,
        bus: str = "system",
        host: str = LOCAL_HOST,
        max_nodes: int,
        max_depth: int,
        timeout: float | None = None,
    ) -> WalkResult:
        async def fetch(path: str) -> ObjectInfo:
            return await self.introspect(destination, path, bus=bus, host=host, timeout=timeout)

        return await walk(fetch, root, max_nodes=max_nodes, max_depth=max_depth)

    async def watch(self, operation: Operation, *, timeout: float, max_count: int) -> Collected:
        """Collect signals matching the operation's sender/path/interface/member."""
        if operation.kind != DBUS_WATCH:
            raise GatewayError(f"watch() takes {DBUS_WATCH} operations, not {operation.kind}")
        if timeout <= 0 or timeout > self.deadlines.maximum:
            raise GatewayError(f"timeout must be between 0 and {self.deadlines.maximum:g} s, got {timeout:g}")
        selector = SignalFilter(
            operation.destination or None,
            operation.path or None,
            operation.interface or None,
            operation.member or None,
        )
        self._admit(operation)
        link = await self.links.get(operation.host, operation.bus)
        return await collect(link, selector, timeout=timeout, max_count=max_count)

    def process_name(self, host: str, pid: int) -> str | None:
        """The command name of a process on `host`, for labelling bus peers; None where unknown."""
        if host != LOCAL_HOST:
            return None
        try:
            return psutil.Process(pid).name()
        except (psutil.Error, ValueError):
            return None

    def _owner_changed(self, link: BusLink, name: str, old: str, new: str) -> None:
        if old and name == old and not new:
            self.cache.forget_owner(link.key, old)

    def close(self) -> None:
        self.links.close()
