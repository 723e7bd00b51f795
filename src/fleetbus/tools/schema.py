"""JSON Schema pieces that several tools share: buses, bus names, paths, interfaces, members, limits."""

from __future__ import annotations

from typing import Any

# The D-Bus specification's naming rules, as patterns a client can check before calling.
BUS_NAME_PATTERN = r"^(:[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+|[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)+)$"
OBJECT_PATH_PATTERN = r"^/([A-Za-z0-9_]+(/[A-Za-z0-9_]+)*)?$"
INTERFACE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
MEMBER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Keywords of our own, for error messages only (never sent to clients: see fleetbus.tools.wire.DROPPED).
EXPECTED = "x-expected"
"""What a valid value is, in words: shown instead of a regex or a bare type when a value breaks the schema."""
GLOB_ALTERNATIVE = "x-glob-alternative"
"""For a name argument: the call that finds names by glob; `{value}` stands for the glob given."""
BUS_NAME_IN_WORDS = (
    "a bus name such as org.freedesktop.hostname1 (two or more dot-separated parts of letters, digits, _ and -) "
    "or a unique name such as :1.42"
)
OBJECT_PATH_IN_WORDS = "an object path such as /org/freedesktop/hostname1 (/-separated parts of letters, digits and _)"
INTERFACE_IN_WORDS = "an interface name such as org.freedesktop.hostname1 (two or more dot-separated parts)"
MEMBER_IN_WORDS = "a member name such as GetUnit (letters, digits and _, not starting with a digit)"


def bus() -> dict[str, Any]:
    return {
        "type": "string",
        "enum": ["system", "session"],
        "default": "system",
        "description": "Which bus: the system bus (services of the host) or the session bus.",
    }


def _name(
    pattern: str, max_length: int, description: str | None, in_words: str, glob_alternative: str
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "string",
        "pattern": pattern,
        "maxLength": max_length,
        EXPECTED: in_words,
        GLOB_ALTERNATIVE: glob_alternative,
    }
    if description:  # a parameter called `path` needs no "Object path." to explain it
        schema["description"] = description
    return schema


def service(description: str = "e.g. org.freedesktop.hostname1") -> dict[str, Any]:
    return _name(
        BUS_NAME_PATTERN,
        255,
        description,
        BUS_NAME_IN_WORDS,
        "use list_services pattern={value!r} to list the names it matches",
    )


def object_path(description: str | None = None) -> dict[str, Any]:
    return _name(
        OBJECT_PATH_PATTERN, 4096, description, OBJECT_PATH_IN_WORDS, "use list_objects to see a service's objects"
    )


def interface(description: str | None = None) -> dict[str, Any]:
    return _name(
        INTERFACE_PATTERN, 255, description, INTERFACE_IN_WORDS, "use introspect to see an object's interfaces"
    )


def member(description: str | None = None) -> dict[str, Any]:
    return _name(
        MEMBER_PATTERN,
        255,
        description,
        MEMBER_IN_WORDS,
        "use introspect to see an object's members, or find_tools to search methods",
    )


def integer(description: str, minimum: int, maximum: int, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default, "description": description}


def seconds(description: str, maximum: float, default: float | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "maximum": maximum, "description": description}
    if default is not None:
        schema["default"] = default
    return schema


def variants() -> dict[str, Any]:
    return {
        "type": "string",
        "enum": ["plain", "typed"],
        "default": "plain",
        "description": "How variants in the reply are shown: 'plain' gives just the value; 'typed' keeps "
        '{"signature", "value"} wherever the JSON value alone would not say the D-Bus type.',
    }


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required or [], "additionalProperties": False}
