"""Tool definitions as clients receive them: lean, because every definition costs the model context.

The registry keeps each tool's full input schema and the server validates every call against it; what goes on
the wire drops only what restricts without informing — regex patterns, string lengths, titles, nested
descriptions, and integer bounds that are merely a D-Bus type's range (the signature says that) — so it accepts a
superset of what the server does, and a call that breaks a dropped rule gets an error result that names it. Enums
and the bounds a caller would otherwise learn only from an error (`limit` ≤ 1000, `wait` ≤ 120 s) stay.
Parameters many tools share are explained once, in the server's instructions.
Output schemas name the fields a result always has. Annotations leave out hints the specification
says mean nothing for read-only tools.
"""

from __future__ import annotations

import json
from typing import Any

from fleetbus.dbus.types import INTEGER_RANGES

MACHINE_RANGES = frozenset(INTEGER_RANGES.values())
"""(minimum, maximum) pairs that only restate a D-Bus integer type's range: pack tools name the type already."""
COMMON = frozenset({"bus", "host", "hosts", "manager", "format", "variants", "limit", "cursor", "max_chars"})
"""Parameters many tools share; the server's instructions explain them once instead of each tool again."""
COMMON_DEFAULTS = frozenset({"bus", "host", "manager", "format", "variants"})
"""Shared parameters whose defaults the instructions state."""
FANOUT_OPTIONS = frozenset({"show_varying", "per_host_timeout", "overall_timeout", "max_groups"})
"""A fan-out's own options, on ~20 read tools: the instructions name them once; the server still accepts and
checks them (the wire schema admits any argument)."""
DROPPED = frozenset(
    {
        "pattern",
        "maxLength",
        "minLength",
        "title",
        "additionalProperties",
        "$schema",
        "x-expected",
        "x-glob-alternative",
    }
)


ANY_JSON: dict[str, Any] = {
    "anyOf": [{"type": kind} for kind in ("string", "number", "boolean", "object", "array", "null")]
}
"""What an empty schema means, spelled out for clients whose checkers reject `{}`, bare booleans, or a list of
types (single-`type` dialects such as Gemini's)."""
ANNOTATION_KEYS = frozenset({"description", "default"})


def input_schema(schema: Any, *, top: bool = True) -> Any:
    if isinstance(schema, dict):
        if not schema:
            return dict(ANY_JSON)
        lean: dict[str, Any] = {}
        machine_range = (schema.get("minimum"), schema.get("maximum")) in MACHINE_RANGES
        for key, value in schema.items():
            if key in DROPPED or (key == "description" and not top):
                continue
            if machine_range and key in ("minimum", "maximum"):
                continue
            if (key == "required" and not value) or (key == "items" and value is False):
                continue  # a tuple's `items: false`: the server still holds it to its fields
            if key == "properties" and isinstance(value, dict):
                fanned = top and "hosts" in value and "host" in value
                lean[key] = {
                    name: _argument(sub, name if top else None)
                    for name, sub in value.items()
                    if not (fanned and name in FANOUT_OPTIONS)
                }
            else:
                lean[key] = input_schema(value, top=False)
        return lean
    if isinstance(schema, list):
        return [input_schema(item, top=False) for item in schema]
    return schema


def _argument(schema: Any, name: str | None) -> Any:
    """An argument keeps its own description (that is where meaning lives) and loses its nested ones. A shared
    parameter keeps only its choices (the instructions give their meaning and defaults); an enum needs no type."""
    lean = input_schema(schema, top=False)
    if not isinstance(schema, dict) or not isinstance(lean, dict):
        return lean
    if set(lean) <= ANNOTATION_KEYS:  # any JSON value, with a description: say so explicitly
        lean = {**ANY_JSON, **lean}
    if "description" in schema and name not in COMMON:
        lean["description"] = schema["description"]
    if "enum" in lean:
        lean.pop("type", None)
    if name in COMMON_DEFAULTS:
        lean.pop("default", None)
    return lean


def output_schema(schema: Any) -> dict[str, Any]:
    """The fields a result always has, as `required`: what comes back, checkable by a client, and cheap — the
    result itself shows the nesting. (Per-field schemas would cost ~400 tokens across the built-in tools, and
    empty ones constrain nothing.)"""
    required = [name for name in (schema or {}).get("required", []) if name != "truncated"]
    return {"type": "object", "required": required} if required else {"type": "object"}


def hints(read_only: bool, destructive: bool, idempotent: bool, open_world: bool) -> dict[str, bool]:
    """The hints a client gets; destructive and idempotent mean nothing for a read-only tool, so they are left out."""
    if read_only:
        return {"readOnlyHint": True, "openWorldHint": open_world}
    return {
        "readOnlyHint": False,
        "destructiveHint": destructive,
        "idempotentHint": idempotent,
        "openWorldHint": open_world,
    }


def definition(
    name: str, title: str, description: str, schema: Any, output: Any, annotations: dict[str, bool]
) -> dict[str, Any]:
    """A tool exactly as tools/list sends it."""
    tool: dict[str, Any] = {
        "name": name,
        "title": title,
        "description": description,
        "inputSchema": input_schema(schema),
    }
    if output is not None:
        tool["outputSchema"] = output_schema(output)
    tool["annotations"] = annotations
    return tool


def size(tool: dict[str, Any]) -> int:
    """Characters the tool takes in the tools/list JSON, comma included: what the budget counts."""
    return len(json.dumps(tool, separators=(",", ":"), ensure_ascii=False)) + 1
