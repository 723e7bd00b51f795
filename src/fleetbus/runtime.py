"""The composition root: settings in, a gateway and a tool registry out — shared by the server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from fleetbus.config import Settings
from fleetbus.dbus.introspect import IntrospectionCache
from fleetbus.dbus.link import LinkPool
from fleetbus.gateway import Deadlines, Gateway
from fleetbus.guard.policy import ReadOnlyRule
from fleetbus.tools.bus import bus_tools
from fleetbus.tools.registry import ToolContext, ToolRegistry


@dataclass
class Runtime:
    settings: Settings
    gateway: Gateway
    registry: ToolRegistry

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        deadlines = Deadlines(settings.call_timeout, settings.max_call_timeout, settings.connect_timeout)
        links = LinkPool(settings.bus_addresses(), settings.connect_timeout)
        cache = IntrospectionCache(max_age=settings.introspection_max_age)
        gateway = Gateway(links, ReadOnlyRule(), deadlines, cache)
        registry = ToolRegistry()
        registry.extend(bus_tools(deadlines))
        return cls(settings, gateway, registry)

    def context(self, client: str) -> ToolContext:
        return ToolContext(self.gateway, client)

    def close(self) -> None:
        self.gateway.close()
