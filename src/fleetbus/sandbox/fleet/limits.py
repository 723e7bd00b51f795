"""The kernel limit a simulated fleet runs into first: inotify instances, counted per user across the machine.

systemd --user, journald and dbus-daemon each hold inotify instances, and every host runs as root, so a fleet
shares `fs.inotify.max_user_instances` (128 by default) with every other root process. Checked before any host
starts: a host failing half-way through start-up ("service manager: the process it depends on exited") says less.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetbus.sandbox.fleet.layout import FULL, LIGHT

MAX_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
PER_HOST = {FULL: 5, LIGHT: 1}
"""Measured: a full host's manager holds 3, its journald 1, its dbus-daemon 1; a light host's dbus-daemon 1."""
HEADROOM = 8
"""Left for what the sandbox's own services and the client start meanwhile."""


def inotify_in_use(uid: int = 0) -> int:
    """How many inotify instances processes of `uid` hold now (each is an `anon_inode:inotify` descriptor)."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            for fd in os.scandir(entry / "fd"):
                try:
                    if os.readlink(fd.path) == "anon_inode:inotify":
                        count += 1
                except OSError:
                    continue
        except OSError:
            continue
    return count


def inotify_limit() -> int:
    return int(MAX_INSTANCES.read_text())


def shortfall(count: int, profile: str, limit: int, in_use: int) -> str | None:
    """Why `count` hosts of `profile` would not all start, or None when the limit leaves room for them."""
    needed = count * PER_HOST[profile] + HEADROOM
    if in_use + needed <= limit:
        return None
    room = max(0, (limit - in_use - HEADROOM) // PER_HOST[profile])
    hint = "" if profile == LIGHT else f", or --profile light ({PER_HOST[LIGHT]} per host)"
    return (
        f"{count} {profile} hosts need about {count * PER_HOST[profile]} inotify instances "
        f"({PER_HOST[profile]} per host); fs.inotify.max_user_instances is {limit} and root holds {in_use}, "
        f"room for about {room} hosts: raise it (sysctl -w fs.inotify.max_user_instances={max(1024, in_use + needed)})"
        f"{hint}"
    )


def check(count: int, profile: str) -> str | None:
    return shortfall(count, profile, inotify_limit(), inotify_in_use())
