"""Which units are in trouble by systemd's own account: stuck starting, stopping or reloading, or restarted by
systemd on their own. Pure judgements on property values and the host's monotonic clock (the clock systemd's
*TimestampMonotonic properties count on, so a stepped wall clock changes nothing); triage.py fetches them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TRANSITIONAL = ("activating", "deactivating", "reloading")
SETTLED = ("active", "inactive", "failed")
AUTO_RESTART = "auto-restart"
"""The sub-state of a service that died and waits RestartSec= before systemd starts it again."""
RECENT_RESTART_S = 15 * 60
"""A restart counts as recent for this long: the window an operator looks back over when something is slow."""
USEC = 1_000_000


def _usec(props: Mapping[str, Any], name: str) -> int:
    value = props.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(frozen=True)
class Moment:
    """A systemd timestamp: monotonic (for durations) and realtime (to show, and to query the journal from)."""

    monotonic_usec: int
    realtime_usec: int

    @classmethod
    def of(cls, props: Mapping[str, Any], name: str) -> Moment:
        return cls(_usec(props, f"{name}Monotonic"), _usec(props, name))


def unsettled_since(state: str, unit_props: Mapping[str, Any]) -> Moment | None:
    """When a unit in `state` last left a settled state (active, inactive, failed).

    systemd stamps InactiveExit when a unit leaves inactive/failed and ActiveExit when it leaves active, so for
    activating and deactivating the later of the two is when the current transition began — also when it
    passed through several sub-states (start-pre, start…) or went from activating straight to deactivating.
    Reloading leaves active for neither, so it is dated by StateChangeTimestamp (its last state change)."""
    changed = Moment.of(unit_props, "StateChangeTimestamp")
    if state == "reloading":
        return changed if changed.monotonic_usec else None
    left = max(
        (Moment.of(unit_props, name) for name in ("InactiveExitTimestamp", "ActiveExitTimestamp")),
        key=lambda moment: moment.monotonic_usec,
    )
    if left.monotonic_usec and (not changed.monotonic_usec or left.monotonic_usec <= changed.monotonic_usec):
        return left
    return changed if changed.monotonic_usec else None


def may_hang(unit: str, state: str, sub: str) -> bool:
    """Whether a unit's state (from ListUnits alone) is a transition that can hang. Two activating states run no
    job and are left out: a service waiting to be restarted (a restart, judged by `restarted`), and a device
    that only the kernel has announced, not udev (`tentative`; for good on hosts without udev, containers)."""
    return state in TRANSITIONAL and sub != AUTO_RESTART and not unit.endswith(".device")


@dataclass(frozen=True)
class Stuck:
    unit: str
    state: str
    sub: str
    since: Moment
    seconds: float


def stuck(
    unit: str, state: str, sub: str, unit_props: Mapping[str, Any], now_usec: int, threshold_s: float
) -> Stuck | None:
    """A unit in activating, deactivating or reloading for at least `threshold_s`."""
    if not may_hang(unit, state, sub):
        return None
    since = unsettled_since(state, unit_props)
    if since is None:
        return None
    seconds = (now_usec - since.monotonic_usec) / USEC
    return Stuck(unit, state, sub, since, seconds) if seconds >= threshold_s else None


@dataclass(frozen=True)
class Restarted:
    unit: str
    restarts: int
    """systemd's NRestarts: automatic restarts since the unit was last started by hand (a manual start or
    restart sets it back to 0)."""
    last_restart_s: float | None
    """Seconds since the last automatic restart; None while the first one is still pending."""
    waiting: bool
    """Dead now, waiting RestartSec= to be started again."""


def restarted(
    unit: str, sub: str, service_props: Mapping[str, Any], now_usec: int, window_s: float = RECENT_RESTART_S
) -> Restarted | None:
    """A service systemd restarted on its own within `window_s`, or that is dead and about to be restarted.

    systemd keeps no list of restart times, only the counter and the current main process's start. With
    NRestarts ≥ 1 that start was itself an automatic restart (a start by hand resets the counter), so it is
    the time of the last one: "recently" means it lies within `window_s`. A crash-looping unit is therefore
    named while momentarily active too, and after an operator's restart as soon as it crashes again."""
    count = service_props.get("NRestarts")
    restarts = count if isinstance(count, int) and not isinstance(count, bool) else 0
    waiting = sub == AUTO_RESTART
    started = _usec(service_props, "ExecMainStartTimestampMonotonic")
    last = (now_usec - started) / USEC if restarts >= 1 and started else None
    if waiting or (last is not None and last <= window_s):
        return Restarted(unit, restarts, last, waiting)
    return None
