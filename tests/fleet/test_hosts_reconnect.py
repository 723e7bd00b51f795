"""Hosts under faults, through the runtime: a call to a faulted host fails within its deadline (+1 s) naming the
host and the cause while the others answer; after sshd is killed and comes back, the next call reconnects with no
restart, and tool packs following a host's bus follow it again; host keys are never trusted silently."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleetbus.config import PackSettings
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fault, Fleet, faults
from fleetbus.tools.packs import PackManager
from fleetbus.tools.registry import ToolRegistry
from tests.fleet.conftest import accepted_logins
from tests.fleet.test_hosts_runtime import HOSTNAME_PROPERTY, built, call, close, ok

pytestmark = [pytest.mark.fleet, pytest.mark.xdist_group("fleet-reconnect")]

DEADLINE = 2.0
PROBE = "org.example.Probe"


@contextmanager
def within(seconds: float) -> Iterator[None]:
    began = time.monotonic()
    yield
    took = time.monotonic() - began
    assert took < seconds, f"took {took:.2f} s, allowed {seconds:g} s"


@contextmanager
def fault(fleet: Fleet, host: str, kind: Fault) -> Iterator[None]:
    faults.apply(fleet, host, kind)
    try:
        yield
    finally:
        faults.apply(fleet, host, Fault.CLEAR)


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.1)


@pytest.fixture
async def runtime(fleet_sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[Runtime]:
    made = await built(fleet_sandbox, tmp_path / "state", connect_timeout=DEADLINE, call_timeout=DEADLINE)
    yield made
    await close(made)


async def hostname(runtime: Runtime, host: str) -> Any:
    return await call(runtime, "get_property", None, **HOSTNAME_PROPERTY, host=host)


async def test_a_dropped_host_fails_within_its_deadline_while_another_answers(runtime: Runtime, fleet: Fleet) -> None:
    for name in ("host01", "host02"):
        assert (await hostname(runtime, name)).structured["value"] == name
    with fault(fleet, "host02", Fault.DROP):
        began = time.monotonic()
        dropped, healthy = await asyncio.gather(hostname(runtime, "host02"), hostname(runtime, "host01"))
        assert time.monotonic() - began < DEADLINE + 1
        assert dropped.is_error
        assert dropped.text.startswith("host02: ")
        assert f"no reply within {DEADLINE:g} s" in dropped.text
        assert healthy.structured["value"] == "host01"


async def test_a_frozen_bus_fails_within_its_deadline_and_answers_again_after(runtime: Runtime, fleet: Fleet) -> None:
    assert (await hostname(runtime, "host03")).structured["value"] == "host03"
    with fault(fleet, "host03", Fault.FREEZE_BUS):
        with within(DEADLINE + 1):
            frozen = await hostname(runtime, "host03")
        assert frozen.is_error
        assert frozen.text.startswith("host03: ")
        assert "no reply" in frozen.text
        assert (await hostname(runtime, "host01")).structured["value"] == "host01"
    assert (await hostname(runtime, "host03")).structured["value"] == "host03"


async def test_after_sshd_is_killed_and_back_the_next_call_reconnects_and_packs_follow_again(
    runtime: Runtime, fleet: Fleet
) -> None:
    changes = 0

    def changed() -> None:
        nonlocal changes
        changes += 1

    packs = PackManager(
        runtime.gateway,
        ToolRegistry(),
        [PackSettings(name="probe", service="org.example.*")],
        host="host02",
        on_services_changed=changed,
        debounce=0.05,
    )
    await packs.start()
    try:
        first_link = runtime.gateway.hosts.peek_link("host02", "system")
        assert first_link is not None
        made = runtime.gateway.hosts.connections_made
        faults.apply(fleet, "host02", Fault.KILL_SSHD)
        try:

            async def dropped() -> bool:
                return runtime.gateway.hosts.peek_link("host02", "system") is None

            await eventually(dropped, 10, "the link to host02 drops with its sshd")
            with within(DEADLINE + 1):
                down = await hostname(runtime, "host02")
            assert down.is_error
            assert down.text.startswith("host02: ")
            assert (await hostname(runtime, "host01")).structured["value"] == "host01"
        finally:
            faults.apply(fleet, "host02", Fault.CLEAR)
        # No restart: the next call connects again by itself.
        back = await ok(runtime, "get_property", None, **HOSTNAME_PROPERTY, host="host02")
        assert back["value"] == "host02"
        assert runtime.gateway.hosts.connections_made > made

        async def refollowed() -> bool:
            subscription = packs._subscriptions.get("system")
            link = runtime.gateway.hosts.peek_link("host02", "system")
            return (
                subscription is not None and link is not None and subscription.link is link and link is not first_link
            )

        await eventually(refollowed, 20, "the packs' watch re-opens on host02's new link")
        # A service appearing on host02 now reaches the packs through the new link.
        host = runtime.gateway.hosts.get("host02")
        connection = await host.connection()
        probe = await connection.open_link("system", connect_timeout=DEADLINE)
        try:
            before = changes
            await probe.call_bus("RequestName", "su", PROBE, 0, timeout=DEADLINE)

            async def heard() -> bool:
                return changes > before and f"pack:probe:{PROBE}" in packs.methods

            await eventually(heard, 10, f"the packs hear {PROBE} appear on host02")
        finally:
            probe.close()
    finally:
        await packs.stop()


async def test_an_unknown_host_key_is_reported_with_its_fingerprint_and_no_login(
    fleet_sandbox: Sandbox, fleet: Fleet, tmp_path: Path
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(
        "".join(line for line in fleet.paths.known_hosts.read_text().splitlines(True) if "host02" not in line)
    )
    runtime = await built(fleet_sandbox, tmp_path / "state", known_hosts=known, connect_timeout=DEADLINE)
    try:
        logins = accepted_logins(fleet.host("host02"))
        listed = await ok(runtime, "list_hosts", None, format="json")
        rows = {row["name"]: row for row in listed["hosts"]}
        assert rows["host01"]["state"] == "reachable"
        assert rows["host02"]["state"] == "unknown-hostkey"
        assert rows["host02"]["fingerprint"].startswith("SHA256:")
        assert "fleetbus hosts trust host02" in rows["host02"]["reason"]
        refused = await hostname(runtime, "host02")
        assert refused.is_error
        assert "unknown-hostkey" in refused.text
        assert rows["host02"]["fingerprint"] in refused.text
        assert accepted_logins(fleet.host("host02")) == logins
    finally:
        await close(runtime)


async def test_a_changed_host_key_is_refused_loudly(fleet_sandbox: Sandbox, fleet: Fleet, tmp_path: Path) -> None:
    simulated = fleet.host("host03")
    impostor = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()
    known = tmp_path / "known_hosts"
    kept = [line for line in fleet.paths.known_hosts.read_text().splitlines(True) if "host03" not in line]
    known.write_text("".join(kept) + f"host03,{simulated.address} {impostor[0]} {impostor[1]}\n")
    runtime = await built(fleet_sandbox, tmp_path / "state", known_hosts=known, connect_timeout=DEADLINE)
    try:
        logins = accepted_logins(simulated)
        refused = await hostname(runtime, "host03")
        assert refused.is_error
        assert "changed-hostkey" in refused.text
        assert "possible attack" in refused.text
        assert accepted_logins(simulated) == logins
        assert (await hostname(runtime, "host01")).structured["value"] == "host01"
    finally:
        await close(runtime)
