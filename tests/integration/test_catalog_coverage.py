"""The catalog is complete for the services it claims to know: every method and every writable property of every
interface the sandbox's real services serve (systemd's manager, each unit type and a job; logind; hostnamed,
timedated, localed; polkit; PackageKit with a transaction; the bus daemon) has a classification.

Introspected with busctl, outside fleetbus, so what is checked is what the services really offer."""

from __future__ import annotations

import json
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

from fleetbus.guard.catalog import classify, lookup_property
from fleetbus.operation import DBUS_CALL, Operation
from fleetbus.sandbox import Sandbox
from tests.integration.effects_setup import MANAGER, MANAGER_PATH, SD, stop

pytestmark = pytest.mark.sandbox

STANDARD = {"org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer", "org.freedesktop.DBus.Properties"}
UNIT_TYPES = ("service", "socket", "slice", "scope", "mount", "swap", "timer", "path", "automount", "target", "device")
REQUIRED = {
    *(f"{SD}.{kind}" for kind in ("Manager", "Unit", "Service", "Socket", "Slice", "Scope", "Mount", "Swap")),
    *(f"{SD}.{kind}" for kind in ("Timer", "Path", "Automount", "Job")),
    "org.freedesktop.login1.Manager",
    "org.freedesktop.login1.Seat",
    "org.freedesktop.hostname1",
    "org.freedesktop.timedate1",
    "org.freedesktop.locale1",
    "org.freedesktop.PolicyKit1.Authority",
    "org.freedesktop.PackageKit",
    "org.freedesktop.PackageKit.Offline",
    "org.freedesktop.PackageKit.Transaction",
    "org.freedesktop.DBus",
    "org.freedesktop.DBus.Monitoring",
    "org.freedesktop.LogControl1",
}
"""login1's Session and User objects exist only with a logged-in session, which the sandbox has none of; the
catalog classifies them from systemd's documentation (every User member, each Session member)."""


@dataclass(frozen=True)
class Served:
    service: str
    path: str
    interface: str
    methods: tuple[str, ...]
    writable: tuple[str, ...]


def introspect(sandbox: Sandbox, service: str, path: str) -> list[Served]:
    root = ET.fromstring(sandbox.busctl("introspect", "--xml-interface", service, path))
    return [
        Served(
            service,
            path,
            str(node.get("name")),
            tuple(str(m.get("name")) for m in node.findall("method")),
            tuple(str(p.get("name")) for p in node.findall("property") if "write" in str(p.get("access"))),
        )
        for node in root.findall("interface")
        if node.get("name") not in STANDARD
    ]


def call_json(sandbox: Sandbox, service: str, path: str, interface: str, member: str, *args: str) -> list[object]:
    return list(json.loads(sandbox.busctl("--json=short", "call", service, path, interface, member, *args))["data"])


def objects(sandbox: Sandbox) -> list[tuple[str, str]]:
    probe = f"coverage-{secrets.token_hex(3)}"
    found = [(SD, MANAGER_PATH), (SD, "/org/freedesktop/LogControl1")]
    found += [
        (SD, str(call_json(sandbox, SD, MANAGER_PATH, MANAGER, "LoadUnit", "s", f"{probe}.{kind}")[0]))
        for kind in UNIT_TYPES
    ]
    transaction = call_json(
        sandbox,
        "org.freedesktop.PackageKit",
        "/org/freedesktop/PackageKit",
        "org.freedesktop.PackageKit",
        "CreateTransaction",
    )[0]
    return [
        *found,
        ("org.freedesktop.login1", "/org/freedesktop/login1"),
        ("org.freedesktop.login1", "/org/freedesktop/login1/seat/seat0"),
        ("org.freedesktop.hostname1", "/org/freedesktop/hostname1"),
        ("org.freedesktop.timedate1", "/org/freedesktop/timedate1"),
        ("org.freedesktop.locale1", "/org/freedesktop/locale1"),
        ("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority"),
        ("org.freedesktop.PackageKit", "/org/freedesktop/PackageKit"),
        ("org.freedesktop.PackageKit", str(transaction)),
        ("org.freedesktop.DBus", "/org/freedesktop/DBus"),
    ]


def served_job(sandbox: Sandbox) -> list[Served]:
    """A job object exists only while its job runs: a start that takes a few seconds."""
    unit = f"slow-{secrets.token_hex(3)}.service"
    sandbox.write_unit(unit, "[Service]\nType=oneshot\nExecStart=/bin/sleep 5\n")
    job = str(call_json(sandbox, SD, MANAGER_PATH, MANAGER, "StartUnit", "ss", unit, "replace")[0])
    try:
        return introspect(sandbox, SD, job)
    finally:
        stop(sandbox, unit)


def test_every_method_and_writable_property_the_sandbox_serves_is_classified(sandbox: Sandbox) -> None:
    served = [s for service, path in objects(sandbox) for s in introspect(sandbox, service, path)]
    served += served_job(sandbox)
    assert {s.interface for s in served} >= REQUIRED, REQUIRED - {s.interface for s in served}
    unclassified = sorted(
        {
            f"{s.interface}.{member}"
            for s in served
            for member in s.methods
            if classify(Operation(DBUS_CALL, "local", "system", s.service, s.path, s.interface, member)).source
            == "unclassified"
        }
    )
    unknown_properties = sorted(
        {f"{s.interface}.{name}" for s in served for name in s.writable if lookup_property(s.interface, name) is None}
    )
    assert unclassified == [], f"methods the catalog does not know: {unclassified}"
    assert unknown_properties == [], f"writable properties the catalog does not know: {unknown_properties}"
