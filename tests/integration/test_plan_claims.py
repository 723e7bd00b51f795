"""The gateway's side of a rolling plan on the sandbox's real bus: a plan approved once (its blast radius in the
request), a call claimed from it runs under that approval — only the exact call claimed, never past a deny
rule — and every record of a fleet call carries its call id and work order."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbus.gateway import ApprovalRequired, Caller, OperationDenied, dbus_call
from fleetbus.guard import fleet_call
from fleetbus.guard.audit import iter_records
from fleetbus.operation import FLEET_PLAN, Operation
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings

pytestmark = pytest.mark.sandbox

MANAGER = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")
PLAN = Operation(FLEET_PLAN, host="fleet", member="rolling", args=("a" * 64,))


def reset(unit: str) -> Operation:
    return dbus_call(*MANAGER, "ResetFailedUnit", "s", [unit], host="local")


async def test_a_claimed_call_runs_under_its_plans_approval_and_nothing_else_does(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    runtime = Runtime.build(sandbox_settings(sandbox, state, safety="operator"))
    gateway, caller = runtime.gateway, Caller("roller")
    try:
        with fleet_call.fleet_call(work_order="CHG-7") as call:
            with pytest.raises(ApprovalRequired) as asked:
                await gateway.decide_plan(PLAN, caller, "2 of 5 hosts (host[01-02]) in 2 batches")
            assert "2 of 5 hosts (host[01-02])" in str(asked.value)
            gateway.approvals.decide(asked.value.approval.id, True, by="test")
            approval = await gateway.decide_plan(PLAN, caller, "2 of 5 hosts (host[01-02]) in 2 batches")
            assert approval is not None
            assert approval.id == asked.value.approval.id

            mine, other = reset("dbus-session.service"), reset("other.service")
            claim = fleet_call.PlanClaim("a" * 64, mine.digest(), approval.id, approval.decided_by)
            with fleet_call.claimed(claim):
                await gateway.call(mine, caller)
                with pytest.raises(ApprovalRequired):
                    await gateway.call(other, caller)  # the claim is for one exact call
                stop = dbus_call(*MANAGER, "StopUnit", "ss", ["dbus.service", "replace"], host="local")
                denied = fleet_call.PlanClaim("a" * 64, stop.digest(), approval.id)
                with fleet_call.claimed(denied), pytest.raises(OperationDenied):
                    await gateway.call(stop, caller)  # a protected unit stays refused
            with pytest.raises(ApprovalRequired):
                await gateway.call(mine, caller)  # outside the claim it asks as always
    finally:
        runtime.close()
    records = [r for _, _, r in iter_records(state / "audit") if r.get("client") == "roller"]
    assert records
    assert all(r.get("call_id") == call.call_id for r in records)
    assert all(r.get("work_order") == "CHG-7" for r in records)
    ran = [r for r in records if r["operation"]["member"] == "ResetFailedUnit" and r["event"] == "approved"]
    assert [(r["args"][0], r["approval"], r["plan"]) for r in ran] == [("dbus-session.service", approval.id, "a" * 64)]
    plan = [r["event"] for r in records if r["operation"]["kind"] == FLEET_PLAN]
    assert plan == ["awaiting-approval", "approved", "succeeded"]
