"""Ways of naming one unit, for the property tests that prove each gets the verdict of its plain name: escaped
object paths in every spelling systemd accepts, and the calls that stop, restart, kill, freeze, disable or mask."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from fleetbus.operation import DBUS_CALL, Operation

UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit/"
SD = "org.freedesktop.systemd1"
MANAGER = ("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
UNIT = "org.freedesktop.systemd1.Unit"


def spellings(name: str) -> st.SearchStrategy[str]:
    """Object paths systemd reads as `name`: its escaping, upper- or lower-case hex, letters escaped too."""

    def spell(flags: list[bool], upper: bool) -> str:
        out = []
        for index, char in enumerate(name):
            plain = char.isascii() and char.isalnum() and not (index == 0 and char.isdigit())
            escape = not plain or flags[index % len(flags)]
            code = f"_{ord(char):02X}" if upper else f"_{ord(char):02x}"
            out.append(code if escape else char)
        return UNIT_PATH_PREFIX + "".join(out)

    return st.builds(spell, st.lists(st.booleans(), min_size=1, max_size=8), st.booleans())


def escaped_path(name: str) -> str:
    """The path systemd itself gives `name` (sd_bus_path_encode), written here independently of fleetbus."""
    return UNIT_PATH_PREFIX + "".join(
        c if c.isascii() and c.isalnum() and not (i == 0 and c.isdigit()) else f"_{ord(c):02x}"
        for i, c in enumerate(name)
    )


pads = st.lists(st.from_regex(r"pad-[a-z0-9]{1,6}\.service", fullmatch=True), max_size=60, unique=True)
"""Other unit names to bury the reference in (the old alias check gave up after 32)."""


def manager_call(member: str, *args: Any) -> Operation:
    return Operation(DBUS_CALL, "local", "system", SD, *MANAGER, member, "", tuple(args))


def name_calls(name: str, padding: list[str], before: int) -> list[Operation]:
    listed = [*padding[:before], name, *padding[before:]]
    return [
        manager_call("StopUnit", name, "replace"),
        manager_call("RestartUnit", name, "replace"),
        manager_call("KillUnit", name, "all", 9),
        manager_call("EnqueueUnitJob", name, "stop", "replace"),
        manager_call("FreezeUnit", name),
        manager_call("DisableUnitFiles", listed, False),
        manager_call("MaskUnitFiles", listed, False, False),
    ]


def path_calls(path: str) -> list[Operation]:
    return [
        Operation(DBUS_CALL, "local", "system", SD, path, UNIT, "Stop", "s", ("replace",)),
        Operation(DBUS_CALL, "local", "system", SD, path, UNIT, "Restart", "s", ("replace",)),
        Operation(DBUS_CALL, "local", "system", SD, path, UNIT, "Kill", "si", ("all", 9)),
        Operation(DBUS_CALL, "local", "system", SD, path, "", "Stop", "s", ("replace",)),
    ]
