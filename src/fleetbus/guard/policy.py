"""Deciding whether an Operation may run: allow, deny, or confirm (a person must approve).

Rules match an Operation (host glob, bus, destination, path, interface, member, arguments, kind) and the
catalog's classification of it (risk). The most specific matching rule wins; among equally specific
rules the stricter verdict wins; when nothing matches, the answer is deny. Protected units are refused
any disruptive change unless the deciding rule names the unit explicitly.
"""

from __future__ import annotations

import enum
import fnmatch
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetbus.guard.catalog import (
    CALLER_UNIT,
    DEFAULT_PROTECTED_UNITS,
    UNIT_PATH_PREFIX,
    Classification,
    LocalKnowledge,
    Risk,
    protected_hits,
    unit_name_from_path,
)
from fleetbus.operation import AUDIT_QUERY, DBUS_CALL, Operation

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

    def matches(self, operation: Operation, classification: Classification) -> bool:
        return (
            (self.kinds is None or operation.kind in self.kinds)
            and _matches(self.hosts, operation.host)
            and (self.bus is None or self.bus == operation.bus)
            and _matches(self.destination, operation.destination)
            and _matches(self.path, operation.path)
            and _matches(self.interface, operation.interface)
            and _matches(self.member, operation.member)
            and all(a.matches(operation.args) for a in self.args)
            and (self.risk is None or classification.risk in self.risk)
        )

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


# ---- presets -------------------------------------------------------------------------------------


def _risk_rule(preset: str, risk: Risk, verdict: Verdict, reason: str) -> Rule:
    return Rule(f"{preset}:{risk.label}", verdict, reason, f"preset:{preset}", kinds=None, risk=frozenset({risk}))


def _preset(name: str, verdicts: Mapping[Risk, tuple[Verdict, str]], *extra: Rule) -> tuple[Rule, ...]:
    return (*(_risk_rule(name, risk, verdict, reason) for risk, (verdict, reason) in verdicts.items()), *extra)


SECRETS = (Verdict.DENY, "secrets are never handed to a model")
READS = (Verdict.ALLOW, "reads are allowed")

PRESETS: dict[str, tuple[Rule, ...]] = {
    "readonly": _preset(
        "readonly",
        {Risk.READ: READS, Risk.SECRET: SECRETS},
        Rule(
            "readonly:audit",
            Verdict.DENY,
            "the audit log is for the admin preset",
            "preset:readonly",
            kinds=(AUDIT_QUERY,),
        ),
    ),
    "operator": _preset(
        "operator",
        {
            Risk.READ: READS,
            Risk.ROUTINE: (Verdict.CONFIRM, "routine changes need a person's approval under the operator preset"),
            Risk.UNKNOWN: (Verdict.CONFIRM, "fleetbus does not know what this does; a person must approve it"),
            Risk.DANGEROUS: (Verdict.DENY, "dangerous operations are refused under the operator preset"),
            Risk.SECRET: SECRETS,
        },
        Rule(
            "operator:audit",
            Verdict.DENY,
            "the audit log is for the admin preset",
            "preset:operator",
            kinds=(AUDIT_QUERY,),
        ),
    ),
    "admin": _preset(
        "admin",
        {
            Risk.READ: READS,
            Risk.ROUTINE: (Verdict.ALLOW, "routine changes are allowed under the admin preset"),
            Risk.UNKNOWN: (Verdict.CONFIRM, "fleetbus does not know what this does; a person must approve it"),
            Risk.DANGEROUS: (Verdict.CONFIRM, "dangerous operations need a person's approval under the admin preset"),
            Risk.SECRET: SECRETS,
        },
        Rule("admin:audit", Verdict.ALLOW, "admins may read the audit log", "preset:admin", kinds=(AUDIT_QUERY,)),
    ),
}
SAFETY_PRESETS = tuple(PRESETS)


# ---- the policy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    preset: str
    rules: tuple[Rule, ...]
    protected_units: tuple[str, ...] = DEFAULT_PROTECTED_UNITS
    sources: tuple[str, ...] = ()
    knowledge: tuple[LocalKnowledge, ...] = ()
    """The operator's classification of members the built-in catalog does not know."""

    @classmethod
    def build(
        cls,
        preset: str,
        extra_rules: Iterable[Rule] = (),
        protected_units: Iterable[str] = (),
        sources: Iterable[str] = (),
        knowledge: Iterable[LocalKnowledge] = (),
    ) -> Policy:
        if preset not in PRESETS:
            raise PolicyError(f"unknown safety preset {preset!r}; choose one of {', '.join(SAFETY_PRESETS)}")
        protected = tuple(dict.fromkeys((*DEFAULT_PROTECTED_UNITS, *protected_units)))
        return cls(preset, (*PRESETS[preset], *extra_rules), protected, tuple(sources), tuple(knowledge))

    def decide(self, operation: Operation, classification: Classification) -> Decision:
        matching = [rule for rule in self.rules if rule.matches(operation, classification)]
        if not matching:
            return Decision(
                Verdict.DENY,
                "default-deny",
                f"no rule allows this under the {self.preset} preset ({classification.risk.label}: "
                f"{classification.reason})",
                classification.risk,
            )
        best = max(matching, key=lambda r: (r.specificity, r.verdict.strictness))
        if (
            classification.risk is Risk.SECRET
            and best.verdict is not Verdict.DENY
            and (best.risk is None or Risk.SECRET not in best.risk)
        ):
            # Like protected units: a broad rule (say, allow everything on web-*) must not hand out secrets;
            # only a rule that says risk = ["secret"] can.
            return Decision(
                Verdict.DENY,
                "secrets",
                f'{classification.reason}; rule {best.name!r} does not say risk = ["secret"], and only a rule '
                "that does may release secrets",
                classification.risk,
            )
        hits = protected_hits(classification, self.protected_units)
        unnamed = [unit for unit in hits if not best.names_unit(unit)]
        if unnamed and best.verdict is not Verdict.DENY:
            action = classification.unit_action.value if classification.unit_action else "change"
            labels = [f"the caller's own unit ({unit})" if unit == CALLER_UNIT else unit for unit in unnamed]
            return Decision(
                Verdict.DENY,
                "protected-units",
                f"{', '.join(labels)} {'is a protected unit' if len(unnamed) == 1 else 'are protected units'}"
                f"; fleetbus will not {action} {'it' if len(unnamed) == 1 else 'them'} unless a policy rule names "
                f"{'it' if len(unnamed) == 1 else 'each'} explicitly",
                classification.risk,
            )
        return Decision(best.verdict, best.name, best.reason, classification.risk)

    def could_permit(self, pattern: OperationPattern) -> set[Risk]:
        """The risk classes among `pattern.risks` that some allow/confirm rule might let through.

        A permitting rule does not count where a deny rule at least as specific matches everything the pattern
        could be (e.g. `readonly:audit` over `readonly:read` for the audit tool): it can never decide there.
        """
        permitted: set[Risk] = set()
        for risk in pattern.risks:
            narrowed = replace(pattern, risks=frozenset({risk}))
            denials = [
                rule.specificity for rule in self.rules if rule.verdict is Verdict.DENY and rule.covers(narrowed, risk)
            ]
            strongest_denial = max(denials, default=-1)
            if any(
                rule.verdict is not Verdict.DENY
                and rule.specificity > strongest_denial
                and rule.could_overlap(narrowed)
                for rule in self.rules
            ):
                permitted.add(risk)
        return permitted

    def describe(self) -> dict[str, Any]:
        ordered = sorted(self.rules, key=lambda r: (-r.specificity, -r.verdict.strictness, r.name))
        return {
            "preset": self.preset,
            "sources": list(self.sources),
            "default": "deny",
            "protected_units": list(self.protected_units),
            "rules": [rule.describe() for rule in ordered],
            "classify": [
                {
                    "interface": list(k.interface),
                    "member": list(k.member),
                    "risk": k.risk.label,
                    "reason": k.reason,
                    "origin": k.origin,
                    **({"destination": list(k.destination)} if k.destination else {}),
                }
                for k in self.knowledge
            ],
            "precedence": "most specific matching rule; ties go to the stricter verdict; no match denies; "
            "protected units refuse disruptive changes unless the deciding rule names the unit exactly",
        }


class PolicyError(ValueError):
    pass


# ---- the policy file ----------------------------------------------------------------------------


def _strings(value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


class RuleEntry(BaseModel):
    """One [[rule]] table of a policy file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    verdict: Literal["allow", "deny", "confirm"]
    reason: str = Field(min_length=1, max_length=500)
    kind: str | list[str] = DBUS_CALL
    hosts: str | list[str] | None = None
    bus: Literal["system", "session"] | None = None
    destination: str | list[str] | None = None
    path: str | list[str] | None = None
    interface: str | list[str] | None = None
    member: str | list[str] | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    risk: list[Literal["read", "routine", "unknown", "dangerous", "secret"]] | None = None

    @field_validator("args")
    @classmethod
    def _argument_indexes(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            # str.isdigit() is also true for "²" or "٣"; argument positions are plain ASCII numbers.
            if not (key.isascii() and key.isdigit()) or int(key) > 63:
                raise ValueError(f"argument matcher keys are argument positions 0..63, not {key!r}")
        return value

    @field_validator("kind", "hosts", "destination", "path", "interface", "member", "risk")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # An empty list matches nothing, which is never what a rule's author meant.
        if isinstance(value, list) and not value:
            raise ValueError("an empty list matches nothing; leave the field out to match anything")
        if isinstance(value, str) and not value:
            raise ValueError("an empty string matches nothing; leave the field out to match anything")
        return value

    def to_rule(self, origin: str) -> Rule:
        matchers = tuple(
            ArgMatch(int(index), pattern=wanted) if isinstance(wanted, str) else ArgMatch(int(index), value=wanted)
            for index, wanted in sorted(self.args.items(), key=lambda item: int(item[0]))
        )
        return Rule(
            name=self.name,
            verdict=Verdict(self.verdict),
            reason=self.reason,
            origin=origin,
            kinds=_strings(self.kind),
            hosts=_strings(self.hosts),
            bus=self.bus,
            destination=_strings(self.destination),
            path=_strings(self.path),
            interface=_strings(self.interface),
            member=_strings(self.member),
            args=matchers,
            risk=frozenset(Risk[r.upper()] for r in self.risk) if self.risk is not None else None,
        )


class ClassifyEntry(BaseModel):
    """One [[classify]] table: what members of a service the catalog does not know actually do."""

    model_config = ConfigDict(extra="forbid")

    interface: str | list[str]
    member: str | list[str]
    destination: str | list[str] | None = None
    risk: Literal["read", "routine", "dangerous", "secret"]
    reason: str = Field(min_length=1, max_length=500)

    def to_knowledge(self, origin: str) -> LocalKnowledge:
        interface, member = _strings(self.interface), _strings(self.member)
        if not interface or not member:
            raise PolicyError("a [[classify]] entry needs a non-empty interface and member")
        return LocalKnowledge(
            interface, member, Risk[self.risk.upper()], self.reason, origin, _strings(self.destination)
        )


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protected_units: list[str] = Field(default_factory=list)
    classify: list[ClassifyEntry] = Field(default_factory=list)
    rule: list[RuleEntry] = Field(default_factory=list)


def load_policy(preset: str, policy_file: Path | None = None, protected_units: Iterable[str] = ()) -> Policy:
    """The preset, with the rules and protected units of `policy_file` layered over it."""
    rules: list[Rule] = []
    knowledge: list[LocalKnowledge] = []
    extra_protected = list(protected_units)
    sources = [f"preset:{preset}"]
    if policy_file is not None:
        try:
            data = tomllib.loads(policy_file.read_text())
            parsed = PolicyFile.model_validate(data)
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {policy_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {policy_file} is not valid TOML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(_describe_problem(data, error["loc"], error["msg"]) for error in exc.errors())
            raise PolicyError(f"policy file {policy_file}: {problems}") from exc
        names = [entry.name for entry in parsed.rule]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PolicyError(
                f"policy file {policy_file}: rule names must be unique; repeated: {', '.join(duplicates)}"
            )
        rules = [entry.to_rule(f"file:{policy_file}") for entry in parsed.rule]
        knowledge = [entry.to_knowledge(str(policy_file)) for entry in parsed.classify]
        extra_protected += parsed.protected_units
        sources.append(f"file:{policy_file}")
    return Policy.build(preset, rules, extra_protected, sources, knowledge)


def _describe_problem(data: Mapping[str, Any], location: Sequence[int | str], message: str) -> str:
    """`rule 2 ('restart-workers') field verdict: …` rather than pydantic's `rule.1.verdict: …`."""
    if len(location) >= 2 and location[0] == "rule" and isinstance(location[1], int):
        index = location[1]
        rules = data.get("rule")
        entry = rules[index] if isinstance(rules, list) and index < len(rules) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"rule {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        field_path = ".".join(str(part) for part in location[2:])
        return f"{label} field {field_path}: {message}" if field_path else f"{label}: {message}"
    return f"{'.'.join(str(part) for part in location) or 'top level'}: {message}"
