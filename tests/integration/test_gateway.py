"""The gateway's own duties on a real bus: unique names judged as their owner's names, rate limits,
and an audit record for every outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbus.gateway import Caller, OperationDenied, dbus_call
from fleetbus.guard.audit import iter_records
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings

pytestmark = pytest.mark.sandbox

MANAGER = ("/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


async def test_a_unique_destination_is_judged_as_the_name_it_owns(sandbox: Sandbox, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[rule]]\nname = "no-systemd-reads"\nverdict = "deny"\nreason = "testing resolution"\n'
        'destination = "org.freedesktop.systemd1"\nrisk = ["read"]\n'
    )
    runtime = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", policy_file=policy))
    try:
        caller = Caller("test")
        owner = dbus_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetNameOwner",
            "s",
            ["org.freedesktop.systemd1"],
            host="local",
        )
        unique = str((await runtime.gateway.call(owner, caller)).body[0])
        assert unique.startswith(":")
        by_unique = dbus_call(unique, *MANAGER, "GetUnit", "s", ["dbus.service"], host="local")
        with pytest.raises(OperationDenied) as refused:
            await runtime.gateway.call(by_unique, caller)
        assert refused.value.decision.rule == "no-systemd-reads"
        assert refused.value.operation.destination == "org.freedesktop.systemd1"
    finally:
        runtime.close()


async def test_changes_beyond_the_budget_are_refused_and_recorded(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    runtime = Runtime.build(sandbox_settings(sandbox, state, safety="admin", change_rate=0.01, change_burst=2))
    try:
        caller = Caller("busy-client")
        reset = dbus_call(
            "org.freedesktop.systemd1", *MANAGER, "ResetFailedUnit", "s", ["dbus-session.service"], host="local"
        )
        outcomes = []
        for _ in range(3):
            try:
                await runtime.gateway.call(reset, caller)
                outcomes.append("ok")
            except Exception as exc:  # the third must be the rate limit, nothing else
                outcomes.append(str(exc))
        # Reads have their own budget: still allowed.
        read = dbus_call("org.freedesktop.systemd1", *MANAGER, "GetUnit", "s", ["dbus.service"], host="local")
        await runtime.gateway.call(read, caller)
    finally:
        runtime.close()
    assert outcomes[:2] == ["ok", "ok"]
    assert outcomes[2].startswith("rate limit for changes reached for client 'busy-client'")
    events = [record["event"] for _, _, record in iter_records(state / "audit")]
    assert events.count("rate-limited") == 1
    limited = next(r for _, _, r in iter_records(state / "audit") if r["event"] == "rate-limited")
    assert limited["client"] == "busy-client"
    assert json.dumps(limited["operation"]).count("ResetFailedUnit") == 1


async def test_every_outcome_is_recorded_before_and_after(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    runtime = Runtime.build(sandbox_settings(sandbox, state))
    try:
        caller = Caller("recorded")
        await runtime.gateway.call(
            dbus_call("org.freedesktop.systemd1", *MANAGER, "GetUnit", "s", ["dbus.service"], host="local"), caller
        )
        with pytest.raises(OperationDenied):
            await runtime.gateway.call(
                dbus_call(
                    "org.freedesktop.systemd1", *MANAGER, "StopUnit", "ss", ["dbus.service", "replace"], host="local"
                ),
                caller,
            )
        with pytest.raises(Exception, match="NoSuchUnit"):
            await runtime.gateway.call(
                dbus_call("org.freedesktop.systemd1", *MANAGER, "GetUnit", "s", ["missing.service"], host="local"),
                caller,
            )
    finally:
        runtime.close()
    records = [r for _, _, r in iter_records(state / "audit")]
    assert [(r["event"], r["operation"]["member"], r["args"][0]) for r in records] == [
        # A read is one record once it ran (before its answer leaves); a change would be two.
        ("succeeded", "GetUnit", "dbus.service"),
        ("denied", "StopUnit", "dbus.service"),
        ("failed", "GetUnit", "missing.service"),
    ]
    assert "NoSuchUnit" in records[-1]["error"]
    assert records[1]["decision"]["rule"] == "default-deny"
    assert all(r["client"] == "recorded" for r in records)
    assert records[0]["duration_ms"] >= 0
