"""Helpers for the effect-based guard tests on the sandbox's real service manager: units written for one test,
their state read with busctl (outside fleetbus, so the guard under test cannot colour what is seen)."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings

SD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"


def fresh(prefix: str, suffix: str = "service") -> str:
    return f"{prefix}-{secrets.token_hex(3)}.{suffix}"


def unit_path(sandbox: Sandbox, unit: str) -> str:
    return str(
        json.loads(sandbox.busctl("--json=short", "call", SD, MANAGER_PATH, MANAGER, "LoadUnit", "s", unit))["data"][0]
    )


def unit_property(sandbox: Sandbox, unit: str, prop: str) -> Any:
    answer = sandbox.busctl("--json=short", "get-property", SD, unit_path(sandbox, unit), UNIT, prop)
    return json.loads(answer)["data"]


def active_state(sandbox: Sandbox, unit: str) -> str:
    return str(unit_property(sandbox, unit, "ActiveState"))


def invocation_id(sandbox: Sandbox, unit: str) -> str:
    return "".join(f"{byte:02x}" for byte in unit_property(sandbox, unit, "InvocationID"))


def running(sandbox: Sandbox, prefix: str, unit_section: str = "", install: str = "") -> str:
    """A long-running service of its own name, started and active when this returns."""
    name = fresh(prefix)
    text = f"[Unit]\n{unit_section}\n[Service]\nExecStart=/bin/sleep infinity\n"
    sandbox.write_unit(name, text + (f"[Install]\n{install}\n" if install else ""))
    sandbox.systemd("StartUnit", "ss", name, "replace")
    assert active_state(sandbox, name) in ("active", "activating"), name
    return name


def stop(sandbox: Sandbox, *units: str) -> None:
    for unit in units:
        sandbox.systemd("StopUnit", "ss", unit, "replace")


@asynccontextmanager
async def guarded(
    sandbox: Sandbox, state: Path, *protected: str, safety: str = "admin", **overrides: Any
) -> AsyncIterator[Runtime]:
    """A runtime over the sandbox under `safety`, with `protected` units besides the built-in ones."""
    runtime = Runtime.build(
        sandbox_settings(sandbox, state, safety=safety, protected_units=list(protected), **overrides)
    )
    try:
        yield runtime
    finally:
        runtime.close()
