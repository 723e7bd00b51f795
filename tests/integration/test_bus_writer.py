"""Calls whose bodies fill the bus socket, several at once, are all sent and answered on fleetbus's one shared
connection: dbus-fast 5.2 took a full socket at a message boundary for a broken connection and dropped it
(fleetbus.dbus.writer); found by tests/fuzz."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus.runtime import Runtime
from tests.integration.calls import ok, run

pytestmark = pytest.mark.sandbox
DBUS = {"service": "org.freedesktop.DBus", "path": "/org/freedesktop/DBus", "interface": "org.freedesktop.DBus"}


async def test_big_calls_at_once_keep_the_connection(runtime: Runtime) -> None:
    await ok(runtime, "call_method", **DBUS, method="GetId")  # connected
    big = "x" * 2_000_000  # a socket buffer holds ~200 KB
    results = await asyncio.gather(
        *(run(runtime, "call_method", **DBUS, method="NameHasOwner", args=[big]) for _ in range(8))
    )
    for result in results:
        assert not result.is_error, result.text[:300]  # none sees a dropped connection
        assert result.structured["values"] == [False]
    after = await ok(runtime, "call_method", **DBUS, method="GetId")
    assert after["values"]
