"""JSON Schema pieces that several tools share: buses, bus names, paths, interfaces, members, limits."""

from __future__ import annotations

from typing import Any

# The D-Bus specification's naming rules, as patterns a client can check before calling.
BUS_NAME_PATTERN = r"^(:[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+|[A-Za-z_-][A-Za-z0-9_-]*(\.[A-Za-z_-][A-Za-z0-9_-]*)+)$"
OBJECT_PATH_PATTERN = r"^/([A-Za-z0-9_]+(/[A-Za-z0-9_]+)*)?$"
INTERFACE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
MEMBER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


def bus() -> dict[str, Any]:
    return {
        "type": "string",
        "enum": ["system", "session"],
        "default": "system",
        "description": "Which bus: the system bus (services of the host) or the session bus.",
    }


def _name(pattern: str, max_length: int, description: str | None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "pattern": pattern, "maxLength": max_length}
    if description:  # a parameter called `path` needs no "Object path." to explain it
        schema["description"] = description
    return schema


def service(description: str = "e.g. org.freedesktop.hostname1") -> dict[str, Any]:
    return _name(BUS_NAME_PATTERN, 255, description)


def object_path(description: str | None = None) -> dict[str, Any]:
    return _name(OBJECT_PATH_PATTERN, 4096, description)


def interface(description: str | None = None) -> dict[str, Any]:
    return _name(INTERFACE_PATTERN, 255, description)


def member(description: str | None = None) -> dict[str, Any]:
    return _name(MEMBER_PATTERN, 255, description)


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
