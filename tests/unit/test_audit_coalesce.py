"""Repeated refusals coalesce: the first of each (client, operation, event) is written at once, repeats within the
interval become one record with their count, written when the interval ends or at shutdown — none uncounted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fleetbus.guard.audit import AuditLog, iter_records, verify
from fleetbus.guard.audit.coalesce import Coalescer
from fleetbus.guard.audit.read import query


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refusal(client: str = "flood", digest: str = "d1", event: str = "denied") -> dict[str, Any]:
    return {"client": client, "digest": digest, "event": event, "host": "local", "decision": {"verdict": "deny"}}


def written(directory: Path) -> list[dict[str, Any]]:
    return [record for _, _, record in iter_records(directory)]


def test_a_thousand_refusals_are_a_handful_of_records_whose_counts_sum_to_a_thousand(tmp_path: Path) -> None:
    clock = Clock()
    log = AuditLog(tmp_path, fsync=False)
    refusals = Coalescer(log, 10.0, clock=clock)
    for n in range(1000):
        clock.now = 1000.0 + n * 0.035  # 35 s of refusals: four intervals
        refusals.append(refusal())
    refusals.flush()
    log.close()
    records = written(tmp_path)
    assert 2 <= len(records) <= 8
    assert sum(r["count"] for r in records) == 1000
    assert records[0]["count"] == 1  # the first is written at once
    summaries = [r for r in records if "repeats" in r]
    assert all(r["event"] == "denied" and r["client"] == "flood" for r in records)
    assert all(r["since"] <= r["until"] for r in summaries)
    assert verify(tmp_path).ok


def test_each_client_operation_and_event_is_counted_apart(tmp_path: Path) -> None:
    clock = Clock()
    log = AuditLog(tmp_path, fsync=False)
    refusals = Coalescer(log, 10.0, clock=clock)
    kinds = [refusal("a"), refusal("b"), refusal("a", "d2"), refusal("a", event="rate-limited")]
    for _ in range(25):
        for kind in kinds:
            refusals.append(kind)
    assert len(written(tmp_path)) == 4, "the first of each kind at once"
    refusals.flush()
    records = written(tmp_path)
    for kind in kinds:
        mine = [
            r
            for r in records
            if (r["client"], r["digest"], r["event"]) == tuple(kind[k] for k in ("client", "digest", "event"))
        ]
        assert [r["count"] for r in mine] == [1, 24]
        assert mine[1]["repeats"] == mine[0]["seq"]
    log.close()


def test_a_new_interval_starts_with_a_record_of_its_own(tmp_path: Path) -> None:
    clock = Clock()
    log = AuditLog(tmp_path, fsync=False)
    refusals = Coalescer(log, 10.0, clock=clock)
    refusals.append(refusal())
    refusals.append(refusal())
    clock.now += 10.5
    refusals.append(refusal())  # the old window's count is written first, then this one at once
    assert [r["count"] for r in written(tmp_path)] == [1, 1, 1]
    refusals.flush()
    assert [r["count"] for r in written(tmp_path)] == [1, 1, 1]  # nothing was repeated in the new window
    log.close()


def test_without_coalescing_every_refusal_is_its_own_record(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, fsync=False)
    refusals = Coalescer(log, 0)
    for _ in range(5):
        refusals.append(refusal())
    assert [r["count"] for r in written(tmp_path)] == [1] * 5
    log.close()


async def test_under_an_event_loop_counts_are_written_when_the_interval_ends(tmp_path: Path) -> None:
    log = AuditLog(tmp_path, fsync=False)
    refusals = Coalescer(log, 0.2)
    for _ in range(50):
        refusals.append(refusal())
    assert len(written(tmp_path)) == 1
    for _ in range(200):  # no further refusal, no shutdown: the interval's end writes the count
        if len(written(tmp_path)) == 2:
            break
        await asyncio.sleep(0.01)
    assert [r["count"] for r in written(tmp_path)] == [1, 49]
    assert refusals.open_windows == 0
    log.close()


def test_repeats_from_other_fleet_calls_stay_findable_by_their_call_id_and_work_order(tmp_path: Path) -> None:
    clock = Clock()
    log = AuditLog(tmp_path, fsync=False)
    refusals = Coalescer(log, 10.0, clock=clock)
    refusals.append({**refusal(), "call_id": "c0", "work_order": "WO-1"})
    for n in range(1, 50):
        clock.now += 0.01
        refusals.append({**refusal(), "call_id": f"c{n}", "work_order": "WO-1" if n % 2 else "WO-2"})
    refusals.flush()
    log.close()
    first, count = written(tmp_path)
    assert first["call_id"] == "c0"
    assert count["count"] == 49
    assert count["call_ids"] == [f"c{n}" for n in range(1, 33)]  # bounded: the rest are only counted
    assert count["tags_dropped"] == 49 - 32
    assert count["work_orders"] == ["WO-2"]  # WO-1 is the first record's own
    for call_id in ("c0", "c7", "c32"):
        assert query(tmp_path, call_id=call_id), call_id
    assert [r["seq"] for r in query(tmp_path, work_order="WO-2")] == [count["seq"]]
