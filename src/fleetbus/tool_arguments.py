"""A tool's arguments as a person types them — `key=value`, `key:=JSON`, `--json '{…}'` — turned into the JSON
object the tool takes. A `key=value` word is text, typed by the tool's input schema where the schema wants an
integer, a number or a boolean (`lines=2`); arrays and objects need `key:=JSON`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCALARS = ("integer", "number", "boolean", "null")


class ArgumentError(ValueError):
    """An argument that cannot be what the tool takes; the message names it."""


@dataclass(frozen=True)
class ToolArguments:
    typed: dict[str, Any] = field(default_factory=dict)
    """From `key:=JSON` and `--json`: already JSON values."""
    texts: dict[str, str] = field(default_factory=dict)
    """From `key=value`: text, until `for_schema` types it."""

    def for_schema(self, schema: Mapping[str, Any] | None) -> dict[str, Any]:
        """The arguments with each `key=value` typed by the property of `schema` it sets."""
        properties: Mapping[str, Any] = (schema or {}).get("properties", {})
        arguments = dict(self.typed)
        for key, text in self.texts.items():
            arguments[key] = typed_value(key, text, properties.get(key))
        return arguments


def parse(words: Sequence[str], json_arguments: str | None = None) -> ToolArguments:
    """`key=value` and `key:=JSON` words (and `--json OBJECT`); a key given twice keeps its last value."""
    parsed = ToolArguments()
    if json_arguments is not None:
        try:
            loaded = json.loads(json_arguments)
        except json.JSONDecodeError as exc:
            raise ArgumentError(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ArgumentError("--json must be a JSON object")
        parsed.typed.update(loaded)
    for word in words:
        if ":=" in word and ("=" not in word or word.index(":=") < word.index("=")):
            key, raw = word.split(":=", 1)
            try:
                parsed.typed[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ArgumentError(f"argument {key!r}: {key}:= needs a JSON value: {exc}") from exc
            parsed.texts.pop(key, None)
        elif "=" in word:
            key, value = word.split("=", 1)
            parsed.texts[key] = value
            parsed.typed.pop(key, None)
        else:
            raise ArgumentError(f"argument {word!r} is neither key=value nor key:=json")
    return parsed


def typed_value(key: str, text: str, schema: Mapping[str, Any] | None) -> Any:
    """`text` as the value the property `schema` describes: itself where text may do, else the integer, number,
    boolean or null it spells. Among several readings the first the schema accepts wins, so the server's own
    validation reports a value out of range rather than a confusing "'99' is not of type 'integer'"."""
    if schema is None:
        return text  # not a property the tool knows: its validation names the argument
    kinds = admitted_types(schema)
    readings = ([text] if "string" in kinds or not kinds else []) + _scalar_readings(text, kinds)
    if not readings:
        raise ArgumentError(_unreadable(key, text, kinds))
    import jsonschema  # noqa: PLC0415 -- only `fleetbus tool` reads arguments so; the server never imports it here

    for reading in readings:
        if jsonschema.Draft202012Validator(dict(schema)).is_valid(reading):
            return reading
    # None fits: hand on the typed reading, whose error ("99 is greater than the maximum of 50") says why.
    return readings[-1]


def admitted_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a property allows, through `anyOf`/`oneOf`; empty when it says nothing about types."""
    declared = schema.get("type")
    kinds = {declared} if isinstance(declared, str) else set(declared or ())
    if "enum" in schema and not declared:
        kinds |= {_json_type(value) for value in schema["enum"]}
    for branch in (*schema.get("anyOf", ()), *schema.get("oneOf", ())):
        kinds |= admitted_types(branch)
    return kinds


def _scalar_readings(text: str, kinds: set[str]) -> list[Any]:
    """The JSON scalar `text` spells (`2`, `0.5`, `true`, `null`), if the property admits its type."""
    try:
        value = json.loads(text.strip().lower())
    except ValueError:
        return []
    kind = _json_type(value)
    if kind == "number" and not math.isfinite(value):
        return []  # Python's JSON reads NaN and Infinity; no schema means them
    if kind in kinds or (kind == "integer" and "number" in kinds):
        return [value]
    return []


def _unreadable(key: str, text: str, kinds: set[str]) -> str:
    structured = kinds & {"array", "object"}
    if structured and not kinds & set(SCALARS):
        example = "[…]" if "array" in structured else "{…}"
        return f"argument {key!r} takes {' or '.join(sorted(f'an {k}' for k in structured))}: write {key}:='{example}'"
    wanted = " or ".join(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" for kind in sorted(kinds & set(SCALARS)))
    return f"argument {key!r} takes {wanted}, not {text!r}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    return "string" if isinstance(value, str) else "object"
