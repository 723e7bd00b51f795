"""After the bus goes away and comes back, the long-lived subscriptions re-open by themselves: the host registry
reconnects the link the tool packs keep (with backoff), the packs' name watch opens on the new link, and a
service appearing after the restart gets its tools — with the registry's listeners told (list_changed)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fleetbus.config import PackSettings, load_settings
from fleetbus.runtime import Runtime
from tests.services.spawn import example_service


@contextmanager
def bus_daemon(socket: Path) -> Iterator[str]:
    """A dbus-daemon of its own at `socket`, stopped by PID."""
    process = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address=unix:path={socket}", "--print-address"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        assert address.startswith("unix:"), address
        yield f"unix:path={socket}"
    finally:
        process.kill()
        process.wait(timeout=10)


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = check()
        if done if isinstance(done, bool) else await done:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.05)


async def test_packs_follow_the_bus_again_after_it_restarts(tmp_path: Path) -> None:
    socket = tmp_path / "bus"
    settings = load_settings(
        system_bus=f"unix:path={socket}",
        state_dir=tmp_path / "state",
        audit_journal=False,
        builtin_packs=False,
        packs=[PackSettings(name="example", service="com.example.*")],
    )
    with bus_daemon(socket) as address:
        runtime = Runtime.build(settings)
        changed: list[float] = []
        runtime.registry.add_listener(lambda: changed.append(time.monotonic()))
        await runtime.start(follow=True)
        first = runtime.gateway.hosts.peek_link("local", "system")
        assert first is not None
    try:
        # The daemon is gone: the link drops, and the registry keeps trying (with backoff) to bring it back.
        await eventually(lambda: runtime.gateway.hosts.peek_link("local", "system") is None, 10, "the link drops")
        with bus_daemon(socket) as address:

            def relinked() -> bool:
                link = runtime.gateway.hosts.peek_link("local", "system")
                subscription = runtime.packs._subscriptions.get("system")
                return link is not None and link is not first and subscription is not None and subscription.link is link

            await eventually(relinked, 20, "the packs' watch re-opens on the new link")
            before = len(changed)
            with example_service(address, "com.example.Fleet"):

                def has_tools() -> bool:
                    return any(spec.group == "pack:example:com.example.Fleet" for spec in runtime.registry)

                await eventually(has_tools, 20, "the example service gets its tools after the restart")
                assert len(changed) > before  # the server turns this into tools/list_changed
    finally:
        await runtime.stop()
        runtime.close()
