"""The introspection cache holds at most its byte budget, least recently used first out, and drops entries by
age on a timer even when nobody reads them."""

from __future__ import annotations

import asyncio
import time

from fleetbus.dbus.introspect import IntrospectionCache, ObjectInfo, approximate_size


def info(path: str, xml_chars: int) -> ObjectInfo:
    return ObjectInfo(path, (), (), "x" * xml_chars)


def test_bytes_stay_under_the_cap_ten_times_past_it() -> None:
    cap = 1024 * 1024
    cache = IntrospectionCache(max_bytes=cap)
    one = info("/a", 40_000)
    per_entry = approximate_size(one)
    fits = cap // per_entry
    for index in range(10 * fits):
        cache.put("link", ":1.1", f"/o/{index}", info(f"/o/{index}", 40_000))
        assert cache.bytes <= cap
    assert len(cache) == fits
    assert cache.bytes == fits * per_entry
    # The newest are kept, the oldest went first.
    assert cache.get("link", ":1.1", f"/o/{10 * fits - 1}") is not None
    assert cache.get("link", ":1.1", "/o/0") is None


def test_a_read_keeps_an_entry_and_replacing_one_does_not_count_it_twice() -> None:
    cache = IntrospectionCache(max_bytes=3 * approximate_size(info("/", 1000)))
    for path in ("/a", "/b", "/c"):
        cache.put("l", "o", path, info(path, 1000))
    cache.put("l", "o", "/a", info("/a", 1000))
    assert cache.bytes == 3 * approximate_size(info("/", 1000))
    assert cache.get("l", "o", "/b") is not None  # /c is now the least recently used
    cache.put("l", "o", "/d", info("/d", 1000))
    assert cache.get("l", "o", "/c") is None
    assert {p for p in ("/a", "/b", "/d") if cache.get("l", "o", p)} == {"/a", "/b", "/d"}


def test_an_object_bigger_than_the_whole_cache_is_not_kept() -> None:
    cache = IntrospectionCache(max_bytes=100_000)
    cache.put("l", "o", "/small", info("/small", 100))
    cache.put("l", "o", "/huge", info("/huge", 1_000_000))
    assert cache.get("l", "o", "/huge") is None
    assert cache.get("l", "o", "/small") is not None


def test_forgetting_an_owner_gives_its_bytes_back() -> None:
    cache = IntrospectionCache()
    cache.put("l", ":1.5", "/a", info("/a", 5000))
    cache.put("l", ":1.6", "/a", info("/a", 5000))
    cache.forget_owner("l", ":1.5")
    assert len(cache) == 1
    assert cache.bytes == approximate_size(info("/a", 5000))


async def test_entries_expire_on_a_timer_without_being_read() -> None:
    cache = IntrospectionCache(max_age=0.2)
    for index in range(50):
        cache.put("l", "o", f"/{index}", info(f"/{index}", 1000))
    assert len(cache) == 50
    deadline = time.monotonic() + 10
    while len(cache) and time.monotonic() < deadline:  # noqa: ASYNC110 — polling the timer's effect, with a deadline
        await asyncio.sleep(0.05)
    assert len(cache) == 0
    assert cache.bytes == 0
    cache.close()


def test_without_a_loop_entries_still_expire_when_read() -> None:
    cache = IntrospectionCache(max_age=0.01)
    cache.put("l", "o", "/a", info("/a", 10))
    time.sleep(0.05)
    assert cache.get("l", "o", "/a") is None
    assert cache.bytes == 0
