"""Audit volume under a flood, on the sandbox's real services: a thousand refused calls, or a thousand rate-limit
hits, from one client are a handful of records whose counts sum to a thousand — nothing unrecorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbus.gateway import Caller
from fleetbus.guard.audit import iter_records, verify
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.integration.effects_setup import guarded

pytestmark = pytest.mark.sandbox

FLEET = {"service": "com.example.Fleet", "path": "/com/example/Fleet1", "interface": "com.example.Fleet1"}
CALLS = 1000


async def flood(runtime: Runtime, client: str, tool: str, **arguments: object) -> int:
    refused = 0
    for _ in range(CALLS):
        result = await runtime.registry.run(runtime.context(Caller(client)), tool, arguments)
        refused += result.is_error
    return refused


def records_of(state: Path, client: str) -> list[dict[str, object]]:
    return [record for _, _, record in iter_records(state / "audit") if record.get("client") == client]


async def test_a_thousand_refused_calls_are_a_handful_of_records(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with guarded(sandbox, state, safety="readonly", read_rate=1e6, read_burst=1e6) as runtime:
        # Collect is not classified as a read: readonly refuses it, every time.
        refused = await flood(runtime, "flooder", "call_method", **FLEET, method="Collect", signature="u", args=[1])
        assert refused == CALLS
        denied = [r for r in records_of(state, "flooder") if r["event"] == "denied"]
        assert len(denied) == 1, "the first refusal is on disk at once, the rest are counted"
    # The runtime closed: the open count was written.
    records = [r for r in records_of(state, "flooder") if r["event"] == "denied"]
    assert 2 <= len(records) <= 5
    assert sum(int(r["count"]) for r in records) == CALLS  # type: ignore[call-overload]
    assert verify(state / "audit").ok


async def test_a_refused_calls_reads_are_inside_its_coalesced_record(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    async with guarded(sandbox, state, safety="readonly", read_rate=1e6, read_burst=1e6) as runtime:
        # Without a signature call_method introspects the method first: a read made for a call that is refused.
        refused = await flood(runtime, "flooder", "call_method", **FLEET, method="Collect", args=[1])
        assert refused == CALLS
        # A call that goes on still has the reads that formed it recorded, as their own records, before its own.
        allowed = await runtime.registry.run(
            runtime.context(Caller("reader")),
            "call_method",
            {
                "service": "org.freedesktop.DBus",
                "path": "/org/freedesktop/DBus",
                "interface": "org.freedesktop.DBus",
                "method": "GetId",
            },
        )
        assert not allowed.is_error
    records = records_of(state, "flooder")
    # Not one introspection record per call: a handful in all, the refusals counting every call.
    assert 2 <= len(records) <= 5, [r["event"] for r in records]
    assert {r["event"] for r in records} == {"denied"}
    assert sum(int(r["count"]) for r in records) == CALLS  # type: ignore[call-overload]
    reads = records[0]["reads"]
    assert isinstance(reads, list)
    # A read is one record, written once it ran (a call's lookup as any other read).
    assert [(read["event"], read["operation"]["member"]) for read in reads] == [("succeeded", "Introspect")]
    reader = [(r["event"], r["operation"]["member"]) for r in records_of(state, "reader")]  # type: ignore[index]
    assert reader == [("succeeded", "Introspect"), ("succeeded", "GetId")]
    assert verify(state / "audit").ok


async def test_a_thousand_rate_limit_hits_are_a_handful_of_records(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with guarded(sandbox, state, safety="readonly", read_rate=0.001, read_burst=1) as runtime:
        arguments = {
            "service": "org.freedesktop.DBus",
            "path": "/org/freedesktop/DBus",
            "interface": "org.freedesktop.DBus",
            "property": "Features",
        }
        refused = await flood(runtime, "eager", "get_property", **arguments)
        assert refused == CALLS - 1  # the burst of one ran
    records = records_of(state, "eager")
    limited = [r for r in records if r["event"] == "rate-limited"]
    assert 2 <= len(limited) <= 5
    assert sum(int(r["count"]) for r in limited) == CALLS - 1  # type: ignore[call-overload]
    assert [r["event"] for r in records if r["event"] != "rate-limited"] == ["succeeded"]
