"""Rate limits: token buckets per client, with separate budgets for reads and changes, on an injected clock."""

from __future__ import annotations

import pytest

from fleetbus.guard.limits import Budget, RateLimited, RateLimiter


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock) -> RateLimiter:
    # Reads: 10/s in bursts of 5. Changes: 0.5/s (30/min) in bursts of 2.
    return RateLimiter(Budget(rate=10.0, burst=5), Budget(rate=0.5, burst=2), clock=clock)


def take(limits: RateLimiter, client: str, is_read: bool, times: int) -> None:
    for _ in range(times):
        limits.check(client, is_read)


def test_a_burst_then_refusal_with_retry_after() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", False, 2)
    with pytest.raises(RateLimited) as refused:
        limits.check("alice", False)
    assert refused.value.retry_after == pytest.approx(2.0)
    assert (refused.value.client, refused.value.kind) == ("alice", "changes")
    assert str(refused.value) == (
        "rate limit for changes reached for client 'alice' (30/min (bursts of 2)); retry in 2.0 s"
    )


def test_refused_calls_do_not_use_up_tokens() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", False, 2)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limits.check("alice", False)
    clock.now += 2.0
    limits.check("alice", False)


def test_tokens_refill_over_time_up_to_the_burst() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", True, 5)
    clock.now += 0.1
    limits.check("alice", True)
    with pytest.raises(RateLimited) as refused:
        limits.check("alice", True)
    assert refused.value.retry_after == pytest.approx(0.1)
    clock.now += 3600
    take(limits, "alice", True, 5)
    with pytest.raises(RateLimited):
        limits.check("alice", True)


def test_retry_after_shrinks_as_time_passes() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", False, 2)
    clock.now += 1.5
    with pytest.raises(RateLimited) as refused:
        limits.check("alice", False)
    assert refused.value.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    limits.check("alice", False)


def test_reads_and_changes_have_separate_budgets() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", False, 2)
    take(limits, "alice", True, 5)
    with pytest.raises(RateLimited) as changes:
        limits.check("alice", False)
    with pytest.raises(RateLimited) as reads:
        limits.check("alice", True)
    assert (changes.value.kind, reads.value.kind) == ("changes", "reads")
    assert "10/s (bursts of 5)" in str(reads.value)


def test_clients_have_separate_buckets() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", False, 2)
    with pytest.raises(RateLimited):
        limits.check("alice", False)
    take(limits, "bob", False, 2)
    with pytest.raises(RateLimited) as refused:
        limits.check("bob", False)
    assert refused.value.client == "bob"


def test_float_rounding_does_not_refuse_a_due_token() -> None:
    clock = Clock(0.0)
    limits = RateLimiter(Budget(rate=0.1, burst=1), Budget(rate=0.1, burst=1), clock=clock)
    limits.check("alice", False)
    for _ in range(9):
        clock.now += 1.0
        with pytest.raises(RateLimited):
            limits.check("alice", False)
    clock.now += 1.0
    # Ten refills of 0.1 add up to 0.999… in floating point; the token is due all the same.
    limits.check("alice", False)


def test_a_clock_stepping_back_does_not_drain_the_bucket() -> None:
    clock = Clock(100.0)
    limits = limiter(clock)
    limits.check("alice", False)
    clock.now = 50.0
    limits.check("alice", False)
    clock.now = 102.0
    limits.check("alice", False)


def test_short_waits_are_not_shown_as_zero() -> None:
    clock = Clock()
    limits = limiter(clock)
    take(limits, "alice", True, 5)
    clock.now += 0.099
    with pytest.raises(RateLimited, match=r"retry in 0\.1 s$") as refused:
        limits.check("alice", True)
    assert refused.value.retry_after == pytest.approx(0.001)


@pytest.mark.parametrize(("rate", "burst", "message"), [(1.0, 0.5, "burst must be at least 1"), (0.0, 5, "positive")])
def test_budgets_that_could_never_admit_anything_are_refused(rate: float, burst: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Budget(rate=rate, burst=burst)


def test_budget_describes_itself_per_minute_or_per_second() -> None:
    assert Budget(0.5, 10).describe() == "30/min (bursts of 10)"
    assert Budget(50, 200).describe() == "50/s (bursts of 200)"
