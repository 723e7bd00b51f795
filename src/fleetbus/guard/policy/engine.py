"""Deciding whether an Operation may run: allow, deny, or confirm (a person must approve).

The most specific matching rule wins; among equally specific rules the stricter verdict wins; when nothing
matches, the answer is deny. Protected units are refused any disruptive change unless the deciding rule names
the unit explicitly, and secrets are released only by a rule that says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from fleetbus.guard.catalog import (
    CALLER_UNIT,
    DEFAULT_PROTECTED_UNITS,
    Classification,
    LocalKnowledge,
    Risk,
    protected_hits,
)
from fleetbus.guard.policy.presets import PRESETS, SAFETY_PRESETS
from fleetbus.guard.policy.rules import Decision, OperationPattern, Rule, Verdict
from fleetbus.operation import Operation


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
        if classification.forbidden is not None:
            # Above every rule: fleetbus's own connection, or a call whose effects could not be worked out.
            forbidden = classification.forbidden
            return Decision(Verdict.DENY, forbidden.rule, forbidden.reason, classification.risk)
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
            return Decision(
                Verdict.DENY, "protected-units", _protected_reason(unnamed, classification), classification.risk
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


def _protected_reason(unnamed: list[str], classification: Classification) -> str:
    one = len(unnamed) == 1
    labels = [f"the caller's own unit ({unit})" if unit == CALLER_UNIT else unit for unit in unnamed]
    action = classification.unit_action.value if classification.unit_action else "change"
    subject = f"{', '.join(labels)} {'is a protected unit' if one else 'are protected units'}"
    lift = f"unless a policy rule names {'it' if one else 'each'} explicitly"
    disruptive = classification.unit_action is not None and classification.unit_action.disruptive
    along = [unit for unit in unnamed if not disruptive or unit not in classification.units]
    if not along:
        return f"{subject}; fleetbus will not {action} {'it' if one else 'them'} {lift}"
    named = ", ".join(classification.units[:3]) + (", …" if len(classification.units) > 3 else "")
    return (
        f"{subject}; to {action} {named or 'the unit'} would take {'it' if len(along) == 1 else 'them'} down too "
        f"(it depends on what this call stops, or conflicts with what it starts), and fleetbus will not {lift}"
    )
