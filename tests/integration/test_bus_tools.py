"""The generic bus tools through the registry and gateway, against the sandbox's real services."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fleetbus.gateway import Caller
from fleetbus.guard import audit
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.integration.calls import ok, run

pytestmark = pytest.mark.sandbox

HOSTNAME1 = {
    "service": "org.freedesktop.hostname1",
    "path": "/org/freedesktop/hostname1",
    "interface": "org.freedesktop.hostname1",
}
SYSTEMD = {
    "service": "org.freedesktop.systemd1",
    "path": "/org/freedesktop/systemd1",
    "interface": "org.freedesktop.systemd1.Manager",
}
FLEET = {"path": "/com/example/Fleet1", "interface": "com.example.Fleet1"}


async def test_hostname_property_matches_the_sandbox_hostname(runtime: Runtime, sandbox: Sandbox) -> None:
    result = await ok(runtime, "get_property", **HOSTNAME1, property="Hostname")
    assert result == {"property": "Hostname", "signature": "s", "value": sandbox.hostname}


async def test_list_services_shows_running_and_activatable_services(runtime: Runtime) -> None:
    await ok(runtime, "get_property", **HOSTNAME1, property="Hostname")  # make sure it is running
    result = await ok(runtime, "list_services")
    rows = {row["name"]: row for row in result["services"]}
    assert rows["org.freedesktop.hostname1"]["running"] is True
    assert rows["org.freedesktop.hostname1"]["process"] == "systemd-hostnamed"
    assert rows["org.freedesktop.hostname1"]["unit"] == "systemd-hostnamed.service"
    assert rows["org.freedesktop.systemd1"]["unit"] == "init.scope"
    # The process names are one host.metrics read through the gateway, in the audit log like any other read.
    records = audit.query(runtime.gateway.audit_log.directory, limit=1000)
    names_read = [r for r in records if r.get("operation", {}).get("member") == "process_names"]
    assert names_read
    assert names_read[-1]["operation"]["kind"] == "host.metrics"
    assert names_read[-1]["event"] == "succeeded"
    for name in (
        "org.freedesktop.timedate1",
        "org.freedesktop.locale1",
        "org.freedesktop.login1",
        "org.freedesktop.PolicyKit1",
    ):
        assert rows[name]["activatable"] is True


async def test_list_services_filters_and_limits(runtime: Runtime) -> None:
    result = await ok(runtime, "list_services", pattern="org.freedesktop.l*", limit=1)
    assert result["total"] == 2  # locale1, login1
    assert [row["name"] for row in result["services"]] == ["org.freedesktop.locale1"]


async def test_introspect_lists_start_unit_with_its_signature(runtime: Runtime) -> None:
    result = await ok(runtime, "introspect", service=SYSTEMD["service"], path=SYSTEMD["path"])
    manager = next(i for i in result["interfaces"] if i["name"] == "org.freedesktop.systemd1.Manager")
    start = next(m for m in manager["methods"] if m["name"] == "StartUnit")
    assert (start["in"], start["out"], start["args"], start["returns"]) == ("ss", "o", "name, mode", "job")
    assert "org.freedesktop.DBus.Properties" in result["standard_interfaces"]
    assert "unit" in result["children"]


async def test_introspect_of_a_missing_interface_names_the_ones_there(runtime: Runtime) -> None:
    result = await run(runtime, "introspect", **{**HOSTNAME1, "interface": "org.freedesktop.hostname2"})
    assert result.is_error
    assert "no interface 'org.freedesktop.hostname2'" in result.text
    assert "org.freedesktop.hostname1" in result.text


async def test_call_method_list_names_includes_hostname1(runtime: Runtime) -> None:
    await ok(runtime, "get_property", **HOSTNAME1, property="Hostname")
    result = await ok(
        runtime,
        "call_method",
        service="org.freedesktop.DBus",
        path="/org/freedesktop/DBus",
        interface="org.freedesktop.DBus",
        method="ListNames",
    )
    assert result["signature"] == "as"
    assert "org.freedesktop.hostname1" in result["values"][0]


async def test_call_method_returns_named_typed_values(runtime: Runtime) -> None:
    result = await ok(runtime, "call_method", **SYSTEMD, method="GetUnit", args=["dbus.service"])
    assert result == {"signature": "o", "values": ["/org/freedesktop/systemd1/unit/dbus_2eservice"], "names": ["unit"]}


async def test_a_wrongly_typed_argument_names_the_argument(runtime: Runtime) -> None:
    result = await run(runtime, "call_method", **SYSTEMD, method="GetUnit", args=[5])
    assert result.is_error
    assert result.text == "argument 0 ('name'): expected string, got integer 5"


async def test_wrong_argument_count_is_an_error(runtime: Runtime) -> None:
    result = await run(runtime, "call_method", **SYSTEMD, method="GetUnit", args=["a", "b"])
    assert result.is_error
    assert result.text == "arguments: expected 1 argument for signature 's', got 2 arguments"


async def test_an_unknown_service_is_named(runtime: Runtime) -> None:
    result = await run(
        runtime, "call_method", service="org.example.Missing", path="/", interface="org.example.X", method="Foo"
    )
    assert result.is_error
    assert result.text.startswith("the system bus has no service 'org.example.Missing' (argument 'service')")


async def test_an_unknown_method_suggests_close_names(runtime: Runtime) -> None:
    result = await run(runtime, "call_method", **SYSTEMD, method="GetUnitt", args=["x"])
    assert result.is_error
    assert result.text.startswith(
        "org.freedesktop.systemd1.Manager has no method 'GetUnitt' (argument 'method'); did you mean GetUnit"
    )


async def test_an_unknown_object_is_named(runtime: Runtime) -> None:
    target = {**SYSTEMD, "path": "/org/nothing/here"}
    result = await run(runtime, "call_method", **target, method="GetUnit", args=["x"])
    assert result.is_error
    expected = (
        "org.freedesktop.systemd1 has no object '/org/nothing/here' (argument 'path') (list_objects shows its objects)"
    )
    assert result.text == expected
    # With an explicit signature nothing is introspected first; the service's own error is told the same way.
    result = await run(runtime, "call_method", **target, method="GetUnit", args=["x"], signature="s")
    assert result.is_error
    assert result.text == expected


async def test_a_method_that_never_answers_times_out_within_the_deadline(
    runtime: Runtime, example_service: str
) -> None:
    started = time.monotonic()
    result = await run(runtime, "call_method", service=example_service, **FLEET, method="GetNoReply", timeout=1)
    elapsed = time.monotonic() - started
    assert result.is_error
    assert "no reply within 1 s" in result.text
    assert elapsed < 2.0
    # The connection still serves.
    again = await ok(runtime, "call_method", service=example_service, **FLEET, method="GetAfter", args=[0.01])
    assert again["values"] == [True]


async def test_timeouts_above_the_maximum_are_refused(runtime: Runtime) -> None:
    result = await run(runtime, "call_method", **SYSTEMD, method="GetUnit", args=["x"], timeout=10_000)
    assert result.is_error
    assert "timeout" in result.text


async def test_changes_are_refused_under_the_readonly_default(runtime: Runtime) -> None:
    result = await run(runtime, "call_method", **SYSTEMD, method="RestartUnit", args=["web.service", "replace"])
    assert result.is_error
    assert result.text == (
        "refused by policy rule 'default-deny': no rule allows this under the readonly preset "
        "(routine: restarts a unit)"
    )
    result = await run(runtime, "set_property", **HOSTNAME1, property="Hostname", value="x")
    assert result.is_error
    assert "read-only" in result.text  # Hostname is a read-only property in hostname1's introspection


async def test_set_property_is_refused_under_readonly_for_writable_properties(runtime: Runtime) -> None:
    result = await run(runtime, "set_property", **SYSTEMD, property="LogLevel", value="debug")
    assert result.is_error
    assert result.text.startswith("refused by policy rule 'default-deny'")
    assert "(dangerous: writes org.freedesktop.systemd1.Manager.LogLevel: changes or silences" in result.text


async def test_get_properties_reads_a_whole_interface(runtime: Runtime, sandbox: Sandbox) -> None:
    result = await ok(runtime, "get_properties", **HOSTNAME1)
    assert result["properties"]["Hostname"] == sandbox.hostname
    assert result["properties"]["StaticHostname"] == sandbox.hostname


async def test_list_objects_walks_and_stops_at_max_nodes(runtime: Runtime) -> None:
    result = await ok(runtime, "list_objects", service=SYSTEMD["service"], max_nodes=5)
    assert len(result["objects"]) == 5
    assert result["stopped_early"] is True
    paths = [o["path"] for o in result["objects"]]
    assert paths[0] == "/"
    assert "/org/freedesktop/systemd1" in paths


async def test_wait_signal_collects_job_removed(runtime: Runtime, sandbox: Sandbox) -> None:
    sandbox.write_unit("signal-probe.service", "[Service]\nType=oneshot\nExecStart=/bin/true\n")
    waiting = asyncio.create_task(
        ok(
            runtime,
            "wait_signal",
            service=SYSTEMD["service"],
            interface=SYSTEMD["interface"],
            member="JobRemoved",
            timeout=10,
            max_count=1,
        )
    )
    await asyncio.sleep(0.3)
    await asyncio.to_thread(sandbox.systemd, "StartUnit", "ss", "signal-probe.service", "replace")
    result = await waiting
    assert result["count"] == 1
    signal = result["signals"][0]
    assert signal["member"] == "JobRemoved"
    assert signal["signature"] == "uoss"
    assert signal["args"][2] == "signal-probe.service"
    assert signal["args"][3] == "done"


async def test_wait_signal_times_out_with_nothing(runtime: Runtime, example_service: str) -> None:
    result = await ok(runtime, "wait_signal", service=example_service, member="Echoed", timeout=0.3)
    assert result["count"] == 0
    assert result["timed_out"] is True


async def test_session_bus_is_reachable(runtime: Runtime) -> None:
    result = await ok(runtime, "list_services", bus="session")
    assert result["bus"] == "session"
    assert "org.freedesktop.DBus" in [row["name"] for row in result["services"]]


async def test_invalid_arguments_are_named(runtime: Runtime) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"service": "not a name", "path": "/", "interface": "a.b", "property": "x"}, "service"),
        ({**HOSTNAME1, "path": "no-slash", "property": "x"}, "path"),
        ({**HOSTNAME1, "property": "x", "bus": "nope"}, "bus"),
        ({**HOSTNAME1, "property": "x", "extra": 1}, "extra"),
        ({**HOSTNAME1}, "property"),
    ]
    for arguments, named in cases:
        result = await runtime.registry.run(runtime.context(Caller("test")), "get_property", arguments)
        assert result.is_error, arguments
        assert named in result.text, (arguments, result.text)
