"""Introspecting hundreds of real systemd unit objects keeps the introspection cache under its byte cap, and
the server's memory with it (a unit object costs ~180 kB parsed; 440 of them used to stay, +89 MB)."""

from __future__ import annotations

import gc

import pytest

from fleetbus.dbus.introspect import DEFAULT_MAX_BYTES
from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from tests.resources_used import MiB, rss

pytestmark = pytest.mark.sandbox

SYSTEMD = "org.freedesktop.systemd1"
UNITS = 480


def unit_path(index: int) -> str:
    # systemd loads a unit object for any name it is asked about (bus path escaping: "-" is _2d, "." is _2e).
    return f"/org/freedesktop/systemd1/unit/bounds_2dprobe_2d{index}_2eservice"


async def test_hundreds_of_unit_objects_keep_the_cache_under_its_byte_cap(runtime: Runtime) -> None:
    cache = runtime.gateway.hosts.get("local").cache
    assert cache.max_bytes == DEFAULT_MAX_BYTES
    caller = Caller("bounds")
    # Warm up: the first calls build connections and import what the rest reuse.
    for index in range(20):
        await runtime.gateway.introspect(SYSTEMD, unit_path(index), caller, host="local")
    gc.collect()
    before = rss()
    peak = cache.bytes
    sizes = []
    for index in range(20, UNITS):
        info = await runtime.gateway.introspect(SYSTEMD, unit_path(index), caller, host="local")
        assert info.interface("org.freedesktop.systemd1.Unit") is not None
        sizes.append(len(info.xml))
        peak = max(peak, cache.bytes)
    gc.collect()
    grown = rss() - before
    held = sum(sizes) * 4
    # What was introspected is several times the cap; the cache never held more than the cap.
    assert held > 4 * DEFAULT_MAX_BYTES, f"only {held / MiB:.1f} MiB introspected: not past the cap"
    assert peak <= DEFAULT_MAX_BYTES
    assert len(cache) < UNITS
    # Memory: the cap plus room for the allocator's slack — not the ~80 MB these objects cost when all kept.
    assert grown <= DEFAULT_MAX_BYTES + 16 * MiB, f"RSS grew {grown / MiB:.1f} MiB"


async def test_a_lower_cap_holds_at_ten_times_past_it(runtime: Runtime) -> None:
    cache = runtime.gateway.hosts.get("local").cache
    cache.max_bytes = 2 * MiB
    caller = Caller("bounds")
    total = 0
    for index in range(UNITS, UNITS + 150):
        info = await runtime.gateway.introspect(SYSTEMD, unit_path(index), caller, host="local")
        total += 4 * len(info.xml)
        assert cache.bytes <= cache.max_bytes
    assert total >= 10 * cache.max_bytes
