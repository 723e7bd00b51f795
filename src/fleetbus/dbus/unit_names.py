"""Unit names and the object paths systemd serves units at. systemd escapes a unit name into its path (`_2e` for
"."), but a path is not a name: systemd also serves every unit at `unit/<invocation id>` and the caller's own at
`unit/self`, so who a path means is asked of systemd (its `Id` and `Names`), never read off the path."""

from __future__ import annotations

import functools

from fleetbus import well_known

UNIT_PATH_PREFIX = well_known.UNIT_PATH_PREFIX
GLOB_CHARACTERS = frozenset("*?[")
MAX_UNIT_NAME = 255


@functools.lru_cache(maxsize=4096)
def unit_object_path(name: str) -> str:
    """The object path systemd serves the unit `name` at (sd_bus_path_encode: every byte that is not an ASCII
    letter or digit, and a leading digit, becomes `_xx`)."""
    encoded = "".join(
        char if char.isascii() and char.isalnum() and not (index == 0 and char.isdigit()) else _escape(char)
        for index, char in enumerate(name)
    )
    return UNIT_PATH_PREFIX + (encoded or "_")


def _escape(char: str) -> str:
    return "".join(f"_{byte:02x}" for byte in char.encode())


def could_be_unit_name(reference: str) -> bool:
    """Whether systemd could know a unit by this name. Every unit name has a type suffix, so it has a "."; that
    also keeps a name from escaping into `self` or an invocation id, which systemd reads as other units."""
    return (
        "." in reference
        and "/" not in reference
        and not GLOB_CHARACTERS & set(reference)
        and 0 < len(reference) <= MAX_UNIT_NAME
    )
