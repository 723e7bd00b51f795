"""Toolsets: how fleetbus's tools are grouped and disclosed, so that the default tools/list stays small under every
preset while every tool stays reachable.

A client sees the toolsets the operator lists by default, plus those it enables itself (`enable_toolset`, which
sends `list_changed`); `find_tools` searches every tool and D-Bus method, listed or not, and any tool can be
called by name. Built-in toolsets are listed whole once enabled; pack toolsets (one per tool pack) fill what the
tool budget leaves, those a client enabled first. A selection belongs to a client identity (stdio, a token's name,
a socket peer's uid), so both protocol eras — with or without sessions — keep it between calls.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

DEFAULT = "default"
ALL = "all"


@dataclass(frozen=True)
class Toolset:
    name: str
    description: str
    tools: tuple[str, ...] = ()
    """The built-in tools it holds; a pack's toolset holds the pack's tools, which come and go with its service."""
    default: bool = False
    pack: bool = False


BUILTIN_TOOLSETS: tuple[Toolset, ...] = (
    Toolset(
        "core",
        "What the everyday work orders need: triage, units, their jobs, the journal, load, and tool discovery.",
        (
            "health_check",
            "list_units",
            "unit_status",
            "unit_job",
            "query_journal",
            "system_status",
            "top_processes",
            "find_tools",
            "enable_toolset",
        ),
        default=True,
    ),
    Toolset(
        "bus",
        "Everything on D-Bus: services, object trees, introspection, typed method calls, properties, signals.",
        (
            "list_services",
            "list_objects",
            "introspect",
            "call_method",
            "get_property",
            "get_properties",
            "set_property",
            "wait_signal",
        ),
        default=True,
    ),
    Toolset(
        "units",
        "More of systemd: unit files (enable, disable), dependencies, resetting a failed state, unit jobs rolled "
        "across hosts in batches behind health gates.",
        ("list_unit_files", "unit_dependencies", "unit_file", "reset_failed_unit", "rolling_unit_job"),
    ),
    Toolset(
        "host",
        "The host itself: identity and uptime, network interfaces and listening sockets, clock and NTP, logins; "
        "the inventory's hosts.",
        ("host_info", "network_status", "time_status", "list_sessions", "list_hosts"),
    ),
    Toolset(
        "guard",
        "The guard: what the policy would decide for a call (explain), the audit log (admin only).",
        ("explain", "audit_query"),
    ),
)


class ToolsetError(ValueError):
    """An unknown toolset name; the message lists the known ones."""


class ToolsetCatalog:
    """Every toolset: the built-in ones and one per tool pack."""

    def __init__(self, builtin: Sequence[Toolset], packs: Iterable[str] = ()) -> None:
        self._sets: dict[str, Toolset] = {t.name: t for t in builtin}
        self._of: dict[str, str] = {tool: t.name for t in builtin for tool in t.tools}
        for pack in packs:
            if pack in self._sets:
                raise ToolsetError(f"tool pack {pack!r} has the name of a built-in toolset; rename the pack")
            self._sets[pack] = Toolset(pack, f"Tool pack {pack}: its service's D-Bus methods as tools.", pack=True)

    def __iter__(self) -> Iterator[Toolset]:
        return iter(self._sets.values())

    def get(self, name: str) -> Toolset | None:
        return self._sets.get(name)

    def names(self) -> list[str]:
        return list(self._sets)

    def of(self, tool: str) -> str:
        """The toolset of a built-in tool; every built-in tool must be in one (the listing depends on it)."""
        try:
            return self._of[tool]
        except KeyError:
            raise ToolsetError(f"built-in tool {tool!r} belongs to no toolset; add it to BUILTIN_TOOLSETS") from None

    def defaults(self) -> frozenset[str]:
        return frozenset(t.name for t in self._sets.values() if t.default or t.pack)

    def resolve(self, names: Iterable[str]) -> frozenset[str]:
        """Configured names → toolsets: `default` stands for the default ones, `all` for every one."""
        chosen: set[str] = set()
        for name in names:
            if name == DEFAULT:
                chosen |= self.defaults()
            elif name == ALL:
                chosen |= set(self._sets)
            elif name in self._sets:
                chosen.add(name)
            else:
                raise ToolsetError(self.unknown(name))
        return frozenset(chosen)

    def unknown(self, name: str) -> str:
        return f"unknown toolset {name!r}; toolsets: {', '.join(self._sets)} (or {DEFAULT}, {ALL})"


@dataclass(frozen=True)
class Choice:
    """What one client sees: the toolsets listed for it, and those it asked for itself (listed first)."""

    listed: frozenset[str]
    asked: tuple[str, ...] = ()


class ToolsetSelection:
    """Each client's toolsets: the operator's defaults plus what the client enabled, minus what it disabled.

    Bounded: the clients remembered are the most recent `max_clients` (a client that is forgotten sees the
    defaults again, and hears nothing — it asked long ago)."""

    def __init__(self, catalog: ToolsetCatalog, defaults: frozenset[str], *, max_clients: int = 1024) -> None:
        self.catalog = catalog
        self.defaults = defaults
        self.max_clients = max_clients
        self._choices: OrderedDict[str, Choice] = OrderedDict()
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called when a client's selection changes: its tool list did."""
        self._listeners.append(listener)

    def of(self, client: str) -> Choice:
        choice = self._choices.get(client)
        if choice is None:
            return Choice(self.defaults)
        self._choices.move_to_end(client)
        return choice

    def set(self, client: str, toolset: str, enabled: bool) -> Choice:
        """Enable or disable one toolset for `client`; listeners hear of it when anything changed."""
        if self.catalog.get(toolset) is None:
            raise ToolsetError(self.catalog.unknown(toolset))
        before = self.of(client)
        asked = tuple(name for name in before.asked if name != toolset)
        if enabled:
            after = Choice(before.listed | {toolset}, (toolset, *asked))
        else:
            after = Choice(before.listed - {toolset}, asked)
        self._choices[client] = after
        self._choices.move_to_end(client)
        while len(self._choices) > self.max_clients:
            self._choices.popitem(last=False)
        if after != before:
            for listener in list(self._listeners):
                listener()
        return after
