"""ToolSpec — what a tool is, for the MCP server and the CLI alike — and the registry that runs them.

Running a tool always means: validate the arguments against its input schema, call its handler, and turn
every failure a model could act on into an error result that names the problem. Listing tools asks the
policy which of their operations could ever pass, and derives their annotations from that.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema_rs

from fleetbus import output
from fleetbus.dbus.errors import BusError
from fleetbus.dbus.types import SignatureError, ValueConversionError
from fleetbus.gateway import ApprovalRequired, Caller, Gateway, GatewayError
from fleetbus.guard.audit.room import CALL_AUDIT, CallAudit
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern, Policy
from fleetbus.operation import AUDIT_QUERY, LOCAL_HOST
from fleetbus.suggestions import unknown
from fleetbus.tools import wire
from fleetbus.tools.argument_checks import argument_problem
from fleetbus.tools.argument_errors import describe_validation_error
from fleetbus.tools.toolsets import Choice

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

    from fleetbus.tools.fanout.progress import ProgressSession

log = logging.getLogger(__name__)
TOOL_FINDER = "find_tools"
"""The tool that finds what can be called; errors point at it by this name, so renaming it is one change."""


class ToolError(Exception):
    """A failure the model can act on; the message is shown to it as the error result."""


@dataclass(frozen=True)
class Annotations:
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool = False


@dataclass
class ToolContext:
    """What a handler may use. Handlers build Operations and pass them to the gateway; nothing else."""

    gateway: Gateway
    caller: Caller
    host: str = LOCAL_HOST
    """The host the call is for: the tool's `host` argument (every host-bound tool has one), else `local`."""
    progress: ProgressSession | None = None
    """The request's progress channel (the MCP server's session): a fan-out reports each host done on it."""


Handler = Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any] | None
    annotations: Annotations
    handler: Handler
    operations: tuple[OperationPattern, ...] = ()
    """What the tool may do, so the policy can say whether to list it. Empty: it reaches no host."""
    scope: str = "read"
    toolset: str = ""
    """The toolset it is listed with (fleetbus.tools.toolsets); a pack tool's is its pack's name."""
    covers: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    """D-Bus methods (`Interface.Member`) this tool is the way to call, with the arguments that select each one:
    find_tools points a search for RestartUnit at `unit_job` with `action=restart`."""
    group: str | None = None
    """Tools generated from a bus service (a tool pack) carry its group; they are listed within the budget."""
    rank: int = 0
    """Within a group, lower ranks are listed first when the budget cannot hold them all."""
    group_rank: int = 0
    """Groups with lower ranks take their turn first (a pack's position in the configuration)."""


@dataclass(frozen=True)
class Listed:
    spec: ToolSpec
    annotations: Annotations
    permitted: frozenset[Risk] = field(default_factory=frozenset)

    @functools.cached_property
    def definition(self) -> dict[str, Any]:
        """The tool as a client receives it (see fleetbus.tools.wire); computed once, a listing is frequent."""
        spec, hints = self.spec, self.annotations
        return wire.definition(
            spec.name,
            spec.title,
            spec.description,
            dict(spec.input_schema),
            spec.output_schema,
            wire.hints(hints.read_only, hints.destructive, hints.idempotent, hints.open_world),
        )

    @functools.cached_property
    def size(self) -> int:
        return wire.size(self.definition)


def listing(spec: ToolSpec, policy: Policy) -> Listed | None:
    """The tool as the policy lets it be seen, or None when every operation it could perform is denied."""
    if not spec.operations:
        return Listed(spec, spec.annotations)
    permitted: set[Risk] = set()
    for pattern in spec.operations:
        permitted |= policy.could_permit(pattern)
    if not permitted:
        return None
    read_only = permitted <= {Risk.READ}
    annotations = Annotations(
        read_only=read_only,
        destructive=spec.annotations.destructive and not read_only,
        idempotent=spec.annotations.idempotent or read_only,
        open_world=spec.annotations.open_world,
    )
    return Listed(spec, annotations, frozenset(permitted))


@dataclass(frozen=True)
class ToolBudget:
    """How much of a client's tool list fleetbus may fill: clients cap tool lists (40–128) and every
    definition costs context. Built-in tools always count; pack tools fill what is left."""

    max_tools: int = 40
    max_chars: int = 16_000
    """Serialized size of the whole list; about 4,000 cl100k tokens for fleetbus's schemas."""


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        """jsonschema's, made when a refusal needs its wording: jsonschema (~50 ms to import) waits until then."""
        self._fast: dict[str, Any] = {}
        """jsonschema-rs validators: ~100× quicker to say yes; the Python one says why not (see `validate`)."""
        self._listeners: list[Callable[[], None]] = []
        self._listings: dict[str, tuple[Policy, ToolSpec, Listed | None]] = {}
        """What the policy shows of each tool; specs and policies never change, so it is worked out once."""
        self.usage: Counter[str] = Counter()
        """Calls per tool since start: used tools keep their place in a full list."""

    def add(self, spec: ToolSpec) -> None:
        if spec.name in self._tools:
            raise ValueError(f"tool {spec.name!r} is registered twice")
        self._put(spec)

    def _put(self, spec: ToolSpec) -> None:
        spec = with_host_argument(spec)
        self._tools[spec.name] = spec
        # The validators (and the check of both schemas against the metaschema) wait for the tool's first call:
        # most of the ~200 tools are never called in a session, and checking them all cost most of the server's
        # start (tests check every built-in tool's schemas).
        self._validators.pop(spec.name, None)
        self._fast.pop(spec.name, None)

    def _validator(self, name: str) -> Draft202012Validator:
        """jsonschema's validator of the tool's arguments (the schemas were checked when the fast one was made)."""
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator  # noqa: PLC0415 -- see _validators

            validator = self._validators[name] = Draft202012Validator(self._tools[name].input_schema)
        return validator

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called whenever the set of tools changes (packs following services as they come and go)."""
        self._listeners.append(listener)

    def replace_group(self, group: str, specs: list[ToolSpec]) -> bool:
        """Make `specs` the tools of `group`; True (and listeners told) when anything changed."""
        specs = [with_host_argument(spec) for spec in specs]
        old = {name: spec for name, spec in self._tools.items() if spec.group == group}
        new = {spec.name: spec for spec in specs}
        clash = [name for name in new if name in self._tools and self._tools[name].group != group]
        if clash:
            raise ValueError(f"tool names {clash} of group {group!r} are taken by other tools")
        if _same(old, new):
            return False
        for name in old:
            del self._tools[name]
            self._validators.pop(name, None)
            self._fast.pop(name, None)
            self._listings.pop(name, None)
        for spec in specs:
            self._put(spec)
        for listener in list(self._listeners):
            listener()
        return True

    def groups(self) -> set[str]:
        return {spec.group for spec in self._tools.values() if spec.group is not None}

    def extend(self, specs: list[ToolSpec]) -> None:
        for spec in specs:
            self.add(spec)

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def listed(self, policy: Policy, budget: ToolBudget | None = None, choice: Choice | None = None) -> list[Listed]:
        """Tools the policy lets be seen — of the chosen toolsets when there is a `choice` — every built-in one,
        then pack tools as far as the budget goes."""
        visible = [entry for spec in self._tools.values() if (entry := self._listing(spec, policy)) is not None]
        if choice is not None:
            visible = [entry for entry in visible if entry.spec.toolset in choice.listed]
        if budget is None:
            return visible
        builtin = [entry for entry in visible if entry.spec.group is None]
        chosen = list(builtin)
        size = sum(entry.size for entry in builtin)
        packed = [entry for entry in visible if entry.spec.group is not None]
        for entry in self._fair_order(packed, choice.asked if choice else ()):
            if len(chosen) >= budget.max_tools:
                break
            if size + entry.size > budget.max_chars:
                continue  # a smaller tool further down may still fit
            chosen.append(entry)
            size += entry.size
        return chosen

    def _listing(self, spec: ToolSpec, policy: Policy) -> Listed | None:
        cached = self._listings.get(spec.name)
        if cached is not None and cached[0] is policy and cached[1] is spec:
            return cached[2]
        entry = listing(spec, policy)
        self._listings[spec.name] = (policy, spec, entry)
        return entry

    def _fair_order(self, entries: list[Listed], asked: Sequence[str] = ()) -> list[Listed]:
        """Pack tools in the order they get listed: packs a client enabled itself first, then the others; within
        each tier packs take turns, each offering its most used (then best ranked) tool, so one big pack
        (systemd's ~100 methods) cannot crowd out the others."""
        queues: dict[str, list[Listed]] = {}
        for entry in sorted(entries, key=lambda e: (-self.usage[e.spec.name], e.spec.rank, e.spec.name)):
            queues.setdefault(str(entry.spec.group), []).append(entry)
        toolset = {str(entry.spec.group): entry.spec.toolset for entry in entries}
        turns = {str(entry.spec.group): entry.spec.group_rank for entry in entries}
        ordered: list[Listed] = []
        for first in (True, False):
            tiered = {group: queue for group, queue in queues.items() if (toolset[group] in asked) is first}
            while tiered:
                for group in sorted(tiered, key=lambda g: (turns[g], g)):
                    ordered.append(tiered[group].pop(0))
                    if not tiered[group]:
                        del tiered[group]
        return ordered

    def validate(self, name: str, arguments: Mapping[str, Any]) -> None:
        problem = argument_problem(arguments)
        if problem is not None:
            raise ToolError(problem)
        if self._accepted_at_once(name, arguments):
            return
        from jsonschema.exceptions import best_match  # noqa: PLC0415 -- see _validators

        error = best_match(self._validator(name).iter_errors(arguments))
        if error is not None:
            raise ToolError(describe_validation_error(error, name))

    def _accepted_at_once(self, name: str, arguments: Mapping[str, Any]) -> bool:
        """jsonschema-rs's yes (~1 µs where jsonschema takes ~90 µs); a no, or anything it cannot take (integers
        beyond 64 bits, say), goes to jsonschema, which decides and words the error. It never accepts what
        jsonschema refuses: tests/fuzz/test_validation_differential.py."""
        fast = self._fast.get(name)
        if fast is None:
            spec = self._tools[name]
            # Both schemas are checked once, at the tool's first call: against the metaschema, and compiled (which
            # refuses a pattern that is no regular expression, as jsonschema's check_schema did).
            jsonschema_rs.meta.validate(dict(spec.input_schema))
            if spec.output_schema is not None:
                jsonschema_rs.meta.validate(dict(spec.output_schema))
                jsonschema_rs.Draft202012Validator(dict(spec.output_schema))
            fast = self._fast[name] = jsonschema_rs.Draft202012Validator(dict(spec.input_schema))
        try:
            return bool(fast.is_valid(arguments))
        except (ValueError, OverflowError, TypeError):  # UnicodeEncodeError is a ValueError
            return False

    def unknown_tool(self, name: str, policy: Policy) -> str:
        """The nearest tools the policy lets the caller see — never the ones it hides — and where to find more."""
        visible = [spec.name for spec in self._tools.values() if self._listing(spec, policy) is not None]
        return unknown("tool", name, visible, listed=0, see=f"{TOOL_FINDER} finds tools and D-Bus methods by name")

    async def run(self, context: ToolContext, name: str, arguments: Mapping[str, Any] | None) -> output.ToolResult:
        spec = self._tools.get(name)
        if spec is None:
            return output.error(self.unknown_tool(name, context.gateway.policy))
        args = dict(arguments or {})
        self.usage[name] += 1
        # What the audit log could not hold during this call (a full disk): said with the result, never hidden.
        audit_gaps = CallAudit()
        token = CALL_AUDIT.set(audit_gaps)
        try:
            return await self._run(context, spec, name, args, audit_gaps)
        finally:
            CALL_AUDIT.reset(token)

    async def _run(
        self, context: ToolContext, spec: ToolSpec, name: str, args: dict[str, Any], audit_gaps: CallAudit
    ) -> output.ToolResult:
        try:
            self.validate(name, args)
            if HOST in args and FANOUT_HOSTS in args:
                raise ToolError("invalid argument 'hosts': give host (one host) or hosts (a pattern), not both")
            if HOST in _properties(spec):
                # The gateway checks the name against the inventory (naming the closest ones) before connecting.
                host = str(args.pop(HOST, LOCAL_HOST))
                if host != context.host:
                    context = dataclasses.replace(context, host=host)
            bound = output.CURSOR_HOST.set(context.host)
            try:
                structured = await spec.handler(context, args)
            finally:
                output.CURSOR_HOST.reset(bound)
        except ApprovalRequired as exc:
            result = output.error(str(exc))
            result.approval = exc.approval
            return result
        except (ToolError, GatewayError, BusError, ValueConversionError, SignatureError) as exc:
            return output.error(str(exc))
        except Exception:
            log.exception("tool %s failed", name)
            return output.error(f"internal error in tool {name}; the server log has the details")
        result = output.success(structured, fmt=output.requested_format(spec.input_schema, args))
        if audit_gaps.unrecorded:
            result.text = "\n".join([*audit_gaps.unrecorded, "", result.text])
            result.notes.extend(audit_gaps.unrecorded)
        return result


HOST = "host"
FANOUT_HOSTS = "hosts"
"""A fan-out's host pattern (tools/fanout): one host or a pattern, never both."""
HOST_ARGUMENT: Mapping[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "default": LOCAL_HOST,
    "description": "Inventory host (list_hosts).",
}


def _properties(spec: ToolSpec) -> Mapping[str, Any]:
    properties = spec.input_schema.get("properties")
    return properties if isinstance(properties, Mapping) else {}


def host_bound(spec: ToolSpec) -> bool:
    """A tool whose operations reach a host (a bus, its journal, its figures) — not fleetbus's own audit log."""
    return any(pattern.kind != AUDIT_QUERY for pattern in spec.operations)


def with_host_argument(spec: ToolSpec) -> ToolSpec:
    """Every host-bound tool takes `host` (default `local`), added here once rather than in ~30 schemas — except
    a fleet tool that takes only `hosts` (rolling_unit_job)."""
    properties = _properties(spec)
    if not host_bound(spec) or HOST in properties or FANOUT_HOSTS in properties:
        return spec
    if spec.input_schema.get("type") != "object":
        return spec
    schema = dict(spec.input_schema)
    schema["properties"] = {**_properties(spec), HOST: dict(HOST_ARGUMENT)}
    return dataclasses.replace(spec, input_schema=schema)


def _same(old: Mapping[str, ToolSpec], new: Mapping[str, ToolSpec]) -> bool:
    """Equal as a client would see them (handlers are fresh closures every time, so compare the rest)."""
    if old.keys() != new.keys():
        return False
    return all(_visible(old[name]) == _visible(new[name]) for name in old)


def _visible(spec: ToolSpec) -> tuple[Any, ...]:
    return (
        spec.title,
        spec.description,
        json.dumps(spec.input_schema, sort_keys=True),
        json.dumps(spec.output_schema, sort_keys=True),
        spec.annotations,
        spec.operations,
        spec.rank,
        spec.toolset,
    )


def wire_definition(entry: Listed) -> dict[str, Any]:
    """The tool as a client receives it (see fleetbus.tools.wire)."""
    return entry.definition
