"""Values meant to hurt — huge, deep, non-finite, invalid Unicode, NUL-bearing, malformed D-Bus names, paths and
signatures — and plausible ones that reach past validation into real services, by argument name."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """JSON text put into a frame as it is: what json.dumps cannot write (10^5000, nesting 10,000 deep)."""

    text: str


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


MEGABYTE = "x" * 1_000_000
BIDI = "\u202e\u2066" * 150_000
HOSTILE: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    -0.0,
    10**400,
    -(10**400),
    2**64,
    -(2**63) - 1,
    Raw("1" + "0" * 5000),  # over 4,300 digits: a parse error, answered with id null
    Raw("[" * 10_000 + "]" * 10_000),  # nesting 10,000 deep: likewise
    deep(150),  # within the parser's limit: reaches the tool
    "\ud800",
    "a\udfffb",
    "a\x00b",
    "\x00",
    MEGABYTE,
    BIDI,
    "",
    " ",
    "\n\r\t",
    "../../etc/passwd",
    "*",
    "[",
    "dbus.service; rm -rf /",
    "$(id)",
    "--rotate",
    "-f",
    "\x1b[31mred\x1b[0m",
    # object paths
    "/",
    "//",
    "/a/",
    "a",
    "/a-b",
    "/" + "a" * 300,
    "/org/freedesktop/../x",
    "/\u00e9",
    # signatures
    "(",
    ")",
    "a{",
    "a{vs}",
    "a{sv",
    "(" * 40 + "s" + ")" * 40,
    "a" * 33 + "s",
    "h",
    "z",
    "{sv}",
    "s" * 256,
    "v" * 300,
    "ay" * 200,
    # bus names and members
    "org",
    ".org.x",
    "org..x",
    "1org.x",
    ":",
    ":1.",
    "a" * 300,
    "Get-All",
    {},
    [],
    None,
    True,
    0,
    -1,
    {"signature": "v", "value": 1},
    {"signature": "h", "value": 0},
    {"signature": "(", "value": 1},
    {"signature": "s", "value": "\x00"},
    [[[[[["s"]]]]]],
]
SERVICES = ["org.freedesktop.systemd1", "org.freedesktop.hostname1", "org.freedesktop.DBus", "org.freedesktop.login1"]
PLAUSIBLE: dict[str, list[Any]] = {
    "service": SERVICES,
    "path": [
        "/org/freedesktop/systemd1",
        "/org/freedesktop/hostname1",
        "/org/freedesktop/DBus",
        "/org/freedesktop/systemd1/unit/dbus_2eservice",
    ],
    "interface": [
        "org.freedesktop.systemd1.Manager",
        "org.freedesktop.hostname1",
        "org.freedesktop.DBus",
        "org.freedesktop.DBus.Properties",
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.systemd1.Unit",
    ],
    "method": ["GetUnit", "ListUnits", "ListNames", "Get", "GetAll", "Introspect", "GetMachineId", "StartUnit"],
    "member": ["JobRemoved", "PropertiesChanged", "NameOwnerChanged", "Get*", "*"],
    "property": ["Hostname", "Version", "ActiveState", "Architecture"],
    "names": [["Hostname", "Chassis"], ["Nope"], []],
    "unit": ["dbus.service", "dbus", "-.slice", "ghost.service", "init.scope", "worker@1.service"],
    "units": [["dbus.service"], ["dbus.service", "ghost.service"]],
    "signature": ["s", "ss", "", "u", "a{sv}", "v"],
    "args": [["dbus.service"], ["dbus.service", "replace"], [], [1, 2, 3], [{"signature": "s", "value": "x"}]],
    "since": ["-15m", "1 hour ago", "yesterday", "today", "17:05", "@0", "2026-11-21T17:00Z", "soon"],
    "until": ["now", "-1m", "+1h"],
    "grep": ["error", "(", "[a-", "x" * 5000],
    "pattern": ["*.service", "dbus*", "["],
    "select": ["values[0]", "values[0][?name=='x']", "[[[", "length(values)"],
    "cursor": ["", "x", "eyJrIjoibGlzdF91bml0cyJ9"],
    "query": ["restart", "hostname", "", "*"],
    "toolset": ["core", "bus", "all", "nope"],
}


NUMBERS: list[Any] = [math.nan, math.inf, -math.inf, 1e308, -0.0, 10**400, -(10**400), 2**64, Raw("9" * 4400), 0.5]
STRINGS: list[Any] = ["a\x00b", *(value for value in HOSTILE if isinstance(value, str) and value != "a\x00b")]
"""NUL first: hypothesis favours the first values of a list."""
CONTAINERS: list[Any] = [value for value in HOSTILE if isinstance(value, list | dict | Raw)]


def hostile_for(schema: Any) -> st.SearchStrategy[Any]:
    """Hostile values aimed at what an argument's schema takes (NaN at a number, NULs at a string), or any."""
    kinds = schema.get("type") if isinstance(schema, dict) else None
    kinds = kinds if isinstance(kinds, list) else [kinds]
    aimed: list[Any] = []
    if "number" in kinds or "integer" in kinds:
        aimed += NUMBERS
    if "string" in kinds:
        aimed += STRINGS
    if "array" in kinds or "object" in kinds:
        aimed += CONTAINERS
    return st.sampled_from(aimed) if aimed else hostile


def plausible(name: str) -> st.SearchStrategy[Any]:
    known = PLAUSIBLE.get(name)
    return st.sampled_from(known) if known else st.nothing()


hostile = st.sampled_from(HOSTILE)


def frame(message: dict[str, Any]) -> bytes:
    """The message as one frame; Raw values go in as they are, everything else as json.dumps writes it (NaN as
    the `NaN` literal the SDK's parser accepts, lone surrogates as `\\ud800` escapes it refuses)."""
    raws: list[str] = []

    def place(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(value, dict):
            return {key: place(item) for key, item in value.items()}
        if isinstance(value, list):
            return [place(item) for item in value]
        return value

    text = json.dumps(place(message))
    for index, raw in enumerate(raws):
        text = text.replace(f'"@@raw{index}@@"', raw, 1)
    return text.encode()
