"""The one choke point: every effect on a host is an Operation that passes `Gateway`.

For each Operation: resolve it (a unique bus name becomes the well-known name it owns), classify it,
decide (policy), apply the caller's rate limit, obtain a person's approval when the verdict is confirm,
append an audit record, execute with a deadline, append the outcome. Tools build Operations; only this
module (and the executors below it) touch a bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from fleetbus import lookups, well_known
from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError, BusUnavailable, RemoteError
from fleetbus.dbus.introspect import ObjectInfo, WalkResult, walk
from fleetbus.dbus.jobs import MANAGER, MANAGER_PATH, SYSTEMD, JobOutcome, JobWatch
from fleetbus.dbus.link import PROPERTIES, BusLink, Reply
from fleetbus.dbus.signals import Collected, ReceivedSignal, SignalFilter, Subscription, WatchLimits, collect
from fleetbus.executors import dbus_calls
from fleetbus.executors import journal as journal_reader
from fleetbus.executors import metrics as host_metrics
from fleetbus.executors.command import CommandError
from fleetbus.executors.host_facts import HostFacts
from fleetbus.executors.proc_files import ReadFailed
from fleetbus.executors.procfs import ProcFormatError
from fleetbus.guard import audit, fleet_call, scopes
from fleetbus.guard.approvals import Approval, ApprovalStore, DecisionCommands, TooManyPending, utc_time
from fleetbus.guard.audit import AuditLog, room
from fleetbus.guard.audit.coalesce import Coalescer
from fleetbus.guard.catalog import Classification, Effect, Hints, Risk, classify
from fleetbus.guard.effects import apply_effects, describe_hazards, unjudged
from fleetbus.guard.journald import MESSAGE_ID as AUDIT_MESSAGE_ID
from fleetbus.guard.limits import RateLimited, RateLimiter
from fleetbus.guard.policy import Decision, Policy, Verdict
from fleetbus.guard.redact import REDACTED, audit_arguments
from fleetbus.hosts.errors import HostError
from fleetbus.hosts.host import HostState
from fleetbus.hosts.registry import HostRegistry, UnknownHost
from fleetbus.operation import (
    AUDIT_QUERY,
    DBUS_CALL,
    DBUS_WATCH,
    FLEET_PLAN,
    HOST_METRICS,
    HOST_PROBE,
    JOURNAL_QUERY,
    LOCAL_HOST,
    Operation,
)

INTROSPECTABLE = well_known.INTROSPECTABLE
T = TypeVar("T")
PROBE_CONCURRENCY = 16
"""Hosts list_hosts tries at once (each within the connect deadline; handshakes are gated by the registry)."""
log = logging.getLogger(__name__)

ASSESSED = 4096
"""Operations whose classification and decision the gateway remembers (the oldest forgotten first)."""
HELD_READS = 64
"""Records of the reads one call_method makes to form its call (its introspection) held back at most; more are
written as they come."""
_HELD: ContextVar[list[dict[str, Any]] | None] = ContextVar("fleetbus_held_reads", default=None)
"""While a call is being formed (Gateway.forming_call): the records of the reads made for it, written with the
call's own — inside its refusal record when it is refused, so a flood of refused calls is coalesced whole."""

AskPerson = Callable[[Approval], Awaitable[bool | None]]
"""Ask a person (through the MCP client) to approve; True/False is their answer, None means no answer."""


@dataclass(frozen=True)
class Caller:
    """Who is asking, for policy, rate limits, approvals and the audit log."""

    client: str
    ask: AskPerson | None = None
    scopes: frozenset[str] | None = None
    """What a token (or a unix-socket peer) may do, checked with the policy — the narrower wins. None: the
    operator (stdio, the CLI), unrestricted."""
    hosts: tuple[str, ...] | None = None
    """Ansible host patterns (combined as a list) of the hosts this caller may touch — `local` by name, `*`
    any; None: any host."""


class GatewayError(Exception):
    """Refused or impossible before anything reached a host."""


class OperationDenied(GatewayError):
    def __init__(self, operation: Operation, decision: Decision) -> None:
        super().__init__(f"refused by policy rule {decision.rule!r}: {decision.reason}")
        self.operation = operation
        self.decision = decision


class ApprovalRequired(GatewayError):
    """The verdict is confirm and no person has approved this exact operation yet."""

    def __init__(self, approval: Approval, decision: Decision, commands: DecisionCommands) -> None:
        minutes = max(1, round((approval.expires - approval.created) / 60))
        # The commands stand on lines of their own, so a person (or a client showing the text) can copy them.
        super().__init__(
            f"needs a person's approval (rule {decision.rule!r}: {approval.reason}). Approval id {approval.id} "
            f"for {approval.operation} is waiting; a person approves it within {minutes} min "
            f"(until {utc_time(approval.expires)}) by running\n"
            f"    {commands.approve(approval.id)}\n"
            f"or refuses it with\n"
            f"    {commands.deny(approval.id)}\n"
            "then repeat exactly the same call. A changed argument needs a new approval."
        )
        self.approval = approval
        self.decision = decision


class OutOfScope(GatewayError):
    """The policy would allow it, but the caller's token (or peer mapping) does not grant the scope it needs."""

    def __init__(self, operation: Operation, refusal: scopes.Refusal) -> None:
        super().__init__(refusal.message)
        self.operation = operation
        self.scope = refusal.scope


class HostFailed(GatewayError):
    """The host could not be reached (SSH refused, timed out, host key refused); the message names host and cause."""


class UnknownHostName(GatewayError):
    """The operation names a host the inventory does not hold; the message names the closest ones."""


class AuditUnavailable(GatewayError):
    """The audit log cannot be written: the call is refused before anything ran."""


class HostCommandFailed(GatewayError):
    """An admitted command (the journal reader) could not run, failed or overran its deadline."""


class ApprovalDenied(GatewayError):
    def __init__(self, approval: Approval) -> None:
        by = f" (decided by {approval.decided_by})" if approval.decided_by else ""
        super().__init__(
            f"a person refused approval {approval.id} for {approval.operation}{by}. The identical call is refused "
            f"until {utc_time(approval.expires)}, when the refusal expires; do not retry it before then. Ask the "
            "person what they want instead, or make a different call (which needs its own approval)."
        )
        self.approval = approval


@dataclass(frozen=True)
class Deadlines:
    default: float
    maximum: float
    connect: float

    def choose(self, requested: float | None) -> float:
        if requested is None:
            return self.default
        if not requested > 0:  # NaN too: JSON parsers may hand one over, and no comparison with it holds
            raise GatewayError(f"timeout must be a positive number of seconds, got {requested:g}")
        if requested > self.maximum:
            raise GatewayError(f"timeout {requested:g} s exceeds the configured maximum of {self.maximum:g} s")
        return requested


@dataclass(frozen=True)
class Assessment:
    """What the gateway would do with an operation, without doing it."""

    operation: Operation
    """As resolved: the well-known destination when the caller named a unique one."""
    classification: Classification
    decision: Decision


def dbus_call(
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str,
    args: Sequence[Any],
    *,
    names: Sequence[str | None] | None = None,
    bus: str = "system",
    host: str,
) -> Operation:
    """An Operation for a method call, its JSON arguments checked against `signature` and put in canonical form.

    Raises types.ValueConversionError / types.SignatureError naming the argument that does not fit.
    """
    canonical = types.canonical_args(signature, args, names)
    return Operation(DBUS_CALL, host, bus, destination, path, interface, member, signature, canonical)


class Gateway:
    def __init__(
        self,
        hosts: HostRegistry,
        policy: Policy,
        deadlines: Deadlines,
        *,
        approvals: ApprovalStore,
        audit_log: AuditLog,
        limiter: RateLimiter,
        journal_directory: Path | None = None,
        facts: HostFacts | None = None,
        decision_commands: DecisionCommands | None = None,
        coalesce_within: float = 10.0,
        audit_reserve: int = room.DEFAULT_RESERVE,
        watches: WatchLimits | None = None,
    ) -> None:
        self.hosts = hosts
        self.watches = watches or WatchLimits()
        self.decision_commands = decision_commands or DecisionCommands()
        self.local_facts = facts if facts is not None else HostFacts.local(journal_directory)
        """This machine's figures and journal; a remote host's come from `_host_facts`."""
        self._remote_facts: dict[str, HostFacts] = {}
        self.policy = policy
        self.deadlines = deadlines
        self.approvals = approvals
        self.audit_log = audit_log
        # Refusals repeat (a client retrying, a flood): one record per operation and verdict per interval.
        self.refusals = Coalescer(audit_log, coalesce_within)
        self.audit_reserve = audit_reserve
        self.limiter = limiter
        self._read_permissions = lookups.ReadPermissions(policy)
        self._assessed: dict[tuple[Operation, Hints | None, tuple[type, ...]], tuple[Classification, Decision]] = {}
        self._assessed_under = policy
        self._record_parts: dict[tuple[Any, ...], Mapping[str, Any]] = {}
        hosts.add_owner_listener(self._owner_changed)

    # ---- deciding ---------------------------------------------------------------------------------

    async def assess(self, operation: Operation, caller: Caller | None = None) -> Assessment:
        """Classify and decide, after the reads that show what the call would do: the names a unique destination
        owns, the units a unit call reaches. Those reads are decided by the policy and recorded in the audit log
        (for `caller`); when they cannot be made in time, the call is refused."""
        assessment, reads = await self._assess(operation, caller)
        if reads is not None:
            self._record_lookups(operation, caller, reads)
        return assessment

    async def _assess(self, operation: Operation, caller: Caller | None) -> tuple[Assessment, lookups.Lookups | None]:
        """`assess`, with the lookups it made left for the caller to record (run folds a refused call's into its
        refusal record); lookups of an assessment that raised are recorded here."""
        # The host is checked first (in the inventory, among the caller's): the lookups below may connect to it.
        self._admit_host(operation, caller)
        if operation.kind != DBUS_CALL:
            return self._classified(operation, None), None
        deadline = self.deadlines.default

        async def connect() -> BusLink:
            try:
                return await self.hosts.link(operation.host, operation.bus)
            except HostError as exc:  # the lookups then leave the call unjudged, and so stricter
                raise BusUnavailable(str(exc)) from exc

        if self._read_permissions.policy is not self.policy:
            self._read_permissions = lookups.ReadPermissions(self.policy)
        reads = lookups.Lookups(
            connect, self._read_permissions, operation.host, operation.bus, time.monotonic() + deadline
        )
        try:
            if not operation.destination.startswith(":"):
                # A well-known name is judged as it is: no read to wait for, so no deadline to arm (most calls).
                return await self._judge(operation, reads), reads
            try:
                async with asyncio.timeout(deadline):
                    candidates = await self._resolve(operation, reads)
            except (TimeoutError, BusError, lookups.LookupRefused) as exc:
                base = classify(operation, None, self.policy.knowledge)
                why = _lookup_failure(exc, deadline, f"which names {operation.destination} owns")
                return self._decided(operation, unjudged(base, why)), reads
            judged = [await self._judge(candidate, reads) for candidate in candidates]
        except BaseException:
            self._record_lookups(operation, caller, reads)
            raise
        # A unique name owning several well-known names is held to the strictest verdict among them.
        return max(judged, key=lambda a: (a.decision.verdict.strictness, a.classification.risk)), reads

    def _decided(self, operation: Operation, classification: Classification) -> Assessment:
        return Assessment(operation, classification, self.policy.decide(operation, classification))

    def _classified(self, operation: Operation, hints: Hints | None) -> Assessment:
        """Classified by name (and hints) and decided, remembered per policy: both are pure functions of the
        operation, the hints and the policy, and a client's reads repeat the same few operations. The key holds the
        arguments' types too: `True == 1` in Python, while a rule tells a D-Bus boolean from an integer."""
        policy = self.policy
        if self._assessed_under is not policy:
            self._assessed.clear()
            self._assessed_under = policy
        if not types.memoisable(operation.args):  # arrays, dicts, floats, long strings: decided every time
            return self._decided(operation, classify(operation, hints, policy.knowledge))
        key = (operation, hints, tuple(type(arg) for arg in operation.args))
        known = self._assessed.get(key)
        if known is None:
            classification = classify(operation, hints, policy.knowledge)
            known = classification, policy.decide(operation, classification)
            if len(self._assessed) >= ASSESSED:
                self._assessed.pop(next(iter(self._assessed)))
            self._assessed[key] = known
        return Assessment(operation, *known)

    async def _judge(self, operation: Operation, reads: lookups.Lookups) -> Assessment:
        """The classification by name, then — for a unit call that is not refused already — by its effects."""
        first = self._classified(operation, self._hints(operation))
        classification = first.classification
        if (
            operation.destination != SYSTEMD
            or classification.effect is Effect.NONE
            or first.decision.verdict is Verdict.DENY
        ):
            return first
        try:
            async with asyncio.timeout(max(reads.remaining(), 0)):
                effects = await lookups.unit_effects(
                    reads, lookups.references(operation, classification), classification.effect
                )
            judged, hazards = apply_effects(classification, effects), describe_hazards(classification, effects)
        except (TimeoutError, BusError, lookups.LookupRefused) as exc:
            judged = unjudged(classification, _lookup_failure(exc, self.deadlines.default, "what its units reach"))
            hazards = None
        second = self._decided(operation, judged)
        # Effects only ever make a verdict stricter; a policy that would relax it for a riskier class does not.
        if second.decision.verdict.strictness < first.decision.verdict.strictness:
            return first
        if hazards is not None and second.decision.verdict is not Verdict.DENY:
            # The person asked to approve must see what the call would set off, not only the preset's rule.
            decided = replace(second.decision, reason=f"{second.decision.reason}: {hazards}")
            return replace(second, decision=decided)
        return second

    async def _resolve(self, operation: Operation, reads: lookups.Lookups) -> list[Operation]:
        """Policy matches well-known names; a call addressed to a unique name is judged as each name it owns."""
        if not operation.destination.startswith(":"):
            return [operation]
        names = await lookups.names_owned_by(reads, operation.destination)
        return [replace(operation, destination=name) for name in names] or [operation]

    def _record_lookups(self, operation: Operation, caller: Caller | None, reads: lookups.Lookups) -> None:
        fields = self._lookup_fields(operation, caller, reads)
        if fields is not None:
            self._read_record(fields)

    @staticmethod
    def _lookup_fields(operation: Operation, caller: Caller | None, reads: lookups.Lookups) -> dict[str, Any] | None:
        if not reads.made:
            return None
        return {
            **fleet_call.record_fields(),
            "client": caller.client if caller is not None else "fleetbus",
            "host": operation.host,
            "event": "looked-up",
            "operation": _operation_fields(operation),
            "digest": operation.digest(),
            "lookups": reads.summary(),
            "count": len(reads.made),
        }

    def _hints(self, operation: Operation) -> Hints | None:
        """Introspection hints from the cache only: deciding never costs an extra call."""
        if operation.kind != DBUS_CALL:
            return None
        info = self._cached_introspection(operation)
        if info is None:
            return None
        if operation.interface == PROPERTIES and operation.member == "Set" and len(operation.args) >= 2:
            interface = info.interface(str(operation.args[0]))
            prop = interface.property(str(operation.args[1])) if interface else None
            return Hints(property_access=prop.access) if prop else None
        interface = info.interface(operation.interface)
        method = interface.method(operation.member) if interface else None
        if method is None:
            return None
        flags = {k: str(v).lower() == "true" for k, v in method.annotations.items()}
        return Hints(
            privileged=flags.get("org.freedesktop.systemd1.Privileged", False),
            no_reply=flags.get("org.freedesktop.DBus.Method.NoReply", False),
        )

    def _cached_introspection(self, operation: Operation) -> ObjectInfo | None:
        host = self.hosts.peek(operation.host)
        link = host.peek(operation.bus) if host is not None else None
        if host is None or link is None:
            return None
        owner = (
            operation.destination if operation.destination.startswith(":") else link.owners.get(operation.destination)
        )
        return host.cache.get(link.key, owner, operation.path) if owner else None

    # ---- admitting and running ----------------------------------------------------------------------

    async def run(
        self,
        operation: Operation,
        caller: Caller,
        execute: Callable[[Operation], Awaitable[T]],
        *,
        detail: str | None = None,
        used: list[Approval] | None = None,
        held: Sequence[dict[str, Any]] = (),
    ) -> T:
        """Decide, limit, approve, audit, execute, audit: the only path from a tool to a host. `detail` is shown
        to the person asked to approve (a plan's blast radius); `used` receives the approval that let it run;
        `held`: records of the reads made to form this call (see forming_call), written before its own or inside
        its refusal."""
        assessment, reads = await self._assess(operation, caller)
        looked_up = self._lookup_fields(operation, caller, reads) if reads is not None else None
        served = [*held, *([looked_up] if looked_up is not None else [])]
        resolved, decision = assessment.operation, assessment.decision
        record = self._record_base(resolved, caller, assessment)
        # A refused call's reads go inside its refusal record, which is coalesced: 1,000 refused calls are a few
        # records, not 3,000. A call that goes on has them written as their own records, first.
        refused = {"reads": [_read_summary(fields) for fields in served]} if served else {}
        if decision.verdict is Verdict.DENY:
            self._record_refusal({**record, "event": "denied", **refused})
            raise OperationDenied(resolved, decision)
        # The caller's hosts were checked (before any connection) by _admit_host, in Ansible's pattern grammar.
        refusal = scopes.check(caller.scopes, None, resolved, assessment.classification, caller.client)
        if refusal is not None:
            self._record_refusal(
                {**record, "event": "denied", "scope": refusal.scope, "error": refusal.message, **refused}
            )
            raise OutOfScope(resolved, refusal)
        try:
            self.limiter.check(caller.client, assessment.classification.is_read, resolved.host)
        except RateLimited as exc:
            self._record_refusal({**record, "event": "rate-limited", "error": str(exc), **refused})
            raise GatewayError(str(exc)) from exc
        for fields in served:
            self._read_record(fields)
        approval: Approval | None = None
        claim = fleet_call.CLAIM.get()
        if claim is not None and claim.operation != operation.digest():
            claim = None  # a claim covers the one call it was made for, never a lookup or another call
        if decision.verdict is Verdict.CONFIRM and claim is None:
            self._require_room(durable=not assessment.classification.is_read)  # before an approval is used up
            approval = await self._approval(resolved, caller, decision, record, detail)
            if used is not None:
                used.append(approval)
        record["approval"] = approval.id if approval else None
        approved = {"approved_by": approval.decided_by} if approval else {}
        if claim is not None and decision.verdict is Verdict.CONFIRM:
            # Approved with its plan (one approval for the blast radius): the plan's approval is this call's.
            record.update(approval=claim.approval, plan=claim.plan)
            approved = {"approved_by": claim.approved_by} if claim.approved_by else {}
        if assessment.classification.is_read:
            return await self._run_read(resolved, {**record, **approved}, execute)
        # Nothing runs unrecorded: a change whose records would not fit is refused before it runs. Its record is
        # flushed in a worker thread (the loop serves others meanwhile) and on disk before it runs, and its outcome
        # is on disk before it is reported.
        event = "approved" if record["approval"] else "allowed"
        await self._admit_record({**record, "event": event, **approved})
        pending = room.CALL_AUDIT.get()
        if pending is not None:
            pending.changes_ran.append(resolved.member or resolved.kind)
        started = time.monotonic()
        try:
            result = await execute(resolved)
        except BaseException as exc:
            failure = _failure(started, exc)
            await self._record_outcome({**record, **failure}, resolved)
            raise
        await self._record_outcome(
            {**record, "event": "succeeded", "duration_ms": audit.monotonic_ms(started)}, resolved
        )
        return result

    async def _run_read(
        self, resolved: Operation, record: dict[str, Any], execute: Callable[[Operation], Awaitable[T]]
    ) -> T:
        """A read has no effect to record before it happens, only an answer to disclose: its one record (decision,
        outcome, duration) is written once it ran and before its answer leaves the gateway, so nothing is ever
        disclosed unrecorded — and a read costs one record, not two (on disk within sync_within)."""
        started = time.monotonic()
        try:
            result = await execute(resolved)
        except BaseException as exc:
            unrecorded = self._record_failed_read(record, started, exc)
            if unrecorded is not None and isinstance(exc, Exception):
                # A failure tells something too (which names exist, what a service answers): withheld as an
                # answer would be, its text in the server's log only.
                raise unrecorded from exc
            raise  # cancelled, or the server stopping: recorded if it can be, never replaced
        self._read_record({**record, "event": "succeeded", "duration_ms": audit.monotonic_ms(started)})
        return result

    def _record_failed_read(
        self, record: dict[str, Any], started: float, exc: BaseException
    ) -> AuditUnavailable | None:
        """A failed read's record; what stopped it from being written, if anything (logged with the failure)."""
        failure = _failure(started, exc)
        try:
            self._read_record({**record, **failure})
        except AuditUnavailable as unrecorded:
            log.error("%s: %s", unrecorded, failure)
            return unrecorded
        return None

    def _record_refusal(self, fields: dict[str, Any], *, coalesce: bool = True) -> None:
        """A refusal's record; when the log cannot take it, the call is refused all the same (nothing ran)."""
        try:
            if coalesce:
                self.refusals.append(fields)
            else:
                self.audit_log.append(fields)
        except OSError as exc:
            log.error("%s; a refusal went unrecorded: %s", room.unwritable(self.audit_log.directory, exc), fields)

    async def _admit_record(self, fields: dict[str, Any]) -> None:
        """A change's record before it runs, on disk; refuses the change (AuditUnavailable) when it cannot be
        written, or when the disk lacks room for its outcome record too."""
        try:
            self._require_room(durable=True)
            await self.audit_log.append_durable(fields)
        except OSError as exc:
            raise AuditUnavailable(room.unwritable(self.audit_log.directory, exc) + "; nothing was run") from exc

    def _read_record(self, fields: dict[str, Any]) -> None:
        """A read's record, once it ran (buffered, on disk within sync_within). When it cannot be written, the
        answer is withheld (AuditUnavailable) — unless the read reports on a change this call already made."""
        if self._hold(fields):
            return
        directory = self.audit_log.directory
        try:
            self.audit_log.append(fields, durable=False)
        except OSError as exc:
            pending = room.CALL_AUDIT.get()
            if pending is not None and pending.changes_ran:
                # A read that reports on a change which already ran (its state, its output) in this same call:
                # withholding it would make the change look failed, and a retry repeat it. It is told, unrecorded.
                why = room.unwritable(directory, exc)
                log.error("%s; a read after a change went unrecorded: %s", why, fields)
                note = (
                    f"ran: {', '.join(pending.changes_ran)} ran, but {why}, so what this call read after it is not "
                    "in the audit log. Do not repeat the call: it was made."
                )
                if note not in pending.unrecorded and not any(n.startswith("ran; outcome") for n in pending.unrecorded):
                    pending.unrecorded.append(note)
                return
            raise AuditUnavailable(
                room.unwritable(directory, exc) + "; what was read is withheld: nothing is disclosed unrecorded"
            ) from exc

    def _require_room(self, durable: bool) -> None:
        """A change needs `audit_reserve` bytes free on the audit disk: room for its outcome record."""
        if not durable:
            return
        directory = self.audit_log.directory
        try:
            self.audit_log.open()
            free = room.free_bytes(directory)
        except OSError as exc:
            raise AuditUnavailable(room.unwritable(directory, exc) + "; nothing was run") from exc
        if free < self.audit_reserve:
            raise AuditUnavailable(
                room.unwritable(directory, free=free, needed=self.audit_reserve) + "; nothing was run"
            )

    async def _record_outcome(self, fields: dict[str, Any], operation: Operation) -> None:
        """A change's record after it ran, on disk. If it cannot be written, the change still ran: it is never
        reported as failed for that (a client would retry, repeating it) but as "ran; outcome not recorded"."""
        try:
            await self.audit_log.append_durable(fields)
        except OSError as exc:
            why = room.unwritable(self.audit_log.directory, exc)
            log.error("%s; the outcome of %s went unrecorded: %s", why, operation.describe(), fields)
            note = (
                f"ran; outcome not recorded: {operation.member or operation.kind} ran ({fields['event']}), but "
                f"{why}, so its outcome is not in the audit log. Do not repeat the call: it was made."
            )
            pending = room.CALL_AUDIT.get()
            if pending is not None:
                pending.unrecorded.append(note)

    @staticmethod
    def _hold(fields: dict[str, Any]) -> bool:
        """Keep a read's record for the call being formed (True), when one is."""
        held = _HELD.get()
        if held is None or len(held) >= HELD_READS:
            return False
        held.append(fields)
        return True

    @contextlib.contextmanager
    def forming_call(self) -> Iterator[None]:
        """While a tool forms a call (call_method introspecting the method it names), the records of the reads
        it makes are held and written with the call's (`call` takes them); those of a call never made are written
        when the block ends. The reads are the call's assessment, recorded as its lookups are: after they are made."""
        held: list[dict[str, Any]] = []
        token = _HELD.set(held)
        try:
            yield
        finally:
            _HELD.reset(token)
            for fields in held:
                try:
                    self.audit_log.append(fields)
                except OSError as exc:
                    log.error("%s; a read went unrecorded: %s", room.unwritable(self.audit_log.directory, exc), fields)

    @staticmethod
    def _take_held() -> tuple[list[dict[str, Any]], contextlib.AbstractContextManager[None]]:
        """The records held for the call about to run, and a context in which no more are held."""
        held = _HELD.get()
        if held is None:
            return [], contextlib.nullcontext()
        taken = list(held)
        held.clear()

        @contextlib.contextmanager
        def unheld() -> Iterator[None]:
            token = _HELD.set(None)
            try:
                yield
            finally:
                _HELD.reset(token)

        return taken, unheld()

    async def _approval(
        self, operation: Operation, caller: Caller, decision: Decision, record: dict[str, Any], detail: str | None
    ) -> Approval:
        # The store is files under a lock another process (fleetbus approve) may hold: off the event loop.
        store = self.approvals
        used = await asyncio.to_thread(store.consume, operation, caller.client)
        if used is not None:
            return used
        refused = await asyncio.to_thread(store.refused, operation, caller.client)
        if refused is not None:
            self._record_refusal({**record, "event": "rejected", "approval": refused.id})
            raise ApprovalDenied(refused)
        reason = f"{decision.reason}: {detail}" if detail else decision.reason
        try:
            request = await asyncio.to_thread(store.request, operation, caller.client, reason)
        except TooManyPending as exc:
            # A cap on requests waiting, recorded as the rate limit it is.
            self.audit_log.append({**record, "event": "rate-limited", "error": str(exc)})
            raise GatewayError(str(exc)) from None
        # A person's answer counts only through a caller allowed to approve; others wait for `fleetbus approve`.
        can_answer = scopes.may_approve(caller.scopes)
        answer = await caller.ask(request) if caller.ask is not None and can_answer else None
        if answer is not None:
            await asyncio.to_thread(store.decide, request.id, answer, f"elicitation:{caller.client}")
            if answer:
                consumed = await asyncio.to_thread(store.consume, operation, caller.client)
                if consumed is not None:
                    return consumed
            else:
                self._record_refusal({**record, "event": "rejected", "approval": request.id}, coalesce=False)
                raise ApprovalDenied(request)
        self._record_refusal({**record, "event": "awaiting-approval", "approval": request.id}, coalesce=False)
        raise ApprovalRequired(request, decision, self.decision_commands)

    def _record_base(self, operation: Operation, caller: Caller, assessment: Assessment) -> dict[str, Any]:
        return {
            **fleet_call.record_fields(),
            "client": caller.client,
            "host": operation.host,
            **self._operation_record(operation, assessment),
        }

    def _operation_record(self, operation: Operation, assessment: Assessment) -> Mapping[str, Any]:
        """What a record says of the operation and its decision: a pure function of both, remembered for operations
        whose arguments are short scalars (types.memoisable). Records share these values and never change them."""
        kinds = tuple(type(arg) for arg in operation.args)
        key = (operation, kinds, assessment.classification.risk, assessment.decision)
        cacheable = types.memoisable(operation.args)
        try:
            known = self._record_parts.get(key) if cacheable else None
        except TypeError:  # a decision holding something unhashable: described every time
            known, cacheable = None, False
        if known is not None:
            return known
        decision = assessment.decision
        parts = {
            "operation": _operation_fields(operation),
            "digest": operation.digest(),
            # Arguments of a secret-handling call are secrets by position, not by a key name redact could see.
            "args": REDACTED if assessment.classification.risk is Risk.SECRET else audit_arguments(operation),
            "decision": {
                "verdict": decision.verdict.value,
                "rule": decision.rule,
                "reason": decision.reason,
                "risk": assessment.classification.risk.label,
            },
        }
        if cacheable:
            if len(self._record_parts) >= ASSESSED:
                self._record_parts.clear()
            self._record_parts[key] = parts
        return parts

    # ---- executors ---------------------------------------------------------------------------------

    async def call(self, operation: Operation, caller: Caller, timeout: float | None = None) -> Reply:
        """A D-Bus method call, after everything `run` requires."""
        if operation.kind != DBUS_CALL:
            raise GatewayError(f"call() takes {DBUS_CALL} operations, not {operation.kind}")
        deadline = self.deadlines.choose(timeout)

        async def execute(resolved: Operation) -> Reply:
            began = time.monotonic()
            link = await self._link(resolved.host, resolved.bus, deadline)
            with self.hosts.get(resolved.host).in_use():
                return await dbus_calls.send(link, resolved, _left(deadline, began))

        held, unheld = self._take_held()
        with unheld:
            return await self.run(operation, caller, execute, held=held)

    async def introspect(
        self,
        destination: str,
        path: str,
        caller: Caller,
        *,
        bus: str = "system",
        host: str,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Introspection of one object, from the cache when the same owner answered recently."""
        operation = Operation(DBUS_CALL, host, bus, destination, path, INTROSPECTABLE, "Introspect")
        deadline = self.deadlines.choose(timeout)

        async def execute(resolved: Operation) -> ObjectInfo:
            cached = self._cached_introspection(resolved)
            if cached is not None:
                return cached
            began = time.monotonic()
            link = await self._link(host, bus, deadline)
            cache = self.hosts.get(host).cache
            return await dbus_calls.introspect(link, cache, destination, path, timeout=_left(deadline, began))

        return await self.run(operation, caller, execute)

    async def walk(
        self,
        destination: str,
        root: str,
        caller: Caller,
        *,
        bus: str = "system",
        host: str,
        max_nodes: int,
        max_depth: int,
    ) -> WalkResult:
        async def fetch(path: str) -> ObjectInfo:
            return await self.introspect(destination, path, caller, bus=bus, host=host)

        return await walk(fetch, root, max_nodes=max_nodes, max_depth=max_depth)

    async def watch(self, operation: Operation, caller: Caller, *, timeout: float, max_count: int) -> Collected:
        """Collect signals matching the operation's sender/path/interface/member."""
        if operation.kind != DBUS_WATCH:
            raise GatewayError(f"watch() takes {DBUS_WATCH} operations, not {operation.kind}")
        if timeout <= 0 or timeout > self.deadlines.maximum:
            raise GatewayError(f"timeout must be between 0 and {self.deadlines.maximum:g} s, got {timeout:g}")
        selector = SignalFilter(
            operation.destination or None, operation.path or None, operation.interface or None, operation.member or None
        )

        async def execute(resolved: Operation) -> Collected:
            with self.watches.hold(caller.client):
                link = await self._link(resolved.host, resolved.bus, self.deadlines.default)
                return await collect(link, selector, timeout=timeout, max_count=max_count)

        return await self.run(operation, caller, execute)

    async def subscribe(
        self, operation: Operation, caller: Caller, deliver: Callable[[ReceivedSignal], None]
    ) -> Subscription:
        """Deliver matching signals to `deliver` until the returned subscription is closed. Admitted (and
        audited) once, when it starts; a subscription is bound to the connection it was made on."""
        if operation.kind != DBUS_WATCH:
            raise GatewayError(f"subscribe() takes {DBUS_WATCH} operations, not {operation.kind}")
        selector = SignalFilter(
            operation.destination or None, operation.path or None, operation.interface or None, operation.member or None
        )

        async def execute(resolved: Operation) -> Subscription:
            release = self.watches.acquire(caller.client)
            try:
                link = await self._link(resolved.host, resolved.bus, self.deadlines.default)
            except BaseException:
                release()
                raise
            return await Subscription(link, selector, deliver, release).open()

        return await self.run(operation, caller, execute)

    async def decide_plan(self, operation: Operation, caller: Caller, detail: str) -> Approval | None:
        """A plan (FLEET_PLAN) decided, approved and audited like a call — it does nothing itself: the approval a
        person gave for it, or None where the policy lets it pass without one. Raises like `run`."""
        if operation.kind != FLEET_PLAN:
            raise GatewayError(f"decide_plan() takes a {FLEET_PLAN} operation, not {operation.describe()}")
        used: list[Approval] = []

        async def execute(_: Operation) -> None:
            return None

        await self.run(operation, caller, execute, detail=detail, used=used)
        return used[0] if used else None

    async def read_audit(self, caller: Caller, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Records of the audit log matching `filters` — itself an operation the policy decides on."""
        operation = Operation(AUDIT_QUERY, LOCAL_HOST, "", member="query", args=({**filters, "limit": limit},))

        async def execute(_: Operation) -> list[dict[str, Any]]:
            return audit.query(self.audit_log.directory, limit=limit, **filters)

        return await self.run(operation, caller, execute)

    def may_read_audit(self, caller: Caller) -> bool:
        """Whether `caller` holds the audit right: the policy allows reading the audit log (the admin preset) and
        its scopes grant it (`admin`)."""
        operation = Operation(AUDIT_QUERY, LOCAL_HOST, "", member="query")
        classification = classify(operation, None, self.policy.knowledge)
        if self.policy.decide(operation, classification).verdict is not Verdict.ALLOW:
            return False
        return scopes.check(caller.scopes, caller.hosts, operation, classification, caller.client) is None

    async def run_job(self, operation: Operation, caller: Caller, *, wait: float) -> JobOutcome:
        """A systemd Manager call that queues a job (StartUnit, RestartUnit…), admitted like any call, then the
        job's end: JobRemoved is matched before the call, so a job that ends at once is not missed."""
        if operation.kind != DBUS_CALL or operation.destination != SYSTEMD or operation.interface != MANAGER:
            raise GatewayError(f"run_job() takes calls of {MANAGER}, not {operation.describe()}")
        deadline = self.deadlines.choose(None)
        if wait <= 0 or wait > self.deadlines.maximum:
            raise GatewayError(f"wait must be between 0 and {self.deadlines.maximum:g} s, got {wait:g}")
        await self._subscribe_to_jobs(operation, caller)
        link = await self._link(operation.host, operation.bus, deadline)
        async with JobWatch(link) as jobs:

            async def execute(resolved: Operation) -> JobOutcome:
                reply = await dbus_calls.send(link, resolved, deadline)
                return await jobs.wait(str(reply.body[0]), wait)

            return await self.run(operation, caller, execute)

    async def _subscribe_to_jobs(self, operation: Operation, caller: Caller) -> None:
        """systemd sends JobRemoved only to subscribed clients. Subscribe is a read, admitted and audited."""
        subscribe = Operation(DBUS_CALL, operation.host, operation.bus, SYSTEMD, MANAGER_PATH, MANAGER, "Subscribe")
        try:
            await self.call(subscribe, caller)
        except RemoteError as exc:
            if exc.name != "org.freedesktop.systemd1.AlreadySubscribed":
                raise

    async def read_journal(
        self,
        caller: Caller,
        options: Sequence[str],
        *,
        max_entries: int,
        host: str,
        timeout: float | None = None,
        max_bytes: int = 16 << 20,
    ) -> journal_reader.JournalRead:
        """Entries of a host's journal (`journalctl -o json` with the query's options), at most `max_entries`."""
        operation = Operation(JOURNAL_QUERY, host, "", member="query", args=tuple(options))
        try:
            journal_reader.check_options(options)
        except journal_reader.JournalQueryError as exc:
            raise GatewayError(str(exc)) from exc
        deadline = self.deadlines.choose(timeout)
        # fleetbus's own audit records reach the journal through the mirror; they are the audit log's, and only a
        # caller who may read the audit log reads them there.
        hide_audit = not self.may_read_audit(caller)

        async def execute(resolved: Operation) -> journal_reader.JournalRead:
            journal = (await self._host_facts(resolved.host)).journal
            options = [str(a) for a in resolved.args]
            if hide_audit:
                options = journal_reader.with_output_fields(options, *AUDIT_COPY_FIELDS)
            try:
                async with asyncio.timeout(deadline):
                    read = await journal.read(
                        options,
                        timeout=deadline,
                        # Audit copies come in runs (every call makes two): read further so they do not crowd out
                        # the entries asked for.
                        max_entries=max_entries * AUDIT_COPY_OVERREAD if hide_audit else max_entries,
                        max_bytes=max_bytes,
                    )
            except TimeoutError:
                raise HostCommandFailed(
                    f"reading the journal of {resolved.host}: no answer within {deadline:g} s"
                ) from None
            except (CommandError, HostError, journal_reader.JournalFailed) as exc:
                raise HostCommandFailed(f"reading the journal of {resolved.host}: {exc}") from exc
            return _without_audit_copies(read, max_entries) if hide_audit else read

        return await self.run(operation, caller, execute)

    async def read_metrics(
        self,
        caller: Caller,
        snapshot: str,
        params: Mapping[str, Any] | None = None,
        *,
        host: str,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One resource snapshot of a host (system, processes, network, identity, process_names), under a deadline."""
        if snapshot not in host_metrics.SNAPSHOTS:
            raise GatewayError(f"unknown metrics snapshot {snapshot!r}")
        values = dict(params or {})
        if snapshot == "process_names":
            try:
                values["pids"] = host_metrics.checked_pids(values.get("pids", []))
            except ValueError as exc:
                raise GatewayError(f"invalid argument 'pids': {exc}") from exc
        operation = Operation(HOST_METRICS, host, "", member=snapshot, args=(values,))
        deadline = self.deadlines.choose(timeout)

        async def execute(resolved: Operation) -> dict[str, Any]:
            figures = (await self._host_facts(resolved.host)).figures
            what = f"{snapshot} figures of {resolved.host}"
            try:
                async with asyncio.timeout(deadline):
                    return await figures.snapshot(snapshot, values, timeout=deadline)
            except TimeoutError:
                raise HostCommandFailed(f"{what}: no answer within {deadline:g} s") from None
            except (CommandError, HostError, ReadFailed, ProcFormatError) as exc:
                raise HostCommandFailed(f"{what}: {exc}") from exc

        return await self.run(operation, caller, execute)

    def _admit_host(self, operation: Operation, caller: Caller | None) -> None:
        """The host must be in the inventory and among the caller's (token's) hosts — decided before anything
        connects to it, so a refused host never sees a connection.

        For a caller whose token names its hosts, an unknown name is answered with the closest of *those* hosts:
        the inventory's names would show such a token the hosts that list_hosts hides from it."""
        if operation.kind == FLEET_PLAN:
            return  # its host is a pattern; every host of the plan is admitted when its own call is made
        try:
            self.hosts.check_name(operation.host)
        except UnknownHost as exc:
            if caller is None or caller.hosts is None:
                raise UnknownHostName(str(exc)) from exc
            allowed = [name for name in self.hosts.names() if self.hosts.matches(caller.hosts, name)]
            raise UnknownHostName(
                str(UnknownHost(operation.host, allowed, "of the hosts this token may touch"))
            ) from exc
        if caller is None or caller.hosts is None or self.hosts.matches(caller.hosts, operation.host):
            return
        refusal = scopes.Refusal(
            f"host:{operation.host}",
            f"client {caller.client!r} may not touch host {operation.host!r} (its token allows "
            f"{', '.join(caller.hosts) or 'no host'}); no connection was made to it",
        )
        self.audit_log.append(
            {
                **fleet_call.record_fields(),
                "client": caller.client,
                "host": operation.host,
                "event": "denied",
                "operation": _operation_fields(operation),
                "digest": operation.digest(),
                "scope": refusal.scope,
                "error": refusal.message,
            }
        )
        raise OutOfScope(operation, refusal)

    async def _link(self, host: str, bus: str, deadline: float) -> BusLink:
        """The host's link to `bus`, connecting within `deadline`; a host that cannot be reached is a HostFailed
        naming the host and the cause."""
        live = self.hosts.live_link(host, bus)
        if live is not None:  # connected already (nearly every call): nothing to wait for, no deadline to arm
            return live
        try:
            async with asyncio.timeout(deadline):
                return await self.hosts.link(host, bus)
        except TimeoutError:
            raise HostFailed(f"{host}: no connection to its {bus} bus within {deadline:g} s") from None
        except HostError as exc:
            raise HostFailed(str(exc)) from exc

    async def host_states(self, caller: Caller, pattern: str | None, *, probe: bool) -> list[dict[str, Any]]:
        """The inventory's hosts a caller may touch (of `pattern`, Ansible's grammar), each with what is known of
        it — or, with `probe`, what trying to reach it now shows (hosts a token may not touch are never tried)."""
        try:
            names = self.hosts.names() if pattern is None else self.hosts.select(pattern)
        except ValueError as exc:
            raise GatewayError(f"invalid argument 'pattern': {exc}") from exc
        if caller.hosts is not None:
            names = [name for name in names if self.hosts.matches(caller.hosts, name)]
        states = {name: self.hosts.get(name).state() for name in names}
        if probe:
            gate = asyncio.Semaphore(PROBE_CONCURRENCY)

            async def tried(name: str) -> HostState | None:
                async with gate:
                    return await self._probe(caller, name)

            for state in await asyncio.gather(*(tried(name) for name in names)):
                if state is not None:
                    states[state.name] = state
        rows = []
        for name in names:
            entry, state = self.hosts.entry(name), states[name]
            rows.append(
                {
                    "name": name,
                    "address": entry.address or "",
                    "groups": ",".join(self.hosts.inventory.group_names(name)),
                    "state": state.state,
                    "connected": state.connected,
                    "reason": state.reason or "",
                    "fingerprint": state.fingerprint or "",
                }
            )
        return rows

    async def _probe(self, caller: Caller, name: str) -> HostState | None:
        """The host's state after trying to reach it, or None (shown as last known) where the try was not made.

        A probe is a connection attempt (a login) on the host, so it is an operation like any read there: policy,
        the caller's read budget on that host (or list_hosts in a loop would knock on every host without limit),
        and the audit log, which shows who tried which host and what it answered."""
        operation = Operation(HOST_PROBE, name, "", member="probe")

        async def execute(resolved: Operation) -> HostState:
            (state,) = await self.hosts.check([resolved.host])
            return state

        try:
            return await self.run(operation, caller, execute)
        except (GatewayError, RateLimited):
            return None

    async def process_names(self, caller: Caller, pids: Sequence[int], *, host: str = LOCAL_HOST) -> dict[int, str]:
        """The command names of processes on `host` (an audited host.metrics read), for labelling bus peers;
        a process that is gone has none."""
        if not pids:
            return {}
        found = await self.read_metrics(caller, "process_names", {"pids": sorted(set(pids))}, host=host)
        return {int(pid): str(name) for pid, name in found.get("names", {}).items()}

    async def _host_facts(self, name: str) -> HostFacts:
        """The figures and journal of host `name`: this machine's own, or read through the host's SSH runner
        (one HostFacts per host for the life of the gateway, so its CPU history survives reconnects)."""
        host = await self.hosts.runner_of(name)
        if host.runner is None:
            return self.local_facts
        facts = self._remote_facts.get(name)
        if facts is None:
            facts = self._remote_facts[name] = HostFacts.remote(host.runner)
        return facts

    async def bus_identity(self, host: str, bus: str) -> str:
        """fleetbus's own unique name on a bus: the subject polkit is asked about."""
        link = await self._link(host, bus, self.deadlines.connect)
        return link.unique_name or ""

    def _owner_changed(self, link: BusLink, name: str, old: str, new: str) -> None:
        if old and name == old and not new:
            host = self.hosts.peek(link.host)
            if host is not None:
                host.cache.forget_owner(link.key, old)

    def close(self) -> None:
        self.hosts.close()
        self.local_facts.close()
        for facts in self._remote_facts.values():
            facts.close()
        self.refusals.flush()  # counts still open are written before the log closes: nothing goes unrecorded
        self.audit_log.close()


def _left(deadline: float, began: float) -> float:
    """What is left of `deadline` seconds since `began` (a connection made first spends part of it)."""
    # To the hundredth: a link that was up already leaves the whole deadline, and the error says "within 1 s".
    return max(round(deadline - (time.monotonic() - began), 2), 0.01)


def _operation_fields(operation: Operation) -> dict[str, str]:
    """The operation as an audit record names it (its arguments are kept apart, redacted)."""
    return {
        "kind": operation.kind,
        "bus": operation.bus,
        "destination": operation.destination,
        "path": operation.path,
        "interface": operation.interface,
        "member": operation.member,
        "signature": operation.signature,
    }


AUDIT_COPY_FIELDS = ("MESSAGE_ID", "SYSLOG_IDENTIFIER")
"""What tells a journal entry is the mirror's copy of an audit record (guard/journald.py writes both)."""
AUDIT_COPY_OVERREAD = 4


def _failure(started: float, exc: BaseException) -> dict[str, Any]:
    """The outcome fields of a call that raised."""
    return {"event": "failed", "duration_ms": audit.monotonic_ms(started), "error": str(exc) or type(exc).__name__}


def _read_summary(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A read's record as a refusal record carries it: what was read and how it went, not who asked again."""
    return {key: fields[key] for key in _READ_KEYS if key in fields}


_READ_KEYS = ("event", "host", "operation", "digest", "lookups", "count", "duration_ms", "error", "decision")


def _without_audit_copies(read: journal_reader.JournalRead, max_entries: int) -> journal_reader.JournalRead:
    """The entries that are not audit copies, at most `max_entries` (complete only if nothing was cut)."""
    kept = [
        entry
        for entry in read.entries
        if not (entry.get("MESSAGE_ID") == AUDIT_MESSAGE_ID and entry.get("SYSLOG_IDENTIFIER") == "fleetbus")
    ]
    if len(kept) > max_entries:
        return journal_reader.JournalRead(kept[:max_entries], complete=False)
    return journal_reader.JournalRead(kept, read.complete)


def _lookup_failure(exc: BaseException, deadline: float, what: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"the bus did not tell {what} within {deadline:g} s"
    return f"asking {what} failed: {exc}"
