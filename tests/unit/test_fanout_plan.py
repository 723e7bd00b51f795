"""One approval for a plan: its digest changes with any operation, host set, batch or term; each operation of an
approved plan runs once."""

from __future__ import annotations

from fleetbus.operation import DBUS_CALL, Operation
from fleetbus.tools.fanout.batches import parse_serial, plan_batches
from fleetbus.tools.fanout.plan import FLEET_PLAN, Plan, PlanLedger

HOSTS = [f"host{n:02d}" for n in range(1, 6)]


def restart(host: str, unit: str = "worker.service") -> Operation:
    return Operation(
        DBUS_CALL,
        host=host,
        destination="org.freedesktop.systemd1",
        path="/org/freedesktop/systemd1",
        interface="org.freedesktop.systemd1.Manager",
        member="RestartUnit",
        signature="ss",
        args=(unit, "replace"),
    )


def plan(hosts: list[str] = HOSTS, serial: object = (1, 2, "100%"), **terms: object) -> Plan:
    batches = plan_batches(hosts, parse_serial(list(serial) if isinstance(serial, tuple) else serial))
    return Plan.of([restart(h) for h in hosts], batches, terms or {"max_failures": 0})


def test_the_digest_is_stable_and_ignores_operation_order() -> None:
    first = plan()
    shuffled = Plan.of(reversed(first.operations), first.batches, first.terms)
    assert first.digest == plan().digest == shuffled.digest
    assert len(first.digest) == 64


def test_any_change_is_a_new_plan() -> None:
    base = plan().digest
    assert plan(serial=[2, "100%"]).digest != base  # other batches
    assert plan(hosts=HOSTS[:4]).digest != base  # other hosts
    assert plan(max_failures=1).digest != base  # other terms
    other_unit = Plan.of([restart(h, "web.service") for h in HOSTS], plan().batches, {"max_failures": 0})
    assert other_unit.digest != base  # another operation


def test_the_plan_is_one_operation_to_approve() -> None:
    p = plan()
    approved = p.as_operation("fleet")
    assert approved.kind == FLEET_PLAN
    assert approved.args == (p.digest,)
    with_units = Plan.of(p.operations, p.batches, p.terms, units=["worker.service", "worker.service"])
    assert with_units.digest == p.digest  # the units are what the operations already say
    assert with_units.as_operation("fleet").args == (p.digest, "worker.service")
    assert approved.host == "fleet"
    assert plan(serial=[2, "100%"]).as_operation("fleet").digest() != approved.digest()


def test_the_blast_radius_shows_hosts_share_batches_and_calls() -> None:
    radius = plan().blast_radius(out_of=20)
    assert radius["hosts"] == "host[01-05]"
    assert radius["host_count"] == 5
    assert radius["share_percent"] == 25.0
    assert [b["hosts"] for b in radius["batches"]] == ["host01", "host[02-03]", "host[04-05]"]
    assert radius["operations"] == [
        "system org.freedesktop.systemd1 /org/freedesktop/systemd1 "
        'org.freedesktop.systemd1.Manager.RestartUnit("worker.service", "replace")'
    ]


def test_each_operation_of_an_approved_plan_runs_once() -> None:
    ledger = PlanLedger()
    p = plan()
    assert not ledger.claim(p, restart("host01"))  # not approved yet
    ledger.approve(p)
    assert ledger.pending(p) == 5
    assert ledger.claim(p, restart("host01"))
    assert not ledger.claim(p, restart("host01"))  # ran already
    assert not ledger.claim(p, restart("host09"))  # not in the plan
    assert not ledger.claim(p, restart("host02", "web.service"))  # another operation
    ledger.approve(p)  # approving again does not refill it
    assert ledger.pending(p) == 4
    for host in HOSTS[1:]:
        assert ledger.claim(p, restart(host))
    assert ledger.finished(p)


def test_an_approval_of_one_plan_covers_no_other() -> None:
    ledger = PlanLedger()
    ledger.approve(plan())
    changed = plan(serial=[2, "100%"])
    assert not ledger.approved(changed)
    assert not ledger.claim(changed, restart("host01"))
