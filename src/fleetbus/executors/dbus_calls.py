"""Executing admitted D-Bus operations on a host's link: method calls, introspection through the host's cache.

The gateway decides and records; this puts the admitted operation on the bus. Nothing here decides anything.
"""

from __future__ import annotations

from fleetbus import well_known
from fleetbus.dbus import types
from fleetbus.dbus.introspect import IntrospectionCache, ObjectInfo, parse
from fleetbus.dbus.link import BusLink, Reply
from fleetbus.operation import Operation


async def send(link: BusLink, operation: Operation, timeout: float) -> Reply:
    """Put an admitted method call on the bus: its canonical JSON arguments become the D-Bus body again."""
    body = types.body_of(operation.signature, operation.args)
    return await link.call(
        operation.destination,
        operation.path,
        operation.interface,
        operation.member,
        operation.signature,
        body,
        timeout=timeout,
    )


async def introspect(
    link: BusLink, cache: IntrospectionCache, destination: str, path: str, *, timeout: float
) -> ObjectInfo:
    """One object's introspection, parsed, and kept in the host's cache under the owner that answered."""
    reply = await link.call(destination, path, well_known.INTROSPECTABLE, "Introspect", timeout=timeout)
    info = parse(str(reply.body[0]) if reply.body else "", path)
    cache.put(link.key, reply.sender or destination, path, info)
    return info
