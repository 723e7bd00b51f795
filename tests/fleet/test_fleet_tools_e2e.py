"""The fleet tools over MCP stdio on five simulated hosts, as the issue's Done means say: a read tool with
hosts=PATTERN answers in groups (a dropped host named within its deadline), progress per host, rolling_unit_job
in batches behind a gate (stopping where the gate breaks, later hosts untouched), one approval per plan under
operator, dry runs that change nothing, and one call_id and the work order on every audit record."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from mcp import Client
from mcp_types import RequestParamsMeta

from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fault, faults
from tests.e2e.client import call, serve, text
from tests.e2e.serving import fleetbus, http_client, http_server, mint
from tests.fleet.conftest import start_fleet

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-tools")]

HOSTS = [f"host{n:02d}" for n in range(1, 6)]
ROLL = "roll.service"
WORKER = "worker.service"
UNIT_PATH = "/org/freedesktop/systemd1/unit/"


@pytest.fixture(scope="module")
def fleet_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    units = tmp_path_factory.mktemp("fleet-tools-units")
    (units / WORKER).write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    (units / ROLL).write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    for host in ("host03", "host04"):
        (units / host).mkdir()
    (units / "host04" / WORKER).write_text(
        "[Service]\nExecStart=/bin/sh -c 'echo worker: cannot bind :8080 >&2; exit 1'\n"
    )
    # host03's roll.service starts, then dies a second later: a health gate of 3 s sees it go.
    (units / "host03" / ROLL).write_text("[Service]\nExecStart=/bin/sh -c 'sleep 1; exit 3'\n")
    with start_fleet(hosts=len(HOSTS), units=units) as sandbox:
        yield sandbox


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, text(result)
    value: dict[str, Any] = result.structured_content
    return value


async def start_everywhere(client: Client, unit: str) -> None:
    for host in HOSTS:
        started = structured(await call(client, "unit_job", unit=unit, action="start", host=host, wait=20))
        assert started["result"] in ("done", "failed"), started


async def invocation(client: Client, host: str, unit: str) -> str:
    """The unit's InvocationID on `host`: a new one means systemd started it again."""
    path = UNIT_PATH + unit.replace(".", "_2e")
    answer = structured(
        await call(
            client,
            "get_property",
            service="org.freedesktop.systemd1",
            path=path,
            interface="org.freedesktop.systemd1.Unit",
            property="InvocationID",
            host=host,
        )
    )
    return json.dumps(answer["value"])


def audit_records(sandbox: Sandbox, state: Path, *filters: str, least: int = 1) -> list[dict[str, Any]]:
    """`fleetbus audit query` as a person runs it; reads' records follow within a second, so wait for them."""
    deadline = time.monotonic() + 15
    while True:
        done = fleetbus(sandbox, state, "audit", "query", *filters, "--limit", "10000")
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        if len(records) >= least or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


async def test_a_read_tool_across_the_fleet_in_groups_with_progress_and_one_call_id(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with serve(fleet_sandbox, "legacy", state_dir=str(state), safety="admin") as client:
        await start_everywhere(client, WORKER)
        deadline = time.monotonic() + 10
        while True:  # host04's worker fails as it starts; wait for systemd to say so
            one = structured(await call(client, "unit_status", unit=WORKER, host="host04", lines=0))
            if one["active"] == "failed" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        result = await client.call_tool(
            "unit_status",
            {"unit": WORKER, "hosts": "fleet", "format": "json"},
            progress_callback=on_progress,
            # An open map on the wire (extra_items=Any), which mypy's TypedDict support does not know yet.
            meta=cast(RequestParamsMeta, {"work_order": "WO-4711"}),
        )
        answer = structured(result)
        assert [(row["hosts"], row["answer"]["active"]) for row in answer["groups"]] == [
            ("host[01-03,05]", "active"),
            ("host04", "failed"),
        ]
        assert answer["total"] == 5
        assert answer["failures"] == []
        # The outlier is shown whole: its error lines name what went wrong.
        assert any("cannot bind :8080" in line for line in answer["groups"][1]["answer"]["lines"])
        # One notification per host, counting up to the total.
        assert [(done, total) for done, total, _ in seen] == [(n, 5) for n in range(1, 6)]
        assert {str(message).split(":")[0] for _, _, message in seen} == set(HOSTS)

        both = await call(client, "unit_status", unit=WORKER, hosts="fleet", host="host01")
        assert both.is_error
        assert "not both" in text(both)
        none = await call(client, "unit_status", unit=WORKER, hosts="nothing*")
        assert none.is_error
        assert "'hosts'" in text(none)

    # Every record of the fan-out carries its call_id (and the request's work order); one host's calls each.
    records = audit_records(fleet_sandbox, state, "--call-id", answer["call_id"], least=5)
    assert {record["host"] for record in records} == set(HOSTS)
    assert all(record["work_order"] == "WO-4711" for record in records)
    ordered = audit_records(fleet_sandbox, state, "--work-order", "WO-4711", least=len(records))
    assert {record["seq"] for record in ordered} == {record["seq"] for record in records}


async def test_a_dropped_host_is_named_within_the_per_host_deadline(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    fleet = fleet_sandbox.fleet
    assert fleet is not None
    async with serve(fleet_sandbox, "legacy", state_dir=str(tmp_path / "admin"), safety="admin") as admin:
        await start_everywhere(admin, WORKER)
    # A fresh server: host02 is connected to afresh, behind the fault.
    async with serve(
        fleet_sandbox, "2026-07-28", state_dir=str(tmp_path / "state"), safety="readonly", connect_timeout="2"
    ) as client:
        # The server's first call pays for its start (schemas checked, the other hosts' SSH handshakes): warm up
        # without host02.
        warm = structured(await call(client, "unit_status", unit=WORKER, hosts="fleet:!host02", format="json"))
        assert warm["answered"] == 4, warm
        faults.apply(fleet, "host02", Fault.DROP)
        try:
            began = time.monotonic()
            answer = structured(
                await call(client, "unit_status", unit=WORKER, hosts="fleet", per_host_timeout=3, format="json")
            )
            took = time.monotonic() - began
        finally:
            faults.apply(fleet, "host02", Fault.CLEAR)
    assert took < 3 + 1, f"took {took:.2f} s: {answer}"
    assert [(row["hosts"], row["kind"]) for row in answer["failures"]] == [("host02", "unreachable")]
    assert [row["hosts"] for row in answer["groups"]] == ["host[01,03,05]", "host04"]


GATE = {"min_healthy_s": 3, "healthy_deadline_s": 20}


async def test_rolling_in_batches_stops_where_the_gate_breaks(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with serve(fleet_sandbox, "legacy", state_dir=str(state), safety="admin") as client:
        await start_everywhere(client, ROLL)
        before = {host: await invocation(client, host, ROLL) for host in HOSTS}
        dry = structured(
            await call(
                client, "rolling_unit_job", unit=ROLL, action="restart", hosts="fleet", batches=[1, 2, "100%"],
                gate=GATE, dry_run=True, format="json",
            )
        )  # fmt: skip
        assert [row["hosts"] for row in dry["plan"]["batches"]] == ["host01", "host[02-03]", "host[04-05]"]
        assert dry["counts"]["done"] == 0
        assert {host: await invocation(client, host, ROLL) for host in HOSTS} == before

        ran = structured(
            await call(
                client, "rolling_unit_job", unit=ROLL, action="restart", hosts="fleet", batches=[1, 2, "100%"],
                gate=GATE, work_order="CHG-12", format="json",
            )
        )  # fmt: skip
        assert [batch["hosts"] for batch in ran["batches"]] == ["host01", "host[02-03]", "host[04-05]"]
        statuses = {row["host"]: row["status"] for batch in ran["batches"] for row in batch["results"]}
        assert statuses == {
            "host01": "done",
            "host02": "done",
            "host03": "failed",
            "host04": "not touched",
            "host05": "not touched",
        }
        assert ran["stopped_after_batch"] == 2
        after = {host: await invocation(client, host, ROLL) for host in HOSTS}
        assert after["host04"] == before["host04"]
        assert after["host05"] == before["host05"]
        assert after["host01"] != before["host01"]
        assert after["host02"] != before["host02"]

    records = audit_records(fleet_sandbox, state, "--call-id", ran["call_id"], least=3)
    assert {record["host"] for record in records} >= {"host01", "host02", "host03"}
    # host04 and host05 were judged before anything started (policy read what the restart would reach), not changed.
    changed = {
        r["host"] for r in records if r["operation"].get("member") == "RestartUnit" and r["event"] != "looked-up"
    }
    assert changed == {"host01", "host02", "host03"}
    assert all(record.get("work_order") == "CHG-12" for record in records)
    restarts = [r for r in records if r["operation"].get("member") == "RestartUnit" and r["event"] == "succeeded"]
    assert sorted(r["host"] for r in restarts) == ["host01", "host02", "host03"]
    by_order = audit_records(fleet_sandbox, state, "--work-order", "CHG-12", least=len(records))
    assert {record["seq"] for record in by_order} == {record["seq"] for record in records}


async def test_under_operator_a_plan_is_approved_once_and_a_changed_plan_asks_again(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    job = {
        "unit": ROLL,
        "action": "restart",
        "hosts": "host01:host02:host05",
        "batches": [1, "100%"],
        "gate": {"min_healthy_s": 1},
        "format": "json",
    }
    async with serve(fleet_sandbox, "legacy", state_dir=str(state), safety="operator") as client:
        asked = await client.call_tool("rolling_unit_job", job)
        assert asked.is_error
        approval = re.search(r"Approval id (\S+)", text(asked))
        assert approval is not None, text(asked)
        assert "3 of" in text(asked), text(asked)  # the blast radius is in the request
        approved = fleetbus(fleet_sandbox, state, "approve", approval.group(1))
        assert approved.returncode == 0, approved.stderr
        ran = structured(await client.call_tool("rolling_unit_job", job))
        assert ran["counts"] == {"done": 3, "failed": 0, "not touched": 0}, ran
        again = await client.call_tool("rolling_unit_job", {**job, "batches": [2, "100%"]})
        assert again.is_error
        other = re.search(r"Approval id (\S+)", text(again))
        assert other is not None, text(again)
        assert other.group(1) != approval.group(1)
        # The approval was for that plan once: the same plan asks again too.
        repeat = await client.call_tool("rolling_unit_job", job)
        assert repeat.is_error
        assert "Approval id" in text(repeat)

    records = audit_records(fleet_sandbox, state, "--call-id", ran["call_id"], least=4)
    plan = [r for r in records if r["operation"].get("kind") == "fleet.plan"]
    assert [r["event"] for r in plan] == ["approved", "succeeded"]
    restarts = [r for r in records if r["operation"].get("member") == "RestartUnit" and r["event"] == "approved"]
    assert sorted(r["host"] for r in restarts) == ["host01", "host02", "host05"]
    assert {r["approval"] for r in restarts} == {approval.group(1)}


async def test_progress_per_host_in_the_2026_era_too(fleet_sandbox: Sandbox, tmp_path: Path) -> None:
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        assert total == 5
        seen.append(progress)

    async with serve(fleet_sandbox, "2026-07-28", state_dir=str(tmp_path / "state"), safety="readonly") as client:
        answer = structured(
            await client.call_tool("host_info", {"hosts": "fleet", "format": "json"}, progress_callback=on_progress)
        )
    assert answer["answered"] == 5, answer
    assert seen == [1, 2, 3, 4, 5]


async def test_over_http_a_token_for_two_hosts_and_one_unit_glob_fans_out_and_rolls_on_its_hosts_only(
    fleet_sandbox: Sandbox, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    token = mint(
        fleet_sandbox, state, "roll-two", "read,units:write:roll*", "--hosts", "host01",
        "--hosts", "host02",
    )  # fmt: skip
    job = {"unit": ROLL, "action": "restart", "hosts": "fleet", "batches": ["100%"], "gate": {"min_healthy_s": 1}}
    with http_server(fleet_sandbox, state, safety="admin") as server:
        async with http_client(server.url, token) as client:
            read = structured(
                await call(client, "get_property", service="org.freedesktop.hostname1",
                           path="/org/freedesktop/hostname1", interface="org.freedesktop.hostname1",
                           property="Hostname", hosts="fleet")
            )  # fmt: skip
            assert (read["total"], read["answered"]) == (2, 2), read
            dry = structured(await client.call_tool("rolling_unit_job", {**job, "dry_run": True, "format": "json"}))
            assert dry["plan"]["hosts"] == "host[01-02]"
            assert (dry["plan"]["host_count"], dry["plan"]["out_of"]) == (2, 2)  # its hosts, not the inventory's
            ran = structured(await client.call_tool("rolling_unit_job", {**job, "format": "json"}))
            assert ran["counts"] == {"done": 2, "failed": 0, "not touched": 0}, ran
            other = await client.call_tool("rolling_unit_job", {**job, "unit": WORKER})
            assert other.is_error
            assert "lacks scope units:write" in text(other), text(other)
