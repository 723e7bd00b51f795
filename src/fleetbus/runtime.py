"""The composition root: settings in, a gateway and a tool registry out — shared by the server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fleetbus.config import Settings
from fleetbus.dbus.introspect import IntrospectionCache
from fleetbus.dbus.signals import WatchLimits
from fleetbus.executable import fleetbus_argv
from fleetbus.gateway import Caller, Deadlines, Gateway
from fleetbus.guard.approvals import ApprovalStore, DecisionCommands
from fleetbus.guard.audit import AuditLog, Retention
from fleetbus.guard.audit.keys import load_key
from fleetbus.guard.limits import Budget, RateLimiter
from fleetbus.guard.policy import Policy, load_policy
from fleetbus.hosts.inventory import load_inventory
from fleetbus.hosts.registry import HostRegistry, SshOptions
from fleetbus.hosts.ssh_options import SshLimits
from fleetbus.tools.audit import audit_tools
from fleetbus.tools.bus import bus_tools
from fleetbus.tools.discovery import Discovery, enable_toolset_tool, find_tools_tool
from fleetbus.tools.explain import explain_tools
from fleetbus.tools.fanout.plan import PlanLedger
from fleetbus.tools.fanout.tools import FanOutSettings
from fleetbus.tools.fleet import rolling_tool, with_fleet
from fleetbus.tools.hosts import host_list_tools
from fleetbus.tools.operator import operator_tools
from fleetbus.tools.packs import BUILTIN_PACKS, PackManager, merge_packs
from fleetbus.tools.registry import Listed, ToolBudget, ToolContext, ToolRegistry
from fleetbus.tools.toolsets import BUILTIN_TOOLSETS, ToolsetCatalog, ToolsetSelection

if TYPE_CHECKING:
    from fleetbus.tools.fanout.progress import ProgressSession


def audit_key(settings: Settings) -> bytes | None:
    """The audit key the settings name, checked (a key others can read is refused: fleetbus does not start)."""
    path = settings.audit_key_path()
    return load_key(path) if path is not None else None


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    gateway: Gateway
    registry: ToolRegistry
    packs: PackManager
    budget: ToolBudget
    toolsets: ToolsetSelection
    plans: PlanLedger = field(default_factory=PlanLedger)
    """Which operations of approved rolling plans have run (in memory: a restart asks again)."""

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        deadlines = Deadlines(settings.call_timeout, settings.max_call_timeout, settings.connect_timeout)
        hosts = host_registry(settings)
        policy = load_policy(
            settings.safety,
            settings.policy_file,
            settings.protected_units,
            select_hosts=lambda pattern: hosts.select(pattern, allow_regex=True),
        )
        gateway = Gateway(
            hosts,
            policy,
            deadlines,
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
                key=audit_key(settings),
                retention=Retention(settings.audit_retention_days, settings.audit_max_total_bytes),
            ),
            limiter=RateLimiter(
                Budget(settings.read_rate, settings.read_burst), Budget(settings.change_rate, settings.change_burst)
            ),
            journal_directory=settings.journal_directory,
            coalesce_within=settings.audit_coalesce_interval,
            audit_reserve=settings.audit_reserve_bytes,
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
            *host_list_tools(),
            find_tools_tool(discovery),
            enable_toolset_tool(discovery),
        ]
        fanout = FanOutSettings(
            concurrency=settings.fanout_concurrency,
            per_host_deadline=settings.fanout_host_timeout,
            overall_deadline=settings.fanout_timeout,
        )
        builtin = [with_fleet(spec, registry, fanout) for spec in builtin]
        builtin.append(rolling_tool(fanout, runtime.plans, deadlines.maximum))
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
        await self.gateway.hosts.aclose()

    def context(self, caller: Caller, *, progress: ProgressSession | None = None) -> ToolContext:
        return ToolContext(self.gateway, caller, progress=progress)

    def close(self) -> None:
        self.gateway.close()


def host_registry(settings: Settings) -> HostRegistry:
    """`local` and the hosts of the inventory (read once, now), reached as the settings say."""
    inventory = load_inventory(settings.inventory, settings.hosts)
    ssh = SshOptions(
        config=(settings.ssh_config,) if settings.ssh_config else (),
        known_hosts=(settings.known_hosts,) if settings.known_hosts else (),
        identity_file=settings.ssh_key,
        limits=SshLimits(
            connect_timeout=settings.connect_timeout,
            bus_setup_timeout=settings.connect_timeout,
            forward_system_bus=settings.ssh_bus_forwarding,
        ),
    )
    cache = IntrospectionCache(max_age=settings.introspection_max_age, max_bytes=settings.introspection_cache_bytes)
    return HostRegistry(
        inventory,
        addresses=settings.bus_addresses(),
        connect_timeout=settings.connect_timeout,
        ssh=ssh,
        max_connected=settings.max_connected_hosts,
        # One cache for every host (its keys carry the host): its byte bound holds for the whole fleet.
        cache_factory=lambda: cache,
    )
