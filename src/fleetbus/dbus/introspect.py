"""Introspection data as plain values, a cache keyed by (unique owner, path), and bounded object-tree walks."""

from __future__ import annotations

import asyncio
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


BYTES_PER_XML_CHAR = 4
"""Memory an ObjectInfo costs per character of its XML: a systemd unit object (47.8 kB of XML) measured 182 kB
under tracemalloc once parsed and kept (the XML itself, the Method/Property/Arg objects and their mappings)."""
ENTRY_OVERHEAD = 512
"""The key, the OrderedDict slot and the timestamp of one entry."""
DEFAULT_MAX_BYTES = 16 * 1024 * 1024


def approximate_size(info: ObjectInfo) -> int:
    """What keeping `info` costs, in bytes, close enough to bound a cache by (not an exact accounting)."""
    return BYTES_PER_XML_CHAR * len(info.xml) + ENTRY_OVERHEAD


class IntrospectionCache:
    """ObjectInfo by (link, unique owner, path). A new owner is a new key, and a departed owner's
    entries are dropped when its NameOwnerChanged arrives; `max_age` bounds staleness of child lists.

    Bounded twice: by `max_bytes` (approximate_size of what it holds; the least recently used go first) and by
    `max_entries`. Entries older than `max_age` are dropped (within max_age / 2) by a timer on the running loop,
    not only when read, so what one listing of 440 units brought in does not stay while nobody asks again."""

    def __init__(self, max_entries: int = 4096, max_age: float = 30.0, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.bytes = 0
        """approximate_size of everything held now."""
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, ObjectInfo, int]] = OrderedDict()
        self._sweep: asyncio.TimerHandle | None = None

    def get(self, link: str, owner: str, path: str) -> ObjectInfo | None:
        key = (link, owner, path)
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, info, _ = entry
        if time.monotonic() - stored > self.max_age:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return info

    def put(self, link: str, owner: str, path: str, info: ObjectInfo) -> None:
        key = (link, owner, path)
        size = approximate_size(info)
        if size > self.max_bytes or self.max_age <= 0:
            self._drop(key)  # would evict everything else and still not fit; or caching is off
            return
        self._drop(key)
        self._entries[key] = (time.monotonic(), info, size)
        self.bytes += size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, (_, _, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
        self._schedule_sweep()

    def forget_owner(self, link: str, owner: str) -> None:
        for key in [k for k in self._entries if k[0] == link and k[1] == owner]:
            self._drop(key)

    def expire(self) -> None:
        """Drop every entry older than max_age."""
        cutoff = time.monotonic() - self.max_age
        # Entries are in use order, not age order (a read moves one to the end): look at all of them.
        for key in [k for k, (stored, _, _) in self._entries.items() if stored < cutoff]:
            self._drop(key)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    def _drop(self, key: tuple[str, str, str]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[2]

    def _schedule_sweep(self) -> None:
        if self._sweep is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a one-shot command): entries still expire when read
        # Every max_age / 2: an entry lives at most 1.5 × max_age without being read.
        self._sweep = loop.call_later(max(self.max_age / 2, 0.05), self._on_sweep)

    def _on_sweep(self) -> None:
        self._sweep = None
        self.expire()
        if self._entries:
            self._schedule_sweep()

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
