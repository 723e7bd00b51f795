"""A tool whose reads all fail — the sandbox's system bus stopped (SIGSTOP of its dbus-daemon) — answers isError
naming the cause within one deadline, never success with nulls (issue 11, item 6)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.integration.calls import ok, run

pytestmark = pytest.mark.sandbox
DEADLINE = 2.0
HOSTNAME1 = "org.freedesktop.hostname1"


def bus_daemon_pid(sandbox: Sandbox) -> int:
    """The sandbox's system dbus-daemon: the one started with this sandbox's own configuration file (systemd holds
    the socket, so the socket's peer is the manager, not the daemon)."""
    config = f"--config-file={sandbox.paths.system_bus_config}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"dbus-daemon") and config in argv:
            found.append(int(entry.name))
    assert len(found) == 1, found
    return found[0]


@contextmanager
def stalled(sandbox: Sandbox) -> Iterator[None]:
    pid = bus_daemon_pid(sandbox)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
async def quick(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Runtime]:
    built = Runtime.build(sandbox_settings(sandbox, tmp_path / "state", call_timeout=DEADLINE))
    yield built
    built.close()


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("host_info", {}),
        ("time_status", {}),
        ("unit_status", {"unit": "dbus.service"}),
        ("health_check", {}),
        ("list_units", {}),
        ("list_sessions", {}),
        ("list_services", {}),
        ("list_unit_files", {}),
        ("unit_dependencies", {"unit": "dbus.service"}),
        ("get_properties", {"service": HOSTNAME1, "path": "/org/freedesktop/hostname1", "interface": HOSTNAME1}),
        ("list_objects", {"service": HOSTNAME1}),
    ],
)
async def test_a_tool_whose_reads_all_failed_says_so_within_one_deadline(
    sandbox: Sandbox, quick: Runtime, tool: str, arguments: dict[str, str]
) -> None:
    # Connected and answering before the stall — through another tool, so no answer of this one is cached.
    await ok(
        quick,
        "get_property",
        service=HOSTNAME1,
        path="/org/freedesktop/hostname1",
        interface=HOSTNAME1,
        property="Hostname",
    )
    with stalled(sandbox):
        started = time.monotonic()
        result = await run(quick, tool, **arguments)
        elapsed = time.monotonic() - started
    assert result.is_error, f"{tool} answered success while the bus was stalled: {result.text[:400]}"
    assert "no reply within 2 s" in result.text
    assert "internal error" not in result.text
    assert elapsed < DEADLINE * 1.5 + 1.0, elapsed
    await ok(quick, tool, **arguments)  # and it answers again once the bus does


async def test_system_status_reads_no_bus_and_answers_while_it_is_stalled(sandbox: Sandbox, quick: Runtime) -> None:
    with stalled(sandbox):
        started = time.monotonic()
        result = await ok(quick, "system_status")
        elapsed = time.monotonic() - started
    assert result["memory"]
    assert elapsed < DEADLINE
