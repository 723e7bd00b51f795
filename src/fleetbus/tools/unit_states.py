"""The states a `state=` filter can name: systemd's load, active and sub states of units, and unit file states.

systemd filters by any state name and silently matches nothing for a misspelt one, so fleetbus checks the name
first. The tables are what `systemctl --state=help` prints for systemd 252 (Debian 12), plus the states later
versions added (refreshing, *-before-auto-restart, auto-restart-queued, dead-resources-pruned, deferred); a
manager newer still may know more, so a name is also accepted when a unit is in that state right now.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetbus.suggestions import unknown

LOAD_STATES = ("stub", "loaded", "not-found", "bad-setting", "error", "merged", "masked")
ACTIVE_STATES = ("active", "reloading", "inactive", "failed", "activating", "deactivating", "maintenance", "refreshing")
SUB_STATES = {
    "automount": ("dead", "waiting", "running", "failed"),
    "device": ("dead", "tentative", "plugged"),
    "mount": (
        "dead",
        "mounting",
        "mounting-done",
        "mounted",
        "remounting",
        "unmounting",
        "remounting-sigterm",
        "remounting-sigkill",
        "unmounting-sigterm",
        "unmounting-sigkill",
        "failed",
        "cleaning",
    ),
    "path": ("dead", "waiting", "running", "failed"),
    "scope": ("dead", "start-chown", "running", "abandoned", "stop-sigterm", "stop-sigkill", "failed"),
    "service": (
        "dead",
        "condition",
        "start-pre",
        "start",
        "start-post",
        "running",
        "exited",
        "reload",
        "stop",
        "stop-watchdog",
        "stop-sigterm",
        "stop-sigkill",
        "stop-post",
        "final-watchdog",
        "final-sigterm",
        "final-sigkill",
        "failed",
        "auto-restart",
        "cleaning",
        "dead-before-auto-restart",
        "failed-before-auto-restart",
        "dead-resources-pruned",
        "auto-restart-queued",
    ),
    "slice": ("dead", "active"),
    "socket": (
        "dead",
        "start-pre",
        "start-chown",
        "start-post",
        "listening",
        "running",
        "stop-pre",
        "stop-pre-sigterm",
        "stop-pre-sigkill",
        "stop-post",
        "final-sigterm",
        "final-sigkill",
        "failed",
        "cleaning",
        "deferred",
    ),
    "swap": (
        "dead",
        "activating",
        "activating-done",
        "active",
        "deactivating",
        "deactivating-sigterm",
        "deactivating-sigkill",
        "failed",
        "cleaning",
    ),
    "target": ("dead", "active"),
    "timer": ("dead", "waiting", "running", "elapsed", "failed"),
}
UNIT_STATES = frozenset({*LOAD_STATES, *ACTIVE_STATES, *(s for states in SUB_STATES.values() for s in states)})
COMMON_SUB_STATES = ("running", "exited", "dead", "listening", "waiting", "mounted", "plugged", "auto-restart")
UNIT_FILE_STATES = (
    "enabled",
    "enabled-runtime",
    "linked",
    "linked-runtime",
    "alias",
    "masked",
    "masked-runtime",
    "static",
    "disabled",
    "indirect",
    "generated",
    "transient",
    "bad",
)


def unknown_unit_state(state: str, observed: Iterable[str] = ()) -> str | None:
    """None when `state` is a load, active or sub state (or one some unit is in now); else the error to show."""
    current = set(observed)
    if state in UNIT_STATES or state in current:
        return None
    kinds = (
        f"load states: {', '.join(LOAD_STATES)}; active states: {', '.join(ACTIVE_STATES)}; sub states such as "
        f"{', '.join(COMMON_SUB_STATES)}, and more that systemctl --state=help lists"
    )
    return unknown("unit state", state, sorted(UNIT_STATES | current), argument="state", listed=0, see=kinds)


def unknown_unit_file_state(state: str, observed: Iterable[str] = ()) -> str | None:
    """None when `state` is a unit file state (or one some unit file has now); else the error to show."""
    current = set(observed)
    if state in UNIT_FILE_STATES or state in current:
        return None
    known = [*UNIT_FILE_STATES, *sorted(current - set(UNIT_FILE_STATES))]
    return unknown("unit file state", state, known, argument="state", listed=len(known))
