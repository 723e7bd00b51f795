"""ToolSpec — what a tool is, for the MCP server and the CLI alike — and the registry that runs them.

Running a tool always means: validate the arguments against its input schema, call its handler, and turn
every failure a model could act on into an error result that names the problem. Listing tools asks the
policy which of their operations could ever pass, and derives their annotations from that.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from fleetbus import output
from fleetbus.dbus.errors import BusError
from fleetbus.dbus.types import SignatureError, ValueConversionError
from fleetbus.gateway import ApprovalRequired, Caller, Gateway, GatewayError
from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy import OperationPattern, Policy

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 400


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


@dataclass(frozen=True)
class Listed:
    spec: ToolSpec
    annotations: Annotations
    permitted: frozenset[Risk] = field(default_factory=frozenset)


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


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}
        self._validators: dict[str, Draft202012Validator] = {}

    def add(self, spec: ToolSpec) -> None:
        if spec.name in self._tools:
            raise ValueError(f"tool {spec.name!r} is registered twice")
        Draft202012Validator.check_schema(spec.input_schema)
        if spec.output_schema is not None:
            Draft202012Validator.check_schema(spec.output_schema)
        self._tools[spec.name] = spec
        self._validators[spec.name] = Draft202012Validator(spec.input_schema)

    def extend(self, specs: list[ToolSpec]) -> None:
        for spec in specs:
            self.add(spec)

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    def listed(self, policy: Policy) -> list[Listed]:
        return [entry for spec in self._tools.values() if (entry := listing(spec, policy)) is not None]

    def validate(self, name: str, arguments: Mapping[str, Any]) -> None:
        error = best_match(self._validators[name].iter_errors(arguments))
        if error is not None:
            raise ToolError(describe_validation_error(error))

    async def run(self, context: ToolContext, name: str, arguments: Mapping[str, Any] | None) -> output.ToolResult:
        spec = self._tools.get(name)
        if spec is None:
            known = ", ".join(sorted(self._tools))
            return output.error(f"unknown tool {name!r}; known tools: {known}")
        args = dict(arguments or {})
        try:
            self.validate(name, args)
            structured = await spec.handler(context, args)
        except ApprovalRequired as exc:
            result = output.error(str(exc))
            result.approval = exc.approval
            return result
        except (ToolError, GatewayError, BusError, ValueConversionError, SignatureError) as exc:
            return output.error(str(exc))
        except Exception:
            log.exception("tool %s failed", name)
            return output.error(f"internal error in tool {name}; the server log has the details")
        return output.success(structured)


def describe_validation_error(error: ValidationError) -> str:
    message = error.message if len(error.message) <= MAX_ERROR_CHARS else error.message[:MAX_ERROR_CHARS] + "…"
    location = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    if error.validator == "additionalProperties":
        return f"invalid arguments: {message}"
    if error.validator == "required":
        return f"missing argument: {message}"
    subject = f"argument {location!r}" if location else "arguments"
    return f"invalid {subject}: {message}"
