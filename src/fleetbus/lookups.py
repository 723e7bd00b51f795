"""The reads the gateway makes to judge an operation: the names a unique bus name owns, and the part of systemd's
unit graph a unit call reaches (read into guard/effects.py's UnitGraph until `explore` needs nothing more).

Each read is an Operation the policy decides like any read: a rule that refuses it makes the judgement, and so the
call, impossible. Every read is remembered for the audit log, and all of them share one deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus import well_known
from fleetbus.dbus.errors import RemoteError
from fleetbus.dbus.link import DBUS_NAME, DBUS_PATH, PROPERTIES, BusLink, Reply
from fleetbus.dbus.unit_names import UNIT_PATH_PREFIX, could_be_unit_name, unit_object_path
from fleetbus.guard.catalog import CALLER_UNIT, Classification, Effect, classify
from fleetbus.guard.effects import FACT_PROPERTIES, Effects, UnitFacts, UnitGraph, explore
from fleetbus.guard.policy import Policy, Verdict
from fleetbus.operation import DBUS_CALL, Operation

SYSTEMD = well_known.SYSTEMD
UNIT = well_known.SYSTEMD_UNIT
CONCURRENT_READS = 16
"""Reads in flight at once: bus daemons cap a connection's pending replies (128 on a stock system bus)."""
NO_SUCH_UNIT = frozenset(
    {
        "org.freedesktop.DBus.Error.UnknownObject",
        "org.freedesktop.DBus.Error.UnknownInterface",
        "org.freedesktop.DBus.Error.InvalidArgs",
        "org.freedesktop.systemd1.NoSuchUnit",
    }
)
"""systemd's answers for a reference it has no unit for; the call itself would fail the same way."""


class LookupRefused(Exception):
    """The policy refuses a read the judgement needs."""


class ReadPermissions:
    """Which reads the policy lets the guard make, remembered: a policy never changes, and unit calls read the same
    units over and over (deciding anew cost more than the reads' own bookkeeping)."""

    MAX_REMEMBERED = 8192

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._refusals: dict[Operation, str | None] = {}

    def refusal(self, operation: Operation) -> str | None:
        """None when the policy allows the read; else why not."""
        if operation in self._refusals:
            return self._refusals[operation]
        decision = self.policy.decide(operation, classify(operation, None, self.policy.knowledge))
        refusal = (
            None
            if decision.verdict is Verdict.ALLOW
            else f"reading {operation.interface}.{operation.member} on {operation.path} is refused by rule "
            f"{decision.rule!r}"
        )
        if len(self._refusals) >= self.MAX_REMEMBERED:
            self._refusals.pop(next(iter(self._refusals)))
        self._refusals[operation] = refusal
        return refusal


@dataclass
class Lookups:
    """Reads made on one bus of one host to judge one operation."""

    connect: Callable[[], Awaitable[BusLink]]
    """The link to read on; made only when a read is needed (most operations need none)."""
    permissions: ReadPermissions
    host: str
    bus: str
    deadline: float
    """time.monotonic() by which every read must be answered."""
    made: list[Operation] = field(default_factory=list)
    _slots: asyncio.Semaphore | None = None
    """Made by the first read: most operations are judged without any (every call makes a Lookups)."""
    _link: BusLink | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def link(self) -> BusLink:
        if self._link is None:
            self._link = await self.connect()
        return self._link

    async def call(
        self, destination: str, path: str, interface: str, member: str, signature: str = "", args: Sequence[str] = ()
    ) -> Reply:
        operation = Operation(
            DBUS_CALL, self.host, self.bus, destination, path, interface, member, signature, tuple(args)
        )
        refusal = self.permissions.refusal(operation)
        if refusal is not None:
            raise LookupRefused(refusal)
        self.made.append(operation)
        if self._slots is None:
            self._slots = asyncio.Semaphore(CONCURRENT_READS)
        async with self._slots:
            link = await self.link()
            remaining = self.remaining()
            if remaining <= 0:
                raise TimeoutError
            return await link.call(destination, path, interface, member, signature, args, timeout=remaining)

    def summary(self) -> list[dict[str, Any]]:
        """The reads, grouped by what was asked, for the audit record."""
        groups: dict[tuple[str, str, str, tuple[Any, ...]], list[str]] = {}
        for read in self.made:
            groups.setdefault((read.destination, read.interface, read.member, read.args), []).append(read.path)
        return [
            {"destination": destination, "member": f"{interface}.{member}", "args": list(args), "paths": paths}
            for (destination, interface, member, args), paths in groups.items()
        ]


# ---- bus names ---------------------------------------------------------------------------------------------


async def names_owned_by(lookups: Lookups, unique: str) -> list[str]:
    """The well-known names `unique` owns now."""
    listed = (await lookups.call(DBUS_NAME, DBUS_PATH, DBUS_NAME, "ListNames")).body[0]
    wanted = [str(name) for name in listed if not str(name).startswith(":")]
    owners = await asyncio.gather(*(_owner(lookups, name) for name in wanted))
    return sorted(name for name, owner in zip(wanted, owners, strict=True) if owner == unique)


async def _owner(lookups: Lookups, name: str) -> str | None:
    # The link follows NameOwnerChanged for every name, so an owner it knows is current.
    known = (await lookups.link()).owners.get(name)
    if known is not None:
        return known
    try:
        return str((await lookups.call(DBUS_NAME, DBUS_PATH, DBUS_NAME, "GetNameOwner", "s", [name])).body[0])
    except RemoteError:
        return None  # the name went away meanwhile


# ---- the unit graph ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """How a call names a unit: `key` as given, `path` where systemd serves it (None: systemd knows no unit by it)."""

    key: str
    path: str | None


def references(operation: Operation, classification: Classification) -> list[Reference]:
    if classification.units_by_path:
        return [Reference(operation.path, operation.path if operation.path.startswith(UNIT_PATH_PREFIX) else None)]
    return [_by_name(unit) for unit in classification.units]


def _by_name(unit: str) -> Reference:
    # A unit file given as a path is the unit of its file name (and protected like it).
    name = unit.rsplit("/", 1)[-1]
    if unit == CALLER_UNIT or not could_be_unit_name(name):
        return Reference(unit, None)
    return Reference(unit, unit_object_path(name))


async def unit_effects(lookups: Lookups, given: Sequence[Reference], effect: Effect) -> Effects:
    """Read the units `given` reach until the effects of a job of kind `effect` on them are known."""
    graph = UnitGraph()
    paths = {reference.key: reference.path for reference in given}
    keys = list(dict.fromkeys(reference.key for reference in given))
    while True:
        exploration = explore(graph, keys, effect)
        if exploration.effects is not None:
            return exploration.effects
        # Names found in dependency lists are unit ids, which escape to their paths unambiguously.
        await asyncio.gather(
            *(_read_unit(lookups, graph, key, paths.get(key, unit_object_path(key))) for key in exploration.missing)
        )


async def _read_unit(lookups: Lookups, graph: UnitGraph, key: str, path: str | None) -> None:
    if path is None:
        graph.add_unknown(key)
        return
    try:
        reply = await lookups.call(SYSTEMD, path, PROPERTIES, "GetAll", "s", [UNIT])
    except RemoteError as exc:
        if exc.name not in NO_SUCH_UNIT:
            raise
        graph.add_unknown(key)
        return
    values = reply.body[0] if reply.body and isinstance(reply.body[0], dict) else {}
    # Only the properties the graph uses are unwrapped: a unit has over a hundred.
    facts = UnitFacts.from_properties(
        {name: getattr(values[name], "value", values[name]) for name in FACT_PROPERTIES if name in values}
    )
    if not facts.id:
        graph.add_unknown(key)
        return
    graph.add(facts, key)
