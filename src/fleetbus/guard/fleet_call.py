"""One fan-out or rolling job as the guard sees it: the call id and work order every audit record it causes
carries, and the plan approval an operation was claimed under — context variables the tool layer sets (each
host's task inherits them) and the gateway reads, so no signature between them has to carry them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FleetCall:
    call_id: str | None = None
    """Shared by every record of one fan-out or rolling job (None: a call to one host)."""
    work_order: str | None = None
    """The change ticket the caller named (the rolling job's argument or the request's `_meta.work_order`)."""


CURRENT: ContextVar[FleetCall | None] = ContextVar("fleetbus_fleet_call", default=None)


@dataclass(frozen=True)
class PlanClaim:
    """An operation claimed from an approved plan: its own approval is the plan's."""

    plan: str
    """The plan's digest."""
    operation: str
    """The claimed operation's digest: the claim covers that exact call and nothing else."""
    approval: str
    """The id of the approval the person gave for the plan."""
    approved_by: str | None = None


CLAIM: ContextVar[PlanClaim | None] = ContextVar("fleetbus_plan_claim", default=None)


def record_fields() -> dict[str, Any]:
    """What the current fleet call adds to an audit record (nothing outside one)."""
    call = CURRENT.get()
    if call is None:
        return {}
    fields: dict[str, Any] = {}
    if call.call_id is not None:
        fields["call_id"] = call.call_id
    if call.work_order is not None:
        fields["work_order"] = call.work_order
    return fields


def new_call_id() -> str:
    return uuid.uuid4().hex[:16]


@contextmanager
def fleet_call(*, call_id: str | None = None, work_order: str | None = None) -> Iterator[FleetCall]:
    """Within: records carry `call_id` (a new one unless given) and the work order (the enclosing one unless
    given)."""
    outer = CURRENT.get()
    call = FleetCall(
        call_id or new_call_id(), work_order if work_order is not None else (outer.work_order if outer else None)
    )
    token = CURRENT.set(call)
    try:
        yield call
    finally:
        CURRENT.reset(token)


@contextmanager
def work_order(value: str | None) -> Iterator[None]:
    """A request's `_meta.work_order`, on every record the request causes."""
    if value is None:
        yield
        return
    outer = CURRENT.get()
    token = CURRENT.set(FleetCall(outer.call_id if outer else None, value))
    try:
        yield
    finally:
        CURRENT.reset(token)


@contextmanager
def claimed(claim: PlanClaim) -> Iterator[None]:
    token = CLAIM.set(claim)
    try:
        yield
    finally:
        CLAIM.reset(token)
