"""Every way of naming a protected unit gets the verdict its plain name gets, under every preset: aliases,
template instances, escaped object paths in any spelling systemd accepts, invocation-id paths, and long lists.

The gateway under test is the real one; the bus under it is a stand-in that answers the reads the guard makes
(`Properties.GetAll` of a unit object) the way systemd resolves object paths."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleetbus.dbus.errors import RemoteError
from fleetbus.dbus.introspect import IntrospectionCache
from fleetbus.dbus.link import Reply
from fleetbus.gateway import Caller, Deadlines, Gateway, OperationDenied
from fleetbus.guard.approvals import ApprovalStore
from fleetbus.guard.audit import AuditLog, iter_records, verify
from fleetbus.guard.catalog import unit_name_from_path
from fleetbus.guard.limits import Budget, RateLimiter
from fleetbus.guard.policy import load_policy
from fleetbus.operation import Operation
from tests.unit_references import UNIT_PATH_PREFIX, escaped_path, manager_call, name_calls, pads, path_calls, spellings

SD = "org.freedesktop.systemd1"
UNIT = "org.freedesktop.systemd1.Unit"
PRESETS = ("readonly", "operator", "admin")
PROTECTED = ("precious.service", "keeper@*.service")


@dataclass
class FakeUnit:
    id: str
    aliases: tuple[str, ...] = ()
    invocation: str = ""
    relations: dict[str, list[str]] = field(default_factory=dict)

    def properties(self) -> dict[str, Any]:
        return {"Id": self.id, "Names": [self.id, *self.aliases], "ActiveState": "active", **self.relations}


UNITS = [
    FakeUnit("precious.service", ("gem.service", "jewel.service"), "6b1c0f8e3d2a4e7fb0c5d9a1e2f3a4b5"),
    FakeUnit("keeper@db.service", (), "0123456789abcdef0123456789abcdef"),
    FakeUnit("floor.target", (), "fedcba9876543210fedcba9876543210", {"RequiredBy": ["precious.service"]}),
]


class FakeSystemd:
    """Answers GetAll on unit objects as systemd does: by escaped name (any `_xx` spelling), by invocation id;
    any other valid name is a not-found stub; `self` and nonsense are unknown objects."""

    def __init__(self, units: list[FakeUnit]) -> None:
        self.by_name = {name: u for u in units for name in (u.id, *u.aliases)}
        self.by_invocation = {u.invocation: u for u in units}
        self.reads = 0

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Any = (),
        *,
        timeout: float,
    ) -> Reply:
        assert (destination, member, list(body)) == (SD, "GetAll", [UNIT]), (destination, member, body)
        self.reads += 1
        unit = self._resolve(path)
        return Reply(
            "a{sv}", [unit.properties() if unit else {"Id": self._name(path), "Names": [self._name(path)]}], ":1.1"
        )

    def _name(self, path: str) -> str:
        return unit_name_from_path(path)

    def _resolve(self, path: str) -> FakeUnit | None:
        suffix = path.removeprefix(UNIT_PATH_PREFIX)
        if suffix in self.by_invocation:
            return self.by_invocation[suffix]
        name = self._name(path)
        if "." not in name or suffix == "self":
            raise RemoteError("org.freedesktop.DBus.Error.UnknownObject", f"Unknown object '{path}'.", path)
        return self.by_name.get(name)


class FakeLinks:
    """Stands in for the HostRegistry and its one link: the fake systemd answers every call."""

    def __init__(self, systemd: FakeSystemd) -> None:
        self.systemd = systemd
        self.owners: dict[str, str] = {}
        self.cache = IntrospectionCache()
        self.is_local = True

    async def link(self, host: str, bus: str) -> Any:
        return self

    def peek(self, host: str, bus: str | None = None) -> None:
        return None

    def check_name(self, host: str) -> None:
        pass

    def get(self, host: str) -> Any:
        return self

    @contextlib.contextmanager
    def in_use(self) -> Iterator[None]:
        yield

    def add_owner_listener(self, listener: Any) -> None:
        pass

    async def call(self, *args: Any, **kwargs: Any) -> Reply:
        return await self.systemd.call(*args, **kwargs)

    def close(self) -> None:
        pass


def offline_gateway(preset: str, state: Path) -> Gateway:
    return Gateway(
        FakeLinks(FakeSystemd(UNITS)),  # type: ignore[arg-type]
        load_policy(preset, None, PROTECTED),
        Deadlines(5.0, 10.0, 1.0),
        approvals=ApprovalStore(state / "approvals"),
        audit_log=AuditLog(state / "audit", fsync=False),
        limiter=RateLimiter(Budget(1e9, 1e9), Budget(1e9, 1e9)),
    )


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Gateway]]:
    built = {preset: offline_gateway(preset, tmp_path_factory.mktemp(preset)) for preset in PRESETS}
    yield built
    for gateway in built.values():
        gateway.close()


@dataclass(frozen=True)
class Target:
    plain: str
    names: tuple[str, ...]
    invocation: str


TARGETS = [
    Target("precious.service", ("precious.service", "gem.service", "jewel.service"), UNITS[0].invocation),
    Target("keeper@db.service", ("keeper@db.service",), UNITS[1].invocation),
]


def verdicts(gateway: Gateway, operations: list[Operation]) -> list[tuple[str, str]]:
    async def judge() -> list[tuple[str, str]]:
        found = [await gateway.assess(operation, Caller("property")) for operation in operations]
        return [(a.decision.verdict.value, a.decision.rule) for a in found]

    return asyncio.run(judge())


BURIED = [f"pad-{i}.service" for i in range(40)]
"""More names before the alias than the old alias check looked up (32)."""


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, len(TARGETS) - 1), st.integers(0, 2), pads, st.integers(min_value=0, max_value=60))
@example(which=0, alias=1, padding=BURIED, before=len(BURIED))
def test_a_protected_unit_by_any_name_gets_the_verdict_of_its_plain_name(
    gateways: dict[str, Gateway], which: int, alias: int, padding: list[str], before: int
) -> None:
    target = TARGETS[which]
    name = target.names[alias % len(target.names)]
    for preset, gateway in gateways.items():
        plain = verdicts(gateway, name_calls(target.plain, padding, before))
        assert verdicts(gateway, name_calls(name, padding, before)) == plain, (preset, name)
        assert {verdict for verdict, _ in plain} == {"deny"}, preset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TARGETS), st.data())
def test_a_protected_unit_by_any_object_path_gets_the_verdict_of_its_plain_path(
    gateways: dict[str, Gateway], target: Target, data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(target.names), label="name")
    path = data.draw(st.one_of(spellings(name), st.just(f"{UNIT_PATH_PREFIX}{target.invocation}")), label="path")
    for preset, gateway in gateways.items():
        plain = verdicts(gateway, path_calls(escaped_path(target.plain)))
        assert verdicts(gateway, path_calls(path)) == plain, (preset, path)
        if preset != "readonly":
            assert {rule for _, rule in plain} == {"protected-units"}, preset


def test_a_target_a_protected_unit_requires_is_protected_with_it(gateways: dict[str, Gateway]) -> None:
    for preset in ("operator", "admin"):
        stop = verdicts(gateways[preset], [manager_call("StopUnit", "floor.target", "replace")])
        assert stop == [("deny", "protected-units")], preset


def test_the_reads_are_recorded_in_the_audit_log(tmp_path: Path) -> None:
    gateway = offline_gateway("admin", tmp_path)
    try:
        verdicts(gateway, [manager_call("StopUnit", "gem.service", "replace")])
        looked_up = [r for _, _, r in iter_records(tmp_path / "audit") if r["event"] == "looked-up"]
        assert len(looked_up) == 1
        record = looked_up[0]
        assert record["client"] == "property"
        assert record["operation"]["member"] == "StopUnit"
        assert record["lookups"][0]["member"] == "org.freedesktop.DBus.Properties.GetAll"
        assert record["lookups"][0]["paths"] == [escaped_path("gem.service")]
    finally:
        gateway.close()


def test_a_refused_calls_reads_are_inside_its_coalesced_refusal(tmp_path: Path) -> None:
    gateway = offline_gateway("admin", tmp_path)
    calls = 200

    async def never(operation: Operation) -> None:
        raise AssertionError(f"a refused call ran: {operation}")

    async def flood() -> int:
        refused = 0
        for _ in range(calls):
            try:
                await gateway.run(manager_call("StopUnit", "floor.target", "replace"), Caller("flooder"), never)
            except OperationDenied:
                refused += 1
        gateway.refusals.flush()
        return refused

    try:
        assert asyncio.run(flood()) == calls
        records = [r for _, _, r in iter_records(tmp_path / "audit") if r.get("client") == "flooder"]
        # The lookups that found floor.target reaches a protected unit are in the refusal, not a record per call.
        assert [r["event"] for r in records] == ["denied", "denied"]
        assert sum(int(r["count"]) for r in records) == calls
        reads = records[0]["reads"]
        assert [read["event"] for read in reads] == ["looked-up"]
        assert reads[0]["lookups"][0]["member"] == "org.freedesktop.DBus.Properties.GetAll"
        assert verify(tmp_path / "audit").ok
    finally:
        gateway.close()
