"""Run one async callable on many hosts: a sliding window of at most `concurrency` hosts at a time, a deadline
per host and one for the whole fan-out, every host's outcome classified, progress reported as hosts finish."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fleetbus.dbus.errors import BusUnavailable, CallTimeout
from fleetbus.gateway import ApprovalDenied, ApprovalRequired, HostFailed, OperationDenied, OutOfScope
from fleetbus.hosts.errors import HostError, HostKeyError, HostUnreachable, RemoteTimeout

log = logging.getLogger(__name__)
T = TypeVar("T")

UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
DENIED = "denied"
UNKNOWN_HOSTKEY = "unknown-hostkey"
ERROR = "error"
DEFAULT_CONCURRENCY = 64
"""Ansible's `forks` is 5, Salt's batches are a share of the minions; D-Bus calls over one persistent SSH link per
host are cheap enough that the bound is about file descriptors and handshakes, not CPU."""


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What one host answered: a value, or a failure of a `kind` with a message that no longer names the host
    (the host is `host`), so that identical failures on many hosts can be merged."""

    host: str
    value: T | None = None
    kind: str | None = None
    message: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind is None


@dataclass(frozen=True, slots=True)
class Progress:
    done: int
    total: int
    outcome: Outcome[Any]


@dataclass(frozen=True)
class FanOutResult(Generic[T]):
    outcomes: list[Outcome[T]]
    """One per host, in the order the hosts were given (duplicates dropped)."""
    elapsed: float
    partial: bool
    """The overall deadline ended the fan-out: hosts still running (or never started) are `timeout`."""

    def by_host(self) -> dict[str, Outcome[T]]:
        return {outcome.host: outcome for outcome in self.outcomes}


Kind = str | Callable[[BaseException], str]


@dataclass
class Classifier:
    """Exception type → failure kind, first match wins; `extend` puts more specific rules in front."""

    rules: list[tuple[type[BaseException], Kind]] = field(default_factory=list)

    def extend(self, *rules: tuple[type[BaseException], Kind]) -> Classifier:
        return Classifier([*rules, *self.rules])

    def classify(self, exc: BaseException) -> tuple[str, str]:
        if isinstance(exc, HostFailed):
            # The gateway's wrapper of a host's failure to connect: the cause says which kind; without one the
            # link was not made within its deadline. Its text begins with the host's name, which the outcome has.
            if exc.__cause__ is not None:
                return self.classify(exc.__cause__)
            text = str(exc)
            return UNREACHABLE, text.split(": ", 1)[1] if ": " in text else text
        kind: str = ERROR
        for exc_type, rule in self.rules:
            if isinstance(exc, exc_type):
                kind = rule if isinstance(rule, str) else rule(exc)
                break
        return kind, message_of(exc)


def message_of(exc: BaseException) -> str:
    """The error's sentence without the `host: ` prefix host errors carry: the host is the outcome's."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, HostError) and text.startswith(f"{exc.host}: "):
        text = text[len(exc.host) + 2 :]
    return text


def _host_key_kind(exc: BaseException) -> str:
    # unknown-hostkey, changed-hostkey, revoked-hostkey: an operator acts differently on each.
    return str(getattr(exc, "code", UNKNOWN_HOSTKEY))


DEFAULT_CLASSIFIER = Classifier(
    [
        (HostKeyError, _host_key_kind),
        (HostUnreachable, UNREACHABLE),
        (BusUnavailable, UNREACHABLE),  # the host's bus cannot be reached (gone, or frozen in authentication)
        (RemoteTimeout, TIMEOUT),
        (CallTimeout, TIMEOUT),
        (TimeoutError, TIMEOUT),
        (OperationDenied, DENIED),
        (OutOfScope, DENIED),
        (ApprovalRequired, DENIED),
        (ApprovalDenied, DENIED),
    ]
)

OnDone = Callable[[Progress], Awaitable[None] | None]


async def fan_out(
    hosts: Iterable[str],
    run_one: Callable[[str], Awaitable[T]],
    *,
    per_host_deadline: float,
    overall_deadline: float | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_done: OnDone | None = None,
    classifier: Classifier = DEFAULT_CLASSIFIER,
) -> FanOutResult[T]:
    """`run_one(host)` on every host, at most `concurrency` at once: a new host starts as soon as any finishes
    (Salt's sliding window, not Ansible's lockstep), so one slow host holds back nobody.

    A host gets `per_host_deadline` seconds; at `overall_deadline` the fan-out returns what it has, the hosts
    still running cancelled — not waited for — and reported as `timeout`. One host's failure is its outcome
    only. `on_done` hears each finished host with the count so far; a failing callback is logged, never fatal.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    order = list(dict.fromkeys(hosts))
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    # asyncio.timeout_at takes the loop's clock, which need not be time.monotonic().
    deadline = None if overall_deadline is None else loop.time() + overall_deadline
    finished: dict[str, Outcome[T]] = {}
    running: dict[str, asyncio.Task[Outcome[T]]] = {}
    queue: asyncio.Queue[Outcome[T]] = asyncio.Queue()
    waiting = iter(order)

    def start_next() -> bool:
        host = next(waiting, None)
        if host is None:
            return False
        task = asyncio.ensure_future(_run_host(host, run_one, per_host_deadline, classifier))
        running[host] = task
        # Handed over through a queue so the loop below wakes once per finished host (O(1), not a wait() scan).
        task.add_done_callback(functools.partial(_deliver, host=host, queue=queue))
        return True

    for _ in range(min(concurrency, len(order))):
        start_next()
    partial = False
    try:
        async with asyncio.timeout_at(deadline):
            while running:
                outcome = await queue.get()
                running.pop(outcome.host, None)
                finished[outcome.host] = outcome
                start_next()
                if on_done is not None:
                    await _tell(on_done, Progress(len(finished), len(order), outcome))
    except TimeoutError:
        partial = True
    except BaseException:
        # The caller gave up (its request was cancelled): nothing it started may go on running on the hosts.
        for task in running.values():
            task.cancel()
            _abandon(task)
        raise
    if partial:
        now = time.monotonic() - started
        late = f"no answer within the overall deadline of {overall_deadline:g} s"
        for host, task in running.items():
            task.cancel()
            _abandon(task)
            finished[host] = Outcome(host, kind=TIMEOUT, message=late, elapsed=now)
        for host in order:
            if host not in finished:
                finished[host] = Outcome(
                    host, kind=TIMEOUT, message=f"not started before the overall deadline of {overall_deadline:g} s"
                )
    return FanOutResult([finished[host] for host in order], time.monotonic() - started, partial)


async def _run_host(
    host: str, run_one: Callable[[str], Awaitable[T]], per_host_deadline: float, classifier: Classifier
) -> Outcome[T]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(per_host_deadline) as scope:
            value = await run_one(host)
    except TimeoutError as exc:
        elapsed = time.monotonic() - started
        if scope.expired():
            return Outcome(host, kind=TIMEOUT, message=f"no answer within {per_host_deadline:g} s", elapsed=elapsed)
        kind, message = classifier.classify(exc)
        return Outcome(host, kind=kind, message=message, elapsed=elapsed)
    except Exception as exc:
        kind, message = classifier.classify(exc)
        if kind == ERROR:
            log.debug("fan-out: %s failed", host, exc_info=True)
        return Outcome(host, kind=kind, message=message, elapsed=time.monotonic() - started)
    return Outcome(host, value=value, elapsed=time.monotonic() - started)


def _deliver(task: asyncio.Task[Outcome[T]], *, host: str, queue: asyncio.Queue[Outcome[T]]) -> None:
    if task.cancelled():
        return  # only the overall deadline cancels, and then nobody reads the queue any more
    exc = task.exception()
    if exc is not None:  # BaseException other than cancellation (KeyboardInterrupt…): still one host's outcome
        queue.put_nowait(Outcome(host, kind=ERROR, message=message_of(exc)))
        return
    queue.put_nowait(task.result())


_ABANDONED: set[asyncio.Task[Any]] = set()
"""Cancelled tasks are not awaited (the answer must not wait for them); holding them until they end keeps them
from being collected mid-flight."""


def _abandon(task: asyncio.Task[Any]) -> None:
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)


async def _tell(on_done: OnDone, progress: Progress) -> None:
    try:
        result = on_done(progress)
        if inspect.isawaitable(result):
            await result
    except Exception:
        log.warning("fan-out progress callback failed", exc_info=True)


def failures(result: FanOutResult[Any]) -> Sequence[Outcome[Any]]:
    return [outcome for outcome in result.outcomes if not outcome.ok]
