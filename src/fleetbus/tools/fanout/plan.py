"""The plan one approval covers: the sorted digests of its operations plus the batch plan (and the terms that
judge it), so a person approves the blast radius once; each operation in it may then run once, and any change —
other hosts, other batches, another operation — is another plan, needing its own approval."""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus.operation import FLEET_PLAN, Operation
from fleetbus.tools.fanout.grouping import compress_hosts

__all__ = ["FLEET_PLAN", "Plan", "PlanLedger"]

# FLEET_PLAN: the Operation kind that stands for a whole plan in the approval store and the audit log: its first
# argument is the plan's digest, so the store's exact-match, use-once approvals bind to the plan as to a call; the
# units its operations act on follow, so that a token's `units:write:GLOB` is judged on them.


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...]
    batches: tuple[tuple[str, ...], ...]
    terms: Mapping[str, Any] = field(default_factory=dict)
    """What else decides how far the change can spread: `max_failures`, the gate. A looser gate is a new plan."""
    units: tuple[str, ...] = ()
    """The units its operations act on: what a `units:write:GLOB` token must cover for the plan to be asked."""

    @classmethod
    def of(
        cls,
        operations: Iterable[Operation],
        batches: Sequence[Sequence[str]],
        terms: Mapping[str, Any] | None = None,
        units: Sequence[str] = (),
    ) -> Plan:
        return cls(tuple(operations), tuple(tuple(batch) for batch in batches), dict(terms or {}), tuple(units))

    def operation_digests(self) -> list[str]:
        return sorted(operation.digest() for operation in self.operations)

    @functools.cached_property
    def digest(self) -> str:
        canonical = json.dumps(
            {"operations": self.operation_digests(), "batches": self.batches, "terms": self.terms},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def hosts(self) -> list[str]:
        return [host for batch in self.batches for host in batch]

    def as_operation(self, target: str) -> Operation:
        """The one Operation a person approves for the whole plan; `target` (the host pattern) is its host."""
        return Operation(FLEET_PLAN, host=target, member="rolling", args=(self.digest, *sorted(set(self.units))))

    def blast_radius(self, *, out_of: int) -> dict[str, Any]:
        """What a person sees before approving: how many hosts of how many, the batches, the exact calls."""
        count = len(self.hosts)
        share = round(100.0 * count / out_of, 1) if out_of else 0.0
        return {
            "hosts": compress_hosts(self.hosts),
            "host_count": count,
            "out_of": out_of,
            "share_percent": share,
            "batches": [
                {"batch": n, "hosts": compress_hosts(batch), "count": len(batch)}
                for n, batch in enumerate(self.batches, 1)
            ],
            "operations": sorted({_call(operation) for operation in self.operations}),
            "terms": dict(self.terms),
            "digest": self.digest,
        }


def _call(operation: Operation) -> str:
    """The call without its host (every host gets the same one): `….Manager.RestartUnit("worker.service", …)`."""
    arguments = ", ".join(json.dumps(arg, ensure_ascii=False) for arg in operation.args)
    target = f"{operation.interface}.{operation.member}" if operation.interface else operation.member
    return f"{operation.bus} {operation.destination} {operation.path} {target}({arguments})".strip()


class PlanLedger:
    """Which operations of approved plans have run. An operation belongs to an approved plan when its digest is
    among the plan's; it may run as often as it occurs in the plan (once, as hosts differ), never again.

    In memory: a restarted server forgets, so an interrupted plan asks for approval again rather than resuming
    on its own — the safe direction.
    """

    def __init__(self) -> None:
        self._remaining: dict[str, Counter[str]] = {}
        self._lock = threading.Lock()

    def approve(self, plan: Plan) -> None:
        """Record an approved plan (once its plan operation's approval was consumed). Approving the same plan
        again does not refill it: what ran stays run."""
        with self._lock:
            self._remaining.setdefault(plan.digest, Counter(plan.operation_digests()))

    def approved(self, plan: Plan) -> bool:
        return plan.digest in self._remaining

    def claim(self, plan: Plan, operation: Operation) -> bool:
        """True, once per occurrence, when `operation` belongs to `plan` and `plan` was approved; the claim is
        spent whether or not the operation then succeeds (a failed restart is not retried on this approval)."""
        with self._lock:
            remaining = self._remaining.get(plan.digest)
            digest = operation.digest()
            if remaining is None or remaining[digest] <= 0:
                return False
            remaining[digest] -= 1
            return True

    def pending(self, plan: Plan) -> int:
        """Operations of an approved plan not yet run (0 for a plan never approved)."""
        remaining = self._remaining.get(plan.digest)
        return sum(remaining.values()) if remaining else 0

    def finished(self, plan: Plan) -> bool:
        return self.approved(plan) and self.pending(plan) == 0
