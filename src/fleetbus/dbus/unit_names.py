"""Every name systemd knows a unit by. A unit can be reached through its aliases (a symlink in a unit
directory, `Alias=`, names systemd adds itself), and protection that went by the name in the call alone would
let `StopUnit("alias.service")` stop a protected unit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from fleetbus.dbus.errors import BusError
from fleetbus.dbus.jobs import MANAGER, MANAGER_PATH, SYSTEMD, UNIT
from fleetbus.dbus.link import PROPERTIES, BusLink

MAX_LOOKUPS = 32
"""Units looked up per call; a call naming more (EnableUnitFiles takes a list) is judged on the first ones'
aliases and every name it gave."""


def _lookable(name: str) -> bool:
    # File paths are judged by their file name already, and globs or "" (the caller's own unit) name no one unit.
    return bool(name) and "/" not in name and not any(c in name for c in "*?[")


async def _names_of(link: BusLink, unit: str, timeout: float) -> list[str]:
    path = (await link.call(SYSTEMD, MANAGER_PATH, MANAGER, "LoadUnit", "s", [unit], timeout=timeout)).body[0]
    reply = await link.call(SYSTEMD, str(path), PROPERTIES, "Get", "ss", [UNIT, "Names"], timeout=timeout)
    return [str(name) for name in reply.body[0].value]


async def all_names(link: BusLink, units: Iterable[str], timeout: float = 2.0) -> tuple[str, ...]:
    """`units` followed by every other name systemd has for them, without repeats.

    A lookup that fails (no such unit, a manager that does not answer in time) adds nothing: the names given are
    still judged, and a manager that cannot answer this cannot run the call either.
    """
    given = list(units)
    lookups = [unit for unit in dict.fromkeys(given) if _lookable(unit)][:MAX_LOOKUPS]
    found: list[list[str]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            answers = await asyncio.gather(*(_names_of(link, u, timeout) for u in lookups), return_exceptions=True)
            for answer in answers:
                if isinstance(answer, BusError | AttributeError | IndexError | TypeError):
                    continue
                if isinstance(answer, BaseException):
                    raise answer
                found.append(answer)
    return tuple(dict.fromkeys([*given, *(name for names in found for name in names)]))
