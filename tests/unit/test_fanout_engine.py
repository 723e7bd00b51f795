"""The fan-out engine with real asyncio: the window slides, deadlines hold, one host's failure stays its own."""

from __future__ import annotations

import asyncio
import time

import pytest

from fleetbus.dbus.errors import BusUnavailable, CallTimeout
from fleetbus.hosts.errors import ChangedHostKey, HostUnreachable, RemoteTimeout, UnknownHostKey
from fleetbus.tools.fanout.engine import DEFAULT_CLASSIFIER, Classifier, Progress, fan_out


class Gauge:
    """Counts hosts in flight and remembers the peak."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def __exit__(self, *_: object) -> None:
        self.now -= 1


async def test_concurrency_never_exceeds_the_bound() -> None:
    gauge = Gauge()

    async def run(host: str) -> str:
        with gauge:
            await asyncio.sleep(0.001 * (int(host[1:]) % 7))
        return "ok"

    hosts = [f"h{i}" for i in range(200)]
    result = await fan_out(hosts, run, per_host_deadline=10, concurrency=8)
    assert gauge.peak == 8
    assert [o.host for o in result.outcomes] == hosts
    assert all(o.ok and o.value == "ok" for o in result.outcomes)
    assert not result.partial


async def test_a_slow_host_does_not_hold_back_the_next_ones() -> None:
    # Window of 2: h0 takes the whole time; the other slot must serve every fast host meanwhile (lockstep
    # batches of 2 would start h2 only after h0 ended).
    release = asyncio.Event()
    fast_done: list[str] = []

    async def run(host: str) -> str:
        if host == "h0":
            await release.wait()
        else:
            fast_done.append(host)
            if len(fast_done) == 9:
                release.set()
        return host

    result = await fan_out([f"h{i}" for i in range(10)], run, per_host_deadline=10, concurrency=2)
    assert fast_done == [f"h{i}" for i in range(1, 10)]
    assert all(o.ok for o in result.outcomes)


async def test_the_overall_deadline_returns_on_time_with_partial_results() -> None:
    never = asyncio.Event()
    cancelled: list[str] = []

    async def run(host: str) -> str:
        if host in ("h3", "h7"):
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled.append(host)
                raise
        return "fine"

    started = time.monotonic()
    result = await fan_out([f"h{i}" for i in range(10)], run, per_host_deadline=30, overall_deadline=0.3)
    took = time.monotonic() - started
    assert 0.25 <= took < 2.0  # generous: a loaded machine may be late, never early
    assert result.partial
    by_host = result.by_host()
    assert {h for h, o in by_host.items() if not o.ok} == {"h3", "h7"}
    assert by_host["h3"].kind == "timeout"
    assert "overall deadline of 0.3 s" in by_host["h3"].message
    assert all(by_host[f"h{i}"].value == "fine" for i in (0, 1, 2, 4, 5, 6, 8, 9))
    # Cancelled, not waited for: the cancellation lands once the loop runs again.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sorted(cancelled) == ["h3", "h7"]


async def test_hosts_never_started_before_the_overall_deadline_are_timeouts_too() -> None:
    async def run(host: str) -> str:
        await asyncio.sleep(10)
        return host

    result = await fan_out(["a", "b", "c"], run, per_host_deadline=30, overall_deadline=0.1, concurrency=1)
    kinds = {o.host: (o.kind, o.message) for o in result.outcomes}
    assert kinds["a"][0] == "timeout"
    assert "no answer within the overall deadline" in kinds["a"][1]
    assert kinds["b"][0] == "timeout"
    assert "not started" in kinds["b"][1]


async def test_the_per_host_deadline_is_that_hosts_timeout_only() -> None:
    async def run(host: str) -> str:
        if host == "slow":
            await asyncio.sleep(10)
        return host

    started = time.monotonic()
    result = await fan_out(["a", "slow", "b"], run, per_host_deadline=0.2)
    assert time.monotonic() - started < 2.0
    by_host = result.by_host()
    assert by_host["slow"].kind == "timeout"
    assert by_host["slow"].message == "no answer within 0.2 s"
    assert by_host["a"].value == "a"
    assert by_host["b"].value == "b"
    assert not result.partial


async def test_one_failing_host_is_isolated_and_classified() -> None:
    async def run(host: str) -> str:
        if host == "down":
            raise HostUnreachable("down", "connection refused")
        if host == "new":
            raise UnknownHostKey("new", "no known key", key_type="ssh-ed25519", fingerprint="SHA256:x")
        if host == "moved":
            raise ChangedHostKey("moved", "key changed", key_type="ssh-ed25519", fingerprint="SHA256:y")
        if host == "stuck":
            raise RemoteTimeout("stuck", "bus link did not answer")
        if host == "broken":
            raise RuntimeError("boom")
        if host == "frozen":
            raise CallTimeout("Get did not answer within 2 s")
        if host == "nobus":
            raise BusUnavailable("the system bus did not answer within 2 s")
        return "up"

    hosts = ["a", "down", "new", "moved", "stuck", "broken", "frozen", "nobus", "b"]
    result = await fan_out(hosts, run, per_host_deadline=5)
    got = {o.host: (o.kind, o.message) for o in result.outcomes}
    assert got == {
        "a": (None, ""),
        "down": ("unreachable", "connection refused"),  # the host prefix is dropped: the host is the outcome's
        "new": ("unknown-hostkey", "no known key"),
        "moved": ("changed-hostkey", "key changed"),
        "stuck": ("timeout", "bus link did not answer"),
        "broken": ("error", "boom"),
        "frozen": ("timeout", "Get did not answer within 2 s"),
        "nobus": ("unreachable", "the system bus did not answer within 2 s"),
        "b": (None, ""),
    }


async def test_the_classifier_can_be_extended() -> None:
    class Refused(Exception):
        pass

    async def run(host: str) -> str:
        raise Refused("nope")

    classifier = DEFAULT_CLASSIFIER.extend((Refused, "denied"))
    result = await fan_out(["a"], run, per_host_deadline=1, classifier=classifier)
    assert (result.outcomes[0].kind, result.outcomes[0].message) == ("denied", "nope")
    assert Classifier().classify(Refused("x")) == ("error", "x")


async def test_progress_reports_every_host_once_and_a_failing_callback_is_not_fatal() -> None:
    seen: list[tuple[int, int, str]] = []

    async def on_done(progress: Progress) -> None:
        seen.append((progress.done, progress.total, progress.outcome.host))
        if progress.done == 2:
            raise RuntimeError("the client went away")

    async def run(host: str) -> str:
        await asyncio.sleep(0.001 * int(host[1:]))
        return host

    hosts = [f"h{i}" for i in range(6)]
    result = await fan_out([*hosts, "h0"], run, per_host_deadline=5, concurrency=3, on_done=on_done)
    assert [s[0] for s in seen] == [1, 2, 3, 4, 5, 6]
    assert {s[1] for s in seen} == {6}  # duplicates dropped
    assert sorted(s[2] for s in seen) == hosts
    assert len(result.outcomes) == 6


async def test_a_bad_bound_is_refused() -> None:
    async def run(host: str) -> str:
        return host

    with pytest.raises(ValueError, match="concurrency"):
        await fan_out(["a"], run, per_host_deadline=1, concurrency=0)


async def test_no_hosts_is_an_empty_answer() -> None:
    async def run(host: str) -> str:
        return host

    result = await fan_out([], run, per_host_deadline=1, overall_deadline=1)
    assert result.outcomes == []
    assert not result.partial


async def test_cancelling_the_fan_out_cancels_every_host_it_started() -> None:
    started = asyncio.Event()
    cancelled: list[str] = []

    async def run(host: str) -> str:
        if host == "h2":
            started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(host)
            raise
        return host

    task = asyncio.ensure_future(fan_out(["h0", "h1", "h2", "h3"], run, per_host_deadline=60, concurrency=3))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(3):
        await asyncio.sleep(0)
    assert sorted(cancelled) == ["h0", "h1", "h2"]  # h3 never started
