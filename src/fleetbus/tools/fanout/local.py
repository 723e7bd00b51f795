"""The fleet interfaces for hosts a ToolContext reaches: a ToolRunner over the registry's handlers and UnitJobs
over the gateway (the same Manager calls `unit_job` makes, PropertiesChanged through `gateway.subscribe`). The
hosts wiring supplies `context_for(host)`; today it is the local host's context."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fleetbus.dbus import types
from fleetbus.dbus.errors import RemoteError
from fleetbus.dbus.link import PROPERTIES
from fleetbus.dbus.signals import ReceivedSignal
from fleetbus.gateway import dbus_call
from fleetbus.guard import scopes
from fleetbus.guard.policy import Verdict
from fleetbus.operation import DBUS_WATCH, Operation
from fleetbus.tools import systemd
from fleetbus.tools.fanout.tools import ToolFailed
from fleetbus.tools.journal import recent_lines
from fleetbus.tools.registry import ToolContext, ToolRegistry
from fleetbus.tools.triage import health_check
from fleetbus.tools.unit_jobs import JOB_ACTIONS, unit_job

ContextFor = Callable[[str], ToolContext]
MAX_CHANGES = 1024
"""Property changes buffered per watch; a unit flapping faster than the gate reads fails it anyway."""


class ContextRunner:
    """Runs a tool's handler on a host with that host's context, so failures arrive as exceptions the engine
    classifies (unreachable, denied…) rather than as error texts. Output shaping happens once, on the fan-out's
    own answer."""

    def __init__(self, registry: ToolRegistry, context_for: ContextFor) -> None:
        self.registry = registry
        self.context_for = context_for

    async def run_tool_on(self, host: str, tool: str, arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        spec = self.registry.get(tool)
        if spec is None:
            raise ToolFailed(f"no tool {tool!r}")
        self.registry.validate(tool, arguments)
        return await spec.handler(self.context_for(host), dict(arguments))


class ContextUnitJobs:
    """UnitJobs for a manager (`bus`: system, or session for a user manager) on hosts reached by `context_for`."""

    def __init__(self, context_for: ContextFor, *, bus: str = "system") -> None:
        self.context_for = context_for
        self.bus = bus

    def _args(self, unit: str, **more: Any) -> dict[str, Any]:
        return {"unit": unit, "manager": "user" if self.bus == "session" else "system", **more}

    def job_operation(self, host: str, unit: str, action: str) -> Operation:
        # Exactly the Operation unit_job builds, so a plan's claim matches what the gateway is asked to run.
        return dbus_call(
            systemd.SYSTEMD,
            systemd.MANAGER_PATH,
            systemd.MANAGER,
            JOB_ACTIONS[action],
            "ss",
            [systemd.normalize_unit(unit), "replace"],
            names=["name", "mode"],
            bus=self.bus,
            host=host,
        )

    async def refusal(self, operation: Operation) -> str | None:
        ctx = self.context_for(operation.host)
        assessment = await ctx.gateway.assess(operation, ctx.caller)
        decision = assessment.decision
        if decision.verdict is Verdict.DENY:
            return f"refused by policy rule {decision.rule!r}: {decision.reason}"
        refused = scopes.check(
            ctx.caller.scopes, None, assessment.operation, assessment.classification, ctx.caller.client
        )
        return refused.message if refused is not None else None

    async def run_job(self, host: str, unit: str, action: str, wait: float) -> Mapping[str, Any]:
        return await unit_job(self.context_for(host), self._args(unit, action=action, wait=wait))

    @asynccontextmanager
    async def watch_unit(
        self, host: str, unit: str
    ) -> AsyncIterator[tuple[Mapping[str, Any], AsyncIterator[Mapping[str, Any]]]]:
        ctx = self.context_for(host)
        name = systemd.normalize_unit(unit)
        path = await systemd.require_unit(ctx, self.bus, name)
        if path is None:
            raise ToolFailed(f"{name} is not loaded")
        await self._subscribe(ctx)  # systemd sends unit signals only while a client is subscribed
        changes: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(MAX_CHANGES)

        def deliver(signal: ReceivedSignal) -> None:
            (interface, changed, _invalidated) = types.to_json(signal.signature, signal.body, variants="plain")
            if interface == systemd.UNIT and isinstance(changed, dict) and not changes.full():
                changes.put_nowait(changed)

        watch = Operation(
            DBUS_WATCH,
            host=host,
            bus=self.bus,
            destination=systemd.SYSTEMD,
            path=path,
            interface=PROPERTIES,
            member="PropertiesChanged",
        )
        subscription = await ctx.gateway.subscribe(watch, ctx.caller, deliver)
        try:
            # Read after subscribing: a change between the two is seen twice at worst, never missed.
            initial = await systemd.properties(ctx, self.bus, path, systemd.UNIT)

            async def stream() -> AsyncIterator[Mapping[str, Any]]:
                while True:
                    yield await changes.get()

            yield initial, stream()
        finally:
            await subscription.close()

    async def _subscribe(self, ctx: ToolContext) -> None:
        try:
            await systemd.manager_call(ctx, self.bus, "Subscribe")
        except RemoteError as exc:
            if exc.name != "org.freedesktop.systemd1.AlreadySubscribed":
                raise

    async def unit_properties(self, host: str, unit: str) -> Mapping[str, Any]:
        ctx = self.context_for(host)
        path = await systemd.get_unit(ctx, self.bus, systemd.normalize_unit(unit))
        if path is None:
            return {"LoadState": "not-found", "ActiveState": "inactive", "SubState": "dead"}
        properties = await systemd.properties(ctx, self.bus, path, systemd.UNIT)
        interface = systemd.TYPE_INTERFACES.get(systemd.unit_type(unit))
        if interface is not None and systemd.unit_type(unit) == "service":
            properties = {**await systemd.properties(ctx, self.bus, path, interface), **properties}
        return properties

    async def failed_units(self, host: str) -> set[str]:
        (units,) = await systemd.manager_call(self.context_for(host), self.bus, "ListUnitsFiltered", "as", [["failed"]])
        return {str(row[0]) for row in units}

    async def health_problems(self, host: str) -> set[str]:
        answer = await health_check(self.context_for(host), {"manager": self._args("")["manager"], "lines": 1})
        problems = {f"failed:{row['unit']}" for row in answer.get("failed_units", [])}
        problems |= {f"stuck:{row['unit']}" for row in answer.get("hanging", [])}
        problems |= {f"restarting:{row['unit']}" for row in answer.get("restarting", [])}
        problems |= {f"pressure:{row['what']}" for row in answer.get("pressure", [])}
        return problems

    async def journal_lines(self, host: str, unit: str, count: int) -> list[str]:
        return await recent_lines(self.context_for(host), systemd.normalize_unit(unit), count)
