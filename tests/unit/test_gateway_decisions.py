"""The gateway remembers each operation's classification and decision per policy (reads repeat): what it remembers
must be what deciding anew would say — for arguments Python calls equal but a rule tells apart, and after the
policy is replaced."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fleetbus.gateway import Deadlines, Gateway, GatewayError
from fleetbus.guard.approvals import ApprovalStore
from fleetbus.guard.audit import AuditLog
from fleetbus.guard.limits import Budget, RateLimiter
from fleetbus.guard.policy import ArgMatch, Policy, Rule, Verdict
from fleetbus.operation import DBUS_CALL, Operation
from tests.unit.test_unit_references import UNITS, FakeLinks, FakeSystemd

SWITCH = "com.example.Switch"


def switch_rule(value: object) -> Rule:
    return Rule(
        f"switch-{value!r}",
        Verdict.ALLOW,
        f"switching to {value!r} is fine",
        "test",
        interface=(SWITCH,),
        member=("Set",),
        args=(ArgMatch(0, value=value),),
    )


def gateway(policy: Policy, state: Path) -> Gateway:
    return Gateway(
        FakeLinks(FakeSystemd(UNITS)),  # type: ignore[arg-type]
        policy,
        Deadlines(5.0, 10.0, 1.0),
        approvals=ApprovalStore(state / "approvals"),
        audit_log=AuditLog(state / "audit", fsync=False),
        limiter=RateLimiter(Budget(1e9, 1e9), Budget(1e9, 1e9)),
    )


def switch(value: object) -> Operation:
    return Operation(DBUS_CALL, "local", "system", "com.example", "/switch", SWITCH, "Set", "v", (value,))


async def test_a_remembered_decision_tells_true_from_1_and_follows_a_new_policy(tmp_path: Path) -> None:
    only_true = Policy.build("readonly", [switch_rule(True)])
    guard = gateway(only_true, tmp_path)
    try:
        verdicts = [(await guard.assess(switch(value))).decision.verdict for value in (True, 1, True, 1)]
        assert verdicts == [Verdict.ALLOW, Verdict.DENY, Verdict.ALLOW, Verdict.DENY]
        guard.policy = Policy.build("readonly", [switch_rule(1)])
        verdicts = [(await guard.assess(switch(value))).decision.verdict for value in (True, 1)]
        assert verdicts == [Verdict.DENY, Verdict.ALLOW]
    finally:
        guard.close()


async def test_a_records_remembered_parts_are_its_own_operations(tmp_path: Path) -> None:
    """Records of repeated operations share their operation, arguments and decision fields: never across arguments
    Python calls equal (True and 1, -0.0 and 0.0), and the same as described anew."""
    guard = gateway(Policy.build("readonly", [switch_rule(True)]), tmp_path)
    try:
        parts = []
        for value in (True, 1, True, 0.0, -0.0):
            operation = switch(value)
            parts.append(dict(guard._operation_record(operation, await guard.assess(operation))))
        assert [p["args"] for p in parts] == [[True], [1], [True], [0.0], [-0.0]]
        assert [type(p["args"][0]) for p in parts] == [bool, int, bool, float, float]
        assert str(parts[4]["args"][0]) == "-0.0"
        assert [p["decision"]["verdict"] for p in parts] == ["allow", "deny", "allow", "deny", "deny"]
        assert parts[0] == parts[2]
        assert parts[0]["digest"] != parts[1]["digest"]
        other = gateway(Policy.build("readonly", [switch_rule(True)]), tmp_path / "other")
        try:
            assert dict(other._operation_record(switch(True), await other.assess(switch(True)))) == parts[0]
        finally:
            other.close()
    finally:
        guard.close()


@pytest.mark.parametrize("requested", [math.nan, 0.0, -1.0, math.inf])
def test_a_timeout_that_is_no_positive_number_within_the_maximum_is_refused(requested: float) -> None:
    """NaN passes both `<= 0` and `> maximum` (no comparison with it holds); JSON parsers may hand one over."""
    with pytest.raises(GatewayError, match="timeout"):
        Deadlines(5.0, 10.0, 1.0).choose(requested)
