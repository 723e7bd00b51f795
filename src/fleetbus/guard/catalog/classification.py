"""Classifying an Operation with the catalog: its risk, the units it names and what it does to them, the polkit
action behind it — then the operator's knowledge for what the catalog lacks, and introspection hints (stricter only).
Pure logic — the policy decides, this informs.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace

from fleetbus.guard.catalog.entries import (
    CALLER_UNIT,
    CATALOG,
    DANGEROUS_TARGETS,
    JOB_ACTIONS,
    UNIT_PATH_PREFIX,
    Effect,
    Entry,
    Risk,
    UnitAction,
    lookup,
    lookup_property,
    unit_name_from_path,
)
from fleetbus.operation import (
    AUDIT_QUERY,
    DBUS_CALL,
    DBUS_WATCH,
    FLEET_PLAN,
    HOST_METRICS,
    HOST_PROBE,
    JOURNAL_QUERY,
    Operation,
)


@dataclass(frozen=True)
class Hints:
    """What introspection says about the member being called; it can raise a classification, not lower it."""

    privileged: bool = False
    no_reply: bool = False
    property_access: str | None = None
    """For Properties.Set/Get: the target property's access ("read", "write", "readwrite")."""


@dataclass(frozen=True)
class Forbidden:
    """A refusal no policy rule can lift, with the name it is reported under."""

    rule: str
    reason: str


@dataclass(frozen=True)
class Classification:
    risk: Risk
    reason: str
    source: str
    """Where the knowledge came from: "catalog:<interface>", "hint:…" or "unclassified"."""
    units: tuple[str, ...] = ()
    """The units the call names: as given, then (once systemd was asked) every other name they have."""
    unit_action: UnitAction | None = None
    polkit_action: str | None = None
    effect: Effect = Effect.NONE
    """Which consequences the gateway works out from the unit graph before deciding."""
    units_by_path: bool = False
    """The unit is the object the call is made on (a Unit or Service member), not an argument."""
    takes_down: tuple[str, ...] = ()
    """Every name of the other units the call would stop or restart along with the named ones."""
    runs_code: bool = False
    """The call runs a command of the caller's choosing (a transient unit, a linked foreign unit file)."""
    forbidden: Forbidden | None = None

    @property
    def is_read(self) -> bool:
        return self.risk is Risk.READ and self.forbidden is None


def _unit_action(entry: Entry, operation: Operation) -> UnitAction | None:
    if entry.job_arg is None:
        return entry.unit_action
    job = operation.args[entry.job_arg] if entry.job_arg < len(operation.args) else None
    return JOB_ACTIONS.get(job, UnitAction.CHANGE) if isinstance(job, str) else UnitAction.CHANGE


def _units_named(entry: Entry, operation: Operation, action: UnitAction | None) -> tuple[str, ...]:
    if action is None:
        return ()
    if not entry.unit_args:
        if operation.path.startswith(UNIT_PATH_PREFIX):
            return (unit_name_from_path(operation.path),)
        return ()
    names: list[str] = []
    for index in entry.unit_args:
        value = operation.args[index] if index < len(operation.args) else None
        if isinstance(value, str):
            names.append(value)
        elif isinstance(value, list):
            names += [v for v in value if isinstance(v, str)]
    # An empty name is the caller's own unit to systemd.
    return tuple(dict.fromkeys(CALLER_UNIT if name == "" else name for name in names))


def _classify_entry(entry: Entry, operation: Operation, source: str) -> Classification:
    action = _unit_action(entry, operation)
    forbidden = (
        Forbidden(
            "own-connection",
            f"{operation.interface or 'the member'} {operation.member} {entry.reason}; fleetbus's own connection "
            "belongs to fleetbus, so no client may change it",
        )
        if entry.connection
        else None
    )
    base = Classification(
        entry.risk,
        entry.reason,
        source,
        _units_named(entry, operation, action),
        action,
        entry.polkit_action,
        effect=entry.effect_of(action),
        units_by_path=action is not None and not entry.unit_args,
        runs_code=entry.runs_code,
        forbidden=forbidden,
    )
    return _dangerous_targets(_foreign_files(base, entry), entry, operation)


def _foreign_files(base: Classification, entry: Entry) -> Classification:
    """A unit file given as a path is linked from wherever it is — what LinkUnitFiles does: its commands would run
    as the manager's user, and a file named like a unit replaces that unit's definition."""
    paths = [unit for unit in base.units if "/" in unit] if entry.links_files else []
    if not paths:
        return base
    return replace(
        base,
        risk=max(base.risk, Risk.DANGEROUS),
        reason=f"{base.reason}, linking {', '.join(paths)} from outside the unit directories (its commands would "
        "run as the service manager's user)",
        unit_action=UnitAction.CHANGE,
        effect=Effect.TAKE_DOWN,
        runs_code=True,
    )


def possible_risks(operation: Operation, knowledge: Sequence[LocalKnowledge] = ()) -> frozenset[Risk]:
    """What a call of this member may be classified as, whatever its arguments: its own risk, and dangerous too when
    what it reaches can make it so. Tool listings and annotations are built from this."""
    risk = classify(operation, None, knowledge).risk
    if may_become_dangerous(operation.interface, operation.member):
        return frozenset({risk, Risk.DANGEROUS})
    return frozenset({risk})


def may_become_dangerous(interface: str, member: str) -> bool:
    """Whether a call of this member can be dangerous by what it does (the units a start pulls in, what a stop
    sets off, a foreign unit file) even though the member itself is not: tool listings and annotations must know."""
    entry = lookup(interface, member)
    if entry is None:
        return False
    effect = entry.effect_of(entry.unit_action)
    return (
        entry.job_arg is not None
        or entry.links_files
        or effect in (Effect.START, Effect.STOP, Effect.RESTART, Effect.BOOT)
    )


@dataclass(frozen=True)
class LocalKnowledge:
    """What an operator tells fleetbus about services the built-in catalog does not know (`[[classify]]` in a
    policy file). It fills gaps only: a member the catalog knows keeps its built-in classification."""

    interface: tuple[str, ...]
    member: tuple[str, ...]
    risk: Risk
    reason: str
    origin: str
    destination: tuple[str, ...] | None = None

    def matches(self, operation: Operation) -> bool:
        return (
            any(fnmatch.fnmatchcase(operation.interface, p) for p in self.interface)
            and any(fnmatch.fnmatchcase(operation.member, p) for p in self.member)
            and (
                self.destination is None or any(fnmatch.fnmatchcase(operation.destination, p) for p in self.destination)
            )
        )


def classify(
    operation: Operation, hints: Hints | None = None, knowledge: Sequence[LocalKnowledge] = ()
) -> Classification:
    """What `operation` would do, from the catalog, then the operator's knowledge for what the catalog does not
    cover, and (only to make it stricter) introspection hints."""
    if operation.kind in READ_KINDS:
        return Classification(Risk.READ, READ_KINDS[operation.kind], f"kind:{operation.kind}")
    if operation.kind == FLEET_PLAN:
        # Like a restart: the preset's routine verdict (operator: confirm, admin: allow). Each change of the plan is
        # still classified and decided on its own host; a plan only stands in for their approvals.
        return Classification(Risk.ROUTINE, "a plan of unit jobs across hosts", f"kind:{FLEET_PLAN}")
    if operation.kind != DBUS_CALL:
        return Classification(Risk.UNKNOWN, f"operation kind {operation.kind!r} is not in the catalog", "unclassified")
    if operation.interface == "org.freedesktop.DBus.Properties" and operation.member == "Set":
        base = _property_set(operation)
    elif operation.interface == "org.freedesktop.DBus.Properties" and operation.member not in ("Get", "GetAll"):
        base = Classification(Risk.UNKNOWN, f"Properties.{operation.member} is not a standard member", "unclassified")
    elif not operation.interface:
        base = _without_interface(operation)
    else:
        entry = lookup(operation.interface, operation.member)
        local = next((k for k in knowledge if k.matches(operation)), None) if entry is None else None
        if local is not None:
            base = Classification(local.risk, local.reason, f"classify:{local.origin}")
        elif entry is None:
            base = Classification(
                Risk.UNKNOWN, f"{operation.interface}.{operation.member} is not in the catalog", "unclassified"
            )
        else:
            base = _classify_entry(entry, operation, f"catalog:{operation.interface}")
    return _apply_hints(base, hints)


READ_KINDS = {
    DBUS_WATCH: "watches signals",
    AUDIT_QUERY: "reads fleetbus's own audit log",
    # The journal executor accepts only query options (never --rotate, --vacuum-*, --flush…), so this holds.
    JOURNAL_QUERY: "reads the journal",
    HOST_METRICS: "reads resource figures (load, memory, disks, processes, sockets)",
    HOST_PROBE: "tries to reach the host (an SSH login) and reports whether it answers",
}
"""Operation kinds other than method calls that only read."""


def _without_interface(operation: Operation) -> Classification:
    """A call without an interface reaches whichever interface of the object has the member, so it is judged as
    the strictest catalog entry of that name (never below unknown): leaving the interface out must not turn
    `GetSecrets` into a mere unknown or slip `StopUnit` past unit protection."""
    candidates = [
        _classify_entry(entry, operation, f"catalog:{interface}")
        for interface, entries in CATALOG.items()
        for entry in entries
        if entry.member == operation.member
    ]
    floor = Classification(
        Risk.UNKNOWN,
        f"{operation.member} is called without an interface, so what it reaches is unknown",
        "unclassified",
    )
    strictest = max(candidates, key=lambda c: c.risk, default=floor)
    with_units = next((c for c in candidates if c.unit_action is not None and c.unit_action.disruptive), None)
    with_units = with_units or next((c for c in candidates if c.unit_action is not None), None)
    return Classification(
        max(strictest.risk, Risk.UNKNOWN),
        (
            f"{operation.member} is called without an interface; the strictest member of that name {strictest.reason}"
            if candidates
            else floor.reason
        ),
        f"{strictest.source}?no-interface" if candidates else floor.source,
        with_units.units if with_units else (),
        with_units.unit_action if with_units else None,
        strictest.polkit_action,
        effect=with_units.effect if with_units else Effect.NONE,
        units_by_path=with_units.units_by_path if with_units else False,
        runs_code=any(c.runs_code for c in candidates),
        forbidden=next((c.forbidden for c in candidates if c.forbidden is not None), None),
    )


def _property_set(operation: Operation) -> Classification:
    name = ".".join(str(a) for a in operation.args[:2]) if len(operation.args) >= 2 else "a property"
    known = lookup_property(str(operation.args[0]), str(operation.args[1])) if len(operation.args) >= 2 else None
    if known is not None:
        return Classification(known.risk, f"writes {name}: {known.reason}", "catalog:Properties.Set")
    if operation.bus == "system":
        return Classification(Risk.DANGEROUS, f"writes {name} on the system bus", "catalog:Properties.Set")
    return Classification(Risk.ROUTINE, f"writes {name} on the session bus", "catalog:Properties.Set")


def _dangerous_targets(base: Classification, entry: Entry, operation: Operation) -> Classification:
    """Starting (or restarting, or making the default) a shutdown-like target, or any `isolate` job, is dangerous."""
    if base.unit_action not in (UnitAction.START, UnitAction.RESTART) and entry.member != "SetDefaultTarget":
        return base
    hits = [u for u in base.units if u.rsplit("/", 1)[-1] in DANGEROUS_TARGETS]
    mode = (
        operation.args[entry.mode_arg] if entry.mode_arg is not None and entry.mode_arg < len(operation.args) else None
    )
    isolate = mode == "isolate"
    if not hits and not isolate:
        return base
    why = (
        f"{'making' if entry.member == 'SetDefaultTarget' else 'starting'} {', '.join(hits)} powers off, reboots "
        "or rescues the machine"
        if hits
        else "mode 'isolate' stops every unit the target does not need"
    )
    return replace(base, risk=Risk.DANGEROUS, reason=why)


def _apply_hints(base: Classification, hints: Hints | None) -> Classification:
    if hints is None:
        return base
    raised = base.risk
    notes: list[str] = []
    if hints.privileged and raised < Risk.ROUTINE:
        raised, notes = Risk.ROUTINE, [*notes, "introspection marks it privileged"]
    if hints.no_reply and raised < Risk.ROUTINE:
        raised, notes = Risk.ROUTINE, [*notes, "introspection marks it no-reply, which a read never is"]
    if raised == base.risk:
        return base
    return replace(base, risk=raised, reason=f"{base.reason}; {'; '.join(notes)}", source=f"{base.source}+hints")


def protected_hits(classification: Classification, protected: Sequence[str]) -> list[str]:
    """Protected units the operation would stop, restart, disable, mask, freeze, kill or rewrite — named in the
    call, or taken down with the units it names.

    A unit given as a file path (LinkUnitFiles, EnableUnitFiles accept those) is judged by its file name, and
    the caller's own unit is always protected.
    """
    disruptive = classification.unit_action is not None and classification.unit_action.disruptive
    touched = (*(classification.units if disruptive else ()), *classification.takes_down)
    return [
        unit
        for unit in dict.fromkeys(touched)
        if unit == CALLER_UNIT or any(fnmatch.fnmatchcase(unit.rsplit("/", 1)[-1], p) for p in protected)
    ]
