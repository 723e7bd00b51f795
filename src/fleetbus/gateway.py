"""The one choke point: every effect on a host is an Operation that passes `Gateway`.

For each Operation: resolve it (a unique bus name becomes the well-known name it owns), classify it,
decide (policy), apply the caller's rate limit, obtain a person's approval when the verdict is confirm,
append an audit record, execute with a deadline, append the outcome. Tools build Operations; only this
module (and the executors below it) touch a bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import psutil

from fleetbus import lookups
from fleetbus.dbus import types
from fleetbus.dbus.errors import BusError, RemoteError
from fleetbus.dbus.introspect import IntrospectionCache, ObjectInfo, WalkResult, parse, walk
from fleetbus.dbus.jobs import MANAGER, MANAGER_PATH, SYSTEMD, JobOutcome, JobWatch
from fleetbus.dbus.link import PROPERTIES, BusLink, LinkPool, Reply
from fleetbus.dbus.signals import Collected, ReceivedSignal, SignalFilter, Subscription, WatchLimits, collect
from fleetbus.executors import journal as journal_reader
from fleetbus.executors import metrics as host_metrics
from fleetbus.executors.command import CommandError
from fleetbus.guard import audit, scopes
from fleetbus.guard.approvals import Approval, ApprovalStore, DecisionCommands, TooManyPending, utc_time
from fleetbus.guard.audit import AuditLog
from fleetbus.guard.catalog import Classification, Effect, Hints, Risk, classify
from fleetbus.guard.effects import apply_effects, describe_hazards, unjudged
from fleetbus.guard.limits import RateLimited, RateLimiter
from fleetbus.guard.policy import Decision, Policy, Verdict
from fleetbus.guard.redact import REDACTED, audit_arguments
from fleetbus.operation import AUDIT_QUERY, DBUS_CALL, DBUS_WATCH, HOST_METRICS, JOURNAL_QUERY, LOCAL_HOST, Operation

INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
T = TypeVar("T")

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
    """Globs of the hosts this caller may touch; None: any host."""


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
            f"needs a person's approval (rule {decision.rule!r}: {decision.reason}). Approval id {approval.id} "
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
        if requested <= 0:
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
    host: str = LOCAL_HOST,
) -> Operation:
    """An Operation for a method call, its JSON arguments checked against `signature` and put in canonical form.

    Raises types.ValueConversionError / types.SignatureError naming the argument that does not fit.
    """
    body = types.from_json(signature, args, names)
    canonical = types.to_json(signature, body, variants="typed", bytes_as="base64")
    return Operation(DBUS_CALL, host, bus, destination, path, interface, member, signature, tuple(canonical))


class Gateway:
    def __init__(
        self,
        links: LinkPool,
        policy: Policy,
        deadlines: Deadlines,
        cache: IntrospectionCache,
        *,
        approvals: ApprovalStore,
        audit_log: AuditLog,
        limiter: RateLimiter,
        journal_directory: Path | None = None,
        metrics: host_metrics.MetricsSource | None = None,
        decision_commands: DecisionCommands | None = None,
        watches: WatchLimits | None = None,
    ) -> None:
        self.links = links
        self.watches = watches or WatchLimits()
        self.decision_commands = decision_commands or DecisionCommands()
        self.journal_directory = journal_directory
        self.metrics: host_metrics.MetricsSource = metrics if metrics is not None else host_metrics.LocalFigures()
        self.policy = policy
        self.deadlines = deadlines
        self.cache = cache
        self.approvals = approvals
        self.audit_log = audit_log
        self.limiter = limiter
        self._read_permissions = lookups.ReadPermissions(policy)
        links.add_owner_listener(self._owner_changed)

    # ---- deciding ---------------------------------------------------------------------------------

    async def assess(self, operation: Operation, caller: Caller | None = None) -> Assessment:
        """Classify and decide, after the reads that show what the call would do: the names a unique destination
        owns, the units a unit call reaches. Those reads are decided by the policy and recorded in the audit log
        (for `caller`); when they cannot be made in time, the call is refused."""
        if operation.kind != DBUS_CALL:
            return self._decided(operation, classify(operation, None, self.policy.knowledge))
        deadline = self.deadlines.default

        async def connect() -> BusLink:
            return await self.links.get(operation.host, operation.bus)

        if self._read_permissions.policy is not self.policy:
            self._read_permissions = lookups.ReadPermissions(self.policy)
        reads = lookups.Lookups(
            connect, self._read_permissions, operation.host, operation.bus, time.monotonic() + deadline
        )
        try:
            try:
                async with asyncio.timeout(deadline):
                    candidates = await self._resolve(operation, reads)
            except (TimeoutError, BusError, lookups.LookupRefused) as exc:
                base = classify(operation, None, self.policy.knowledge)
                why = _lookup_failure(exc, deadline, f"which names {operation.destination} owns")
                return self._decided(operation, unjudged(base, why))
            judged = [await self._judge(candidate, reads) for candidate in candidates]
        finally:
            self._record_lookups(operation, caller, reads)
        # A unique name owning several well-known names is held to the strictest verdict among them.
        return max(judged, key=lambda a: (a.decision.verdict.strictness, a.classification.risk))

    def _decided(self, operation: Operation, classification: Classification) -> Assessment:
        return Assessment(operation, classification, self.policy.decide(operation, classification))

    async def _judge(self, operation: Operation, reads: lookups.Lookups) -> Assessment:
        """The classification by name, then — for a unit call that is not refused already — by its effects."""
        first = self._decided(operation, classify(operation, self._hints(operation), self.policy.knowledge))
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
        if not reads.made:
            return
        self.audit_log.append(
            {
                "client": caller.client if caller is not None else "fleetbus",
                "host": operation.host,
                "event": "looked-up",
                "operation": _operation_fields(operation),
                "digest": operation.digest(),
                "lookups": reads.summary(),
                "count": len(reads.made),
            }
        )

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
        link = self.links.peek(operation.host, operation.bus)
        if link is None:
            return None
        owner = (
            operation.destination if operation.destination.startswith(":") else link.owners.get(operation.destination)
        )
        return self.cache.get(link.key, owner, operation.path) if owner else None

    # ---- admitting and running ----------------------------------------------------------------------

    async def run(self, operation: Operation, caller: Caller, execute: Callable[[Operation], Awaitable[T]]) -> T:
        """Decide, limit, approve, audit, execute, audit: the only path from a tool to a host."""
        assessment = await self.assess(operation, caller)
        resolved, decision = assessment.operation, assessment.decision
        record = self._record_base(resolved, caller, assessment)
        if decision.verdict is Verdict.DENY:
            self.audit_log.append({**record, "event": "denied"})
            raise OperationDenied(resolved, decision)
        refusal = scopes.check(caller.scopes, caller.hosts, resolved, assessment.classification, caller.client)
        if refusal is not None:
            self.audit_log.append({**record, "event": "denied", "scope": refusal.scope, "error": refusal.message})
            raise OutOfScope(resolved, refusal)
        try:
            self.limiter.check(caller.client, assessment.classification.is_read)
        except RateLimited as exc:
            self.audit_log.append({**record, "event": "rate-limited", "error": str(exc)})
            raise GatewayError(str(exc)) from exc
        approval: Approval | None = None
        if decision.verdict is Verdict.CONFIRM:
            approval = await self._approval(resolved, caller, decision, record)
        record["approval"] = approval.id if approval else None
        # A change's records are on disk before it runs and after it ends; a read's follow within a second.
        durable = not assessment.classification.is_read
        approved = {"approved_by": approval.decided_by} if approval else {}
        event = "approved" if approval else "allowed"
        self.audit_log.append({**record, "event": event, **approved}, durable=durable)
        started = time.monotonic()
        try:
            result = await execute(resolved)
        except BaseException as exc:
            failure = {
                "event": "failed",
                "duration_ms": audit.monotonic_ms(started),
                "error": str(exc) or type(exc).__name__,
            }
            self.audit_log.append({**record, **failure}, durable=durable)
            raise
        self.audit_log.append(
            {**record, "event": "succeeded", "duration_ms": audit.monotonic_ms(started)}, durable=durable
        )
        return result

    async def _approval(
        self, operation: Operation, caller: Caller, decision: Decision, record: dict[str, Any]
    ) -> Approval:
        # The store is files under a lock another process (fleetbus approve) may hold: off the event loop.
        store = self.approvals
        used = await asyncio.to_thread(store.consume, operation, caller.client)
        if used is not None:
            return used
        refused = await asyncio.to_thread(store.refused, operation, caller.client)
        if refused is not None:
            self.audit_log.append({**record, "event": "rejected", "approval": refused.id})
            raise ApprovalDenied(refused)
        try:
            request = await asyncio.to_thread(store.request, operation, caller.client, decision.reason)
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
                self.audit_log.append({**record, "event": "rejected", "approval": request.id})
                raise ApprovalDenied(request)
        self.audit_log.append({**record, "event": "awaiting-approval", "approval": request.id})
        raise ApprovalRequired(request, decision, self.decision_commands)

    @staticmethod
    def _record_base(operation: Operation, caller: Caller, assessment: Assessment) -> dict[str, Any]:
        decision = assessment.decision
        return {
            "client": caller.client,
            "host": operation.host,
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

    # ---- executors ---------------------------------------------------------------------------------

    async def call(self, operation: Operation, caller: Caller, timeout: float | None = None) -> Reply:
        """A D-Bus method call, after everything `run` requires."""
        if operation.kind != DBUS_CALL:
            raise GatewayError(f"call() takes {DBUS_CALL} operations, not {operation.kind}")
        deadline = self.deadlines.choose(timeout)

        async def execute(resolved: Operation) -> Reply:
            return await _send(await self.links.get(resolved.host, resolved.bus), resolved, deadline)

        return await self.run(operation, caller, execute)

    async def introspect(
        self,
        destination: str,
        path: str,
        caller: Caller,
        *,
        bus: str = "system",
        host: str = LOCAL_HOST,
        timeout: float | None = None,
    ) -> ObjectInfo:
        """Introspection of one object, from the cache when the same owner answered recently."""
        operation = Operation(DBUS_CALL, host, bus, destination, path, INTROSPECTABLE, "Introspect")
        deadline = self.deadlines.choose(timeout)

        async def execute(resolved: Operation) -> ObjectInfo:
            cached = self._cached_introspection(resolved)
            if cached is not None:
                return cached
            link = await self.links.get(host, bus)
            reply = await link.call(destination, path, INTROSPECTABLE, "Introspect", timeout=deadline)
            info = parse(str(reply.body[0]) if reply.body else "", path)
            self.cache.put(link.key, reply.sender or destination, path, info)
            return info

        return await self.run(operation, caller, execute)

    async def walk(
        self,
        destination: str,
        root: str,
        caller: Caller,
        *,
        bus: str = "system",
        host: str = LOCAL_HOST,
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
                link = await self.links.get(resolved.host, resolved.bus)
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
                link = await self.links.get(resolved.host, resolved.bus)
            except BaseException:
                release()
                raise
            return await Subscription(link, selector, deliver, release).open()

        return await self.run(operation, caller, execute)

    async def read_audit(self, caller: Caller, filters: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Records of the audit log matching `filters` — itself an operation the policy decides on."""
        operation = Operation(AUDIT_QUERY, LOCAL_HOST, "", member="query", args=({**filters, "limit": limit},))

        async def execute(_: Operation) -> list[dict[str, Any]]:
            return audit.query(self.audit_log.directory, limit=limit, **filters)

        return await self.run(operation, caller, execute)

    async def run_job(self, operation: Operation, caller: Caller, *, wait: float) -> JobOutcome:
        """A systemd Manager call that queues a job (StartUnit, RestartUnit…), admitted like any call, then the
        job's end: JobRemoved is matched before the call, so a job that ends at once is not missed."""
        if operation.kind != DBUS_CALL or operation.destination != SYSTEMD or operation.interface != MANAGER:
            raise GatewayError(f"run_job() takes calls of {MANAGER}, not {operation.describe()}")
        deadline = self.deadlines.choose(None)
        if wait <= 0 or wait > self.deadlines.maximum:
            raise GatewayError(f"wait must be between 0 and {self.deadlines.maximum:g} s, got {wait:g}")
        await self._subscribe_to_jobs(operation, caller)
        link = await self.links.get(operation.host, operation.bus)
        async with JobWatch(link) as jobs:

            async def execute(resolved: Operation) -> JobOutcome:
                reply = await _send(link, resolved, deadline)
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
        host: str = LOCAL_HOST,
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

        async def execute(resolved: Operation) -> journal_reader.JournalRead:
            self._require_local(resolved)
            try:
                return await journal_reader.read(
                    [str(a) for a in resolved.args],
                    directory=self.journal_directory,
                    timeout=deadline,
                    max_entries=max_entries,
                    max_bytes=max_bytes,
                )
            except CommandError as exc:
                raise HostCommandFailed(f"reading the journal of {resolved.host}: {exc}") from exc

        return await self.run(operation, caller, execute)

    async def read_metrics(
        self,
        caller: Caller,
        snapshot: str,
        params: Mapping[str, Any] | None = None,
        *,
        host: str = LOCAL_HOST,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One resource snapshot of a host (system, processes, network, identity), under a deadline."""
        if snapshot not in host_metrics.SNAPSHOTS:
            raise GatewayError(f"unknown metrics snapshot {snapshot!r}")
        operation = Operation(HOST_METRICS, host, "", member=snapshot, args=(dict(params or {}),))
        deadline = self.deadlines.choose(timeout)

        async def execute(resolved: Operation) -> dict[str, Any]:
            self._require_local(resolved)
            try:
                async with asyncio.timeout(deadline):
                    return await asyncio.to_thread(self.metrics.snapshot, snapshot, dict(params or {}))
            except TimeoutError:
                raise HostCommandFailed(
                    f"{snapshot} figures of {resolved.host}: no answer within {deadline:g} s"
                ) from None

        return await self.run(operation, caller, execute)

    @staticmethod
    def _require_local(operation: Operation) -> None:
        if operation.host != LOCAL_HOST:
            raise GatewayError(f"unknown host {operation.host!r}: only 'local' is configured")

    async def bus_identity(self, host: str, bus: str) -> str:
        """fleetbus's own unique name on a bus: the subject polkit is asked about."""
        link = await self.links.get(host, bus)
        return link.unique_name or ""

    def process_name(self, host: str, pid: int) -> str | None:
        """The command name of a process on `host`, for labelling bus peers; None where unknown."""
        if host != LOCAL_HOST:
            return None
        try:
            return psutil.Process(pid).name()
        except (psutil.Error, ValueError):
            return None

    def _owner_changed(self, link: BusLink, name: str, old: str, new: str) -> None:
        if old and name == old and not new:
            self.cache.forget_owner(link.key, old)

    def close(self) -> None:
        self.cache.close()
        self.links.close()
        self.metrics.close()
        self.audit_log.close()


async def _send(link: BusLink, operation: Operation, deadline: float) -> Reply:
    """Put an admitted method call on the bus: its canonical JSON arguments become the D-Bus body again."""
    body = types.from_json(operation.signature, operation.args)
    return await link.call(
        operation.destination,
        operation.path,
        operation.interface,
        operation.member,
        operation.signature,
        body,
        timeout=deadline,
    )


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


def _lookup_failure(exc: BaseException, deadline: float, what: str) -> str:
    if isinstance(exc, TimeoutError):
        return f"the bus did not tell {what} within {deadline:g} s"
    return f"asking {what} failed: {exc}"
