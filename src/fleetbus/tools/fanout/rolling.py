"""Rolling changes: act on the hosts batch by batch, judge every host by a health gate, and stop at the first
batch whose failures exceed the limit; the report says for every host done, failed (why, last journal lines) or
not touched. The health gates watch the unit's property changes with deadlines — no polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus.tools.fanout.batches import STOP_ON_FIRST_FAILURE, FailureLimit
from fleetbus.tools.fanout.engine import (
    DEFAULT_CONCURRENCY,
    DENIED,
    UNKNOWN_HOSTKEY,
    UNREACHABLE,
    OnDone,
    Progress,
    fan_out,
)
from fleetbus.tools.fanout.grouping import compress_hosts

DONE = "done"
FAILED = "failed"
NOT_TOUCHED = "not touched"
JOURNAL_DEADLINE = 5.0
"""Seconds the last journal lines of a failed host may take: the report must not wait on a host gone bad."""
_NO_JOURNAL = {UNREACHABLE, DENIED, UNKNOWN_HOSTKEY, "changed-hostkey", "revoked-hostkey"}
"""Failures after which asking the host for its journal cannot work (or is not allowed)."""


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str = ""

    @classmethod
    def passed(cls) -> GateResult:
        return cls(True)

    @classmethod
    def failed(cls, reason: str) -> GateResult:
        return cls(False, reason)


@dataclass(frozen=True)
class JobOutcome:
    """What a host's job ended as — `done`, or systemd's `failed`, `timeout`, `dependency`, `canceled`,
    `skipped` — with what the tool answered."""

    result: str
    detail: Mapping[str, Any] = field(default_factory=dict)


Act = Callable[[str], Awaitable[JobOutcome]]
Snapshot = Callable[[str], Awaitable[Any]]
Gate = Callable[[str, Any], Awaitable[GateResult]]
Journal = Callable[[str], Awaitable[list[str]]]


@dataclass
class HostReport:
    host: str
    status: str = NOT_TOUCHED
    why: str = ""
    job: Mapping[str, Any] | None = None
    journal: list[str] = field(default_factory=list)

    def row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"host": self.host, "status": self.status}
        if self.why:
            row["why"] = self.why
        if self.journal:
            row["journal"] = self.journal
        return row


@dataclass
class BatchReport:
    number: int
    hosts: list[HostReport]

    @property
    def failed(self) -> int:
        return sum(1 for report in self.hosts if report.status == FAILED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch": self.number,
            "hosts": compress_hosts(report.host for report in self.hosts),
            "results": [report.row() for report in self.hosts],
        }


@dataclass
class RollingReport:
    batches: list[BatchReport]
    stopped_after: int | None = None
    """The batch whose failures exceeded the limit; later batches were not touched."""
    reason: str = ""
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        counts = {DONE: 0, FAILED: 0, NOT_TOUCHED: 0}
        for batch in self.batches:
            for report in batch.hosts:
                counts[report.status] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "dry_run": self.dry_run,
            "counts": self.counts(),
            "batches": [batch.as_dict() for batch in self.batches],
        }
        if self.stopped_after is not None:
            result["stopped_after_batch"] = self.stopped_after
            result["reason"] = self.reason
        return result


async def run_rolling(
    batches: Sequence[Sequence[str]],
    act: Act,
    gate: Gate,
    *,
    snapshot: Snapshot | None = None,
    journal: Journal | None = None,
    max_failures: FailureLimit = STOP_ON_FIRST_FAILURE,
    per_host_deadline: float,
    concurrency: int = DEFAULT_CONCURRENCY,
    dry_run: bool = False,
    on_done: OnDone | None = None,
) -> RollingReport:
    """For each batch in turn, on each of its hosts concurrently: `snapshot(host)` (what was healthy before),
    `act(host)`, then — when the job is `done` — `gate(host, before)`. A host passes only if all of it succeeds
    within `per_host_deadline`. After a batch, if its failures exceed `max_failures`, the run stops: the
    following batches' hosts are `not touched`. `dry_run` calls nothing and returns the plan."""
    reports = [BatchReport(n, [HostReport(host) for host in batch]) for n, batch in enumerate(batches, 1)]
    if dry_run:
        return RollingReport(reports, dry_run=True)
    total = sum(len(batch) for batch in batches)
    finished = 0

    async def one(host: str) -> HostReport:
        before = await snapshot(host) if snapshot is not None else None
        job = await act(host)
        if job.result != DONE:
            return HostReport(host, FAILED, f"the job ended {job.result!r}", job=job.detail)
        verdict = await gate(host, before)
        if not verdict.ok:
            return HostReport(host, FAILED, f"health gate: {verdict.reason}", job=job.detail)
        return HostReport(host, DONE, job=job.detail)

    async def told(progress: Progress) -> None:
        nonlocal finished
        finished += 1
        if on_done is not None:
            result = on_done(Progress(finished, total, progress.outcome))
            if result is not None:
                await result

    for batch in reports:
        hosts = [report.host for report in batch.hosts]
        result = await fan_out(hosts, one, per_host_deadline=per_host_deadline, concurrency=concurrency, on_done=told)
        journal_wanted: list[HostReport] = []
        for index, outcome in enumerate(result.outcomes):
            if outcome.ok and outcome.value is not None:
                batch.hosts[index] = outcome.value
            else:
                batch.hosts[index] = HostReport(outcome.host, FAILED, f"{outcome.kind}: {outcome.message}")
            if batch.hosts[index].status == FAILED and outcome.kind not in _NO_JOURNAL:
                journal_wanted.append(batch.hosts[index])
        if journal is not None and journal_wanted:
            await _add_journals(journal_wanted, journal, concurrency)
        if max_failures.exceeded(batch.failed, len(batch.hosts)):
            return RollingReport(
                reports,
                stopped_after=batch.number,
                reason=f"{batch.failed} of {len(batch.hosts)} hosts of batch {batch.number} failed, "
                f"{max_failures.describe()} stops the run",
            )
    return RollingReport(reports)


async def _add_journals(reports: list[HostReport], journal: Journal, concurrency: int) -> None:
    lines = await fan_out(
        [report.host for report in reports], journal, per_host_deadline=JOURNAL_DEADLINE, concurrency=concurrency
    )
    for report, outcome in zip(reports, lines.outcomes, strict=True):
        if outcome.ok and outcome.value:
            report.journal = list(outcome.value)


# ---- health gates ----------------------------------------------------------------------------------------

HEALTHY_STATES = {"active", "reloading"}
"""A unit reloading its configuration is still serving; one deactivating, activating again (systemd restarting
it on its own) or failed is not."""


async def stays_active(
    initial: Mapping[str, Any],
    changes: AsyncIterator[Mapping[str, Any]],
    *,
    min_healthy_s: float,
    healthy_deadline_s: float,
) -> GateResult:
    """The unit is `active` — within `healthy_deadline_s` if it is still starting — and stays so for
    `min_healthy_s` (Nomad's `min_healthy_time` and `healthy_deadline`).

    `initial` is the unit's properties (ActiveState, SubState…) read *after* subscribing to `changes`, each change
    being what a PropertiesChanged signal carried: so no transition falls between the two. Nothing is polled; the
    stream is awaited with the remaining time as its deadline.
    """
    state = dict(initial)
    loop = asyncio.get_running_loop()
    started = loop.time()
    healthy_since = started if state.get("ActiveState") in HEALTHY_STATES else None
    # One pending read at a time, never cancelled mid-way (that would close an async generator): kept across
    # rounds and cancelled only when the gate has decided.
    pending: asyncio.Future[Mapping[str, Any]] | None = None
    try:
        while True:
            active = state.get("ActiveState")
            if active == "failed" or (healthy_since is None and active in ("inactive", "deactivating")):
                return GateResult.failed(f"the unit is {_describe(state)}")
            now = loop.time()
            if healthy_since is not None:
                remaining = healthy_since + min_healthy_s - now
                if remaining <= 0:
                    return GateResult.passed()
            else:
                remaining = started + healthy_deadline_s - now
                if remaining <= 0:
                    return GateResult.failed(f"not active within {healthy_deadline_s:g} s: {_describe(state)}")
            if pending is None:
                pending = asyncio.ensure_future(anext(changes))
            done, _ = await asyncio.wait({pending}, timeout=remaining)
            if not done:
                continue
            try:
                change = pending.result()
            except StopAsyncIteration:
                return GateResult.failed(
                    f"the watch on the unit ended before it was healthy for {min_healthy_s:g} s ({_describe(state)})"
                )
            finally:
                pending = None
            state.update(change)
            if state.get("ActiveState") in HEALTHY_STATES:
                if healthy_since is None:
                    healthy_since = loop.time()
            elif healthy_since is not None:
                held = loop.time() - healthy_since
                return GateResult.failed(f"left the active state after {held:.1f} s: {_describe(state)}")
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending


def _describe(state: Mapping[str, Any]) -> str:
    words = [f"{key}={state[key]}" for key in ("ActiveState", "SubState", "Result") if key in state]
    return " ".join(words) or "in an unknown state"


def no_new_failures(failed_before: set[str], failed_now: set[str]) -> GateResult:
    """No unit that was healthy before the change is failed after it (units failed already do not count)."""
    new = sorted(failed_now - failed_before)
    if new:
        shown = ", ".join(new[:10]) + (f" and {len(new) - 10} more" if len(new) > 10 else "")
        return GateResult.failed(f"newly failed: {shown}")
    return GateResult.passed()


class GateSpecError(ValueError):
    """A `gate` argument that cannot be used; the message names the field."""


@dataclass(frozen=True)
class PropertyCondition:
    property: str
    equals: Any

    def check(self, properties: Mapping[str, Any]) -> GateResult:
        if self.property not in properties:
            return GateResult.failed(f"the unit has no property {self.property!r}")
        actual = properties[self.property]
        if actual != self.equals:
            return GateResult.failed(f"{self.property} is {actual!r}, not {self.equals!r}")
        return GateResult.passed()


@dataclass(frozen=True)
class GateSpec:
    """What a host must show after its job. Defaults follow Nomad: healthy for 10 s; here within 60 s."""

    min_healthy_s: float = 10.0
    healthy_deadline_s: float = 60.0
    no_new_failures: bool = True
    condition: PropertyCondition | None = None
    """The `property` field of the argument: `{"property": "SubState", "equals": "running"}`."""
    health_check: bool = False
    """Also no new problem in `health_check` (failed, stuck or crash-looping units) — the wiring supplies it."""

    @property
    def longest_s(self) -> float:
        """The most a passing gate can take: a per-host deadline must leave room for it."""
        return self.healthy_deadline_s + self.min_healthy_s


_GATE_FIELDS = {"min_healthy_s", "healthy_deadline_s", "no_new_failures", "property", "health_check"}


def parse_gate(value: Any, *, argument: str = "gate") -> GateSpec:
    if value is None:
        return GateSpec()
    if not isinstance(value, Mapping):
        raise GateSpecError(f'invalid argument {argument!r}: an object such as {{"min_healthy_s": 10}}')
    unknown = sorted(set(value) - _GATE_FIELDS)
    if unknown:
        raise GateSpecError(f"invalid argument {argument!r}: unknown fields {unknown}; known: {sorted(_GATE_FIELDS)}")
    spec = GateSpec()
    numbers: dict[str, float] = {}
    for name in ("min_healthy_s", "healthy_deadline_s"):
        number = value.get(name, getattr(spec, name))
        if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 3600:
            raise GateSpecError(f"invalid argument '{argument}.{name}': seconds from 0 to 3600")
        numbers[name] = float(number)
    flags: dict[str, bool] = {}
    for name in ("no_new_failures", "health_check"):
        flag = value.get(name, getattr(spec, name))
        if not isinstance(flag, bool):
            raise GateSpecError(f"invalid argument '{argument}.{name}': true or false")
        flags[name] = flag
    condition = None
    if "property" in value:
        raw = value["property"]
        if (
            not isinstance(raw, Mapping)
            or set(raw) != {"property", "equals"}
            or not isinstance(raw["property"], str)
            or not raw["property"]
        ):
            raise GateSpecError(
                f"invalid argument '{argument}.property': an object "
                '{"property": NAME, "equals": VALUE}, e.g. {"property": "SubState", "equals": "running"}'
            )
        condition = PropertyCondition(raw["property"], raw["equals"])
    return GateSpec(
        min_healthy_s=numbers["min_healthy_s"],
        healthy_deadline_s=numbers["healthy_deadline_s"],
        no_new_failures=flags["no_new_failures"],
        condition=condition,
        health_check=flags["health_check"],
    )


def first_failure(*results: GateResult) -> GateResult:
    for result in results:
        if not result.ok:
            return result
    return GateResult.passed()


def plan_rows(batches: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """The batch plan as a person approves it: each batch's hosts, folded."""
    return [{"batch": n, "hosts": compress_hosts(batch), "count": len(batch)} for n, batch in enumerate(batches, 1)]
