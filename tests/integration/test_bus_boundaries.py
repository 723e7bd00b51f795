"""Who a call reaches and what it may do to fleetbus itself, on the sandbox's real bus: a unique name that owns
several well-known names is judged under each of them, and no client may change the state of the connection
every client shares (match rules, owned names, monitoring)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from fleetbus.dbus.errors import BusError
from fleetbus.dbus.link import NAME_OWNER_CHANGED_RULE
from fleetbus.gateway import Caller, GatewayError, OperationDenied, dbus_call
from fleetbus.operation import DBUS_WATCH, Operation
from fleetbus.sandbox import Sandbox
from tests.integration.calls import ok
from tests.integration.effects_setup import guarded, running, stop
from tests.services.spawn import example_service

pytestmark = pytest.mark.sandbox

BUS = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
FLEET = ("/com/example/Fleet1", "com.example.Fleet1")


async def test_a_unique_name_owning_two_names_is_judged_under_each(sandbox: Sandbox, tmp_path: Path) -> None:
    suffix = secrets.token_hex(3)
    allowed, denied = f"com.example.Open{suffix}", f"com.example.Closed{suffix}"
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[[classify]]\ninterface = "com.example.Fleet1"\nmember = "Echo"\nrisk = "read"\nreason = "answers"\n'
        f'[[rule]]\nname = "closed"\nverdict = "deny"\nreason = "nobody talks to it"\ndestination = "{denied}"\n'
    )
    caller = Caller("test")
    with example_service(sandbox.system_bus_address, allowed, denied):
        async with guarded(sandbox, tmp_path / "state", safety="readonly", policy_file=policy) as runtime:
            owner = dbus_call(*BUS, "GetNameOwner", "s", [allowed], host="local")
            unique = str((await runtime.gateway.call(owner, caller)).body[0])
            by_open_name = await runtime.gateway.call(
                dbus_call(allowed, *FLEET, "Echo", "s", ["hi"], host="local"), caller
            )
            assert by_open_name.body == ["hi"]
            with pytest.raises(OperationDenied) as refused:
                await runtime.gateway.call(dbus_call(unique, *FLEET, "Echo", "s", ["hi"], host="local"), caller)
            assert refused.value.decision.rule == "closed"
            assert refused.value.operation.destination == denied


async def test_no_client_changes_the_connection_fleetbus_shares(sandbox: Sandbox, tmp_path: Path) -> None:
    worker = running(sandbox, "worker")
    reader = Caller("reader", scopes=frozenset({"read"}))
    # Rate limits would hide the flood's effect: this is about the connection, not the limiter.
    async with guarded(sandbox, tmp_path / "state", read_rate=1e9, read_burst=1e9) as runtime:
        try:
            refusals: list[str] = []
            for index in range(600):
                rule = f"type='signal',interface='com.example.Flood',member='M{index}'"
                try:
                    await runtime.gateway.call(dbus_call(*BUS, "AddMatch", "s", [rule], host="local"), reader)
                except OperationDenied as exc:
                    refusals.append(exc.decision.rule)
                except (GatewayError, BusError):
                    refusals.append("bus")
            # Another client's unit job subscribes to JobRemoved on the same connection: it still works.
            restarted = await ok(runtime, "unit_job", unit=worker, action="restart")
            assert restarted["result"] == "done"
            assert set(refusals) == {"own-connection"}
            assert len(refusals) == 600
            for member, signature, args in (
                ("RemoveMatch", "s", [NAME_OWNER_CHANGED_RULE]),
                ("RequestName", "su", ["com.example.Stolen", 0]),
                ("ReleaseName", "s", ["com.example.Stolen"]),
                ("Hello", "", []),
            ):
                with pytest.raises(OperationDenied) as refused:
                    await runtime.gateway.call(dbus_call(*BUS, member, signature, args, host="local"), Caller("test"))
                assert refused.value.decision.rule == "own-connection", member
                assert "fleetbus's own connection" in refused.value.decision.reason
            monitor = dbus_call(
                BUS[0], BUS[1], "org.freedesktop.DBus.Monitoring", "BecomeMonitor", "asu", [[], 0], host="local"
            )
            with pytest.raises(OperationDenied) as refused:
                await runtime.gateway.call(monitor, Caller("test"))
            assert refused.value.decision.rule == "own-connection"
        finally:
            stop(sandbox, worker)


async def test_a_flood_of_signal_watches_leaves_room_for_fleetbus_s_own_match_rules(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # Each watch with its own filter is a match rule on the shared connection; the bus allows 512 of them.
    # From many clients: one client alone is stopped sooner, at signal_watches_per_client (test_bounds_signal_watches).
    worker = running(sandbox, "worker")
    async with guarded(sandbox, tmp_path / "state", read_rate=1e9, read_burst=1e9) as runtime:
        try:
            watches = [
                asyncio.create_task(
                    runtime.gateway.watch(
                        Operation(DBUS_WATCH, "local", interface="com.example.Flood", member=f"M{index}"),
                        Caller(f"watcher-{index}", scopes=frozenset({"read"})),
                        timeout=6,
                        max_count=1,
                    )
                )
                for index in range(600)
            ]
            await asyncio.sleep(2)  # the watches are in place
            restarted = await ok(runtime, "unit_job", unit=worker, action="restart")
            assert restarted["result"] == "done"
            outcomes = await asyncio.gather(*watches, return_exceptions=True)
            refused = [o for o in outcomes if isinstance(o, BusError)]
            assert refused, "the watches beyond the cap are refused"
            # The bus connection's cap (256 client rules) or fleetbus's own in all (signal_watches_max, 512).
            assert all("signal watches for" in str(o) for o in refused)
        finally:
            stop(sandbox, worker)
