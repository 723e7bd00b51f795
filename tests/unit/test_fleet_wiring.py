"""The F10 wiring's pure parts: which tools take hosts and how they go on the wire, the plan operation's
verdict under each preset and its scope, the audit fields of a fleet call, a host's failure to connect
classified by its cause, and the request's work order."""

from __future__ import annotations

from typing import Any

import mcp_types as types
import pytest

from fleetbus.config import load_settings
from fleetbus.gateway import Caller, HostFailed
from fleetbus.guard import fleet_call, scopes
from fleetbus.guard.catalog import Risk, classify
from fleetbus.guard.policy import Verdict, load_policy
from fleetbus.hosts.errors import HostUnreachable
from fleetbus.operation import FLEET_PLAN, Operation
from fleetbus.runtime import Runtime
from fleetbus.server.app import _work_order
from fleetbus.tools.fanout.engine import DEFAULT_CLASSIFIER, UNREACHABLE
from fleetbus.tools.fanout.tools import FANOUT_ARGUMENTS
from fleetbus.tools.fleet import ROLLING_UNIT_JOB, fans_out
from fleetbus.tools.registry import Listed, ToolContext
from tests.tool_names import CORE_READ_TOOLS, OPERATOR_READ_TOOLS

PLAN = Operation(FLEET_PLAN, host="fleet", member="rolling", args=("0" * 64,))


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    state = tmp_path_factory.mktemp("fleet-wiring")
    return Runtime.build(load_settings(state_dir=state, system_bus="unix:path=/nonexistent"))


def test_every_read_tool_that_reaches_a_host_takes_hosts_and_changes_do_not(runtime: Runtime) -> None:
    for name in (*OPERATOR_READ_TOOLS, "get_property", "list_services", "introspect"):
        spec = runtime.registry.get(name)
        assert spec is not None, name
        if name == "list_hosts":
            assert not fans_out(spec)
            continue
        assert {"host", "hosts"} <= set(spec.input_schema["properties"]), name
    for name in ("unit_job", "unit_file", "call_method", "find_tools", "explain", "audit_query"):
        spec = runtime.registry.get(name)
        assert spec is not None
        assert "hosts" not in spec.input_schema.get("properties", {}), name
    rolling = runtime.registry.get(ROLLING_UNIT_JOB)
    assert rolling is not None
    assert rolling.toolset == "units"  # not listed by default: the default list keeps its budget
    assert "host" not in rolling.input_schema["properties"]  # a fleet tool takes hosts only


def test_on_the_wire_hosts_is_a_shared_parameter_and_the_fanout_options_are_left_to_the_instructions(
    runtime: Runtime,
) -> None:
    for name in CORE_READ_TOOLS:
        spec = runtime.registry.get(name)
        assert spec is not None
        wire = Listed(spec, spec.annotations).definition["inputSchema"]["properties"]
        assert wire["hosts"] == {"type": "string"}, name
        assert not set(FANOUT_ARGUMENTS) - {"hosts"} & set(wire), name
        # The server still checks them: they are in the registry's schema.
        assert set(FANOUT_ARGUMENTS) <= set(spec.input_schema["properties"])


async def test_host_and_hosts_together_are_refused_naming_the_argument(runtime: Runtime) -> None:
    ctx = ToolContext(runtime.gateway, Caller("test"))
    both = await runtime.registry.run(ctx, "unit_status", {"unit": "x.service", "host": "local", "hosts": "all"})
    assert both.is_error
    assert "'hosts'" in both.text
    assert "not both" in both.text
    stray = await runtime.registry.run(ctx, "unit_status", {"unit": "x.service", "max_groups": 2})
    assert stray.is_error
    assert "'max_groups'" in stray.text


@pytest.mark.parametrize(
    ("preset", "verdict"), [("readonly", Verdict.DENY), ("operator", Verdict.CONFIRM), ("admin", Verdict.ALLOW)]
)
def test_a_plan_is_decided_like_a_restart(preset: str, verdict: Verdict) -> None:
    policy = load_policy(preset)
    classification = classify(PLAN, None, policy.knowledge)
    assert classification.risk is Risk.ROUTINE
    assert policy.decide(PLAN, classification).verdict is verdict


def test_a_plan_needs_units_write_and_nothing_more() -> None:
    classification = classify(PLAN, None, ())
    assert scopes.required(PLAN, classification).scope == scopes.UNITS_WRITE
    assert scopes.check(frozenset({scopes.UNITS_WRITE}), None, PLAN, classification, "t") is None
    assert scopes.check(frozenset({scopes.READ}), None, PLAN, classification, "t") is not None


def test_a_units_write_glob_covering_the_plans_units_may_ask_for_it_and_its_hosts_are_the_callers() -> None:
    plan = Operation(FLEET_PLAN, host="fleet", member="rolling", args=("0" * 64, "worker.service"))
    classification = classify(plan, None, ())
    worker = frozenset({f"{scopes.UNITS_WRITE}:worker*"})
    assert scopes.check(worker, None, plan, classification, "t") is None
    assert scopes.check(frozenset({f"{scopes.UNITS_WRITE}:web*"}), None, plan, classification, "t") is not None
    assert scopes.check(worker, None, PLAN, classification, "t") is not None  # a plan naming no unit: plain only
    # The pattern is not a host: a token limited to host01 asks for the plan of the hosts it may touch.
    assert scopes.check(worker, ["host01"], plan, classification, "t") is None


def test_a_fleet_call_puts_its_id_and_work_order_on_records_and_leaves_nothing_behind() -> None:
    assert fleet_call.record_fields() == {}
    with fleet_call.work_order("WO-1"):
        assert fleet_call.record_fields() == {"work_order": "WO-1"}
        with fleet_call.fleet_call() as call:
            assert fleet_call.record_fields() == {"call_id": call.call_id, "work_order": "WO-1"}
        with fleet_call.fleet_call(work_order="CHG-2") as other:
            assert fleet_call.record_fields() == {"call_id": other.call_id, "work_order": "CHG-2"}
        assert other.call_id != call.call_id
    assert fleet_call.record_fields() == {}
    with fleet_call.work_order(None):
        assert fleet_call.record_fields() == {}


def test_a_host_that_cannot_be_reached_through_the_gateway_is_unreachable() -> None:
    wrapped = HostFailed("host02: no SSH connection")
    wrapped.__cause__ = HostUnreachable("host02", "connection refused")  # as `raise … from exc` leaves it
    assert DEFAULT_CLASSIFIER.classify(wrapped) == (UNREACHABLE, "connection refused")
    in_time = HostFailed("host02: no connection to its system bus within 2 s")
    assert DEFAULT_CLASSIFIER.classify(in_time) == (UNREACHABLE, "no connection to its system bus within 2 s")


@pytest.mark.parametrize(
    ("meta", "expected"), [({"work_order": "WO-9"}, "WO-9"), ({"work_order": 7}, None), ({}, None), (None, None)]
)
def test_the_work_order_comes_from_the_requests_meta(meta: Any, expected: str | None) -> None:
    params = types.CallToolRequestParams(name="unit_status", arguments={}, _meta=meta)
    assert _work_order(params) == expected
