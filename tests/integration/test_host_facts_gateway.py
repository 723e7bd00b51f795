"""Host facts pass the gateway like any operation: a host outside the inventory is refused by name,
process ids are checked before anything is read, and a snapshot is one audited host.metrics read."""

from __future__ import annotations

import pytest

from fleetbus.gateway import Caller, GatewayError
from fleetbus.guard import audit
from fleetbus.runtime import Runtime

pytestmark = pytest.mark.sandbox


async def test_a_host_outside_the_inventory_is_refused_by_name_before_anything_is_read(runtime: Runtime) -> None:
    caller = Caller("facts-test")
    with pytest.raises(GatewayError, match="host02"):
        await runtime.gateway.read_metrics(caller, "system", host="host02")
    with pytest.raises(GatewayError, match="host02"):
        await runtime.gateway.read_journal(caller, ["--reverse"], max_entries=1, host="host02")
    records = audit.query(runtime.gateway.audit_log.directory, client="facts-test", limit=100)
    assert not [r for r in records if r["event"] in ("allowed", "succeeded")]


@pytest.mark.parametrize("pids", [["1"], [True], [0], "1", list(range(1, 1002))])
async def test_process_ids_are_checked_before_anything_is_read(runtime: Runtime, pids: object) -> None:
    caller = Caller("pids-test")
    with pytest.raises(GatewayError, match="invalid argument 'pids'"):
        await runtime.gateway.read_metrics(caller, "process_names", {"pids": pids}, host="local")
    assert audit.query(runtime.gateway.audit_log.directory, client="pids-test", limit=10) == []


async def test_process_names_are_one_audited_read(runtime: Runtime) -> None:
    caller = Caller("names-test")
    assert (await runtime.gateway.process_names(caller, [1, 1, 999_999_999])).keys() == {1}
    records = audit.query(runtime.gateway.audit_log.directory, client="names-test", limit=10)
    assert [(r["event"], r["operation"]["member"]) for r in records] == [("succeeded", "process_names")]
