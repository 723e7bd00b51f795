"""Signal watches counted per client and in total (dbus/signals.py WatchLimits)."""

from __future__ import annotations

import pytest

from fleetbus.dbus.signals import WatchLimitReached, WatchLimits


def test_signal_watches_are_counted_per_client_and_in_total_and_released_once() -> None:
    limits = WatchLimits(per_client=2, total=3)
    first = limits.acquire("a")
    limits.acquire("a")
    with pytest.raises(WatchLimitReached, match="a already holds 2"):
        limits.acquire("a")
    limits.acquire("b")
    with pytest.raises(WatchLimitReached, match="3 signal watches for all clients"):
        limits.acquire("c")
    first()
    first()  # released twice counts once
    assert limits.held("a") == 1
    assert limits.held() == 2
    with limits.hold("c"):
        assert limits.held("c") == 1
    assert limits.held("c") == 0
