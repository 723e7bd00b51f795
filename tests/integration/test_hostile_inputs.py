"""Inputs that used to reach an internal error (issue 11, item 8) are refused as results naming the argument:
NaN and infinities in numeric arguments, NULs in strings, an explicit signature the introspection contradicts;
and a default never lies outside its configured bound."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.integration.calls import ok, run

pytestmark = pytest.mark.sandbox
SYSTEMD = {
    "service": "org.freedesktop.systemd1",
    "path": "/org/freedesktop/systemd1",
    "interface": "org.freedesktop.systemd1.Manager",
}
HOSTNAME = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("tool", "arguments", "argument"),
    [
        ("top_processes", {}, "sample"),
        ("call_method", {**SYSTEMD, "method": "GetUnit", "args": ["dbus.service"]}, "timeout"),
        ("get_property", {**HOSTNAME, "property": "Hostname"}, "timeout"),
        ("wait_signal", {"member": "JobRemoved"}, "timeout"),
        ("health_check", {}, "stuck_after"),
    ],
)
async def test_a_non_finite_number_is_refused_naming_the_argument(
    runtime: Runtime, tool: str, arguments: dict[str, Any], argument: str, value: float
) -> None:
    result = await run(runtime, tool, **arguments, **{argument: value})
    assert result.is_error
    assert f"invalid argument '{argument}': must be a finite number" in result.text
    assert "internal error" not in result.text


async def test_a_non_finite_number_inside_call_arguments_is_named_where_it_is(runtime: Runtime) -> None:
    result = await run(runtime, "call_method", **SYSTEMD, method="GetUnit", args=[[math.nan]])
    assert result.is_error
    assert "invalid argument 'args[0][0]': must be a finite number, got NaN" in result.text


@pytest.mark.parametrize(
    ("tool", "arguments", "argument"),
    [
        ("query_journal", {"grep": "a\x00b"}, "grep"),
        ("query_journal", {"unit": "dbus\x00.service"}, "unit"),
        ("unit_status", {"unit": "dbus.service\x00"}, "unit"),
        ("call_method", {**SYSTEMD, "method": "GetUnit", "args": ["dbus\x00.service"]}, "args[0]"),
    ],
)
async def test_a_nul_is_refused_naming_the_argument(
    runtime: Runtime, tool: str, arguments: dict[str, Any], argument: str
) -> None:
    result = await run(runtime, tool, **arguments)
    assert result.is_error
    assert f"invalid argument '{argument}': contains a NUL character" in result.text


@pytest.mark.parametrize("tool", ["call_method", "explain"])
@pytest.mark.parametrize("signature", ["s", "sss", "u"])
async def test_an_explicit_signature_the_introspection_contradicts_is_a_clear_error(
    runtime: Runtime, tool: str, signature: str
) -> None:
    result = await run(
        runtime, tool, **SYSTEMD, method="StartUnit", signature=signature, args=["dbus.service", "replace"][:1]
    )
    assert result.is_error
    assert f"invalid argument 'signature': {signature!r} does not match org.freedesktop.systemd1.Manager.StartUnit" in (
        result.text
    )
    assert "'ss' (name s, mode s)" in result.text
    assert "internal error" not in result.text


async def test_the_introspected_signature_given_explicitly_still_works(runtime: Runtime) -> None:
    result = await ok(runtime, "call_method", **SYSTEMD, method="GetUnit", signature="s", args=["dbus.service"])
    assert result["signature"] == "o"


async def test_wait_signals_default_timeout_keeps_to_a_smaller_max_call_timeout(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    built = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", call_timeout=1, max_call_timeout=2))
    try:
        started = time.monotonic()
        result = await ok(
            built,
            "wait_signal",
            **{**HOSTNAME, "interface": "org.freedesktop.DBus.Properties"},
            member="PropertiesChanged",
        )
        elapsed = time.monotonic() - started
    finally:
        built.close()
    assert result["count"] == 0
    assert 1.5 < elapsed < 10, elapsed


async def test_a_cpu_sample_longer_than_the_call_deadline_is_given_the_time_it_takes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    built = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", call_timeout=1, max_call_timeout=3))
    try:
        sampled = await ok(built, "top_processes", sample=1.5, limit=3)
        too_long = await run(built, "top_processes", sample=4)
    finally:
        built.close()
    assert len(sampled["processes"]) == 3
    assert too_long.is_error
    assert "invalid argument 'sample': must be less than the configured max_call_timeout (3 s)" in too_long.text
