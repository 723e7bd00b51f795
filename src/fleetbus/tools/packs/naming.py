"""Tool names for pack tools: D-Bus member names in snake case, prefixed by the pack, unique and short."""

from __future__ import annotations

import re

from fleetbus.config import PackSettings

MAX_TOOL_NAME = 64


def snake(name: str) -> str:
    """`GetUnitByPID` → `get_unit_by_pid`, `KExec` → `k_exec`; anything else becomes `_`."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    return re.sub(r"[^a-z0-9]+", "_", spaced.lower()).strip("_") or "x"


def pack_prefix(pack: PackSettings, service: str) -> str:
    """A fixed-name pack uses its own name; a glob pack adds the service's last element to tell services apart."""
    if not any(c in pack.service for c in "*?["):
        return pack.name
    return f"{pack.name}_{snake(service.rsplit('.', 1)[-1])}"


def tool_name(prefix: str, member: str, taken: set[str], qualifier: str = "") -> str:
    base = "_".join(part for part in (prefix, snake(qualifier) if qualifier else "", snake(member)) if part)
    name = base[:MAX_TOOL_NAME]
    counter = 2
    while name in taken:
        suffix = f"_{counter}"
        name = base[: MAX_TOOL_NAME - len(suffix)] + suffix
        counter += 1
    return name
