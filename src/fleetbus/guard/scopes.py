"""Token scopes: which scope an assessed operation needs, and whether a caller's scopes and hosts grant it.

Scopes are verbs over targets: `read`, `units:write` (or `units:write:GLOB`, limited to units whose names match),
`exec` (running commands, transient units), `approve` (answering approval requests) and `admin` (everything,
itself included). They narrow what the policy allows, never widen it: the gateway checks both, and the
narrower wins. A caller without scopes (None) is the operator — stdio, the CLI — and unrestricted.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fleetbus import well_known
from fleetbus.guard.catalog import CALLER_UNIT, Classification, Risk
from fleetbus.operation import AUDIT_QUERY, DBUS_CALL, FLEET_PLAN, Operation

READ = "read"
UNITS_WRITE = "units:write"
EXEC = "exec"
APPROVE = "approve"
ADMIN = "admin"
SCOPES = (READ, UNITS_WRITE, EXEC, APPROVE, ADMIN)
UNITS_WRITE_PREFIX = UNITS_WRITE + ":"
EXEC_KIND_PREFIX = "exec."
"""Operation kinds that run a command on a host (F3's executors) start with this."""
TRANSIENT_UNIT_MEMBERS = frozenset({"StartTransientUnit"})
"""systemd members that run an arbitrary command: they need `exec`, not `units:write`."""
SYSTEMD_MANAGER = well_known.SYSTEMD_MANAGER


class ScopeError(ValueError):
    """A scope that is not part of the grammar."""


def parse_scopes(items: str | Iterable[str]) -> frozenset[str]:
    """Scopes from "read,units:write:web-*" or a list; every one checked, none silently dropped."""
    raw = items.split(",") if isinstance(items, str) else list(items)
    scopes = frozenset(item.strip() for item in raw if item.strip())
    for scope in scopes:
        if scope in SCOPES:
            continue
        if scope.startswith(UNITS_WRITE_PREFIX) and scope[len(UNITS_WRITE_PREFIX) :]:
            continue
        raise ScopeError(
            f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)} and units:write:GLOB (e.g. units:write:web-*)"
        )
    return scopes


@dataclass(frozen=True)
class Requirement:
    """The scope one operation needs; for `units:write`, the units it touches (a GLOB scope must cover them all)."""

    scope: str
    units: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.scope == UNITS_WRITE and self.units:
            return f"{UNITS_WRITE} (or {UNITS_WRITE}:GLOB matching {', '.join(self.units)})"
        return self.scope


def required(operation: Operation, classification: Classification) -> Requirement:
    """What `operation`, as the catalog classified it, needs.

    Reads need `read`; routine start/stop/restart/reload/enable/disable… of named units need `units:write`;
    commands, transient units and unit files linked from a path need `exec`; anything else that changes, unknown
    or dangerous members, secrets and fleetbus's own audit log need `admin`.
    """
    if operation.kind == AUDIT_QUERY:
        return Requirement(ADMIN)
    if operation.kind == FLEET_PLAN:
        # A plan does nothing itself; each unit job in it is checked on its own host (with its unit names). To be
        # asked at all it needs what its jobs need: units:write, or a units:write:GLOB covering its units.
        return Requirement(UNITS_WRITE, tuple(str(unit) for unit in operation.args[1:]))
    if operation.kind.startswith(EXEC_KIND_PREFIX) or classification.runs_code or _starts_transient_unit(operation):
        return Requirement(EXEC)
    if classification.risk is Risk.READ:
        return Requirement(READ)
    units = classification.units
    # The caller's own unit ("self") is never a unit a GLOB could mean: only admin touches it.
    if (
        classification.risk is Risk.ROUTINE
        and classification.unit_action is not None
        and units
        and CALLER_UNIT not in units
    ):
        return Requirement(UNITS_WRITE, units)
    return Requirement(ADMIN)


def _starts_transient_unit(operation: Operation) -> bool:
    # Without an interface the call reaches whichever interface has the member; judge it as the Manager's.
    return (
        operation.kind == DBUS_CALL
        and operation.member in TRANSIENT_UNIT_MEMBERS
        and operation.interface in ("", SYSTEMD_MANAGER)
    )


def grants(scopes: frozenset[str] | None, requirement: Requirement) -> bool:
    if scopes is None or ADMIN in scopes:
        return True
    if requirement.scope == UNITS_WRITE:
        if UNITS_WRITE in scopes:
            return True
        globs = [s[len(UNITS_WRITE_PREFIX) :] for s in scopes if s.startswith(UNITS_WRITE_PREFIX)]
        return bool(requirement.units) and all(
            any(fnmatch.fnmatchcase(unit, glob) for glob in globs) for unit in requirement.units
        )
    return requirement.scope in scopes


def may_approve(scopes: frozenset[str] | None) -> bool:
    """Only a caller holding `approve` (or `admin`, or the unrestricted operator) may answer approval requests."""
    return scopes is None or APPROVE in scopes or ADMIN in scopes


def host_allowed(hosts: Sequence[str] | None, host: str) -> bool:
    return hosts is None or any(fnmatch.fnmatchcase(host, glob) for glob in hosts)


@dataclass(frozen=True)
class Refusal:
    scope: str
    """The scope that is missing (or `host:NAME` for a host the caller may not touch)."""
    message: str


def check(
    scopes: frozenset[str] | None,
    hosts: Sequence[str] | None,
    operation: Operation,
    classification: Classification,
    client: str,
) -> Refusal | None:
    """None when the caller may make this call; else what is missing, in words that name the scope."""
    # A plan's host is the pattern it was resolved from; the hosts it selected are the caller's only (the selector
    # leaves the others out) and each host's own call is checked here with its own host.
    if operation.kind != FLEET_PLAN and not host_allowed(hosts, operation.host):
        reachable = ", ".join(hosts or ()) or "none"
        return Refusal(
            f"host:{operation.host}",
            f"client {client!r} may not touch host {operation.host!r} (it may touch {reachable})",
        )
    requirement = required(operation, classification)
    if grants(scopes, requirement):
        return None
    held = ", ".join(sorted(scopes or ())) or "none"
    return Refusal(
        requirement.scope,
        f"client {client!r} lacks scope {requirement.describe()} for {operation.describe()} (its scopes: {held})",
    )
