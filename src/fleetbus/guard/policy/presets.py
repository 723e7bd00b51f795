"""The safety presets: what each class of risk gets under readonly, operator and admin."""

from __future__ import annotations

from collections.abc import Mapping

from fleetbus.guard.catalog import Risk
from fleetbus.guard.policy.rules import Rule, Verdict
from fleetbus.operation import AUDIT_QUERY


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
