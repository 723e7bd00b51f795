"""CPU use from samples of /proc/stat counters: over which window, and when a reading has to wait."""

from __future__ import annotations

import time

from fleetbus.executors.cpu_use import (
    FIRST_WINDOW,
    MAX_AGE,
    CpuHistory,
    CpuMeter,
    CpuSample,
    CpuSampler,
    CpuUse,
    use_between,
)
from fleetbus.executors.procfs import CpuTicks


class FakeMachine:
    """A machine whose CPUs are busy `share` of the time, with a clock that only moves when told."""

    def __init__(self, share: float, cpus: int = 2) -> None:
        self.now = 100.0
        self.share = share
        self.cpus = cpus
        self.slept: list[float] = []

    def ticks(self) -> CpuTicks:
        total = int(self.now * 100 * self.cpus)
        return CpuTicks(busy=int(total * self.share), total=total)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def read_ticks(self) -> CpuTicks:
        return self.ticks()

    def meter(self) -> CpuMeter:
        return CpuMeter(clock=self.clock, sleep=self.sleep)

    async def reading(self, meter: CpuMeter) -> CpuUse:
        return await meter.reading(self.ticks(), self.read_ticks)


def test_use_between_two_samples() -> None:
    use = use_between(CpuSample(10.0, CpuTicks(100, 1000)), CpuSample(11.5, CpuTicks(250, 1300)))
    assert use.percent == 50.0
    assert use.window_s == 1.5


def test_counters_that_did_not_move_are_zero_not_an_error() -> None:
    same = CpuSample(1.0, CpuTicks(5, 10))
    assert use_between(same, CpuSample(2.0, CpuTicks(5, 10))).percent == 0.0


async def test_a_reading_with_a_sample_a_second_old_does_not_wait() -> None:
    machine = FakeMachine(share=0.25)
    meter = machine.meter()
    meter.record(machine.ticks())
    machine.now += 1.3
    use = await machine.reading(meter)
    assert machine.slept == []
    assert round(use.percent, 1) == 25.0
    assert round(use.window_s, 2) == 1.3


async def test_the_newest_sample_at_least_a_second_old_is_the_baseline() -> None:
    machine = FakeMachine(share=0.5)
    meter = machine.meter()
    for _ in range(5):  # a sampler's samples, one a second
        meter.record(machine.ticks())
        machine.now += 1.0
    machine.now += 0.4
    assert round((await machine.reading(meter)).window_s, 2) == 1.4


async def test_the_first_reading_waits_for_a_window() -> None:
    machine = FakeMachine(share=0.75)
    use = await machine.reading(machine.meter())
    assert machine.slept == [FIRST_WINDOW]
    assert round(use.window_s, 3) == FIRST_WINDOW
    assert round(use.percent, 1) == 75.0


async def test_a_young_sample_shortens_the_wait() -> None:
    machine = FakeMachine(share=0.1)
    meter = machine.meter()
    meter.record(machine.ticks())
    machine.now += 0.05
    use = await machine.reading(meter)
    assert [round(s, 3) for s in machine.slept] == [round(FIRST_WINDOW - 0.05, 3)]
    assert round(use.window_s, 3) == FIRST_WINDOW


async def test_a_sample_older_than_max_age_is_not_used() -> None:
    machine = FakeMachine(share=0.2)
    meter = machine.meter()
    meter.record(machine.ticks())
    machine.now += MAX_AGE + 5
    use = await machine.reading(meter)
    assert machine.slept == [FIRST_WINDOW]
    assert use.window_s < MAX_AGE


def test_history_keeps_time_order_spacing_and_a_bounded_length() -> None:
    history = CpuHistory(keep=3, spacing=0.5)
    for at in (1.0, 2.0, 1.5, 2.2, 3.0, 4.0):
        history.add(CpuSample(at, CpuTicks(0, int(at * 10))))
    assert history.baseline(4.5, min_window=0.1, max_age=10) == CpuSample(4.0, CpuTicks(0, 40))
    # 1.5 came after 2.0, 2.2 too soon after it: neither was kept; of the rest only the last three are.
    assert history.baseline(4.5, min_window=2.2, max_age=10) == CpuSample(2.0, CpuTicks(0, 20))
    assert history.baseline(4.5, min_window=3.0, max_age=10) is None


async def test_a_burst_of_readings_keeps_the_sampler_history() -> None:
    machine = FakeMachine(share=0.3)
    meter = machine.meter()
    meter.record(machine.ticks())  # the background sampler's, a second before the burst
    machine.now += 1.0
    for _ in range(100):  # a client calling as fast as it can
        machine.now += 0.001
        use = await machine.reading(meter)
    assert machine.slept == []
    assert 1.0 <= use.window_s <= 1.2


def test_the_background_sampler_records_and_stops() -> None:
    meter = CpuMeter()
    sampler = CpuSampler(meter, lambda: CpuTicks(0, time.monotonic_ns()), tick=0.01)
    try:
        deadline = time.monotonic() + 5
        while meter.history.baseline(time.monotonic(), min_window=0.02) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert meter.history.baseline(time.monotonic(), min_window=0.02) is not None
    finally:
        sampler.close()
    assert not sampler.thread.is_alive()
