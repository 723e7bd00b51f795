"""Token scopes: what each kind of operation needs, what each scope grants, and the words of a refusal."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.guard import scopes
from fleetbus.guard.catalog import Classification, Risk, UnitAction, classify
from fleetbus.guard.scopes import ADMIN, EXEC, READ, UNITS_WRITE, Requirement, ScopeError
from fleetbus.operation import AUDIT_QUERY, DBUS_CALL, DBUS_WATCH, Operation

MANAGER = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


def manager(member: str, *args: Any, host: str = "local") -> Operation:
    destination, path, interface = MANAGER
    return Operation(DBUS_CALL, host, "system", destination, path, interface, member, "", tuple(args))


def need(operation: Operation) -> Requirement:
    return scopes.required(operation, classify(operation))


# ---- parsing --------------------------------------------------------------------------------------


def test_parse_accepts_the_grammar_from_text_or_lists() -> None:
    assert scopes.parse_scopes("read, units:write:web-*,approve") == {"read", "units:write:web-*", "approve"}
    assert scopes.parse_scopes(["admin"]) == {"admin"}
    assert scopes.parse_scopes("") == frozenset()


@pytest.mark.parametrize("bad", ["write", "units:write:", "units", "READ", "exec:ls", "units:read"])
def test_parse_refuses_what_is_not_a_scope(bad: str) -> None:
    with pytest.raises(ScopeError, match="unknown scope"):
        scopes.parse_scopes(f"read,{bad}")


# ---- what an operation needs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        manager("GetUnit", "dbus.service"),
        manager("ListUnits"),
        Operation(
            DBUS_CALL,
            "local",
            "system",
            "org.freedesktop.hostname1",
            "/",
            "org.freedesktop.DBus.Properties",
            "Get",
            "ss",
            ("org.freedesktop.hostname1", "Hostname"),
        ),
        Operation(DBUS_WATCH, "local", "system", "org.freedesktop.systemd1"),
        Operation("journal.query", "local", "", args=("-u", "x")),
    ],
)
def test_reads_need_read(operation: Operation) -> None:
    assert need(operation) == Requirement(READ)


@pytest.mark.parametrize(
    ("member", "args"),
    [
        ("StartUnit", ("worker-1.service", "replace")),
        ("StopUnit", ("worker-1.service", "replace")),
        ("RestartUnit", ("worker-1.service", "replace")),
        ("ReloadUnit", ("worker-1.service", "replace")),
        ("TryRestartUnit", ("worker-1.service", "replace")),
        ("KillUnit", ("worker-1.service", "all", 15)),
        ("ResetFailedUnit", ("worker-1.service",)),
        ("EnableUnitFiles", (["worker-1.service"], False, False)),
        ("DisableUnitFiles", (["worker-1.service"], False)),
        ("EnqueueUnitJob", ("worker-1.service", "restart", "replace")),
    ],
)
def test_routine_unit_actions_need_units_write_for_the_units_named(member: str, args: tuple[Any, ...]) -> None:
    assert need(manager(member, *args)) == Requirement(UNITS_WRITE, ("worker-1.service",))


def test_a_unit_addressed_by_its_object_path_is_named_too() -> None:
    operation = Operation(
        DBUS_CALL,
        "local",
        "system",
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1/unit/worker_2d1_2eservice",
        "org.freedesktop.systemd1.Unit",
        "Restart",
        "s",
        ("replace",),
    )
    assert need(operation) == Requirement(UNITS_WRITE, ("worker-1.service",))


def test_several_units_are_all_required() -> None:
    assert need(manager("EnableUnitFiles", ["a.service", "b.service"], False, False)).units == (
        "a.service",
        "b.service",
    )


@pytest.mark.parametrize(
    "operation",
    [
        manager("StartTransientUnit", "run-x.service", "fail", [], []),
        Operation(
            DBUS_CALL,
            "local",
            "system",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "",
            "StartTransientUnit",
        ),
        Operation("exec.run", "local", "", args=(["ls"],)),
    ],
)
def test_commands_and_transient_units_need_exec(operation: Operation) -> None:
    assert need(operation) == Requirement(EXEC)


@pytest.mark.parametrize(
    "operation",
    [
        manager("Reload"),  # daemon-reload: changes, but names no unit
        manager("ResetFailed"),
        manager("PowerOff"),  # dangerous
        manager("MaskUnitFiles", ["worker-1.service"], False, False),  # dangerous unit action
        manager("StartUnit", "reboot.target", "replace"),  # a routine member made dangerous by its target
        manager("StartUnit", "multi-user.target", "isolate"),
        manager("StopUnit", "", "replace"),  # the caller's own unit
        manager("Frobnicate"),  # unknown
        Operation(
            DBUS_CALL,
            "local",
            "session",
            "org.freedesktop.secrets",
            "/",
            "org.freedesktop.Secret.Service",
            "GetSecrets",
            "",
            ([], "/"),
        ),
        Operation(
            DBUS_CALL,
            "local",
            "system",
            "org.freedesktop.hostname1",
            "/",
            "org.freedesktop.DBus.Properties",
            "Set",
            "ssv",
            ("org.freedesktop.hostname1", "Hostname", {"signature": "s", "value": "x"}),
        ),
        Operation(AUDIT_QUERY, "local", "", member="query"),
        Operation("file.write", "local", ""),  # a kind nobody classified
    ],
)
def test_everything_else_needs_admin(operation: Operation) -> None:
    assert need(operation) == Requirement(ADMIN)


def test_audit_query_needs_admin_although_it_reads() -> None:
    operation = Operation(AUDIT_QUERY, "local", "", member="query")
    assert classify(operation).risk is Risk.READ
    assert need(operation).scope == ADMIN


# ---- what a scope grants --------------------------------------------------------------------------

RESTART = manager("RestartUnit", "worker-1.service", "replace")


@pytest.mark.parametrize(
    ("held", "operation", "granted"),
    [
        (None, manager("PowerOff"), True),  # the operator
        ({"admin"}, manager("PowerOff"), True),
        ({"admin"}, RESTART, True),
        ({"admin"}, manager("GetUnit", "x"), True),
        ({"read"}, manager("GetUnit", "x"), True),
        ({"read"}, RESTART, False),
        ({"units:write"}, RESTART, True),
        ({"units:write"}, manager("GetUnit", "x"), False),  # scopes are verbs: writing is not reading
        ({"units:write:worker-*"}, RESTART, True),
        ({"units:write:web-*"}, RESTART, False),
        ({"units:write:web-*", "units:write:worker-?.service"}, RESTART, True),
        ({"units:write"}, manager("StartTransientUnit", "run-x.service", "fail", [], []), False),
        ({"exec"}, manager("StartTransientUnit", "run-x.service", "fail", [], []), True),
        ({"exec"}, RESTART, False),
        ({"units:write", "exec", "read", "approve"}, manager("PowerOff"), False),
        ({"units:write"}, manager("Reload"), False),
        ({"approve"}, manager("GetUnit", "x"), False),
    ],
)
def test_grants(held: set[str] | None, operation: Operation, granted: bool) -> None:
    assert scopes.grants(None if held is None else frozenset(held), need(operation)) is granted


def test_a_glob_scope_must_cover_every_unit_named() -> None:
    both = manager("EnableUnitFiles", ["web-1.service", "db.service"], False, False)
    assert not scopes.grants(frozenset({"units:write:web-*"}), need(both))
    assert scopes.grants(frozenset({"units:write:web-*", "units:write:db.service"}), need(both))


def test_units_write_without_units_named_is_never_granted_by_a_glob() -> None:
    assert not scopes.grants(frozenset({"units:write:*"}), Requirement(UNITS_WRITE, ()))


@given(st.sets(st.sampled_from(["read", "units:write", "units:write:a*", "exec", "approve"])))
def test_admin_implies_everything(held: set[str]) -> None:
    for requirement in (Requirement(READ), Requirement(UNITS_WRITE, ("x",)), Requirement(EXEC), Requirement(ADMIN)):
        assert scopes.grants(frozenset({*held, "admin"}), requirement)
    assert not scopes.grants(frozenset(held), Requirement(ADMIN))


@pytest.mark.parametrize(
    ("held", "allowed"),
    [(None, True), ({"approve"}, True), ({"admin"}, True), ({"read"}, False), ({"units:write", "exec"}, False)],
)
def test_only_approve_or_admin_may_answer_approvals(held: set[str] | None, allowed: bool) -> None:
    assert scopes.may_approve(None if held is None else frozenset(held)) is allowed


# ---- refusals -------------------------------------------------------------------------------------


def test_a_refusal_names_the_missing_scope_and_the_client() -> None:
    refusal = scopes.check(frozenset({"read"}), None, RESTART, classify(RESTART), "ci-bot")
    assert refusal is not None
    assert refusal.scope == UNITS_WRITE
    assert "units:write" in refusal.message
    assert "worker-1.service" in refusal.message
    assert "'ci-bot'" in refusal.message
    assert "read" in refusal.message


def test_a_refusal_for_admin_says_admin() -> None:
    poweroff = manager("PowerOff")
    refusal = scopes.check(frozenset({"read", "units:write"}), None, poweroff, classify(poweroff), "t")
    assert refusal is not None
    assert refusal.scope == ADMIN
    assert "lacks scope admin" in refusal.message


def test_hosts_limit_where_a_token_reaches_whatever_its_scopes() -> None:
    remote = manager("GetUnit", "x", host="db-1")
    refusal = scopes.check(frozenset({"admin"}), ("web-*", "local"), remote, classify(remote), "t")
    assert refusal is not None
    assert refusal.scope == "host:db-1"
    assert "db-1" in refusal.message
    assert "web-*" in refusal.message
    local = manager("GetUnit", "x")
    assert scopes.check(frozenset({"read"}), ("web-*", "local"), local, classify(local), "t") is None
    assert scopes.check(None, None, remote, classify(remote), "operator") is None


def test_host_allowed() -> None:
    assert scopes.host_allowed(None, "anything")
    assert scopes.host_allowed(["web-*"], "web-3")
    assert not scopes.host_allowed(["web-*"], "db-1")
    assert not scopes.host_allowed([], "local")


def test_a_hand_made_routine_unit_classification_maps_to_units_write() -> None:
    operation = Operation("units.restart", "local", "")
    classification = Classification(Risk.ROUTINE, "restarts", "test", ("a.service",), UnitAction.RESTART)
    assert scopes.required(operation, classification) == Requirement(UNITS_WRITE, ("a.service",))
