"""Argument errors a model can act on: the argument, the rule in words, and what would have been accepted.

jsonschema's own messages are written for programmers (`'worker-*' does not match '^[A-Za-z0-9:_.@\\\\-]{1,255}$'`,
`Additional properties are not allowed ('pattren' was unexpected)`). A schema can say in words what a valid value
looks like (`x-expected`), and where to go with a glob given where a name is expected (`x-glob-alternative`);
neither keyword goes on the wire (see fleetbus.tools.wire.DROPPED).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fleetbus.suggestions import bounded, nearest, unknown
from fleetbus.tools.schema import EXPECTED, GLOB_ALTERNATIVE

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

MAX_VALUE_CHARS = 80
MAX_CHOICES = 20
GLOB = re.compile(r"[*?\[]")
JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "an array",
    "object": "an object",
    "null": "null",
}


def shown(value: Any) -> str:
    """A value as JSON (what the caller sent), cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def location(path: Sequence[str | int]) -> str:
    """`unit`, `fields[0]`, `args[2].name`: where in the arguments the value is."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _expected(schema: Mapping[str, Any]) -> str | None:
    hint = schema.get(EXPECTED)
    return str(hint) if hint else None


def _argument_schema(error: ValidationError) -> Mapping[str, Any]:
    """The schema of the whole argument: a failure inside anyOf/oneOf is about the argument, not one branch."""
    # jsonschema is imported only once a refusal is worded (see fleetbus.tools.registry): by then it is.
    from jsonschema.exceptions import ValidationError  # noqa: PLC0415

    schema: Any = _schema(error)
    parent = error.parent
    while isinstance(parent, ValidationError) and parent.validator in ("anyOf", "oneOf"):
        schema = parent.schema
        parent = parent.parent
    return schema if isinstance(schema, Mapping) else {}


def _schema(error: ValidationError) -> Mapping[str, Any]:
    return error.schema if isinstance(error.schema, Mapping) else {}


def _rule(error: ValidationError) -> str:
    """What the value broke, in words; `got …` where the value itself helps."""
    value, rule, schema = error.instance, error.validator_value, _schema(error)
    validator = str(error.validator)
    if validator == "pattern":
        expected = _expected(schema) or f"a value matching the pattern {rule}"
        message = f"expected {expected}, got {shown(value)}"
        alternative = schema.get(GLOB_ALTERNATIVE)
        if alternative and isinstance(value, str) and GLOB.search(value):
            message += f"; globs are not accepted here: {str(alternative).format(value=value)}"
        return message
    if validator in ("enum", "const"):
        choices = [str(choice) for choice in (rule if validator == "enum" and isinstance(rule, list) else [rule])]
        close = nearest(str(value), choices, 1) if isinstance(value, str) else []
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"{shown(value)} is not one of: {bounded(choices, MAX_CHOICES)}{hint}"
    if validator == "type":
        kinds = rule if isinstance(rule, list) else [rule]
        expected = " or ".join(JSON_TYPES.get(str(kind), str(kind)) for kind in kinds)
        return f"expected {_expected(schema) or expected}, got {_kind(value)} {shown(value)}"
    bounds = {
        "maximum": f"at most {rule}",
        "minimum": f"at least {rule}",
        "exclusiveMaximum": f"less than {rule}",
        "exclusiveMinimum": f"more than {rule}",
        "maxLength": f"at most {rule} characters",
        "minLength": f"at least {rule} characters",
        "maxItems": f"at most {rule} items",
        "minItems": f"at least {rule} items",
        "maxProperties": f"at most {rule} entries",
    }
    if validator == "minLength" and rule == 1:
        return "must not be empty"
    if validator in bounds:
        counted = validator.endswith(("Length", "Items", "Properties")) and isinstance(value, str | list | dict)
        got = str(len(value)) if counted and isinstance(value, str | list | dict) else shown(value)
        return f"must be {bounds[validator]}, got {got}"
    if validator in ("anyOf", "oneOf"):
        return f"expected {_expected(schema) or schema.get('description') or 'another value'}, got {shown(value)}"
    message = error.message
    return message if len(message) <= 2 * MAX_VALUE_CHARS else message[: 2 * MAX_VALUE_CHARS] + "…"


def _unexpected(error: ValidationError, tool: str | None) -> str:
    properties = _schema(error).get("properties", {})
    patterns = _schema(error).get("patternProperties", {})
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    extra = [
        str(key)
        for key in instance
        if key not in properties and not any(re.search(pattern, str(key)) for pattern in patterns)
    ]
    where = location(error.absolute_path)
    owner = f"argument {where!r}" if where else tool
    what = "field" if where else "argument"
    first = unknown(what, extra[0] if extra else "?", list(properties), owner=owner)
    if len(extra) > 1:
        first += f"; also unexpected: {bounded(extra[1:], 5)}"
    return first


def describe_validation_error(error: ValidationError, tool: str | None = None) -> str:
    """One line naming the argument and the rule it broke, in words a model can act on."""
    where = location(error.absolute_path)
    if error.validator == "additionalProperties":
        return _unexpected(error, tool)
    if error.validator == "required":
        properties = _schema(error).get("properties", {})
        present = error.instance if isinstance(error.instance, Mapping) else {}
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = next((str(name) for name in required if name not in present), "?")
        described = properties.get(missing, {}).get("description") if isinstance(properties, Mapping) else None
        inside = f" of {where!r}" if where else ""
        return f"missing argument {missing!r}{inside}" + (f": {described}" if described else "")
    argument_schema = _argument_schema(error)
    if argument_schema is not _schema(error) and _expected(argument_schema):
        # A value no branch of anyOf accepts: say what the argument takes rather than what one branch wanted.
        rule = f"expected {_expected(argument_schema)}, got {shown(error.instance)}"
    else:
        rule = _rule(error)
    subject = f"argument {where!r}" if where else "arguments"
    return f"invalid {subject}: {rule}"
