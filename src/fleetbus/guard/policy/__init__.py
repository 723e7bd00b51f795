"""The policy: rules (`rules`), the safety presets (`presets`), the deciding engine (`engine`) and the policy file
(`policy_file`). Importers take what they need from here."""

from fleetbus.guard.policy.engine import Policy, PolicyError
from fleetbus.guard.policy.policy_file import ClassifyEntry, PolicyFile, RuleEntry, load_policy
from fleetbus.guard.policy.presets import PRESETS, SAFETY_PRESETS
from fleetbus.guard.policy.rules import ArgMatch, Decision, OperationPattern, Rule, Verdict

__all__ = [
    "PRESETS",
    "SAFETY_PRESETS",
    "ArgMatch",
    "ClassifyEntry",
    "Decision",
    "OperationPattern",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "Rule",
    "RuleEntry",
    "Verdict",
    "load_policy",
]
