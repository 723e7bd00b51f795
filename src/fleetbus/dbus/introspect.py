"""Introspection data as plain values, a cache keyed by (unique owner, path), and bounded object-tree walks."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from dbus_fast.constants import PropertyAccess
from dbus_fast.errors import DBusFastError
from dbus_fast.introspection import Node

from fleetbus.dbus.errors import BusError


@dataclass(frozen=True)
class Arg:
    name: str | None
    signature: str


@dataclass(frozen=True)
class Method:
    name: str
    in_args: tuple[Arg, ...]
    out_args: tuple[Arg, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def in_signature(self) -> str:
        return "".join(a.signature for a in self.in_args)

    @property
    def out_signature(self) -> str:
        return "".join(a.signature for a in self.out_args)


@dataclass(frozen=True)
class Property:
    name: str
    signature: str
    access: str
    """"read", "write" or "readwrite"."""
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Signal:
    name: str
    args: tuple[Arg, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def signature(self) -> str:
        return "".join(a.signature for a in self.args)


@dataclass(frozen=True)
class Interface:
    name: str
    methods: tuple[Method, ...] = ()
    properties: tuple[Property, ...] = ()
    signals: tuple[Signal, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    def method(self, name: str) -> Method | None:
        return next((m for m in self.methods if m.name == name), None)

    def property(self, name: str) -> Property | None:
        return next((p for p in self.properties if p.name == name), None)


@dataclass(frozen=True)
class ObjectInfo:
    """What an object at `path` says about itself."""

    path: str
    interfaces: tuple[Interface, ...]
    children: tuple[str, ...]
    """Child node names, relative (e.g. "unit" under /org/freedesktop/systemd1)."""
    xml: str = field(repr=False, default="")

    def interface(self, name: str) -> Interface | None:
        return next((i for i in self.interfaces if i.name == name), None)

    def child_paths(self) -> list[str]:
        base = self.path.rstrip("/")
        return [f"{base}/{child}" for child in self.children]


class IntrospectionError(BusError):
    pass


def parse(xml: str, path: str) -> ObjectInfo:
    try:
        node = Node.parse(xml, validate_property_names=False)
    except (DBusFastError, ValueError, SyntaxError) as exc:
        raise IntrospectionError(
            f"the object at {path} returned introspection data that cannot be parsed: {exc}"
        ) from None
    interfaces = tuple(
        Interface(
            name=interface.name,
            methods=tuple(
                Method(
                    m.name,
                    tuple(Arg(a.name, str(a.signature)) for a in m.in_args),
                    tuple(Arg(a.name, str(a.signature)) for a in m.out_args),
                    MappingProxyType(dict(m.annotations)),
                )
                for m in interface.methods
            ),
            properties=tuple(
                Property(p.name, p.signature, _access(p.access), MappingProxyType(dict(p.annotations)))
                for p in interface.properties
            ),
            signals=tuple(
                Signal(
                    s.name, tuple(Arg(a.name, str(a.signature)) for a in s.args), MappingProxyType(dict(s.annotations))
                )
                for s in interface.signals
            ),
            annotations=MappingProxyType(dict(interface.annotations)),
        )
        for interface in node.interfaces
    )
    children = tuple(child.name for child in node.nodes if child.name)
    return ObjectInfo(path, interfaces, children, xml)


def _access(access: PropertyAccess) -> str:
    return {PropertyAccess.READ: "read", PropertyAccess.WRITE: "write"}.get(access, "readwrite")


class IntrospectionCache:
    """ObjectInfo by (link, unique owner, path). A new owner is a new key, and a departed owner's
    entries are dropped when its NameOwnerChanged arrives; `max_age` bounds staleness of child lists."""

    def __init__(self, max_entries: int = 4096, max_age: float = 30.0) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, ObjectInfo]] = OrderedDict()

    def get(self, link: str, owner: str, path: str) -> ObjectInfo | None:
        key = (link, owner, path)
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, info = entry
        if time.monotonic() - stored > self.max_age:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return info

    def put(self, link: str, owner: str, path: str, info: ObjectInfo) -> None:
        self._entries[(link, owner, path)] = (time.monotonic(), info)
        self._entries.move_to_end((link, owner, path))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget_owner(self, link: str, owner: str) -> None:
        for key in [k for k in self._entries if k[0] == link and k[1] == owner]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class WalkResult:
    objects: tuple[ObjectInfo, ...]
    errors: tuple[tuple[str, str], ...]
    """(path, message) for nodes that could not be introspected."""
    truncated: bool
    """True when max_nodes or max_depth stopped the walk before the tree ended."""


async def walk(
    fetch: Callable[[str], Awaitable[ObjectInfo]], root: str, *, max_nodes: int, max_depth: int
) -> WalkResult:
    """Breadth-first over the object tree below `root`, visiting at most `max_nodes` objects."""
    queue: deque[tuple[str, int]] = deque([(root, 0)])
    objects: list[ObjectInfo] = []
    errors: list[tuple[str, str]] = []
    truncated = False
    while queue:
        if len(objects) + len(errors) >= max_nodes:
            truncated = True
            break
        path, depth = queue.popleft()
        try:
            info = await fetch(path)
        except BusError as exc:
            errors.append((path, str(exc)))
            continue
        objects.append(info)
        if info.children:
            if depth >= max_depth:
                truncated = True
            else:
                queue.extend((child, depth + 1) for child in info.child_paths())
    return WalkResult(tuple(objects), tuple(errors), truncated)
