"""The catalog's classification of operations: risks, the units an operation touches, hints, and protection."""

from __future__ import annotations

from typing import Any

import pytest

from fleetbus.guard.catalog import (
    CALLER_UNIT,
    CATALOG,
    DANGEROUS_TARGETS,
    DEFAULT_PROTECTED_UNITS,
    Classification,
    Hints,
    Risk,
    UnitAction,
    classify,
    protected_hits,
    unit_name_from_path,
)
from fleetbus.operation import DBUS_CALL, DBUS_WATCH, Operation

SD = "org.freedesktop.systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"


def call(
    interface: str, member: str, *args: Any, path: str = "/org/freedesktop/systemd1", bus: str = "system"
) -> Operation:
    return Operation(DBUS_CALL, "local", bus, SD, path, interface, member, "", tuple(args))


def test_risks_are_ordered_from_read_to_secret() -> None:
    assert sorted(Risk, key=int) == [Risk.READ, Risk.ROUTINE, Risk.UNKNOWN, Risk.DANGEROUS, Risk.SECRET]
    assert Risk.UNKNOWN > Risk.ROUTINE
    assert Risk.DANGEROUS.label == "dangerous"


def test_only_start_reload_and_reset_are_harmless_to_a_unit() -> None:
    harmless = {action for action in UnitAction if not action.disruptive}
    assert harmless == {UnitAction.START, UnitAction.RELOAD, UnitAction.RESET}


@pytest.mark.parametrize(
    ("interface", "member"),
    [
        (MANAGER, "StartTransientUnit"),
        (MANAGER, "SetUnitProperties"),
        (MANAGER, "KExec"),
        (MANAGER, "PowerOff"),
        (MANAGER, "Reboot"),
        (MANAGER, "Halt"),
        ("org.freedesktop.login1.Manager", "PowerOff"),
        ("org.freedesktop.login1.Manager", "Reboot"),
        ("org.freedesktop.login1.Manager", "Suspend"),
        ("org.freedesktop.login1.Manager", "KillSession"),
        ("org.freedesktop.PackageKit.Transaction", "InstallPackages"),
        ("org.freedesktop.PackageKit.Transaction", "RemovePackages"),
    ],
)
def test_the_issue_s_dangerous_members_are_dangerous(interface: str, member: str) -> None:
    classification = classify(call(interface, member))
    assert classification.risk is Risk.DANGEROUS
    assert classification.source == f"catalog:{interface}"


def test_get_secrets_is_a_secret_despite_its_name() -> None:
    classification = classify(call("org.freedesktop.Secret.Service", "GetSecrets", ["/i"], "/s"))
    assert classification.risk is Risk.SECRET
    assert classification.reason == "reveals stored secrets"


def test_unknown_members_are_never_reads() -> None:
    classification = classify(call("com.example.Foo", "GetThing"))
    assert classification.risk is Risk.UNKNOWN
    assert classification.source == "unclassified"
    assert "com.example.Foo.GetThing is not in the catalog" in classification.reason
    assert not classification.is_read


def test_other_kinds_are_unknown_except_known_reads() -> None:
    assert classify(Operation("exec.run", "local")).risk is Risk.UNKNOWN
    assert classify(Operation(DBUS_WATCH, "local")).risk is Risk.READ
    audit = classify(Operation("audit.query", "local"))
    assert (audit.risk, audit.source) == (Risk.READ, "kind:audit.query")


def test_property_set_depends_on_the_bus_and_names_the_property() -> None:
    system = classify(call("org.freedesktop.DBus.Properties", "Set", "org.x.App", "Theme", "dark"))
    session = classify(call("org.freedesktop.DBus.Properties", "Set", "org.x.App", "Theme", "dark", bus="session"))
    assert (system.risk, session.risk) == (Risk.DANGEROUS, Risk.ROUTINE)
    assert system.reason == "writes org.x.App.Theme on the system bus"
    assert session.reason == "writes org.x.App.Theme on the session bus"


def test_known_writable_properties_are_judged_by_the_catalog_on_any_bus() -> None:
    props = "org.freedesktop.DBus.Properties"
    watchdog = classify(call(props, "Set", MANAGER, "RuntimeWatchdogUSec", 0, bus="session"))
    assert watchdog.risk is Risk.DANGEROUS
    assert "watchdog" in watchdog.reason
    wall = classify(call(props, "Set", "org.freedesktop.login1.Manager", "WallMessage", "bye"))
    assert wall.risk is Risk.ROUTINE


def test_unit_named_by_argument_list_and_path() -> None:
    by_arg = classify(call(MANAGER, "RestartUnit", "web-1.service", "replace"))
    assert (by_arg.units, by_arg.unit_action) == (("web-1.service",), UnitAction.RESTART)
    assert by_arg.polkit_action == "org.freedesktop.systemd1.manage-units"
    by_list = classify(call(MANAGER, "DisableUnitFiles", ["a.service", "b.service", 7], False))
    assert (by_list.units, by_list.unit_action) == (("a.service", "b.service"), UnitAction.DISABLE)
    assert by_list.polkit_action == "org.freedesktop.systemd1.manage-unit-files"
    by_path = classify(call(UNIT, "Stop", "replace", path="/org/freedesktop/systemd1/unit/ssh_2eservice"))
    assert (by_path.units, by_path.unit_action) == (("ssh.service",), UnitAction.STOP)
    assert classify(call(MANAGER, "RestartUnit")).units == ()
    assert classify(call(UNIT, "Stop", path="/org/freedesktop/systemd1")).units == ()


def test_an_empty_unit_name_and_the_self_path_mean_the_caller_s_own_unit() -> None:
    assert classify(call(MANAGER, "StopUnit", "", "replace")).units == (CALLER_UNIT,)
    assert classify(call(UNIT, "Kill", "all", 9, path="/org/freedesktop/systemd1/unit/self")).units == (CALLER_UNIT,)


@pytest.mark.parametrize(
    ("job", "action"),
    [
        ("start", UnitAction.START),
        ("reload", UnitAction.RELOAD),
        ("stop", UnitAction.STOP),
        ("restart", UnitAction.RESTART),
        ("try-restart", UnitAction.RESTART),
        ("frobnicate", UnitAction.CHANGE),
    ],
)
def test_enqueue_unit_job_does_what_its_job_type_says(job: str, action: UnitAction) -> None:
    classification = classify(call(MANAGER, "EnqueueUnitJob", "web-1.service", job, "replace"))
    assert (classification.unit_action, classification.units) == (action, ("web-1.service",))
    on_object = classify(call(UNIT, "EnqueueJob", job, "replace", path="/org/freedesktop/systemd1/unit/a_2eservice"))
    assert (on_object.unit_action, on_object.units) == (action, ("a.service",))


def test_enqueue_unit_job_without_a_job_type_counts_as_a_change() -> None:
    assert classify(call(MANAGER, "EnqueueUnitJob", "web-1.service")).unit_action is UnitAction.CHANGE


@pytest.mark.parametrize(
    "operation",
    [
        call(MANAGER, "StartUnit", "poweroff.target", "replace"),
        call(MANAGER, "StartUnitWithFlags", "kexec.target", "replace", 0),
        call(MANAGER, "StartUnit", "graphical.target", "isolate"),
        call(MANAGER, "StartUnitReplace", "a.target", "b.target", "isolate"),
        call(MANAGER, "RestartUnit", "reboot.target", "replace"),
        call(MANAGER, "EnqueueUnitJob", "halt.target", "start", "replace"),
        call(MANAGER, "SetDefaultTarget", "emergency.target", True),
        call(UNIT, "Start", "isolate", path="/org/freedesktop/systemd1/unit/multi_2duser_2etarget"),
        call(UNIT, "Start", "replace", path="/org/freedesktop/systemd1/unit/reboot_2etarget"),
    ],
    ids=lambda op: f"{op.member}{list(op.args)}",
)
def test_shutdown_targets_and_isolate_are_dangerous(operation: Operation) -> None:
    classification = classify(operation)
    assert classification.risk is Risk.DANGEROUS
    assert "powers off, reboots or rescues" in classification.reason or "isolate" in classification.reason


@pytest.mark.parametrize(
    "operation",
    [
        call(MANAGER, "StartUnit", "nginx.service", "replace"),
        call(MANAGER, "StartUnitReplace", "a.target", "isolate", "replace"),
        call(MANAGER, "SetDefaultTarget", "multi-user.target", True),
        call(MANAGER, "StopUnit", "reboot.target", "isolate"),
    ],
    ids=lambda op: f"{op.member}{list(op.args)}",
)
def test_ordinary_starts_stay_routine(operation: Operation) -> None:
    assert classify(operation).risk is Risk.ROUTINE


@pytest.mark.parametrize(
    ("interface", "member"),
    [
        ("org.freedesktop.DBus", "AddMatch"),
        ("org.freedesktop.DBus", "RemoveMatch"),
        ("org.freedesktop.DBus", "RequestName"),
        ("org.freedesktop.DBus", "ReleaseName"),
        ("org.freedesktop.DBus", "Hello"),
        ("org.freedesktop.DBus.Monitoring", "BecomeMonitor"),
        ("", "AddMatch"),
    ],
)
def test_members_that_change_fleetbus_s_own_connection_are_forbidden(interface: str, member: str) -> None:
    # Every client's calls share one connection per bus: a match rule, an owned name or a monitor is fleetbus's.
    classification = classify(call(interface, member, "type='signal',member='JobRemoved'"))
    assert classification.forbidden is not None
    assert classification.forbidden.rule == "own-connection"
    assert "fleetbus's own connection" in classification.forbidden.reason
    assert not classification.is_read


def test_a_call_without_interface_is_judged_by_the_strictest_member_of_that_name() -> None:
    secrets = classify(call("", "GetSecrets", [], "/s"))
    assert secrets.risk is Risk.SECRET
    assert "without an interface" in secrets.reason
    stop = classify(call("", "StopUnit", "sshd.service", "replace"))
    assert (stop.risk, stop.units, stop.unit_action) == (Risk.UNKNOWN, ("sshd.service",), UnitAction.STOP)
    # A read member is not a read when nothing says which interface answers.
    assert classify(call("", "ListUnits")).risk is Risk.UNKNOWN
    power = classify(call("", "PowerOff"))
    assert power.risk is Risk.DANGEROUS


@pytest.mark.parametrize("risk", list(Risk))
@pytest.mark.parametrize("hints", [Hints(privileged=True), Hints(no_reply=True), Hints(True, True, "read")])
def test_hints_raise_reads_and_never_lower_anything(risk: Risk, hints: Hints) -> None:
    # Find a catalog member of each risk to apply the hints to.
    examples = {
        Risk.READ: call(MANAGER, "ListUnits"),
        Risk.ROUTINE: call(MANAGER, "Reload"),
        Risk.UNKNOWN: call("com.example.Foo", "GetThing"),
        Risk.DANGEROUS: call(MANAGER, "PowerOff"),
        Risk.SECRET: call("org.freedesktop.Secret.Service", "GetSecrets"),
    }
    hinted = classify(examples[risk], hints)
    assert classify(examples[risk]).risk is risk
    assert hinted.risk is max(risk, Risk.ROUTINE)
    if risk is Risk.READ:
        assert hinted.source == f"catalog:{MANAGER}+hints"
        assert "introspection marks it" in hinted.reason


def test_property_access_hint_alone_changes_nothing() -> None:
    operation = call("org.freedesktop.DBus.Properties", "Get", MANAGER, "Version")
    assert classify(operation, Hints(property_access="write")) == classify(operation)


@pytest.mark.parametrize(
    ("path", "unit"),
    [
        ("/org/freedesktop/systemd1/unit/ssh_2eservice", "ssh.service"),
        ("/org/freedesktop/systemd1/unit/_2d_2eslice", "-.slice"),
        ("/org/freedesktop/systemd1/unit/sshd_40_31_2eservice", "sshd@1.service"),
        ("/org/freedesktop/systemd1/unit/_31foo_2eservice", "1foo.service"),
        ("/org/freedesktop/systemd1/unit/dbus_2Eservice", "dbus.service"),
        ("/org/freedesktop/systemd1/unit/a_zz_2", "a_zz_2"),
        ("/org/freedesktop/systemd1/unit/a__31", "a_1"),
        ("/org/freedesktop/systemd1/unit/self", "self"),
    ],
)
def test_unit_name_from_path_undoes_systemd_escaping(path: str, unit: str) -> None:
    assert unit_name_from_path(path) == unit


def test_protected_hits_only_for_disruptive_actions() -> None:
    stop = classify(call(MANAGER, "StopUnit", "dbus.service", "replace"))
    assert protected_hits(stop, DEFAULT_PROTECTED_UNITS) == ["dbus.service"]
    start = classify(call(MANAGER, "StartUnit", "dbus.service", "replace"))
    assert protected_hits(start, DEFAULT_PROTECTED_UNITS) == []
    read = classify(call(MANAGER, "GetUnit", "dbus.service"))
    assert protected_hits(read, DEFAULT_PROTECTED_UNITS) == []


def test_protected_hits_use_globs_file_names_and_the_caller_s_unit() -> None:
    disable = classify(call(MANAGER, "DisableUnitFiles", ["a.service", "sshd@7.service", "/x/ssh.socket"], False))
    assert protected_hits(disable, DEFAULT_PROTECTED_UNITS) == ["sshd@7.service", "/x/ssh.socket"]
    own = Classification(Risk.ROUTINE, "", "", (CALLER_UNIT,), UnitAction.KILL)
    assert protected_hits(own, ()) == [CALLER_UNIT]
    custom = Classification(Risk.ROUTINE, "", "", ("pg.service", "web.service"), UnitAction.RESTART)
    assert protected_hits(custom, ("pg.*",)) == ["pg.service"]


def test_catalog_has_no_duplicate_exact_members_and_valid_entries() -> None:
    for interface, entries in CATALOG.items():
        names = [entry.member for entry in entries]
        assert len(names) == len(set(names)), f"{interface} lists a member twice"
        for entry in entries:
            assert entry.reason, f"{interface}.{entry.member} has no reason"
            if entry.polkit_action is not None:
                assert entry.polkit_action.startswith("org.freedesktop."), entry.polkit_action
            if entry.job_arg is None and entry.unit_args:
                assert entry.unit_action is not None, f"{interface}.{entry.member} names a unit but no action"


def test_every_disruptive_unit_member_really_names_its_unit() -> None:
    # A member that acts on a unit but names none would slip past protection: either an argument names the
    # unit, or the member lives on a unit's own object, whose path names it.
    per_unit_objects = {UNIT} | {
        f"org.freedesktop.systemd1.{kind}" for kind in ("Service", "Scope", "Socket", "Slice", "Mount", "Swap")
    }
    for interface, entries in CATALOG.items():
        for entry in entries:
            if entry.unit_action is not None and not entry.unit_args:
                assert interface in per_unit_objects, f"{interface}.{entry.member}"


def test_dangerous_targets_and_protected_units_are_unit_names() -> None:
    assert all(t.endswith((".target", ".service")) for t in DANGEROUS_TARGETS)
    suffixes = (".service", ".socket", ".scope", ".slice", ".mount")
    assert all(u.endswith(suffixes) for u in DEFAULT_PROTECTED_UNITS)
    for unit in ("dbus.service", "sshd.service", "systemd-journald.service", "systemd-logind.service"):
        assert unit in DEFAULT_PROTECTED_UNITS


def test_what_keeps_a_host_reachable_is_protected_by_default() -> None:
    for unit in (
        "systemd-networkd.service",
        "NetworkManager.service",
        "networking.service",
        "-.slice",
        "system.slice",
        "user.slice",
        "init.scope",
    ):
        stop = classify(call(MANAGER, "StopUnit", unit, "replace"))
        assert protected_hits(stop, DEFAULT_PROTECTED_UNITS) == [unit]
