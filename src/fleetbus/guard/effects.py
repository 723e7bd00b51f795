"""What a systemd job would do beyond the units it names, worked out over the unit graph given as data.

A stop takes down the units that require, are bound to, are part of, uphold or sit in the stopped one; a start
pulls in what its units require or want, stops what they conflict with, and may start a shutdown, reboot, sleep
or exit target, or a unit whose SuccessAction=, FailureAction=, JobTimeoutAction= or StartLimitAction= acts on the
whole machine. Pure logic: the gateway reads the graph from systemd (`UnitGraph`), `explore` says which units it
still needs, and once it has them all, what the job would do.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from fleetbus.guard.catalog import DANGEROUS_TARGETS, Classification, Effect, Forbidden, Risk

TAKES_DOWN = ("RequiredBy", "BoundBy", "ConsistsOf", "UpheldBy", "PropagatesStopTo", "SliceOf")
"""Stopping (or restarting) a unit stops (or restarts) the units it lists under these properties."""
PULLS_IN = ("Requires", "Wants", "BindsTo", "Requisite")
"""A start job adds jobs for these. systemd then drops the jobs of units already up, and with them the jobs only
they pulled in (checked on the sandbox: starting a service that requires the running basic.target does not start
a stopped socket sockets.target wants), so only the units that really start pull in more."""
ONCE_STARTED = ("Upholds", "Triggers", "OnSuccess", "OnFailure")
"""Units a unit starts later, because it came up (Upholds=, a timer's or path's Triggers=) or ended (OnSuccess=,
OnFailure=)."""
CONFLICTS = ("Conflicts", "ConflictedBy")
ACTIONS = ("SuccessAction", "FailureAction", "JobTimeoutAction", "StartLimitAction")
"""A value other than "none" reboots, powers off, halts or ends the manager when the unit ends, fails or stalls."""
AT_BOOT = ("Upholds", "Triggers")
BOOT_ACTIONS = ("SuccessAction",)
"""At boot, only what a target makes happen counts; a unit that might fail at some boot is not the call's doing."""
EDGES = (*TAKES_DOWN, *PULLS_IN, *ONCE_STARTED, *CONFLICTS)
FACT_PROPERTIES = ("Id", "Names", "ActiveState", *EDGES, *ACTIONS)
"""The org.freedesktop.systemd1.Unit properties UnitFacts are made of."""
UP = frozenset({"active", "reloading", "activating", "refreshing"})
"""Active states in which a start job for the unit is redundant and a conflicting start would stop it."""


@dataclass(frozen=True)
class UnitFacts:
    """What systemd says about one unit: its names, state, relations and emergency actions."""

    id: str
    names: tuple[str, ...]
    active_state: str = "inactive"
    edges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)
    """Only those whose value is not "none"."""

    @classmethod
    def from_properties(cls, properties: Mapping[str, object]) -> UnitFacts:
        """From the org.freedesktop.systemd1.Unit properties of one unit (GetAll, values unwrapped)."""
        unit_id = str(properties.get("Id") or "")
        names = _strings(properties.get("Names"))
        return cls(
            unit_id,
            tuple(dict.fromkeys([unit_id, *names])),
            str(properties.get("ActiveState") or "inactive"),
            {edge: _strings(properties.get(edge)) for edge in EDGES if properties.get(edge)},
            {action: str(properties[action]) for action in ACTIONS if properties.get(action) not in (None, "", "none")},
        )

    @property
    def up(self) -> bool:
        return self.active_state in UP

    def related(self, kinds: Iterable[str]) -> Iterator[str]:
        for kind in kinds:
            yield from self.edges.get(kind, ())


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


@dataclass
class UnitGraph:
    """The units read so far, by every name (and object path) they were found under."""

    units: dict[str, UnitFacts] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)
    """References systemd has no unit for (an invalid name, an object path that leads nowhere)."""

    def add(self, facts: UnitFacts, *asked_as: str) -> None:
        self.units[facts.id] = facts
        for name in (*facts.names, *asked_as):
            self.names[name] = facts.id

    def add_unknown(self, reference: str) -> None:
        self.unknown.add(reference)

    def find(self, reference: str) -> UnitFacts | None:
        unit_id = self.names.get(reference)
        return self.units.get(unit_id) if unit_id is not None else None

    def knows(self, reference: str) -> bool:
        return reference in self.names or reference in self.unknown


@dataclass(frozen=True)
class Hazard:
    """A unit the job would start or stop that acts on the whole machine."""

    unit: str
    why: str
    stops: bool
    """True when the job stops the unit, False when it starts it."""

    def describe(self) -> str:
        return f"{'stop' if self.stops else 'start'} {self.unit} ({self.why})"


@dataclass(frozen=True)
class Effects:
    named: tuple[str, ...]
    """Every name of the units the call names (the references systemd does not know, as given)."""
    taken_down: tuple[str, ...]
    """Every name of the other units the job would stop or restart with them."""
    started: tuple[str, ...]
    """Ids of the units the job would start (at boot, for a default target)."""
    hazards: tuple[Hazard, ...]


@dataclass(frozen=True)
class Exploration:
    """Either the references still to be read (`missing`), or, once there are none, the job's `effects`."""

    missing: frozenset[str]
    effects: Effects | None


def explore(graph: UnitGraph, references: Sequence[str], effect: Effect) -> Exploration:
    """What a job of kind `effect` on the units `references` name would do, as far as `graph` tells.

    Call again after reading the missing units into the graph; each round reaches further, and a unit read once is
    never asked for again, so the rounds end.
    """
    walk = _Walk(graph)
    named = [facts for facts in (walk.get(reference) for reference in references) if facts is not None]
    if walk.missing:
        return Exploration(frozenset(walk.missing), None)
    named_ids = {facts.id for facts in named}
    stopping = effect in (Effect.STOP, Effect.RESTART)
    taken_down = (
        walk.closure(named_ids, TAKES_DOWN) if effect in (Effect.STOP, Effect.RESTART, Effect.TAKE_DOWN) else set()
    )
    stopped_now = set(taken_down) if stopping else set()
    forced = set(taken_down) if effect is Effect.RESTART else set()
    start_roots = named_ids if effect in (Effect.START, Effect.BOOT) else set(forced)
    started: set[str] = set()
    # Each stop can set off OnSuccess=/OnFailure= starts, and each start can stop conflicting units: until no new
    # unit joins either set.
    while True:
        start_roots |= {dep for unit in stopped_now for dep in walk.related(unit, ("OnSuccess", "OnFailure"))}
        newly_started = walk.starts(start_roots, forced, at_boot=effect is Effect.BOOT) - started
        started |= newly_started
        victims = set() if effect is Effect.BOOT else walk.conflict_victims(newly_started, forced)
        newly_stopped = walk.closure(victims, TAKES_DOWN) - stopped_now - taken_down if victims else set()
        if not newly_started and not newly_stopped:
            break
        taken_down |= newly_stopped
        stopped_now |= newly_stopped
    if walk.missing:
        return Exploration(frozenset(walk.missing), None)
    hazards = [
        *(hazard for unit in sorted(stopped_now) for hazard in _hazards(graph.units[unit], stops=True)),
        *(
            hazard
            for unit in sorted(started)
            for hazard in _hazards(graph.units[unit], stops=False, at_boot=effect is Effect.BOOT)
        ),
    ]
    # A reference systemd knows stands for its unit's names (an object path or file path is not a name itself).
    unknown = [reference for reference in references if graph.find(reference) is None]
    named_names = [*unknown, *(name for facts in named for name in facts.names)]
    down_names = [name for unit in sorted(taken_down - named_ids) for name in graph.units[unit].names]
    return Exploration(
        frozenset(),
        Effects(
            tuple(dict.fromkeys(named_names)),
            tuple(dict.fromkeys(down_names)),
            tuple(sorted(started)),
            tuple(dict.fromkeys(hazards)),
        ),
    )


class _Walk:
    """Walks the graph, noting every reference it needed but the graph did not have."""

    def __init__(self, graph: UnitGraph) -> None:
        self.graph = graph
        self.missing: set[str] = set()

    def get(self, reference: str) -> UnitFacts | None:
        facts = self.graph.find(reference)
        if facts is None and not self.graph.knows(reference):
            self.missing.add(reference)
        return facts

    def related(self, unit_id: str, kinds: Iterable[str]) -> set[str]:
        facts = self.graph.units[unit_id]
        found = (self.get(name) for name in facts.related(kinds))
        return {f.id for f in found if f is not None}

    def closure(self, roots: Iterable[str], kinds: Sequence[str]) -> set[str]:
        reached, frontier = set(roots), list(roots)
        while frontier:
            for unit in self.related(frontier.pop(), kinds):
                if unit not in reached:
                    reached.add(unit)
                    frontier.append(unit)
        return reached

    def starts(self, roots: Iterable[str], forced: set[str], *, at_boot: bool) -> set[str]:
        """The units a start of `roots` would really start: those it reaches that are not up already (or are
        restarted anyway), following dependencies from the units that start only."""
        kinds = (*PULLS_IN, *(AT_BOOT if at_boot else ONCE_STARTED))
        reached, frontier, starting = set(roots), list(roots), set()
        while frontier:
            unit = frontier.pop()
            if not (at_boot or unit in forced or not self.graph.units[unit].up):
                continue
            starting.add(unit)
            for next_unit in self.related(unit, kinds):
                if next_unit not in reached:
                    reached.add(next_unit)
                    frontier.append(next_unit)
        return starting

    def conflict_victims(self, starting: Iterable[str], forced: set[str]) -> set[str]:
        """Units a start of `starting` would stop because they conflict and are up (and not restarted anyway)."""
        return {
            victim
            for unit in starting
            for victim in self.related(unit, CONFLICTS)
            if self.graph.units[victim].up and victim not in forced
        }


def _hazards(facts: UnitFacts, *, stops: bool, at_boot: bool = False) -> Iterator[Hazard]:
    if not stops and any(name in DANGEROUS_TARGETS for name in facts.names):
        yield Hazard(facts.id, "a shutdown, reboot, sleep or exit unit", stops)
    for action in BOOT_ACTIONS if at_boot else ACTIONS:
        if action in facts.actions:
            yield Hazard(facts.id, f"{action}={facts.actions[action]}", stops)


# ---- what the effects make of a classification --------------------------------------------------------------

VERBS = {
    Effect.START: "starting",
    Effect.STOP: "stopping",
    Effect.RESTART: "restarting",
    Effect.TAKE_DOWN: "changing",
    Effect.BOOT: "booting into",
}


def apply_effects(classification: Classification, effects: Effects) -> Classification:
    """The classification once the call's effects are known: judged under every name of its units and of the units
    it takes down (protection), and dangerous when it starts or stops something that acts on the whole machine."""
    judged = replace(
        classification,
        units=tuple(dict.fromkeys((*classification.units, *effects.named))),
        takes_down=tuple(u for u in effects.taken_down if u not in effects.named),
    )
    why = describe_hazards(classification, effects)
    if why is None:
        return judged
    return replace(judged, risk=max(judged.risk, Risk.DANGEROUS), reason=f"{classification.reason}; {why}")


def describe_hazards(classification: Classification, effects: Effects) -> str | None:
    """Why the effects make a call dangerous, in words for the person asked to approve it; None when they don't."""
    if not effects.hazards:
        return None
    named = ", ".join(classification.units[:3]) or "the unit"
    shown = effects.hazards[:3]
    more = f" and {len(effects.hazards) - len(shown)} more" if len(effects.hazards) > len(shown) else ""
    return (
        f"{VERBS.get(classification.effect, 'running')} {named} would "
        f"{'; '.join(h.describe() for h in shown)}{more}, which can power off, reboot or suspend the machine or end "
        "the service manager"
    )


def unjudged(classification: Classification, why: str) -> Classification:
    """A call whose effects could not be worked out: refused, whatever the rules say."""
    return replace(
        classification,
        forbidden=Forbidden(
            "effects-unknown",
            f"fleetbus could not work out what this call would do ({why}), and refuses what it cannot judge",
        ),
    )
