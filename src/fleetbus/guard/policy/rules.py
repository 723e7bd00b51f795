"""Rules and their parts: a verdict, the decision it yields, argument matchers, and how specific a rule is.

A rule matches an Operation (host glob, bus, destination, path, interface, member, arguments, kind) and the
catalog's classification of it (risk); the more fields it narrows, and the more exactly, the more specific it is.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus.guard.catalog import UNIT_PATH_PREFIX, Classification, Risk, unit_name_from_path
from fleetbus.operation import DBUS_CALL, Operation

GLOB_CHARACTERS = frozenset("*?[")


class Verdict(enum.Enum):
    ALLOW = "allow"
    CONFIRM = "confirm"
    DENY = "deny"

    @property
    def strictness(self) -> int:
        return {Verdict.ALLOW: 0, Verdict.CONFIRM: 1, Verdict.DENY: 2}[self]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rule: str
    reason: str
    risk: Risk | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


def _is_exact(pattern: str) -> bool:
    return not (GLOB_CHARACTERS & set(pattern))


def _weight(patterns: Sequence[str] | None) -> int:
    """How much a field narrows a rule: exact names count more than globs; `*` counts nothing."""
    if not patterns or any(p == "*" for p in patterns):
        return 0
    return 3 if all(_is_exact(p) for p in patterns) else 2


def _matches(patterns: Sequence[str] | None, value: str) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(value, p) for p in patterns)


@dataclass(frozen=True)
class ArgMatch:
    """Argument `index` must match: a glob for strings (every element for string arrays) or an exact value."""

    index: int
    pattern: str | None = None
    value: Any = None

    def matches(self, args: Sequence[Any]) -> bool:
        if self.index >= len(args):
            return False
        actual = args[self.index]
        if self.pattern is None:
            # In Python True == 1; a D-Bus boolean and an integer are different arguments.
            return isinstance(actual, bool) == isinstance(self.value, bool) and bool(actual == self.value)
        if isinstance(actual, str):
            return fnmatch.fnmatchcase(actual, self.pattern)
        if isinstance(actual, list) and actual and all(isinstance(a, str) for a in actual):
            return all(fnmatch.fnmatchcase(a, self.pattern) for a in actual)
        return False

    def names(self, unit: str) -> bool:
        """True when this matcher names `unit` exactly (no glob), which lifts unit protection."""
        if self.pattern is not None:
            return _is_exact(self.pattern) and self.pattern == unit
        if isinstance(self.value, list):
            return unit in self.value
        return bool(self.value == unit)

    @property
    def weight(self) -> int:
        return 2 if self.pattern is not None and not _is_exact(self.pattern) else 3

    def describe(self) -> str:
        return f"arg{self.index}={self.pattern if self.pattern is not None else repr(self.value)}"


@dataclass(frozen=True)
class Rule:
    name: str
    verdict: Verdict
    reason: str
    origin: str
    kinds: tuple[str, ...] | None = (DBUS_CALL,)
    hosts: tuple[str, ...] | None = None
    bus: str | None = None
    destination: tuple[str, ...] | None = None
    path: tuple[str, ...] | None = None
    interface: tuple[str, ...] | None = None
    member: tuple[str, ...] | None = None
    args: tuple[ArgMatch, ...] = ()
    risk: frozenset[Risk] | None = None
    host_names: frozenset[str] | None = None
    """The hosts `hosts` selected when the policy was loaded (Ansible patterns evaluated on the inventory);
    None: `hosts` are plain globs matched against the name."""

    def matches(self, operation: Operation, classification: Classification) -> bool:
        return (
            (self.kinds is None or operation.kind in self.kinds)
            and self._host_matches(operation.host)
            and (self.bus is None or self.bus == operation.bus)
            and _matches(self.destination, operation.destination)
            and _matches(self.path, operation.path)
            and _matches(self.interface, operation.interface)
            and _matches(self.member, operation.member)
            and all(a.matches(operation.args) for a in self.args)
            and (self.risk is None or classification.risk in self.risk)
        )

    def _host_matches(self, host: str) -> bool:
        if self.host_names is not None:
            return host in self.host_names
        return _matches(self.hosts, host)

    @property
    def specificity(self) -> int:
        kind_weight = 0 if self.kinds in (None, (DBUS_CALL,)) else 2
        return (
            kind_weight
            + _weight(self.hosts)
            + (1 if self.bus else 0)
            + _weight(self.destination)
            + _weight(self.path)
            + _weight(self.interface)
            + _weight(self.member)
            + sum(a.weight for a in self.args)
            + (1 if self.risk is not None else 0)
        )

    def names_unit(self, unit: str) -> bool:
        if any(a.names(unit) for a in self.args):
            return True
        # Calls on a unit's own object (org.freedesktop.systemd1.Unit) name the unit by its exact path.
        # Decoding the rule's path (rather than encoding the unit) accepts every escaping systemd accepts.
        paths = self.path or ()
        return (
            bool(paths)
            and all(_is_exact(p) for p in paths)
            and any(p.startswith(UNIT_PATH_PREFIX) and unit_name_from_path(p) == unit for p in paths)
        )

    def could_overlap(self, pattern: OperationPattern) -> bool:
        """Could some operation fitting `pattern` match this rule? Unknown fields are assumed to fit."""

        def fits(patterns: Sequence[str] | None, value: str | None) -> bool:
            return patterns is None or value is None or any(fnmatch.fnmatchcase(value, p) for p in patterns)

        return (
            (self.kinds is None or pattern.kind in self.kinds)
            and fits(self.hosts, pattern.host)
            and (self.bus is None or pattern.bus is None or self.bus == pattern.bus)
            and fits(self.destination, pattern.destination)
            and fits(self.path, pattern.path)
            and fits(self.interface, pattern.interface)
            and fits(self.member, pattern.member)
            and (self.risk is None or bool(self.risk & pattern.risks))
        )

    def covers(self, pattern: OperationPattern, risk: Risk) -> bool:
        """Does this rule match every operation fitting `pattern` that is classified as `risk`?"""

        def covered(patterns: Sequence[str] | None, value: str | None) -> bool:
            return patterns is None or (value is not None and _matches(patterns, value))

        return (
            (self.kinds is None or pattern.kind in self.kinds)
            and covered(self.hosts, pattern.host)
            and (self.bus is None or pattern.bus == self.bus)
            and covered(self.destination, pattern.destination)
            and covered(self.path, pattern.path)
            and covered(self.interface, pattern.interface)
            and covered(self.member, pattern.member)
            and not self.args
            and (self.risk is None or risk in self.risk)
        )

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {
            "name": self.name,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "origin": self.origin,
            "specificity": self.specificity,
        }
        for key in ("hosts", "bus", "destination", "path", "interface", "member"):
            value = getattr(self, key)
            if value is not None:
                described[key] = list(value) if isinstance(value, tuple) else value
        if self.kinds not in (None, (DBUS_CALL,)):
            described["kind"] = list(self.kinds or ())
        if self.args:
            described["args"] = [a.describe() for a in self.args]
        if self.risk is not None:
            described["risk"] = sorted(r.label for r in self.risk)
        return described


@dataclass(frozen=True)
class OperationPattern:
    """The operations a tool could perform; None means 'any'. Used to decide what tools to list."""

    kind: str = DBUS_CALL
    host: str | None = None
    bus: str | None = None
    destination: str | None = None
    path: str | None = None
    interface: str | None = None
    member: str | None = None
    risks: frozenset[Risk] = field(default_factory=lambda: frozenset(Risk))
