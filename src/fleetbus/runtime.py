"""The composition root: settings in, a gateway and a tool registry out — shared by the server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fleetbus.config import Settings
from fleetbus.dbus.introspect import IntrospectionCache
from fleetbus.dbus.link import LinkPool
from fleetbus.dbus.signals import WatchLimits
from fleetbus.executable import fleetbus_argv
from fleetbus.gateway import Caller, Deadlines, Gateway
from fleetbus.guard.approvals import ApprovalStore, DecisionCommands
from fleetbus.guard.audit import AuditLog
from fleetbus.guard.limits import Budget, RateLimiter
from fleetbus.guard.policy import Policy, load_policy
from fleetbus.tools.audit import audit_tools
from fleetbus.tools.bus import bus_tools
from fleetbus.tools.discovery import Discovery, enable_toolset_tool, find_tools_tool
from fleetbus.tools.explain import explain_tools
from fleetbus.tools.operator import operator_tools
from fleetbus.tools.packs import BUILTIN_PACKS, PackManager, merge_packs
from fleetbus.tools.registry import Listed, ToolBudget, ToolContext, ToolRegistry
from fleetbus.tools.toolsets import BUILTIN_TOOLSETS, ToolsetCatalog, ToolsetSelection


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    gateway: Gateway
    registry: ToolRegistry
    packs: PackManager
    budget: ToolBudget
    toolsets: ToolsetSelection

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        deadlines = Deadlines(settings.call_timeout, settings.max_call_timeout, settings.connect_timeout)
        policy = load_policy(settings.safety, settings.policy_file, settings.protected_units)
        gateway = Gateway(
            LinkPool(settings.bus_addresses(), settings.connect_timeout),
            policy,
            deadlines,
            IntrospectionCache(max_age=settings.introspection_max_age, max_bytes=settings.introspection_cache_bytes),
            approvals=ApprovalStore(
                settings.approvals_directory,
                ttl=settings.approval_ttl,
                max_pending=settings.approvals_pending_per_client,
                keep_seconds=settings.approvals_keep_days * 86400,
            ),
            decision_commands=DecisionCommands(tuple(fleetbus_argv()), settings.approvals_location()),
            audit_log=AuditLog(
                settings.audit_directory,
                max_bytes=settings.audit_max_bytes,
                journal=settings.journal_socket if settings.audit_journal else None,
            ),
            limiter=RateLimiter(
                Budget(settings.read_rate, settings.read_burst), Budget(settings.change_rate, settings.change_burst)
            ),
            journal_directory=settings.journal_directory,
            watches=WatchLimits(settings.signal_watches_per_client, settings.signal_watches_max),
        )
        packs_settings = merge_packs(BUILTIN_PACKS if settings.builtin_packs else (), settings.packs)
        catalog = ToolsetCatalog(BUILTIN_TOOLSETS, [pack.name for pack in packs_settings])
        toolsets = ToolsetSelection(catalog, catalog.resolve(settings.toolsets))
        registry = ToolRegistry()
        packs = PackManager(gateway, registry, packs_settings)
        budget = ToolBudget(settings.tool_budget, settings.tool_budget_chars)
        runtime = cls(settings, policy, gateway, registry, packs, budget, toolsets)
        discovery = Discovery(registry, policy, toolsets, packs, runtime.listed)
        builtin = [
            *bus_tools(deadlines),
            *explain_tools(),
            *audit_tools(settings.audit_directory),
            *operator_tools(deadlines),
            find_tools_tool(discovery),
            enable_toolset_tool(discovery),
        ]
        registry.extend([replace(spec, toolset=catalog.of(spec.name)) for spec in builtin])
        return runtime

    def listed(self, caller: Caller) -> list[Listed]:
        """The tools `caller` sees now: allowed by the policy, of its toolsets, within the budget."""
        return self.registry.listed(self.policy, self.budget, self.toolsets.of(caller.client))

    async def start(self, *, follow: bool = True) -> None:
        """Build the pack tools; with `follow`, keep them current as services come and go (the server).

        A server also opens its audit log now, so a log it cannot continue stops it before its first call; a
        one-shot command opens it at its first record, and makes no state directory when it writes none.
        """
        if follow:
            self.gateway.audit_log.open()
            await self.packs.start()
        else:
            await self.packs.scan()

    async def stop(self) -> None:
        await self.packs.stop()

    def context(self, caller: Caller) -> ToolContext:
        return ToolContext(self.gateway, caller)

    def close(self) -> None:
        self.gateway.close()
