"""Rolling runs with real asyncio: batches in turn, the first batch breaking the gate stops the run, later hosts
untouched; the `stays active` watch over a stream of property changes, with deadlines and no polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from fleetbus.hosts.errors import HostUnreachable
from fleetbus.tools.fanout.batches import parse_max_failures, parse_serial, plan_batches
from fleetbus.tools.fanout.engine import Progress
from fleetbus.tools.fanout.rolling import (
    GateResult,
    GateSpec,
    GateSpecError,
    JobOutcome,
    PropertyCondition,
    first_failure,
    no_new_failures,
    parse_gate,
    plan_rows,
    run_rolling,
    stays_active,
)

HOSTS = [f"host{n:02d}" for n in range(1, 6)]


class Fleet:
    """Hosts whose job and gate answers a test sets; remembers what was done, in order."""

    def __init__(
        self, *, broken_gate: frozenset[str] | set[str] = frozenset(), job_results: dict[str, str] | None = None
    ) -> None:
        self.broken_gate = broken_gate
        self.job_results = job_results or {}
        self.acted: list[str] = []
        self.snapshots: list[str] = []
        self.unreachable: set[str] = set()

    async def snapshot(self, host: str) -> set[str]:
        self.snapshots.append(host)
        return {"old-broken.service"}

    async def act(self, host: str) -> JobOutcome:
        if host in self.unreachable:
            raise HostUnreachable(host, "connection refused")
        await asyncio.sleep(0.001)
        self.acted.append(host)
        return JobOutcome(self.job_results.get(host, "done"), {"unit": "worker.service"})

    async def gate(self, host: str, before: Any) -> GateResult:
        assert before in (None, {"old-broken.service"})
        if host in self.broken_gate:
            return GateResult.failed("left the active state after 0.1 s: ActiveState=failed")
        return GateResult.passed()

    async def journal(self, host: str) -> list[str]:
        return [f"{host}: worker crashed"]


async def test_canary_then_two_then_the_rest() -> None:
    fleet = Fleet()
    batches = plan_batches(HOSTS, parse_serial([1, 2, "100%"]))
    seen: list[Progress] = []
    report = await run_rolling(
        batches, fleet.act, fleet.gate, snapshot=fleet.snapshot, per_host_deadline=5, on_done=seen.append
    )
    assert report.stopped_after is None
    assert report.counts() == {"done": 5, "failed": 0, "not touched": 0}
    assert [b["hosts"] for b in report.as_dict()["batches"]] == ["host01", "host[02-03]", "host[04-05]"]
    assert fleet.acted[0] == "host01"
    assert set(fleet.acted[1:3]) == {"host02", "host03"}
    assert [p.done for p in seen] == [1, 2, 3, 4, 5]
    assert {p.total for p in seen} == {5}


async def test_a_broken_gate_stops_after_its_batch_and_later_hosts_are_not_touched() -> None:
    fleet = Fleet(broken_gate={"host03"})
    batches = plan_batches(HOSTS, parse_serial([1, 2, "100%"]))
    report = await run_rolling(
        batches, fleet.act, fleet.gate, snapshot=fleet.snapshot, journal=fleet.journal, per_host_deadline=5
    )
    assert report.stopped_after == 2
    assert "1 of 2 hosts of batch 2 failed" in report.reason
    rows = {row["host"]: row for batch in report.as_dict()["batches"] for row in batch["results"]}
    assert rows["host01"] == {"host": "host01", "status": "done"}
    assert rows["host02"]["status"] == "done"
    assert rows["host03"] == {
        "host": "host03",
        "status": "failed",
        "why": "health gate: left the active state after 0.1 s: ActiveState=failed",
        "journal": ["host03: worker crashed"],
    }
    assert rows["host04"] == {"host": "host04", "status": "not touched"}
    assert rows["host05"] == {"host": "host05", "status": "not touched"}
    assert "host04" not in fleet.acted
    assert "host05" not in fleet.acted
    assert "host04" not in fleet.snapshots


async def test_a_failed_job_fails_the_host_without_asking_the_gate() -> None:
    fleet = Fleet(job_results={"host01": "failed"})
    report = await run_rolling([HOSTS[:1], HOSTS[1:]], fleet.act, fleet.gate, per_host_deadline=5)
    assert report.batches[0].hosts[0].why == "the job ended 'failed'"
    assert report.stopped_after == 1
    assert fleet.acted == ["host01"]


async def test_failures_within_the_limit_let_the_run_go_on() -> None:
    fleet = Fleet(broken_gate={"host02"})
    fleet.unreachable = {"host05"}
    batches = plan_batches(HOSTS, parse_serial(2))  # [01,02] [03,04] [05]
    report = await run_rolling(
        batches,
        fleet.act,
        fleet.gate,
        journal=fleet.journal,
        max_failures=parse_max_failures("50%"),
        per_host_deadline=5,
    )
    # Batch 1: 1 of 2 failed = 50 %, not more: go on. Batch 3: 1 of 1 failed: every host of a batch failed.
    assert report.stopped_after == 3
    host05 = report.batches[2].hosts[0]
    assert host05.why == "unreachable: connection refused"
    assert host05.journal == []  # an unreachable host is not asked for its journal
    assert report.counts() == {"done": 3, "failed": 2, "not touched": 0}


async def test_a_host_past_its_deadline_is_failed_as_timeout() -> None:
    async def act(host: str) -> JobOutcome:
        if host == "slow":
            await asyncio.sleep(10)
        return JobOutcome("done")

    async def gate(host: str, before: Any) -> GateResult:
        return GateResult.passed()

    report = await run_rolling([["fast", "slow"]], act, gate, per_host_deadline=0.2)
    assert [(h.host, h.status, h.why) for h in report.batches[0].hosts] == [
        ("fast", "done", ""),
        ("slow", "failed", "timeout: no answer within 0.2 s"),
    ]


async def test_dry_run_calls_nothing_and_returns_the_plan() -> None:
    fleet = Fleet()
    batches = plan_batches(HOSTS, parse_serial([1, 2, "100%"]))
    report = await run_rolling(
        batches, fleet.act, fleet.gate, snapshot=fleet.snapshot, per_host_deadline=5, dry_run=True
    )
    assert fleet.acted == []
    assert fleet.snapshots == []
    assert report.dry_run
    assert report.counts()["not touched"] == 5
    assert plan_rows(batches) == [
        {"batch": 1, "hosts": "host01", "count": 1},
        {"batch": 2, "hosts": "host[02-03]", "count": 2},
        {"batch": 3, "hosts": "host[04-05]", "count": 2},
    ]


# ---- stays active ------------------------------------------------------------------------------------------


class Changes:
    """An async stream of PropertiesChanged payloads a test feeds; `closed` tells whether it was finalized."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Mapping[str, Any] | None] = asyncio.Queue()
        self.reads = 0

    async def stream(self) -> AsyncIterator[Mapping[str, Any]]:
        while True:
            item = await self.queue.get()
            self.reads += 1
            if item is None:
                return
            yield item

    def later(self, delay: float, item: Mapping[str, Any] | None) -> None:
        asyncio.get_running_loop().call_later(delay, self.queue.put_nowait, item)


ACTIVE = {"ActiveState": "active", "SubState": "running"}


async def test_an_active_unit_that_stays_active_passes_after_min_healthy() -> None:
    changes = Changes()
    started = time.monotonic()
    result = await stays_active(ACTIVE, changes.stream(), min_healthy_s=0.3, healthy_deadline_s=5)
    assert result == GateResult.passed()
    assert time.monotonic() - started >= 0.29
    assert changes.reads == 0  # nothing came; nothing was polled


async def test_leaving_active_fails_at_once() -> None:
    changes = Changes()
    changes.later(0.05, {"SubState": "running"})  # a change that keeps it active
    changes.later(0.1, {"ActiveState": "failed", "SubState": "failed", "Result": "exit-code"})
    started = time.monotonic()
    result = await stays_active(ACTIVE, changes.stream(), min_healthy_s=30, healthy_deadline_s=60)
    assert time.monotonic() - started < 5
    assert not result.ok
    assert result.reason.startswith("left the active state after ")
    assert result.reason.endswith("ActiveState=failed SubState=failed Result=exit-code")


async def test_a_crash_loop_restart_counts_as_leaving() -> None:
    changes = Changes()
    changes.later(0.05, {"ActiveState": "activating", "SubState": "auto-restart"})
    result = await stays_active(ACTIVE, changes.stream(), min_healthy_s=30, healthy_deadline_s=60)
    assert not result.ok
    assert "ActiveState=activating SubState=auto-restart" in result.reason


async def test_a_starting_unit_gets_until_the_healthy_deadline_then_min_healthy_counts_from_active() -> None:
    changes = Changes()
    changes.later(0.2, {"ActiveState": "active", "SubState": "running"})
    started = time.monotonic()
    result = await stays_active(
        {"ActiveState": "activating", "SubState": "start"}, changes.stream(), min_healthy_s=0.2, healthy_deadline_s=5
    )
    assert result.ok
    assert time.monotonic() - started >= 0.39


async def test_a_unit_never_active_fails_at_the_healthy_deadline() -> None:
    changes = Changes()
    started = time.monotonic()
    result = await stays_active(
        {"ActiveState": "activating", "SubState": "start"}, changes.stream(), min_healthy_s=1, healthy_deadline_s=0.2
    )
    assert 0.19 <= time.monotonic() - started < 3
    assert result == GateResult.failed("not active within 0.2 s: ActiveState=activating SubState=start")


async def test_failed_already_and_an_ended_watch_fail() -> None:
    failed = {"ActiveState": "failed", "SubState": "failed"}
    assert not (await stays_active(failed, Changes().stream(), min_healthy_s=1, healthy_deadline_s=1)).ok
    changes = Changes()
    changes.later(0.05, None)
    result = await stays_active(ACTIVE, changes.stream(), min_healthy_s=30, healthy_deadline_s=60)
    assert not result.ok
    assert result.reason.startswith("the watch on the unit ended")


def test_no_new_failures_ignores_units_failed_before() -> None:
    assert no_new_failures({"old.service"}, {"old.service"}).ok
    verdict = no_new_failures({"old.service"}, {"old.service", "db.service"})
    assert verdict == GateResult.failed("newly failed: db.service")


def test_a_property_condition() -> None:
    condition = PropertyCondition("SubState", "running")
    assert condition.check({"SubState": "running"}).ok
    assert condition.check({"SubState": "exited"}) == GateResult.failed("SubState is 'exited', not 'running'")
    assert not condition.check({}).ok
    assert first_failure(GateResult.passed(), condition.check({"SubState": "dead"})).reason.startswith("SubState")


def test_gate_arguments() -> None:
    assert parse_gate(None) == GateSpec()
    spec = parse_gate({"min_healthy_s": 2, "property": {"property": "SubState", "equals": "running"}})
    assert spec.min_healthy_s == 2.0
    assert spec.condition == PropertyCondition("SubState", "running")
    assert spec.longest_s == 62.0


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ("fast", "'gate'"),
        ({"min_healthy": 1}, "unknown fields"),
        ({"min_healthy_s": -1}, "'gate.min_healthy_s'"),
        ({"healthy_deadline_s": "soon"}, "'gate.healthy_deadline_s'"),
        ({"no_new_failures": "yes"}, "'gate.no_new_failures'"),
        ({"property": {"property": "SubState"}}, "'gate.property'"),
    ],
)
def test_bad_gates_are_refused_naming_the_field(bad: object, named: str) -> None:
    with pytest.raises(GateSpecError, match=named):
        parse_gate(bad)
